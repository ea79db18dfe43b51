"""How click results reach a segment (issue 10, items 8-11 and 13): never over an edit made while the model ran,
the Segment Editor's undo told first, only the box read and in uint8, the segmentation's own grid kept, and the
edited segment inside the editable area of the "inside" modes. Real MRML (slicer-core) and a real tiny model."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")

from EISegMed3DLib import geometry  # noqa: E402
from EISegMed3DLib.labels import label_from_segments  # noqa: E402
from EISegMed3DLib.segment_writer import editable_area, read_segment, write_segment  # noqa: E402
from test_slicer_logic import (SHAPE, add_segmentation, add_volume, content, converter_rules, engine_mask,  # noqa: E402,F401
                               logic, rotation_transform, scene, world)

CLICK = (18, 20, 12)


def image_matrix(image) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    return geometry.to_numpy(matrix)


def session_on(tiny_model_dir, volume, seed=None):
    from inference import InteractiveSession, load_model

    session = InteractiveSession(load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1))
    session.set_volume(geometry.engine_volume(volume))
    if seed is not None:
        session.set_mask(seed)
    return session


def test_an_edit_made_while_the_model_ran_is_not_overwritten(scene, logic, tiny_model_dir):
    """Item 8: painting with the Segment Editor while the worker runs a click; the result must not land on it."""
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    logic.segment(volume, seg, target, positive=[world(volume, CLICK)])
    second = world(volume, (24, 26, 14))
    job = logic.planClicks(volume, seg, target, positive=[world(volume, CLICK), second])
    result = job.run()  # what the worker thread does
    box = result.box
    assert all(s.stop > s.start for s in box)
    edited = content(volume, seg, target)
    corner = (box[0].start, box[1].start, box[2].start)
    edited[corner] = 1 - edited[corner]  # one voxel inside the changed box, painted (or erased) meanwhile
    edited[box[0].start:box[0].start + 2, box[1].start:box[1].start + 2, box[2].stop - 2:box[2].stop] = 1
    write_segment(seg, target, geometry.scan_to_segmentation(volume, seg), geometry.full_box(SHAPE), edited)

    assert logic.applyJob(job, result, volume, seg) is None  # refused: computed before the edit
    np.testing.assert_array_equal(content(volume, seg, target), edited)
    np.testing.assert_array_equal(logic.session.mask, edited)  # the edit is the new base

    again = logic.planClicks(volume, seg, target, positive=[world(volume, CLICK), second])
    assert again is not None
    logic.applyJob(again, again.run(), volume, seg)
    expected = session_on(tiny_model_dir, volume, edited)
    expected.add_click(ijk=(24, 26, 14), positive=True)
    np.testing.assert_array_equal(content(volume, seg, target), expected.mask)
    assert len(logic.clicks()) == 2


def test_a_result_for_a_removed_segment_is_dropped(scene, logic):
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    job = logic.planClicks(volume, seg, target, positive=[world(volume, CLICK)])
    result = job.run()
    seg.GetSegmentation().RemoveSegment(target)
    with pytest.raises(Exception, match="removed while the model ran"):
        logic.applyJob(job, result, volume, seg)


def test_the_segment_editor_undo_is_told_before_each_write(scene, logic):
    """Item 9: saveStateForUndo (here a callback) runs once before the segment changes, never after."""
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    seen = []
    logic.beforeWrite = lambda: seen.append(int(content(volume, seg, target).sum()))
    logic.segment(volume, seg, target, positive=[world(volume, CLICK)])
    after_one = int(content(volume, seg, target).sum())
    assert seen == [0] and after_one > 0  # called with the segment still empty
    logic.segment(volume, seg, target, positive=[world(volume, CLICK)])  # same point: nothing runs, nothing saved
    assert seen == [0]
    logic.undo()
    assert seen == [0, after_one]
    logic.redo()
    assert seen == [0, after_one, 0]


def oversampled(seg, factor=2):
    """Give the segmentation a reference geometry `factor` times finer than its scan (Segment Editor's
    "Specify geometry" with oversampling), as a grid matrix."""
    name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    coarse = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(seg.GetSegmentation().GetConversionParameter(name), coarse, False)
    matrix = image_matrix(coarse)
    fine = matrix.copy()
    fine[:3, :3] = matrix[:3, :3] / factor
    fine[:3, 3] = matrix[:3, 3] - (factor - 1) / (2 * factor) * matrix[:3, :3].sum(axis=1)  # same outer corner
    e = coarse.GetExtent()
    image = slicer.vtkOrientedImageData()
    image.SetImageToWorldMatrix(geometry.to_vtk(fine))
    image.SetExtent(0, factor * (e[1] + 1) - 1, 0, factor * (e[3] + 1) - 1, 0, factor * (e[5] + 1) - 1)
    seg.GetSegmentation().SetConversionParameter(name, slicer.vtkSegmentationConverter.SerializeImageGeometry(image))
    return fine


def stored_matrix(seg, segment_id):
    return image_matrix(seg.GetSegmentation().GetSegment(segment_id).GetRepresentation("Binary labelmap"))


def test_an_oversampled_segmentation_keeps_its_fine_grid(scene, logic, tiny_model_dir):
    """Item 11: the click is written on the segmentation's 2x finer grid; a segment painted there keeps it."""
    volume = add_volume(scene)
    seg, (target, other) = add_segmentation(scene, volume, ("target", "other"))
    fine = oversampled(seg)
    fine_shape = tuple(2 * n for n in SHAPE)
    detail = np.zeros(fine_shape, np.uint8)
    detail[20:23, 33:35, 29:30] = 1  # finer than one scan voxel, inside the click's box
    write_segment(seg, other, fine, geometry.full_box(fine_shape), detail)
    logic.segment(volume, seg, target, positive=[world(volume, CLICK)])
    np.testing.assert_allclose(stored_matrix(seg, target), fine, atol=1e-6)
    np.testing.assert_allclose(stored_matrix(seg, other), fine, atol=1e-6)
    np.testing.assert_array_equal(read_segment(seg, other, fine, geometry.full_box(fine_shape)), detail)
    expected = engine_mask(tiny_model_dir, volume, [(CLICK, True)])
    np.testing.assert_array_equal(content(volume, seg, target), expected)  # exact: each scan voxel is 2x2x2 fine ones


def test_a_transformed_segmentation_keeps_its_own_grid(scene, logic, tiny_model_dir):
    """Item 11: a segmentation moved by a transform after it was made; the click is resampled onto its grid."""
    volume = add_volume(scene)
    seg, (target,) = add_segmentation(scene, volume)
    own = geometry.ijk_to_ras(volume)  # the reference geometry it was made with, in its own frame
    seg.SetAndObserveTransformNodeID(rotation_transform(scene).GetID())
    result = logic.segment(volume, seg, target, positive=[world(volume, CLICK)])
    assert result is not None
    np.testing.assert_allclose(stored_matrix(seg, target), own, atol=1e-6)
    # On its own grid the segment holds, voxel for voxel, the engine's mask at the scan voxel its centre falls in.
    to_scan = np.linalg.inv(geometry.scan_to_segmentation(volume, seg)) @ own
    k, j, i = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    ijk = np.floor(to_scan[:3, :3] @ np.stack([i.ravel(), j.ravel(), k.ravel()]) + to_scan[:3, 3:] + 0.5).astype(int)
    inside = ((ijk >= 0) & (ijk < np.array(SHAPE[::-1])[:, None])).all(axis=0)
    expected = np.zeros(int(np.prod(SHAPE)), np.uint8)
    expected[inside] = logic.session.mask[ijk[2, inside], ijk[1, inside], ijk[0, inside]]
    assert expected.sum() > 20
    np.testing.assert_array_equal(read_segment(seg, target, own, geometry.full_box(SHAPE)).ravel(), expected)


def test_the_label_is_built_from_each_segments_box_in_uint8(scene):
    """Item 10: no volume-sized float64 temporaries per segment while saving the label."""
    shape = (48, 96, 96)
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "big")
    slicer.util.updateVolumeFromArray(volume, np.zeros(shape, np.int16))
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    to_seg = geometry.scan_to_segmentation(volume, seg)
    expected = np.zeros(shape, np.uint8)
    table = []
    for value in range(1, 6):
        segment_id = seg.GetSegmentation().AddEmptySegment("", f"s{value}")
        part = np.zeros(shape, np.uint8)
        part[value * 6:value * 6 + 5, 10 * value:10 * value + 12, 20:40] = 1
        write_segment(seg, segment_id, to_seg, geometry.full_box(shape), part)
        expected[part > 0] = value
        table.append({"name": f"s{value}", "labelValue": value})
    tracemalloc.start()
    try:
        label, _ = label_from_segments(seg, volume, table)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(label, expected)
    assert label.dtype == np.uint8
    volume_bytes = int(np.prod(shape))
    assert peak < 2 * volume_bytes, f"peak {peak} B of numpy temporaries for a {volume_bytes}-voxel label"
    assert read_segment(seg, seg.GetSegmentation().GetNthSegmentID(0), to_seg, geometry.full_box(shape)).dtype == np.uint8


@pytest.mark.parametrize("mode, includes_self", [("EditAllowedInsideAllSegments", True),
                                                 ("EditAllowedInsideVisibleSegments", True),
                                                 ("EditAllowedOutsideAllSegments", False)])
def test_the_inside_modes_include_the_edited_segment(scene, mode, includes_self):
    """Item 13: as vtkMRMLSegmentationNode::GenerateEditMask, "inside" modes keep the edited segment editable."""
    volume = add_volume(scene)
    seg, (target, other) = add_segmentation(scene, volume, ("target", "other"))
    to_seg = geometry.scan_to_segmentation(volume, seg)
    own, theirs = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    own[2:6, 2:10, 2:10] = 1
    theirs[10:14, 20:30, 20:30] = 1
    write_segment(seg, target, to_seg, geometry.full_box(SHAPE), own)
    write_segment(seg, other, to_seg, geometry.full_box(SHAPE), theirs)
    editor = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor.SetMaskMode(getattr(slicer.vtkMRMLSegmentationNode, mode))
    allowed = editable_area(editor, seg, target, to_seg, geometry.full_box(SHAPE))
    if includes_self:
        np.testing.assert_array_equal(allowed, (own | theirs) > 0)
    else:
        np.testing.assert_array_equal(allowed, theirs == 0)
