"""Drawing a box, lasso or scribble as a prompt (EISegMed3DLib.prompt_placement) on real MRML (slicer-core): place
mode set as Slicer's place widget does, control points placed through the markups display node's
UpdateActiveControlPointWorld (what vtkSlicerMarkupsWidget calls on mouse moves and clicks, preview point and
"moving in slice view" attribute included), the end of placement through the interaction node; then the prompt
runs on the segment with the real engine and a real exported tiny model, and undo takes it back."""
from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
import vtk  # noqa: E402

from EISegMed3DLib import InteractiveSegmentationLogic, geometry  # noqa: E402
from EISegMed3DLib.prompt_placement import PromptPlacement, prompt_availability  # noqa: E402
from EISegMed3DLib.prompts import planPrompt, promptFromMarkup  # noqa: E402
from inference import ClickError, InteractiveSession, load_model  # noqa: E402
from test_slicer_logic import add_segmentation, add_volume, content, converter_rules, scene, world  # noqa: E402,F401

AXIAL = [[-1, 0, 0], [0, 1, 0], [0, 0, 1]]  # Slicer's SliceToRAS rotations (columns: view x, y, normal)
SAGITTAL = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
CORONAL = [[-1, 0, 0], [0, 0, 1], [0, 1, 0]]


@pytest.fixture
def logic(scene, region_model_dir):
    logic = InteractiveSegmentationLogic(scene)
    logic.loadModel(region_model_dir, backend="onnx", device="cpu", threads=1)
    return logic


class Drawing:
    """The application's interaction and selection nodes, slice views, and a placement recording what ended."""

    def __init__(self, scene):
        self.scene = scene
        self.interaction = slicer.vtkMRMLInteractionNode()
        self.interaction.SetSingletonTag("Singleton")
        scene.AddNode(self.interaction)
        self.selection = slicer.vtkMRMLSelectionNode()
        self.selection.SetSingletonTag("Singleton")
        scene.AddNode(self.selection)
        self.ended, self.deferred = [], []
        self.placement = PromptPlacement(scene, self.interaction, self.selection,
                                         lambda prompt, message: self.ended.append((prompt, message)),
                                         defer=self.deferred.append)

    def view(self, layout, rotation, through):
        node = slicer.vtkMRMLSliceNode()
        node.SetLayoutName(layout)
        self.scene.AddNode(node)
        frame = np.eye(4)
        frame[:3, :3] = rotation
        frame[:3, 3] = through
        node.GetSliceToRAS().DeepCopy(geometry.to_vtk(frame))
        node.UpdateMatrices()
        return node

    def place(self, points, view=None, hover_after=None):
        """Mouse over `view`, a preview point following it, a click at each point (world RAS)."""
        node = self.placement.node
        display = node.GetDisplayNode()
        view_id = view.GetID() if view is not None else ""
        identity = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
        for point in points:
            event = slicer.vtkMRMLInteractionEventData()
            index = -1  # as vtkSlicerMarkupsWidget::UpdatePreviewPoint: a new preview, then that same point
            for hover in (np.add(point, 3.0), point):  # the preview moves with the mouse, then the click
                event.SetWorldPosition(list(map(float, hover)))
                index = display.UpdateActiveControlPointWorld(index, event, identity, view_id, "", node.PositionPreview)
            display.UpdateActiveControlPointWorld(index, event, identity, view_id, "", node.PositionDefined)
        if hover_after is not None:  # the mouse moved on after the last click: a preview point remains
            event = slicer.vtkMRMLInteractionEventData()
            event.SetWorldPosition(list(map(float, hover_after)))
            display.UpdateActiveControlPointWorld(-1, event, identity, view_id, "", node.PositionPreview)

    def end(self):
        """Right-click / double-click / the ROI's last corner: Slicer leaves place mode; then the deferred call."""
        self.interaction.SetCurrentInteractionMode(self.interaction.ViewTransform)
        while self.deferred:
            self.deferred.pop(0)()


def _same_rectangle(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    for corner in expected:
        assert np.min(np.linalg.norm(got - corner, axis=1)) < 1e-6, (got, expected)


def test_availability_follows_the_model(scene, tiny_model_dir, region_model_dir):
    logic = InteractiveSegmentationLogic(scene)
    assert prompt_availability(logic, "lasso") == (False, "Load a model first (Model Settings -> Load Static Model)")
    logic.loadModel(tiny_model_dir, backend="onnx", device="cpu", threads=1)
    enabled, why = prompt_availability(logic, "box")
    assert not enabled and "tiny-test has no 'region' input" in why
    enabled, why = prompt_availability(logic, "lasso")
    assert enabled and "filled outline goes in as positive clicks" in why
    enabled, why = prompt_availability(logic, "lasso", positive=False)
    assert enabled and "positive clicks" not in why
    assert prompt_availability(logic, "scribble")[0]
    logic.loadModel(region_model_dir, backend="onnx", device="cpu", threads=1)
    assert all(prompt_availability(logic, kind)[0] for kind in ("box", "lasso", "scribble"))
    assert "region" not in prompt_availability(logic, "lasso")[1]


def test_start_turns_on_single_place_mode_for_a_hidden_node(scene):
    drawing = Drawing(scene)
    drawing.interaction.SetPlaceModePersistence(1)  # left on by the point buttons
    node = drawing.placement.start("lasso", positive=False)
    assert node.IsA("vtkMRMLMarkupsClosedCurveNode") and node.GetHideFromEditors() and not node.GetSaveWithScene()
    assert drawing.selection.GetActivePlaceNodeID() == node.GetID()
    assert drawing.selection.GetActivePlaceNodeClassName() == "vtkMRMLMarkupsClosedCurveNode"
    assert drawing.interaction.GetCurrentInteractionMode() == drawing.interaction.Place
    assert drawing.interaction.GetPlaceModePersistence() == 0
    assert node.GetDisplayNode().GetSelectedColor() == pytest.approx((0.9, 0.1, 0.1))
    roi = drawing.placement.start("box")  # a new drawing replaces the unfinished one, without a message
    assert node.GetScene() is None and roi.IsA("vtkMRMLMarkupsROINode") and drawing.ended == []


@pytest.mark.parametrize("layout, rotation", [("Red", AXIAL), ("Yellow", SAGITTAL), ("Green", CORONAL)])
def test_a_box_drawn_in_any_slice_view_is_the_rectangle_of_its_corners(scene, layout, rotation):
    drawing = Drawing(scene)
    first = np.array([-4.0, 20.0, 11.0])
    axes = np.array(rotation, dtype=float).T  # rows: view x, y, normal
    second = first + 20.0 * axes[0] + 10.0 * axes[1]  # wider than high: the padded ROI has two equal short sides
    # the three views cross at the first corner (the crosshair): the preview tells which one was drawn in
    views = {name: drawing.view(name, other, first) for name, other in (("Red", AXIAL), ("Yellow", SAGITTAL),
                                                                         ("Green", CORONAL))}
    drawing.placement.start("box")
    drawing.place([first, second], view=views[layout])
    assert drawing.interaction.GetCurrentInteractionMode() == drawing.interaction.Place  # (the widget ends it)
    drawing.end()
    ((prompt, message),) = drawing.ended
    assert message is None and prompt.kind == "box"
    _same_rectangle(prompt.points, [first, first + 20.0 * axes[0], second, first + 10.0 * axes[1]])
    assert drawing.placement.node is None and scene.GetNodesByClass("vtkMRMLMarkupsROINode").GetNumberOfItems() == 0


def test_a_box_in_an_oblique_view_follows_the_view(scene):
    drawing = Drawing(scene)
    c, s = np.cos(0.5), np.sin(0.5)
    rotation = np.array(AXIAL, dtype=float) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])  # tilted axial
    first = np.array([2.0, -3.0, 7.0])
    view = drawing.view("Red", rotation, first)
    u, v = rotation[:, 0], rotation[:, 1]
    second = first + 12.0 * u - 8.0 * v
    drawing.placement.start("box")
    drawing.place([first, second], view=view)
    drawing.end()
    ((prompt, _),) = drawing.ended
    _same_rectangle(prompt.points, [first, first + 12.0 * u, second, first - 8.0 * v])


def test_a_box_whose_first_corner_was_deleted_starts_over_in_the_next_view(scene):
    drawing = Drawing(scene)
    red = drawing.view("Red", AXIAL, (0.0, 0.0, 5.0))
    yellow = drawing.view("Yellow", SAGITTAL, (3.0, 0.0, 0.0))
    drawing.placement.start("box")
    drawing.place([(0.0, 0.0, 5.0)], view=red, hover_after=(4.0, 4.0, 5.0))
    node = drawing.placement.node
    node.RemoveNthControlPoint(0)  # Backspace in place mode: vtkSlicerMarkupsWidget deletes the placed point
    node.RemoveNthControlPoint(0)  # the mouse leaves the view: the preview goes too
    first, second = np.array([3.0, 2.0, 1.0]), np.array([3.0, 12.0, 21.0])
    drawing.place([first, second], view=yellow)
    drawing.end()
    ((prompt, _),) = drawing.ended
    _same_rectangle(prompt.points, [first, (3.0, 12.0, 1.0), second, (3.0, 2.0, 21.0)])


def test_a_box_without_a_view_takes_its_plane_from_the_first_corner(scene):
    """A script placing the corners (no slice view in the scene): the axial rectangle, not the coronal one the
    padded ROI's first thin side would give."""
    drawing = Drawing(scene)
    first, second = np.array([0.0, 0.0, 5.0]), np.array([20.0, 10.0, 5.0])
    drawing.placement.start("box")
    drawing.place([first, second])
    drawing.end()
    ((prompt, _),) = drawing.ended
    _same_rectangle(prompt.points, [first, (20, 0, 5), second, (0, 10, 5)])


def test_a_padded_roi_with_two_equal_thin_sides_is_refused_not_guessed(scene):
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "drawn")
    for p in ((0.0, 0.0, 5.0), (20.0, 10.0, 5.0)):  # as the Markups toolbar leaves a ROI drawn on an axial slice
        roi.AddControlPointWorld(vtk.vtkVector3d(*p))
    assert roi.GetSize() == pytest.approx((20.0, 10.0, 10.0))
    with pytest.raises(ClickError, match="drawn: ROI of size .* has no single thinnest side"):
        promptFromMarkup(roi)


def test_a_box_with_one_corner_or_corners_on_two_slices_is_not_used(scene):
    drawing = Drawing(scene)
    drawing.placement.start("box")
    drawing.place([(0.0, 0.0, 5.0)], hover_after=(9.0, 9.0, 5.0))
    drawing.end()  # e.g. Esc after one corner
    assert drawing.ended == [(None, "Box not used: place both corners of the box (two clicks on one slice)")]
    drawing.ended.clear()
    drawing.placement.start("box")
    drawing.place([(0.0, 0.0, 5.0), (20.0, 10.0, 9.0)])
    drawing.end()
    ((prompt, message),) = drawing.ended
    assert prompt is None and "not on one slice" in message


def test_lasso_on_a_coronal_slice_runs_undoes_and_drops_the_preview(scene, logic, region_model_dir):
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    drawing = Drawing(scene)
    outline_ijk = [(12.0, 20.0, 6.0), (24.0, 20.0, 7.0), (22.0, 20.0, 17.0), (13.0, 20.0, 15.0)]  # j = 20: coronal
    outline = [world(volume, p) for p in outline_ijk]
    view = drawing.view("Green", CORONAL, outline[0])
    drawing.placement.start("lasso")
    drawing.place(outline, view=view, hover_after=world(volume, (30.0, 20.0, 2.0)))
    drawing.end()
    ((prompt, message),) = drawing.ended
    assert message is None and prompt.kind == "lasso" and prompt.positive
    points_ijk = [geometry.world_to_ijk(volume, p) for p in prompt.points]
    lo, hi = np.min(points_ijk, axis=0), np.max(points_ijk, axis=0)
    assert lo[1] == hi[1] == pytest.approx(20.0)  # on the coronal slice
    assert hi[0] < 27 and lo[2] > 3  # the spline through the 4 clicks, not the preview point at (30, 20, 2)
    job = planPrompt(logic, volume, seg, target, prompt)
    assert logic.runJob(job, volume, seg) is not None
    session = InteractiveSession(load_model(region_model_dir, backend="onnx", device="cpu", threads=1))
    session.set_volume(geometry.engine_volume(volume))
    session.add_lasso(ijk=[tuple(p) for p in points_ijk])
    got = content(volume, seg, target)
    assert got.sum() > 20
    np.testing.assert_array_equal(got, session.mask)
    logic.undo()
    assert content(volume, seg, target).sum() == 0


def test_negative_scribble_on_a_sagittal_slice_after_a_click(scene, logic, region_model_dir):
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    logic.segment(volume, seg, target, positive=[world(volume, (18, 20, 12))])
    after_click = content(volume, seg, target)
    drawing = Drawing(scene)
    stroke = [world(volume, p) for p in ((18.0, 13.0, 9.0), (18.0, 22.0, 12.0), (18.0, 27.0, 14.0))]  # i = 18
    view = drawing.view("Yellow", SAGITTAL, stroke[0])
    drawing.placement.start("scribble", positive=False)
    drawing.place(stroke, view=view)
    drawing.end()
    ((prompt, _),) = drawing.ended
    assert prompt.kind == "scribble" and not prompt.positive
    logic.runJob(planPrompt(logic, volume, seg, target, prompt), volume, seg)
    after_stroke = content(volume, seg, target)
    session = InteractiveSession(load_model(region_model_dir, backend="onnx", device="cpu", threads=1))
    session.set_volume(geometry.engine_volume(volume))
    session.add_click(ijk=(18, 20, 12))
    stroke_ijk = [tuple(geometry.world_to_ijk(volume, p)) for p in prompt.points]
    assert np.allclose(np.asarray(stroke_ijk)[:, 0], 18.0)  # on the sagittal slice
    session.add_scribble(ijk=stroke_ijk, positive=False)
    np.testing.assert_array_equal(after_stroke, session.mask)
    assert not np.array_equal(after_stroke, after_click)
    assert len(logic.clicks()) == 1  # the click list (point nodes) is unchanged; the stroke sits beside it
    logic.undo()
    np.testing.assert_array_equal(content(volume, seg, target), after_click)


def test_too_few_points_or_another_place_node_cancels(scene):
    drawing = Drawing(scene)
    drawing.placement.start("lasso")
    drawing.place([(0.0, 0.0, 5.0), (9.0, 0.0, 5.0)])
    drawing.end()
    assert drawing.ended == [(None, "Lasso not used: it needs at least 3 points, it has 2")]
    drawing.ended.clear()
    node = drawing.placement.start("scribble")
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "positive")
    drawing.selection.SetReferenceActivePlaceNodeID(points.GetID())  # the user pressed "Positive Point"
    assert drawing.ended == [(None, "Scribble cancelled")]
    assert node.GetScene() is None and drawing.placement.node is None
    assert drawing.interaction.GetCurrentInteractionMode() == drawing.interaction.Place  # the points' placement goes on
    drawing.ended.clear()
    drawing.placement.start("box")
    drawing.placement.cancel()  # the button pressed again, or the scene closing
    assert drawing.ended == [(None, "Box cancelled")]
    assert drawing.interaction.GetCurrentInteractionMode() == drawing.interaction.ViewTransform
    drawing.end()
    assert drawing.ended == [(None, "Box cancelled")]  # nothing more once ended
