"""Drawing a box, a lasso or a scribble in a slice view as a prompt for the selected segment. No Qt here.

`PromptPlacement.start(kind, positive)` adds a hidden helper markups node of the prompt's kind (ROI for a box,
closed curve for a lasso, curve for a scribble), makes it the active place node and turns on (single) place mode,
as qSlicerMarkupsPlaceWidget::setPlaceModeEnabled does. Slicer ends placement by itself: a ROI after its second
corner (vtkSlicerMarkupsWidget::PlacePoint: required points reached, no persistence), a curve on a right-click or
double-click (StopPlace). Leaving place mode fires the interaction node's EndPlacementEvent; then, once the event
has returned (`defer`: a zero-delay timer in Slicer, so the markups widget still on the stack never sees its node
removed), the prompt is read in world RAS, the helper node removed and `on_end(prompt, message)` called. Making
another node the active place node (e.g. the point buttons) cancels the drawing: `on_end(None, message)`.

A ROI drawn in a slice view is a box around the two corners, padded across the view to its shorter side
(vtkMRMLMarkupsROINode::UpdateBoxROIFromControlPoints), so its thinnest side does not always tell the slice plane.
When the first corner is placed the ROI is turned to the orientation of the view it was placed in (read from the
"Markups.MovingInSliceView" attribute the markups display node sets while previewing, or the one slice view whose
plane holds the corner), so its rectangle follows the view, oblique views too; at the end it is made flat across
that view. Without a view (e.g. a script) the first corner tells the plane: it lies on the rectangle's plane.
"""
from __future__ import annotations

import numpy as np

from inference.errors import ClickError
from inference.prompts import REGION, channel_names
from .geometry import to_numpy, to_vtk
from .helper_nodes import add_helper_node
from .prompts import promptFromMarkup

MARKUP_CLASSES = {"box": "vtkMRMLMarkupsROINode", "lasso": "vtkMRMLMarkupsClosedCurveNode",
                  "scribble": "vtkMRMLMarkupsCurveNode"}
MIN_POINTS = {"lasso": 3, "scribble": 2}
COLORS = {True: (0.1, 0.85, 0.1), False: (0.9, 0.1, 0.1)}
ON_PLANE_MM = 1e-3  # a placed point lies on its view's plane up to rounding
MOVING_IN_VIEW = "Markups.MovingInSliceView"  # layout name of the view a preview point follows (markups display node)

HOW = {
    "box": "Box: click two opposite corners of a rectangle around the object on one slice (any view)",
    "lasso": "Lasso: click around the object on one slice (any view); right-click or double-click closes it",
    "scribble": "Scribble: click points along the object on one slice; right-click or double-click ends the stroke",
}


def prompt_availability(logic, kind: str, positive: bool = True) -> tuple:
    """(enabled, why): whether the loaded model takes this prompt, and the text for the button's tooltip."""
    if kind not in MARKUP_CLASSES:
        raise ClickError(f"unknown prompt kind {kind!r} (one of {sorted(MARKUP_CLASSES)})")
    session = getattr(logic, "session", None)
    if session is None:
        return False, "Load a model first (Model Settings -> Load Static Model)"
    name = session.manifest.get("name", "the model")
    region = REGION in channel_names(session.manifest)
    if kind == "box" and not region:
        return False, (f"The model {name} has no 'region' input: a box needs a model trained with boxes "
                       "(a lasso works with any model)")
    text = HOW[kind] if positive or kind == "box" else HOW[kind] + " (negative: not the object)"
    if kind == "lasso" and positive and not region:
        text += f". The model {name} has no 'region' input: the filled outline goes in as positive clicks"
    return True, text


class PromptPlacement:
    """One prompt being drawn at a time. `on_end(prompt, message)`: prompt is a WorldPrompt, or None when the
    drawing was cancelled or incomplete (message says why); `defer(fn)` runs fn after the current event."""

    def __init__(self, scene, interaction_node, selection_node, on_end, defer=None):
        self.scene, self.interaction, self.selection = scene, interaction_node, selection_node
        self.on_end = on_end
        self.defer = defer or (lambda fn: fn())
        self.node, self.kind, self.positive = None, None, True
        self._observations = []
        self._corner = None  # first ROI corner (world RAS)
        self._layout = ""  # layout name of the view the preview last followed
        self._oriented = False  # ROI turned to its view

    @property
    def active(self) -> bool:
        return self.node is not None

    def start(self, kind: str, positive: bool = True):
        """Add the helper node for `kind` and turn on place mode for it; returns the node."""
        if kind not in MARKUP_CLASSES:
            raise ClickError(f"unknown prompt kind {kind!r} (one of {sorted(MARKUP_CLASSES)})")
        self.cancel(message=None)
        sign = "" if kind == "box" else (" +" if positive else " -")
        node = add_helper_node(self.scene, MARKUP_CLASSES[kind], f"EISegMed3D {kind}{sign}")
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetSelectedColor(*COLORS[positive])
        display.SetColor(*COLORS[positive])
        display.SetPointLabelsVisibility(False)
        if kind == "box":
            display.SetHandlesInteractive(False)  # the box is read once placed: no resizing handles
        self.node, self.kind, self.positive = node, kind, bool(positive)
        self._corner, self._layout, self._oriented = None, "", False
        self._observe(node, node.PointModifiedEvent, self._on_point_modified)
        self._observe(node, node.PointPositionDefinedEvent, self._on_point_defined)
        self._observe(node, node.PointRemovedEvent, self._on_point_removed)
        self._observe(self.interaction, self.interaction.EndPlacementEvent, self._on_end_placement)
        self._observe(self.selection, self.selection.ActivePlaceNodeIDChangedEvent, self._on_active_changed)
        # as vtkSlicerMarkupsLogic::SetActiveList and qSlicerMarkupsPlaceWidget::setPlaceModeEnabled (single place)
        self.selection.SetReferenceActivePlaceNodeClassName(node.GetClassName())
        self.selection.SetReferenceActivePlaceNodeID(node.GetID())
        self.interaction.SetPlaceModePersistence(0)
        self.interaction.SetCurrentInteractionMode(self.interaction.Place)
        return node

    def cancel(self, message: str | None = "cancelled") -> None:
        """Stop drawing: the helper node goes, place mode ends if it is still ours; on_end(None, ...) if drawing."""
        if self.node is None:
            return
        kind, ours = self.kind, self._is_active_place_node()
        self._release()
        if ours and self.interaction.GetCurrentInteractionMode() == self.interaction.Place:
            self.interaction.SetCurrentInteractionMode(self.interaction.ViewTransform)
        if message is not None:
            self.on_end(None, f"{kind.capitalize()} {message}")

    # --- events ------------------------------------------------------------------------------------------------
    def _observe(self, obj, event, handler):
        self._observations.append((obj, obj.AddObserver(event, lambda caller, name: handler())))

    def _on_point_modified(self):
        layout = self.node.GetAttribute(MOVING_IN_VIEW) if self.node is not None else None
        if layout:
            self._layout = layout

    def _on_point_defined(self):
        if self.kind != "box" or self._corner is not None:
            return
        defined = [n for n in range(self.node.GetNumberOfControlPoints())
                   if self.node.GetNthControlPointPositionStatus(n) == self.node.PositionDefined]
        if len(defined) != 1:
            return
        self._corner = np.array(self.node.GetNthControlPointPositionWorld(defined[0]), dtype=np.float64)
        view = self._view_through(self._corner)
        if view is not None:  # the second corner's bounding box is then taken in the view's frame
            frame = to_numpy(view.GetSliceToRAS())
            frame[:3, :3] /= np.linalg.norm(frame[:3, :3], axis=0)
            if np.linalg.det(frame[:3, :3]) < 0:  # axial and coronal views look from below: keep the ROI right-handed
                frame[:3, 2] *= -1
            frame[:3, 3] = self._corner
            self.node.SetAndObserveObjectToNodeMatrix(to_vtk(frame))
            self._oriented = True

    def _on_point_removed(self):
        """Backspace / Delete while placing removes the last placed point: a ROI whose corner went starts over."""
        if self.kind != "box" or self._corner is None or self.node.GetNumberOfDefinedControlPoints() > 0:
            return
        self._corner, self._oriented = None, False
        self.node.SetAndObserveObjectToNodeMatrix(to_vtk(np.eye(4)))

    def _on_end_placement(self):
        if self.node is not None:
            node = self.node
            self.defer(lambda: self._finish(node))

    def _on_active_changed(self):
        if self.node is not None and not self._is_active_place_node():
            self.cancel()

    # --- end -----------------------------------------------------------------------------------------------------
    def _finish(self, node) -> None:
        if node is not self.node:  # cancelled or restarted meanwhile
            return
        kind, positive = self.kind, self.positive
        try:
            prompt = self._read(node, kind, positive) if node.GetScene() is not None else None
        except ClickError as error:
            self._release()
            self.on_end(None, f"{kind.capitalize()} not used: {error}")
            return
        self._release()
        self.on_end(prompt, None if prompt is not None else f"{kind.capitalize()} cancelled")

    def _read(self, node, kind, positive):
        for n in reversed(range(node.GetNumberOfControlPoints())):  # the place preview is not part of it
            if node.GetNthControlPointPositionStatus(n) != node.PositionDefined:
                node.RemoveNthControlPoint(n)
        if kind == "box":
            self._flatten(node)
        else:
            count = node.GetNumberOfControlPoints()
            if count < MIN_POINTS[kind]:
                raise ClickError(f"it needs at least {MIN_POINTS[kind]} points, it has {count}")
        return promptFromMarkup(node, positive)

    def _flatten(self, node) -> None:
        """Size 0 across the plane the ROI was drawn on (see the module docstring)."""
        size = np.array(node.GetSize(), dtype=np.float64)
        if self._corner is None or np.count_nonzero(size > 0) < 2:
            raise ClickError("place both corners of the box (two clicks on one slice)")
        if self._oriented:
            axis = 2
        else:  # the first corner sits on the plane (offset 0 across it) and at the rectangle's edge along it
            world_to_object = np.linalg.inv(to_numpy(node.GetObjectToWorldMatrix()))
            offset = np.abs((world_to_object @ np.append(self._corner, 1.0))[:3])
            relative = offset / np.maximum(size / 2, 1e-12)
            axis = int(np.argmin(relative))
            if relative[axis] > 0.5:
                raise ClickError("its two corners are not on one slice: place both in the same slice view")
        size[axis] = 0.0
        node.SetSize(*size)

    def _view_through(self, point):
        """The slice view the corner was placed in: the one the preview followed, else the only view whose
        plane holds the point."""
        views = []
        for n in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            view = self.scene.GetNthNodeByClass(n, "vtkMRMLSliceNode")
            frame = to_numpy(view.GetSliceToRAS())
            normal = frame[:3, 2] / np.linalg.norm(frame[:3, 2])
            if abs(float(np.dot(point - frame[:3, 3], normal))) < ON_PLANE_MM:
                views.append(view)
        named = [v for v in views if self._layout and v.GetLayoutName() == self._layout]
        if named:
            return named[0]
        return views[0] if len(views) == 1 else None

    def _is_active_place_node(self) -> bool:
        return self.node is not None and self.selection.GetActivePlaceNodeID() == self.node.GetID()

    def _release(self) -> None:
        """Forget the drawing: observers off, helper node removed."""
        for obj, tag in self._observations:
            obj.RemoveObserver(tag)
        self._observations = []
        node, self.node, self.kind = self.node, None, None
        if node is not None and node.GetScene() is not None:
            self.scene.RemoveNode(node)
