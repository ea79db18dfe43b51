"""The module's own helper nodes (editor parameter node, point lists): hidden, never saved, never "unsaved
changes", and the user's masking settings kept across a scene close."""
from __future__ import annotations

import slicer


def add_helper_node(scene, class_name: str, name: str):
    """Add a node that the Data module does not list and that is not saved with the scene.

    The flags are set before the node enters the scene: a node added as saveable marks the scene modified
    (vtkMRMLScene::GetModifiedSinceRead, what Slicer asks "save changes?" on exit from), even if it is made
    unsaveable afterwards (checked on slicer-core).
    """
    node = getattr(slicer, class_name)()
    node.SetName(name)
    node.SetHideFromEditors(True)
    node.SetSaveWithScene(False)
    scene.AddNode(node)
    return node


_SETTINGS = ("MaskMode", "OverwriteMode")
_RENAMED = ("VolumeIntensityMask", "VolumeIntensityMaskRange")  # "Source..." since Slicer 5.2, "Master..." before


def _prefix(editor_node) -> str:
    return "Source" if hasattr(editor_node, "GetSourceVolumeIntensityMask") else "Master"


def masking_settings(editor_node) -> dict:
    """The Segment Editor's masking settings, to carry over a scene close (the mask segment's ID is left out: its
    segment is gone with the scene)."""
    if editor_node is None:
        return {}
    prefix = _prefix(editor_node)
    values = {name: getattr(editor_node, f"Get{name}")() for name in _SETTINGS}
    values.update({name: getattr(editor_node, f"Get{prefix}{name}")() for name in _RENAMED})
    return values


def restore_masking_settings(editor_node, values: dict) -> None:
    if editor_node is None or not values:
        return
    prefix = _prefix(editor_node)
    for name, value in values.items():
        setter = f"Set{name}" if name in _SETTINGS else f"Set{prefix}{name}"
        args = value if isinstance(value, (tuple, list)) else (value,)
        getattr(editor_node, setter)(*args)
