"""EISegMed3DLib on real MRML (slicer-core, headless): clicks -> segment, transforms, refine, undo, overwrite
modes, label save / reload, progress file. Uses the real engine with a real exported tiny model."""
from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")

from EISegMed3DLib import InteractiveSegmentationLogic, Worker  # noqa: E402
from EISegMed3DLib import geometry  # noqa: E402
from EISegMed3DLib.segment_writer import read_segment, write_segment  # noqa: E402

SHAPE = (24, 40, 36)  # k, j, i


@pytest.fixture(scope="module", autouse=True)
def converter_rules():
    """slicer-core has no application to register these; without them AddEmptySegment fails."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


@pytest.fixture
def scene():
    scene = slicer.vtkMRMLScene()
    scene.RegisterNodeClass(slicer.vtkMRMLSegmentEditorNode())
    return scene


def rotation_transform(scene):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = np.eye(4)
    c, s = np.cos(0.4), np.sin(0.4)
    matrix[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    matrix[:3, 3] = [12.0, -7.0, 5.0]
    node.SetMatrixTransformToParent(geometry.to_vtk(matrix))
    return node


def add_volume(scene, transformed=False):
    rng = np.random.default_rng(3)
    array = rng.normal(100, 10, SHAPE).astype(np.float32)
    array[8:16, 12:28, 10:26] += 200  # a bright box to segment
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "scan")
    slicer.util.updateVolumeFromArray(node, array)
    node.SetSpacing(1.2, 0.9, 2.0)
    node.SetOrigin(-20.0, 15.0, 3.0)
    if transformed:
        node.SetAndObserveTransformNodeID(rotation_transform(scene).GetID())
    return node


def add_segmentation(scene, volume, names=("target",)):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    ids = [node.GetSegmentation().AddEmptySegment("", name) for name in names]
    return node, ids


def content(volume, seg, segment_id):
    to_seg = geometry.scan_to_segmentation(volume, seg)
    return read_segment(seg, segment_id, to_seg, geometry.full_box(SHAPE))


def world(volume, ijk):
    return tuple(geometry.ijk_to_world(volume, ijk))


@pytest.fixture
def logic(scene, tiny_model_dir):
    logic = InteractiveSegmentationLogic(scene)
    logic.loadModel(tiny_model_dir, backend="onnx", device="cpu", threads=1)
    return logic


def engine_mask(tiny_model_dir, volume_node, clicks_ijk):
    """The engine alone on the same scan: what the segment must hold."""
    from inference import InteractiveSession, load_model

    session = InteractiveSession(load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1))
    session.set_volume(geometry.engine_volume(volume_node))
    for ijk, positive in clicks_ijk:
        session.add_click(ijk=ijk, positive=positive)
    return session.mask


@pytest.mark.parametrize("transformed", [False, True])
def test_clicks_write_the_engine_mask_into_the_segment(scene, logic, tiny_model_dir, transformed):
    volume = add_volume(scene, transformed)
    seg, (target,) = add_segmentation(scene, volume)
    positive, negative = (18, 20, 12), (30, 30, 20)
    result = logic.segment(volume, seg, target, positive=[world(volume, positive)], negative=[world(volume, negative)])
    assert result is not None and result.clicks == 2
    expected = engine_mask(tiny_model_dir, volume, [(positive, True), (negative, False)])
    got = content(volume, seg, target)
    assert got.sum() > 0
    np.testing.assert_array_equal(got, expected)
    assert got[12, 20, 18] == 1 and got[20, 30, 30] == 0
    assert len(logic.clicks()) == 2  # and the same points again change nothing
    assert logic.segment(volume, seg, target, positive=[world(volume, positive)], negative=[world(volume, negative)]) is None


def test_world_to_ijk_goes_through_the_parent_transform(scene):
    volume = add_volume(scene, transformed=True)
    ijk = np.array([5.0, 7.0, 3.0])
    np.testing.assert_allclose(geometry.world_to_ijk(volume, geometry.ijk_to_world(volume, ijk)), ijk, atol=1e-9)
    local = geometry.ijk_to_ras(volume) @ np.append(ijk, 1)
    assert not np.allclose(geometry.ijk_to_world(volume, ijk), local[:3])  # the transform really moved it


def test_refine_starts_from_the_existing_segment(scene, logic, tiny_model_dir):
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    existing = np.zeros(SHAPE, np.uint8)
    existing[2:6, 2:8, 2:8] = 1  # far from the click: kept only if the session was seeded with it
    write_segment(seg, target, geometry.scan_to_segmentation(volume, seg), geometry.full_box(SHAPE), existing)
    logic.segment(volume, seg, target, positive=[world(volume, (18, 20, 12))])
    from inference import InteractiveSession, load_model

    session = InteractiveSession(load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1))
    session.set_volume(geometry.engine_volume(volume))
    session.set_mask(existing)
    session.add_click(ijk=(18, 20, 12), positive=True)
    got = content(volume, seg, target)
    np.testing.assert_array_equal(got, session.mask)
    assert got[3, 4, 4] == 1


def test_a_manual_edit_between_clicks_is_kept(scene, logic):
    """An edit made with Segment Editor effects after a click becomes the base of the next click."""
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    logic.segment(volume, seg, target, positive=[world(volume, (18, 20, 12))])
    edited = content(volume, seg, target)
    edited[2:6, 2:8, 2:8] = 1  # painted by hand, far from any click
    write_segment(seg, target, geometry.scan_to_segmentation(volume, seg), geometry.full_box(SHAPE), edited)
    logic.segment(volume, seg, target, positive=[world(volume, (18, 20, 12)), world(volume, (20, 22, 12))])
    assert content(volume, seg, target)[3, 4, 4] == 1
    assert logic.session.mask[3, 4, 4] == 1


def test_undo_redo_and_moving_a_point(scene, logic):
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    first, second = world(volume, (18, 20, 12)), world(volume, (20, 22, 12))
    logic.segment(volume, seg, target, positive=[first])
    after_one = content(volume, seg, target)
    logic.segment(volume, seg, target, positive=[first], negative=[second])
    after_two = content(volume, seg, target)
    assert not np.array_equal(after_one, after_two)
    logic.undo()
    np.testing.assert_array_equal(content(volume, seg, target), after_one)
    assert len(logic.clicks()) == 1
    logic.redo()
    np.testing.assert_array_equal(content(volume, seg, target), after_two)
    logic.segment(volume, seg, target, positive=[first])  # the negative point was deleted: replay without it
    np.testing.assert_array_equal(content(volume, seg, target), after_one)
    logic.resetObject()
    assert content(volume, seg, target).sum() == 0 and logic.clicks() == []


def test_clicks_kept_in_segment_tags(scene, logic):
    volume = add_volume(scene)
    seg, (a, b) = add_segmentation(scene, volume, ("a", "b"))
    logic.segment(volume, seg, a, positive=[world(volume, (18, 20, 12))])
    logic.segment(volume, seg, b, positive=[world(volume, (5, 5, 3))])
    assert len(logic.selectTarget(volume, seg, a)) == 1  # back to a: its click is still there
    fresh = InteractiveSegmentationLogic(scene)
    fresh.model, fresh.session = logic.model, logic.session
    assert len(fresh.selectTarget(volume, seg, b)) == 1  # restored from the tag


@pytest.mark.parametrize("mode", ["OverwriteNone", "OverwriteVisibleSegments", "OverwriteAllSegments"])
def test_other_segments_follow_the_overwrite_mode(scene, logic, mode):
    volume = add_volume(scene)
    seg, (target, visible, hidden) = add_segmentation(scene, volume, ("target", "visible", "hidden"))
    seg.GetDisplayNode().SetSegmentVisibility(hidden, False)
    to_seg = geometry.scan_to_segmentation(volume, seg)
    other = np.zeros(SHAPE, np.uint8)
    other[6:18, 10:30, 8:28] = 1  # overlaps where the click will paint
    for segment_id in (visible, hidden):
        write_segment(seg, segment_id, to_seg, geometry.full_box(SHAPE), other)
    editor = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor.SetOverwriteMode(getattr(slicer.vtkMRMLSegmentEditorNode, mode))
    logic.editorNode = editor
    logic.segment(volume, seg, target, positive=[world(volume, (18, 20, 12))])
    painted = content(volume, seg, target).astype(bool)
    assert (painted & other.astype(bool)).any()
    erase_visible = mode != "OverwriteNone"
    erase_hidden = mode == "OverwriteAllSegments"
    for segment_id, erased in ((visible, erase_visible), (hidden, erase_hidden)):
        expected = other & ~painted if erased else other
        np.testing.assert_array_equal(content(volume, seg, segment_id), expected.astype(np.uint8))


def test_editable_area_limits_the_write(scene, logic):
    volume = add_volume(scene)
    seg, (target, area) = add_segmentation(scene, volume, ("target", "area"))
    region = np.zeros(SHAPE, np.uint8)
    region[10:14] = 1
    write_segment(seg, area, geometry.scan_to_segmentation(volume, seg), geometry.full_box(SHAPE), region)
    editor = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment)
    editor.SetMaskSegmentID(area)
    editor.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
    logic.editorNode = editor
    logic.segment(volume, seg, target, positive=[world(volume, (18, 20, 12))])
    got = content(volume, seg, target)
    assert got.sum() > 0 and got[region == 0].sum() == 0
    np.testing.assert_array_equal(got, logic.session.mask * region)


def write_scan(path, array, spacing=(1.2, 0.9, 2.0)):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((4.0, -3.0, 1.0))
    sitk.WriteImage(image, str(path))


def test_folder_label_save_reload_and_progress(scene, logic, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        array = rng.normal(100, 10, SHAPE).astype(np.float32)
        array[8:16, 12:28, 10:26] += 200
        write_scan(tmp_path / f"{name}.nii.gz", array)
    (tmp_path / "EISegMed3D.json").write_text(json.dumps(
        {"labels": [{"name": "L1", "labelValue": 6}], "finished": ["b.nii.gz"], "leftOff": "a.nii.gz"}))
    keep = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "user's own volume")
    volume, seg = logic.openFolder(tmp_path, skipFinished=True)
    assert logic.navigator.key() == "a.nii.gz"
    segment_id = seg.GetSegmentation().AddEmptySegment("", "L1")
    logic.segment(volume, seg, segment_id, positive=[world(volume, (18, 20, 12))])
    new_id = seg.GetSegmentation().AddEmptySegment("", "Kidney")
    kidney = np.zeros(SHAPE, np.uint8)
    kidney[1:3, 1:4, 1:5] = 1
    write_segment(seg, new_id, geometry.scan_to_segmentation(volume, seg), geometry.full_box(SHAPE), kidney)
    mask = content(volume, seg, segment_id)

    nxt = logic.nextScan(skipFinished=True)  # saves a, skips finished b
    assert nxt is not None and logic.navigator.key() == "c.nii.gz"
    assert scene.GetNodeByID(keep.GetID()) is keep  # never removes nodes it did not create
    assert scene.GetNodeByID(volume.GetID()) is None

    from inference.datafolder import load_label
    from inference.volume import Volume

    saved = load_label(Volume.from_file(tmp_path / "a.nii.gz"), tmp_path / "a_label.nii.gz")
    np.testing.assert_array_equal(saved == 6, (mask > 0) & (kidney == 0))
    np.testing.assert_array_equal(saved == 1, kidney > 0)  # first free value
    progress = json.loads((tmp_path / "EISegMed3D.json").read_text(encoding="utf-8"))
    assert {"name": "Kidney", "labelValue": 1} in progress["labels"]
    assert progress["leftOff"] == "c.nii.gz" and progress["scans"]["a.nii.gz"]["clicks"] == 1

    volume, seg = logic.previousScan(skipFinished=True)  # reload a: same segments, names from the table
    segmentation = seg.GetSegmentation()
    names = {segmentation.GetSegment(s).GetName(): s for s in segmentation.GetSegmentIDs()}
    assert set(names) == {"L1", "Kidney"}
    np.testing.assert_array_equal(content(volume, seg, names["L1"]), (saved == 6).astype(np.uint8))
    np.testing.assert_array_equal(content(volume, seg, names["Kidney"]), kidney)

    assert logic.finishScan(skipFinished=True) is not None  # a finished -> c
    progress = json.loads((tmp_path / "EISegMed3D.json").read_text(encoding="utf-8"))
    assert set(progress["finished"]) == {"a.nii.gz", "b.nii.gz"}
    assert logic.navigator.summary() == (2, 3)
    assert logic.finishScan(skipFinished=True) is None  # nothing unfinished left


def test_worker_latest_request_wins():
    import threading

    gate, started = threading.Event(), threading.Event()
    worker = Worker()
    try:
        first = worker.submit(lambda: started.set() or (gate.wait(5) and "first"))
        assert started.wait(5)
        second = worker.submit(lambda: "second")
        third = worker.submit(lambda: "third")
        assert worker.wait(second, 1).superseded
        gate.set()
        assert worker.wait(first, 5).result == "first"
        assert worker.wait(third, 5).result == "third"
        failing = worker.submit(lambda: 1 / 0)
        assert isinstance(worker.wait(failing, 5).error, ZeroDivisionError)
    finally:
        worker.stop()
