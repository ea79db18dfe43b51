"""Read and write one segment inside a box, honouring the Segment Editor's masking settings.

A "grid" is a 4x4 matrix from a voxel grid's IJK to the segmentation's own frame, and a box is (k, j, i) slices of
that grid. Reads for the engine use the scan grid; writes use the segmentation's own labelmap geometry, as Slicer's
effects do (vtkSegmentEditorLogic::getReferenceImageGeometryFromSegmentation: the reference image geometry
parameter, else the geometry of the existing labelmaps), so an oversampled or transformed segmentation is never
regridded onto the scan by a click. Everything stays in uint8 and inside the box: no volume-sized temporaries.

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
_SAME_GRID_TOL = 1e-4  # mm / voxel: matrices closer than this describe the same voxel grid


def box_shape(box) -> tuple:
    return tuple(s.stop - s.start for s in box)


def box_image(grid: np.ndarray, box: tuple, values: np.ndarray | None = None):
    """A uint8 oriented image covering `box` of `grid`, in the segmentation frame."""
    from .geometry import to_vtk

    image = slicer.vtkOrientedImageData()
    image.SetImageToWorldMatrix(to_vtk(grid))
    k, j, i = box
    image.SetExtent(i.start, i.stop - 1, j.start, j.stop - 1, k.start, k.stop - 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    scalars[:] = 0 if values is None else np.ascontiguousarray(values, dtype=np.uint8).ravel()
    return image


def image_matrix(image) -> np.ndarray:
    from .geometry import to_numpy

    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    return to_numpy(matrix)


def _crop(image, box, fill=0) -> np.ndarray:
    """Values of `image` (on the box's grid, any extent) inside `box`, in the image's own dtype; `fill` where the
    image does not reach. Only the box is copied."""
    scalars = image.GetPointData().GetScalars() if image.GetPointData() else None
    e = image.GetExtent()
    dtype = numpy_support.get_numpy_array_type(scalars.GetDataType()) if scalars is not None else np.uint8
    out = np.full(box_shape(box), fill, dtype)
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


def same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    return np.allclose(a, b, atol=_SAME_GRID_TOL)


def _on_grid(image, grid: np.ndarray, box: tuple, fill=0) -> np.ndarray:
    """Values of an oriented image on `box` of `grid`: cropped when it already lies on that grid, else nearest
    neighbour (each target voxel takes the source voxel its centre falls in; `fill` outside the source extent).

    Done here slice by slice rather than with vtkOrientedImageDataResample, whose reslice border extends the
    source by half a voxel: edge values would leak onto voxels outside the engine's box (measured on slicer-core).
    """
    if same_grid(image_matrix(image), grid):
        return _crop(image, box, fill)
    scalars = image.GetPointData().GetScalars() if image.GetPointData() else None
    e = image.GetExtent()
    dtype = numpy_support.get_numpy_array_type(scalars.GetDataType()) if scalars is not None else np.uint8
    out = np.full(box_shape(box), fill, dtype)
    if scalars is None or e[1] < e[0] or e[3] < e[2] or e[5] < e[4] or not out.size:
        return out
    data = numpy_support.vtk_to_numpy(scalars).reshape(e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    to_source = np.linalg.inv(image_matrix(image)) @ grid
    jj, ii = np.meshgrid(np.arange(box[1].start, box[1].stop), np.arange(box[2].start, box[2].stop), indexing="ij")
    plane = to_source[:3, :2] @ np.stack([ii.ravel(), jj.ravel()]).astype(np.float64)
    for n, k in enumerate(range(box[0].start, box[0].stop)):
        ijk = np.floor(plane + (to_source[:3, 2] * k + to_source[:3, 3])[:, None] + 0.5).astype(np.int64)
        ijk -= np.array([[e[0]], [e[2]], [e[4]]])
        ok = ((ijk >= 0) & (ijk < np.array([[data.shape[2]], [data.shape[1]], [data.shape[0]]]))).all(axis=0)
        layer = out[n].reshape(-1)
        layer[ok] = data[ijk[2, ok], ijk[1, ok], ijk[0, ok]]
    return out


def read_segment(segmentation_node, segment_id: str, grid: np.ndarray, box: tuple) -> np.ndarray:
    """uint8 0/1 content of the segment inside `box` of `grid` (nearest neighbour if the segment lies on another)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise KeyError(f"segmentation {segmentation_node.GetName()} has no segment {segment_id!r}")
    stored = segment.GetRepresentation(_BINARY)  # shared layer: voxels of this segment hold its label value
    if stored is None or stored.GetNumberOfPoints() == 0:
        return np.zeros(box_shape(box), np.uint8)
    values = _on_grid(stored, grid, box)
    return (values == segment.GetLabelValue()).view(np.uint8)


def segment_box(segmentation_node, segment_id: str, grid: np.ndarray, shape) -> tuple:
    """Box of `grid` (clipped to `shape`) that holds every voxel the segment's labelmap covers: reading only this
    box is enough to export the segment."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    stored = segment.GetRepresentation(_BINARY) if segment is not None else None
    e = stored.GetExtent() if stored is not None else (0, -1, 0, -1, 0, -1)
    if stored is None or e[1] < e[0] or e[3] < e[2] or e[5] < e[4]:
        return tuple(slice(0, 0) for _ in shape)
    corners = np.array([[i, j, k, 1.0] for i in (e[0] - 0.5, e[1] + 0.5) for j in (e[2] - 0.5, e[3] + 0.5)
                        for k in (e[4] - 0.5, e[5] + 0.5)])
    ijk = (np.linalg.inv(grid) @ image_matrix(stored) @ corners.T)[:3]
    low = np.floor(ijk.min(axis=1) + 0.5).astype(int)  # first voxel whose centre lies inside
    high = np.ceil(ijk.max(axis=1) - 0.5).astype(int) + 1
    return tuple(slice(int(max(0, low[a])), int(max(0, min(shape[2 - a], high[a])))) for a in (2, 1, 0))


def _write(segmentation_node, segment_id, grid, box, values, mode) -> None:
    image = box_image(grid, box, values)
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


def write_segment(segmentation_node, segment_id, grid, box, values) -> None:
    """Make the segment equal `values` inside `box` of `grid` and leave it unchanged outside.

    `grid` should be the segmentation's own grid (see segmentation_grid): Slicer regrids the whole segment onto the
    geometry of what is written when they differ."""
    values = np.asarray(values) > 0
    _own_layer(segmentation_node, segment_id)
    if values.any():
        _write(segmentation_node, segment_id, grid, box, values, _LOGIC.MODE_MERGE_MAX)
    if not values.all():
        _write(segmentation_node, segment_id, grid, box, values, _LOGIC.MODE_MERGE_MIN)


# --- the segmentation's own grid ---------------------------------------------------------------------------------
def segmentation_grid(segmentation_node, scan_grid: np.ndarray) -> tuple:
    """(grid matrix, extent or None) the Segment Editor would edit this segmentation on.

    As vtkSegmentEditorLogic::getReferenceImageGeometryFromSegmentation: the "reference image geometry" conversion
    parameter when set (its extent bounds where effects may paint), else the common geometry of the labelmaps it
    already holds, else (an empty segmentation without a reference) the scan grid.
    """
    segmentation = segmentation_node.GetSegmentation()
    name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    text = segmentation.GetConversionParameter(name)
    bounded = bool(text)
    if not text and segmentation.GetNumberOfSegments():
        text = segmentation.DetermineCommonLabelmapGeometry(segmentation.EXTENT_UNION_OF_EFFECTIVE_SEGMENTS, None)
    if not text:
        return scan_grid, None
    geometry = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, geometry, False)
    return image_matrix(geometry), (tuple(geometry.GetExtent()) if bounded else None)


def _integer_shift(matrix: np.ndarray):
    """The voxel offset when `matrix` (scan IJK -> grid IJK) is a pure whole-voxel shift, else None."""
    shift = np.round(matrix[:3, 3])
    if np.allclose(matrix[:3, :3], np.eye(3), atol=_SAME_GRID_TOL) and np.allclose(matrix[:3, 3], shift, atol=_SAME_GRID_TOL):
        return shift.astype(int)  # i, j, k
    return None


def _clip(box, extent):
    if extent is None:
        return box
    limits = ((extent[4], extent[5]), (extent[2], extent[3]), (extent[0], extent[1]))
    return tuple(slice(max(s.start, lo), max(max(s.start, lo), min(s.stop, hi + 1))) for s, (lo, hi) in zip(box, limits))


_INSIDE, _FOREGROUND, _INTENSITY_OK = 1, 2, 4  # bits of the code image carried from the scan grid to the write grid


def to_write_grid(scan_grid, box, values, intensity_ok, grid, extent) -> tuple:
    """Carry the engine's box (scan grid) onto the write grid: (write box, inside, foreground, intensity_ok).

    `inside` marks the write-grid voxels whose nearest scan voxel lies in the engine's box; only those may change.
    """
    to_grid = np.linalg.inv(grid) @ scan_grid
    shift = _integer_shift(to_grid)
    if shift is not None:  # the common case: the segmentation was made on this scan
        write_box = _clip(tuple(slice(s.start + int(d), s.stop + int(d)) for s, d in zip(box, shift[::-1])), extent)
        inner = tuple(slice(w.start - int(d) - s.start, w.stop - int(d) - s.start) for w, s, d in zip(write_box, box, shift[::-1]))
        return write_box, np.ones(box_shape(write_box), bool), values[inner] > 0, intensity_ok[inner]
    corners = np.array([[i, j, k, 1.0] for i in (box[2].start - 0.5, box[2].stop - 0.5)
                        for j in (box[1].start - 0.5, box[1].stop - 0.5) for k in (box[0].start - 0.5, box[0].stop - 0.5)])
    ijk = (to_grid @ corners.T)[:3]
    low, high = np.floor(ijk.min(axis=1)).astype(int), np.ceil(ijk.max(axis=1)).astype(int) + 1
    write_box = _clip(tuple(slice(int(low[a]), int(high[a])) for a in (2, 1, 0)), extent)
    code = _INSIDE + _FOREGROUND * (np.asarray(values) > 0) + _INTENSITY_OK * np.asarray(intensity_ok, bool)
    carried = _on_grid(box_image(scan_grid, box, code.astype(np.uint8)), grid, write_box)
    return write_box, (carried & _INSIDE) > 0, (carried & _FOREGROUND) > 0, (carried & _INTENSITY_OK) > 0


# --- masking settings ----------------------------------------------------------------------------------------------
def visible_segment_ids(segmentation_node) -> set:
    display = segmentation_node.GetDisplayNode()
    ids = segmentation_node.GetSegmentation().GetSegmentIDs()
    return {s for s in ids if display is None or display.GetSegmentVisibility(s)}


def editable_area(editor_node, segmentation_node, segment_id, grid, box) -> np.ndarray:
    """Bool array of the voxels in `box` of `grid` the Segment Editor's "Editable area" allows.

    As vtkMRMLSegmentationNode::GenerateEditMask: the "inside" modes include the edited segment itself, the
    "outside" modes exclude it (one may always grow or shrink one's own segment there).
    """
    allowed = np.ones(box_shape(box), bool)
    if editor_node is None:
        return allowed
    node_class = slicer.vtkMRMLSegmentationNode
    mode = editor_node.GetMaskMode()
    if mode == node_class.EditAllowedEverywhere:
        return allowed
    outside = mode in (node_class.EditAllowedOutsideAllSegments, node_class.EditAllowedOutsideVisibleSegments)
    ids = list(segmentation_node.GetSegmentation().GetSegmentIDs())
    if mode in (node_class.EditAllowedInsideVisibleSegments, node_class.EditAllowedOutsideVisibleSegments):
        ids = [s for s in ids if s in visible_segment_ids(segmentation_node)]
    if mode == node_class.EditAllowedInsideSingleSegment:
        ids = [editor_node.GetMaskSegmentID()] if editor_node.GetMaskSegmentID() else []
    if outside:
        ids = [s for s in ids if s != segment_id]
    union = np.zeros(box_shape(box), bool)
    for other in ids:
        if segmentation_node.GetSegmentation().GetSegment(other) is not None:
            union |= read_segment(segmentation_node, other, grid, box) > 0
    return ~union if outside else union


def intensity_allowed(editor_node, volume_array, box) -> np.ndarray:
    """Bool array of the scan voxels in `box` inside the editor's "Editable intensity range" (all when off)."""
    shape = box_shape(box)
    if editor_node is None or volume_array is None:
        return np.ones(shape, bool)
    source = "Source" if hasattr(editor_node, "GetSourceVolumeIntensityMask") else "Master"  # renamed in Slicer 5.2
    if not getattr(editor_node, f"Get{source}VolumeIntensityMask")():
        return np.ones(shape, bool)
    low, high = getattr(editor_node, f"Get{source}VolumeIntensityMaskRange")()
    values = volume_array[box]
    return (values >= low) & (values <= high)


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


def apply_mask(segmentation_node, segment_id, scan_grid, box, new_values, editor_node=None, volume_array=None,
               before_write=None) -> bool:
    """Write `new_values` (the engine's mask inside `box` of the scan grid) into the segment as the Segment Editor
    would, on the segmentation's own grid. `before_write()` is called once, just before the first change (the
    Segment Editor's saveStateForUndo). Returns whether anything changed.
    """
    grid, extent = segmentation_grid(segmentation_node, scan_grid)
    write_box, inside, foreground, intensity_ok = to_write_grid(
        scan_grid, box, new_values, intensity_allowed(editor_node, volume_array, box), grid, extent)
    if any(s.stop <= s.start for s in write_box):
        return False
    old = read_segment(segmentation_node, segment_id, grid, write_box) > 0
    allowed = inside & intensity_ok & editable_area(editor_node, segmentation_node, segment_id, grid, write_box)
    final = np.where(allowed, foreground, old)
    written = final & allowed
    # Erase first: in a shared layer MODE_MERGE_MAX keeps the larger label value, so an overlapping segment
    # would win over the one being written. Segments not erased here are kept (Slicer moves the written one to
    # its own layer where they overlap).
    erase = []
    for other in overwritable_ids(editor_node, segmentation_node, segment_id):
        content = read_segment(segmentation_node, other, grid, write_box) > 0
        if (content & written).any():
            erase.append((other, content & ~written))
    changed = bool(erase) or not np.array_equal(final, old)
    if changed and before_write is not None:
        before_write()
    for other, content in erase:
        write_segment(segmentation_node, other, grid, write_box, content)
    if not np.array_equal(final, old):
        write_segment(segmentation_node, segment_id, grid, write_box, final)
    return changed
