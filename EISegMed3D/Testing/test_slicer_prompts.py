"""Box, lasso and scribble markups as prompts through EISegMed3DLib on real MRML (slicer-core, headless), with the
real engine and real exported tiny models: world RAS through parent transforms, undo / redo, clicks after prompts."""
from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
import vtk  # noqa: E402

from EISegMed3DLib import InteractiveSegmentationLogic, geometry  # noqa: E402
from EISegMed3DLib import clicks as click_store  # noqa: E402
from EISegMed3DLib.prompts import WorldPrompt, promptFromMarkup, runPrompt  # noqa: E402
from inference import ClickError, InteractiveSession, load_model  # noqa: E402
from test_slicer_logic import SHAPE, add_segmentation, add_volume, content, converter_rules, scene, world  # noqa: E402,F401


@pytest.fixture
def logic(scene, region_model_dir):
    logic = InteractiveSegmentationLogic(scene)
    logic.loadModel(region_model_dir, backend="onnx", device="cpu", threads=1)
    return logic


def _tilted_transform(scene):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = np.eye(4)
    c, s = np.cos(-0.3), np.sin(-0.3)
    matrix[:3, :3] = [[1, 0, 0], [0, c, -s], [0, s, c]]
    matrix[:3, 3] = [3.0, 4.0, -6.0]
    node.SetMatrixTransformToParent(geometry.to_vtk(matrix))
    return node, matrix


def _engine(model_dir, volume_node, calls):
    """The engine alone on the same scan, prompts given in scan voxel indices: what the segment must hold."""
    session = InteractiveSession(load_model(model_dir, backend="onnx", device="cpu", threads=1))
    session.set_volume(geometry.engine_volume(volume_node))
    for method, kwargs in calls:
        getattr(session, method)(**kwargs)
    return session.mask


def _ijk(volume, points_world):
    return [tuple(geometry.world_to_ijk(volume, p)) for p in points_world]


def _closed_curve(scene, points_world, transform=None):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", "outline")
    node.SetCurveTypeToLinear()  # straight edges: the outline is exactly the polygon of its control points
    if transform is not None:
        node.SetAndObserveTransformNodeID(transform.GetID())
    for p in points_world:
        node.AddControlPointWorld(vtk.vtkVector3d(*p))
    return node


def test_roi_markup_under_a_transform_is_the_box_on_its_mid_plane(scene, logic, region_model_dir):
    volume = add_volume(scene, transformed=True)
    seg, (target,) = add_segmentation(scene, volume)
    transform, parent = _tilted_transform(scene)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    roi.SetAndObserveTransformNodeID(transform.GetID())
    centre_ijk = (18.2, 20.4, 12.0)
    centre_node = np.linalg.inv(parent) @ np.append(world(volume, centre_ijk), 1.0)
    roi.SetCenter(list(centre_node[:3]))
    roi.SetSize([14.0, 10.0, 0.0])  # flat: a rectangle on the ROI's own (tilted) x-y plane
    prompt = promptFromMarkup(roi)
    expected_corners = [parent @ (centre_node + [dx, dy, 0, 0]) for dx, dy in ((-7, -5), (7, -5), (7, 5), (-7, 5))]
    np.testing.assert_allclose(prompt.points, [c[:3] for c in expected_corners], atol=1e-9)
    result = runPrompt(logic, volume, seg, target, prompt)
    assert result is not None
    corners = _ijk(volume, prompt.points)
    expected = _engine(region_model_dir, volume, [("add_box", {"ijk": (corners[0], corners[2]),
                                                               "plane": (corners[0], corners[1], corners[3])})])
    got = content(volume, seg, target)
    assert got.sum() > 20
    np.testing.assert_array_equal(got, expected)


def test_closed_curve_on_a_sagittal_plane_is_a_lasso(scene, logic, region_model_dir):
    volume = add_volume(scene, transformed=True)
    seg, (target,) = add_segmentation(scene, volume)
    transform, _ = _tilted_transform(scene)
    outline_ijk = [(17.0, 12.0, 6.0), (17.0, 30.0, 8.0), (17.0, 26.0, 18.0), (17.0, 14.0, 16.0)]  # i = 17
    curve = _closed_curve(scene, [world(volume, p) for p in outline_ijk], transform)
    prompt = promptFromMarkup(curve)
    assert prompt.kind == "lasso" and prompt.positive
    np.testing.assert_allclose(_ijk(volume, prompt.points)[:1], outline_ijk[:1], atol=1e-6)
    runPrompt(logic, volume, seg, target, prompt)
    got = content(volume, seg, target)
    expected = _engine(region_model_dir, volume, [("add_lasso", {"ijk": _ijk(volume, prompt.points)})])
    np.testing.assert_array_equal(got, expected)
    assert got[11, 20, 17] == 1 and not got[:, :, :14].any() and not got[:, :, 21:].any()


def test_prompts_undo_redo_and_clicks_after_them(scene, logic, region_model_dir):
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    box = WorldPrompt("box", tuple(world(volume, p) for p in ((10, 14, 12), (26, 14, 12), (26, 28, 12), (10, 28, 12))))
    runPrompt(logic, volume, seg, target, box)
    after_box = content(volume, seg, target)
    stroke = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", "stroke")
    for p in ((14, 18, 12), (20, 22, 12)):
        stroke.AddControlPointWorld(vtk.vtkVector3d(*world(volume, p)))
    runPrompt(logic, volume, seg, target, promptFromMarkup(stroke, positive=False))
    after_scribble = content(volume, seg, target)
    assert not np.array_equal(after_box, after_scribble) and after_scribble[12, 20, 17] == 0
    click = world(volume, (30, 32, 4))
    logic.segment(volume, seg, target, positive=[click])  # a click after the prompts keeps them
    assert len(logic.clicks()) == 1 and logic.clicks()[0].ras == tuple(click)
    tag = click_store.read_tag(seg.GetSegmentation().GetSegment(target))
    assert [c.ras for c in tag] == [tuple(click)]  # the tag holds the clicks only
    box_ijk = _ijk(volume, box.points)
    calls = [("add_box", {"ijk": (box_ijk[0], box_ijk[2]), "plane": (box_ijk[0], box_ijk[1], box_ijk[3])}),
             ("add_scribble", {"ijk": _ijk(volume, promptFromMarkup(stroke).points), "positive": False}),
             ("add_click", {"ijk": (30, 32, 4)})]
    np.testing.assert_array_equal(content(volume, seg, target), _engine(region_model_dir, volume, calls))
    moved = world(volume, (31, 31, 5))  # moving the click replays from the seed: the prompts run again too
    logic.segment(volume, seg, target, positive=[moved])
    calls[-1] = ("add_click", {"ijk": (31, 31, 5)})
    np.testing.assert_array_equal(content(volume, seg, target), _engine(region_model_dir, volume, calls))
    logic.undo()  # the moved click
    logic.undo()  # the scribble
    np.testing.assert_array_equal(content(volume, seg, target), after_box)
    assert logic.clicks() == []
    logic.redo()
    np.testing.assert_array_equal(content(volume, seg, target), after_scribble)


def test_box_on_a_model_without_region_is_refused_and_the_segment_kept(scene, tiny_model_dir):
    logic = InteractiveSegmentationLogic(scene)
    logic.loadModel(tiny_model_dir, backend="onnx", device="cpu", threads=1)
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    logic.segment(volume, seg, target, positive=[world(volume, (18, 20, 12))])
    before = content(volume, seg, target)
    box = WorldPrompt("box", tuple(world(volume, p) for p in ((10, 14, 12), (26, 14, 12), (26, 28, 12), (10, 28, 12))))
    with pytest.raises(ClickError, match="model tiny-test has no 'region' input"):
        runPrompt(logic, volume, seg, target, box)
    np.testing.assert_array_equal(content(volume, seg, target), before)
    curve = _closed_curve(scene, [world(volume, p) for p in ((12, 14, 12), (24, 14, 12), (18, 28, 12))])
    runPrompt(logic, volume, seg, target, promptFromMarkup(curve))  # a lasso works: its area as positive clicks
    assert content(volume, seg, target)[12, 18, 18] == 1


def test_other_markups_are_not_prompts(scene):
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "points")
    with pytest.raises(ClickError, match="points: a vtkMRMLMarkupsFiducialNode is not a prompt"):
        promptFromMarkup(points)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "line-like")
    roi.SetSize([10.0, 0.0, 0.0])
    with pytest.raises(ClickError, match="spans no rectangle"):
        promptFromMarkup(roi)
