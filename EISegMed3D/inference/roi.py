"""Region of interest: an axis-aligned sampling grid over the scan, and resampling into and out of it.

A `Roi` maps patch voxel p (array order k, j, i) to the continuous scan index  x = start + p * step.
Only the scan voxels under the ROI are touched, so a click costs the same on a small or a huge scan.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Roi:
    start: np.ndarray  # scan index (k, j, i) of patch voxel 0
    step: np.ndarray  # scan voxels per patch voxel along (k, j, i)
    shape: tuple  # patch shape (k, j, i)

    @property
    def end(self) -> np.ndarray:
        """Scan index of the last patch voxel centre."""
        return self.start + (np.array(self.shape) - 1) * self.step

    def to_patch(self, index_kji) -> np.ndarray:
        """Continuous patch coordinate of a scan index."""
        return (np.asarray(index_kji, dtype=np.float64) - self.start) / self.step

    def voxel_mm(self, spacing_kji) -> np.ndarray:
        return self.step * np.asarray(spacing_kji, dtype=np.float64)

    def scan_box(self, scan_shape) -> tuple:
        """Slices (k, j, i) of the scan voxels whose centres lie within the ROI's outer faces."""
        lo = np.maximum(np.ceil(self.start - self.step / 2 - 1e-6), 0).astype(int)
        hi = np.minimum(np.floor(self.end + self.step / 2 + 1e-6) + 1, scan_shape).astype(int)
        return tuple(slice(int(a), int(max(a, b))) for a, b in zip(lo, hi))


def isotropic_roi(lo_kji, hi_kji, spacing_kji, patch_shape, size_mm: float) -> Roi:
    """A cube of `size_mm` (isotropic patch voxels) centred on the box [lo, hi] in scan indices."""
    spacing_kji = np.asarray(spacing_kji, dtype=np.float64)
    patch = np.asarray(patch_shape)
    voxel_mm = size_mm / patch.min()
    step = voxel_mm / spacing_kji
    centre = (np.asarray(lo_kji, dtype=np.float64) + np.asarray(hi_kji, dtype=np.float64)) / 2
    return Roi(centre - (patch - 1) / 2 * step, step, tuple(int(n) for n in patch))


def roi_size_mm(lo_kji, hi_kji, spacing_kji, policy: dict, object_known: bool) -> float:
    """Edge length of the ROI: the object's extent times the margin, or the initial size when nothing is known yet."""
    extent_mm = (np.asarray(hi_kji, dtype=np.float64) - lo_kji + 1) * np.asarray(spacing_kji)
    size = float(extent_mm.max()) * policy.get("margin", 1.4)
    if not object_known:
        size = max(size, policy.get("initial_roi_mm", 64.0))
    return max(size, policy.get("min_roi_mm", 24.0))


def whole_volume_roi(scan_shape, grid_kji) -> Roi:
    """The original tool's mode: the whole scan stretched onto a fixed grid (voxel centres aligned at the edges)."""
    scan = np.asarray(scan_shape, dtype=np.float64)
    grid = np.asarray(grid_kji, dtype=np.float64)
    step = scan / grid
    return Roi(-0.5 + step / 2, step, tuple(int(n) for n in grid))


def sample(array: np.ndarray, roi: Roi, order: int = 1, mode: str = "nearest", cval: float = 0.0) -> np.ndarray:
    """Resample the scan (or a mask) onto the ROI grid, reading only the scan voxels under the ROI."""
    lo = np.clip(np.floor(np.minimum(roi.start, roi.end)).astype(int) - 1, 0, np.array(array.shape) - 1)
    hi = np.clip(np.ceil(np.maximum(roi.start, roi.end)).astype(int) + 2, lo + 1, array.shape)
    crop = np.asarray(array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=np.float32)
    if order == 1 and (mode == "nearest" or (mode == "constant" and cval == 0.0)):
        return separable_linear(crop, roi.step, roi.start - lo, roi.shape, outside_zero=mode == "constant")
    return ndimage.affine_transform(crop, roi.step, offset=roi.start - lo, output_shape=roi.shape,
                                    order=order, mode=mode, cval=cval, prefilter=False)


def to_scan(patch: np.ndarray, roi: Roi, scan_shape) -> tuple[tuple, np.ndarray]:
    """Resample patch values (probabilities) back to the scan voxels under the ROI: (box slices, values)."""
    box = roi.scan_box(scan_shape)
    lo = np.array([s.start for s in box], dtype=np.float64)
    shape = tuple(s.stop - s.start for s in box)
    if min(shape) <= 0:
        return box, np.zeros(shape, dtype=np.float32)
    return box, separable_linear(patch, 1.0 / roi.step, (lo - roi.start) / roi.step, shape)


EDGE_ROUNDING = 1e-6  # voxels


def separable_linear(array: np.ndarray, scale, offset, shape, outside_zero: bool = False) -> np.ndarray:
    """Trilinear resampling on an axis-aligned grid, out[o] = array[offset + scale * o], as ndimage.affine_transform
    (order 1, no prefilter) gives with mode "nearest" (or "constant" with cval 0 when `outside_zero`).

    A diagonal transform makes linear interpolation separable: one axis at a time, two gathers and a weighted sum,
    the most shrinking axis first so the intermediate stays small. 10-20x faster than ndimage's per-voxel loop on a
    click's ROI, which was a quarter of a click's time on 2 cores."""
    out = np.asarray(array, dtype=np.float32)
    ratios = [int(shape[a]) / out.shape[a] for a in range(out.ndim)]
    for axis in sorted(range(out.ndim), key=lambda a: ratios[a]):
        below, above, w_below, w_above = _axis_taps(out.shape[axis], int(shape[axis]), float(scale[axis]),
                                                    float(offset[axis]), outside_zero)
        view = [1] * out.ndim
        view[axis] = -1
        out = out.take(below, axis=axis) * w_below.reshape(view) + out.take(above, axis=axis) * w_above.reshape(view)
    return np.ascontiguousarray(out, dtype=np.float32)


def _axis_taps(n_in: int, n_out: int, scale: float, offset: float, outside_zero: bool):
    """Along one axis: the two input indices and weights of each output position; taps past an edge take the
    edge voxel ("nearest"), or weigh nothing when `outside_zero` and the position lies beyond the edges."""
    x = offset + scale * np.arange(n_out, dtype=np.float64)
    below = np.floor(x)
    w_above = x - below
    w_below = 1.0 - w_above
    if outside_zero:  # ndimage "constant": no interpolation beyond the edges, the value is cval there
        # a position on an edge up to float rounding (19 * 1.1 + 1.1 = 22.000000000000004) is a voxel's centre, inside
        outside = (x < -EDGE_ROUNDING) | (x > n_in - 1 + EDGE_ROUNDING)
        w_below[outside] = w_above[outside] = 0.0
    return (np.clip(below, 0, n_in - 1).astype(np.intp), np.clip(below + 1, 0, n_in - 1).astype(np.intp),
            w_below.astype(np.float32), w_above.astype(np.float32))
