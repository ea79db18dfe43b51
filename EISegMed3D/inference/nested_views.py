"""Keeping what a finer view saw when the engine zoomed out.

The engine zooms out while the object touches a face of the view. The wider view sees the whole object at coarser
voxels; the finer one saw its middle at finer voxels, and away from its faces (where it lacked context) its answer
can be the better one: a bright 35 x 12 x 12 mm ellipsoid is answered exactly in the 64 mm view and 15 mm across,
with a hole at the click, in the 96 mm one (benchmarks/results/experiments/fitted_view_probe.md). With the spacing
policy's "keep_finer_view" (a ramp in view voxels), probabilities inside a finer view are blended towards its answer
by the distance to its faces: its own answer from `ramp` voxels inside them, the wider view's at them.
"""
from __future__ import annotations

import numpy as np

from .roi import Roi, to_scan


def keep_finer(box: tuple, values: np.ndarray, finer: list, scan_shape, ramp: float) -> np.ndarray:
    """`values` (the wider view's probabilities on the scan voxels of `box`) with each finer view's answer blended
    in; `finer`: (roi, probabilities) of the earlier runs, finest first. Returns a new array."""
    values = values.copy()
    for roi, prob in reversed(finer):  # the finest last: it has the last word in its middle
        fine_box, fine = to_scan(prob, roi, scan_shape)
        common = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, fine_box))
        if any(s.stop <= s.start for s in common):
            continue
        mine = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(common, box))
        theirs = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(common, fine_box))
        weight = face_weight(roi, common, ramp)
        values[mine] += weight * (fine[theirs] - values[mine])
    return values


def face_weight(roi: Roi, region: tuple, ramp: float) -> np.ndarray:
    """On the scan voxels of `region`: 0 at the view's faces rising linearly to 1 at `ramp` view voxels inside them
    (the product over the three axes)."""
    weight = np.ones(tuple(s.stop - s.start for s in region), dtype=np.float32)
    for axis, s in enumerate(region):
        u = (np.arange(s.start, s.stop) - roi.start[axis]) / roi.step[axis]
        inside = np.minimum(u, roi.shape[axis] - 1 - u)
        shape = [1, 1, 1]
        shape[axis] = -1
        weight = weight * np.clip(inside / ramp, 0.0, 1.0).astype(np.float32).reshape(shape)
    return weight
