"""The module's point lists and helper nodes on real MRML (slicer-core): the place preview point is not a click
(issue 10, item 7), helper nodes are hidden and leave the scene unmodified, and the Segment Editor's masking
settings survive a scene close (item 13)."""
from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")

from EISegMed3DLib.clicks import PointsWatch, defined_points  # noqa: E402
from EISegMed3DLib.helper_nodes import add_helper_node, masking_settings, restore_masking_settings  # noqa: E402


@pytest.fixture
def scene():
    scene = slicer.vtkMRMLScene()
    scene.RegisterNodeClass(slicer.vtkMRMLSegmentEditorNode())
    return scene


def test_the_place_preview_point_coming_and_going_is_not_a_change(scene):
    """Slicer adds a preview point under the mouse in place mode and removes it when the mouse leaves a view:
    PointRemovedEvent fires, yet nothing was clicked."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    watch, verdicts = PointsWatch(), []
    node.AddControlPoint(1.0, 2.0, 3.0)  # a click
    assert watch.changed([node]) and defined_points(node) == [(1.0, 2.0, 3.0)]
    node.AddObserver(node.PointRemovedEvent, lambda caller, name: verdicts.append(watch.changed([caller])))
    # The place widget adds its preview point in "preview" state (vtkSlicerMarkupsWidget::UpdatePreviewPoint);
    # slicer-core's Python cannot add one in that state directly, so it is added and then set to preview.
    preview = node.AddControlPoint(5.0, 5.0, 5.0)
    node.SetNthControlPointPosition(preview, 5.0, 5.0, 5.0, node.PositionPreview)
    assert defined_points(node) == [(1.0, 2.0, 3.0)]
    node.RemoveNthControlPoint(preview)  # the mouse left the view
    assert verdicts == [False]
    node.RemoveNthControlPoint(0)  # the user deleted the click
    assert verdicts == [False, True]


def test_reset_takes_points_filled_in_by_the_module_as_seen(scene):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    watch = PointsWatch()
    node.AddControlPoint(1.0, 2.0, 3.0)
    watch.reset([node])
    assert not watch.changed([node])
    node.SetNthControlPointPosition(0, 1.0, 2.0, 4.0)  # dragged
    assert watch.changed([node])


def test_helper_nodes_are_hidden_and_leave_the_scene_unmodified(scene):
    assert not scene.GetModifiedSinceRead()
    nodes = [add_helper_node(scene, "vtkMRMLSegmentEditorNode", "EISegMed3D editor"),
             add_helper_node(scene, "vtkMRMLMarkupsFiducialNode", "positive")]
    nodes[1].CreateDefaultDisplayNodes()
    nodes[1].AddControlPoint(1.0, 2.0, 3.0)
    for node in nodes:
        assert node.GetScene() is scene and node.GetHideFromEditors() and not node.GetSaveWithScene()
    assert not scene.GetModifiedSinceRead(), "Slicer would ask to save the scene on exit"


def test_masking_settings_survive_a_scene_close(scene):
    editor = add_helper_node(scene, "vtkMRMLSegmentEditorNode", "EISegMed3D editor")
    editor.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedOutsideVisibleSegments)
    editor.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
    editor.SetSourceVolumeIntensityMask(True)
    editor.SetSourceVolumeIntensityMaskRange(-100.0, 250.0)
    kept = masking_settings(editor)
    scene.Clear(0)  # what File -> Close Scene does
    assert editor.GetScene() is None
    fresh = add_helper_node(scene, "vtkMRMLSegmentEditorNode", "EISegMed3D editor")
    assert fresh.GetOverwriteMode() != slicer.vtkMRMLSegmentEditorNode.OverwriteNone  # the defaults differ
    restore_masking_settings(fresh, kept)
    assert fresh.GetMaskMode() == slicer.vtkMRMLSegmentationNode.EditAllowedOutsideVisibleSegments
    assert fresh.GetOverwriteMode() == slicer.vtkMRMLSegmentEditorNode.OverwriteNone
    assert fresh.GetSourceVolumeIntensityMask()
    assert tuple(fresh.GetSourceVolumeIntensityMaskRange()) == (-100.0, 250.0)
