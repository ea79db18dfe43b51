"""Read and write one segment inside a box of the scan grid, honouring the Segment Editor's masking settings.

Writing goes through vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment with only the box extent:
MODE_MERGE_MAX adds the box's foreground, MODE_MERGE_MIN removes its background (MODE_REPLACE would clear the
segment outside the box). Only Segment Editor effects apply "Editable area" and "Modify other segments" by
themselves, so this module applies them: outside the editable area the segment keeps its content; segments
that may be overwritten lose the voxels written; all others are never touched.
"""
from __future__ import annotations

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

_BINARY = "Binary labelmap"
_LOGIC = slicer.vtkSlicerSegmentationsModuleLogic


def box_image(image_to_seg: np.ndarray, box: tuple, values: np.ndarray | None = None):
    """An oriented image covering `box` (k, j, i slices) of the scan grid, placed in the segmentation frame."""
    from .geometry import to_vtk

    image = slicer.vtkOrientedImageData()
    image.SetImageToWorldMatrix(to_vtk(image_to_seg))
    k, j, i = box
    image.SetExtent(i.start, i.stop - 1, j.start, j.stop - 1, k.start, k.stop - 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    scalars[:] = 0 if values is None else np.ascontiguousarray(values, dtype=np.uint8).ravel()
    return image


def _crop(image, box) -> np.ndarray:
    """Values of `image` (on the box's grid, any extent) inside `box`; zeros where the image does not reach."""
    out = np.zeros(tuple(s.stop - s.start for s in box), np.float64)
    scalars = image.GetPointData().GetScalars() if image.GetPointData() else None
    e = image.GetExtent()
    if scalars is None or e[1] < e[0] or e[3] < e[2] or e[5] < e[4]:
        return out
    data = numpy_support.vtk_to_numpy(scalars).reshape(e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    low = np.array([e[4], e[2], e[0]])
    start = np.array([s.start for s in box])
    stop = np.array([s.stop for s in box])
    lo = np.maximum(start, low)
    hi = np.minimum(stop, low + data.shape)
    if np.any(hi <= lo):
        return out
    dst = tuple(slice(a - b, c - b) for a, b, c in zip(lo, start, hi))
    src = tuple(slice(a - b, c - b) for a, b, c in zip(lo, low, hi))
    out[dst] = data[src]
    return out


def read_segment(segmentation_node, segment_id: str, image_to_seg: np.ndarray, box: tuple) -> np.ndarray:
    """uint8 0/1 content of the segment inside `box` of the scan grid (nearest-neighbour if grids differ)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise KeyError(f"segmentation {segmentation_node.GetName()} has no segment {segment_id!r}")
    stored = segment.GetRepresentation(_BINARY)  # shared layer: voxels of this segment hold its label value
    reference = box_image(image_to_seg, box)
    if stored is None or stored.GetNumberOfPoints() == 0:
        return np.zeros(tuple(s.stop - s.start for s in box), np.uint8)
    resampled = slicer.vtkOrientedImageData()  # on the box's grid; its extent may differ from the box
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(stored, reference, resampled, False, False)
    return (_crop(resampled, box) == segment.GetLabelValue()).astype(np.uint8)


def _write(segmentation_node, segment_id, image_to_seg, box, values, mode) -> None:
    image = box_image(image_to_seg, box, values)
    if not _LOGIC.SetBinaryLabelmapToSegment(image, segmentation_node, segment_id, mode, image.GetExtent(),
                                             False, []):
        raise RuntimeError(f"segmentation {segmentation_node.GetName()}: could not write segment {segment_id}")


def _own_layer(segmentation_node, segment_id) -> None:
    """Give the segment its own labelmap layer before writing: merging a 0/1 image into a layer shared with
    other segments mixes up their label values (checked on slicer-core 5.13), so shared layers are not written."""
    segmentation = segmentation_node.GetSegmentation()
    sharing = []
    segmentation.GetSegmentIDsSharingBinaryLabelmapRepresentation(segment_id, sharing, False)
    if sharing:
        segmentation.SeparateSegmentLabelmap(segment_id)


def write_segment(segmentation_node, segment_id, image_to_seg, box, values) -> None:
    """Make the segment equal `values` inside `box` and leave it unchanged outside."""
    values = (np.asarray(values) > 0).astype(np.uint8)
    _own_layer(segmentation_node, segment_id)
    if values.any():
        _write(segmentation_node, segment_id, image_to_seg, box, values, _LOGIC.MODE_MERGE_MAX)
    if not values.all():
        _write(segmentation_node, segment_id, image_to_seg, box, values, _LOGIC.MODE_MERGE_MIN)


def visible_segment_ids(segmentation_node) -> set:
    display = segmentation_node.GetDisplayNode()
    ids = segmentation_node.GetSegmentation().GetSegmentIDs()
    return {s for s in ids if display is None or display.GetSegmentVisibility(s)}


def editable_area(editor_node, segmentation_node, segment_id, image_to_seg, box, volume_array=None) -> np.ndarray:
    """Bool array of the voxels in `box` the Segment Editor's "Editable area" and intensity range allow."""
    shape = tuple(s.stop - s.start for s in box)
    allowed = np.ones(shape, bool)
    if editor_node is None:
        return allowed
    node_class = slicer.vtkMRMLSegmentationNode
    mode = editor_node.GetMaskMode()
    others = [s for s in segmentation_node.GetSegmentation().GetSegmentIDs() if s != segment_id]
    if mode in (node_class.EditAllowedInsideVisibleSegments, node_class.EditAllowedOutsideVisibleSegments):
        others = [s for s in others if s in visible_segment_ids(segmentation_node)]
    if mode == node_class.EditAllowedInsideSingleSegment:
        others = [editor_node.GetMaskSegmentID()] if editor_node.GetMaskSegmentID() else []
    if mode != node_class.EditAllowedEverywhere:
        union = np.zeros(shape, bool)
        for other in others:
            union |= read_segment(segmentation_node, other, image_to_seg, box) > 0
        outside = mode in (node_class.EditAllowedOutsideAllSegments, node_class.EditAllowedOutsideVisibleSegments)
        allowed = ~union if outside else union
    if editor_node.GetSourceVolumeIntensityMask() and volume_array is not None:
        low, high = editor_node.GetSourceVolumeIntensityMaskRange()
        values = volume_array[box]
        allowed &= (values >= low) & (values <= high)
    return allowed


def overwritable_ids(editor_node, segmentation_node, segment_id) -> list:
    """Other segments the "Modify other segments" setting lets a write erase (none without an editor node)."""
    if editor_node is None:
        return []
    ids = [s for s in segmentation_node.GetSegmentation().GetSegmentIDs() if s != segment_id]
    mode = editor_node.GetOverwriteMode()
    if mode == slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments:
        return ids
    if mode == slicer.vtkMRMLSegmentEditorNode.OverwriteVisibleSegments:
        visible = visible_segment_ids(segmentation_node)
        return [s for s in ids if s in visible]
    return []


def apply_mask(segmentation_node, segment_id, image_to_seg, box, new_values, editor_node=None, volume_array=None) -> np.ndarray:
    """Write `new_values` (the engine's mask inside `box`) into the segment as the Segment Editor would.

    Returns what the segment holds inside `box` afterwards.
    """
    old = read_segment(segmentation_node, segment_id, image_to_seg, box)
    allowed = editable_area(editor_node, segmentation_node, segment_id, image_to_seg, box, volume_array)
    final = np.where(allowed, np.asarray(new_values) > 0, old > 0).astype(np.uint8)
    written = (final > 0) & allowed
    # Erase first: in a shared layer MODE_MERGE_MAX keeps the larger label value, so an overlapping segment
    # would win over the one being written. Segments not erased here are kept (Slicer moves the written one to
    # its own layer where they overlap).
    for other in overwritable_ids(editor_node, segmentation_node, segment_id):
        content = read_segment(segmentation_node, other, image_to_seg, box).astype(bool)
        if (content & written).any():
            write_segment(segmentation_node, other, image_to_seg, box, content & ~written)
    if not np.array_equal(final, old):
        write_segment(segmentation_node, segment_id, image_to_seg, box, final)
    return final
