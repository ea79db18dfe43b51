"""Soft training targets: the fraction of each view voxel an object covers.

The engine resamples the network's probabilities back to the scan linearly and thresholds them at 0.5, so a network
trained on a nearest-neighbour mask can at best draw the view grid's staircase; trained on the covered fraction, the
0.5 level of its answer can fall between view voxels where the object's edge does (benchmarks/target_ceiling.py
measures what each target allows).
"""
from __future__ import annotations

import numpy as np

from inference.roi import Roi


def coverage(labels: np.ndarray, roi: Roi, values=None) -> np.ndarray:
    """Fraction of each view voxel inside the object: `labels` (scan voxels, [k, j, i]) in `values`, or `labels`
    itself as a mask when `values` is None. Scan voxels are taken as cubes of constant value and each view voxel as
    the box of one view step around its centre, one axis at a time (the overlaps are separable). Only the scan
    voxels under the view are read."""
    start, step = np.asarray(roi.start, dtype=np.float64), np.abs(np.asarray(roi.step, dtype=np.float64))
    end = start + (np.array(roi.shape) - 1) * step
    lo = np.clip(np.floor(start - step / 2).astype(int), 0, np.array(labels.shape) - 1)
    hi = np.clip(np.ceil(end + step / 2).astype(int) + 1, lo + 1, labels.shape)
    crop = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    out = (crop if values is None else np.isin(crop, values)).astype(np.float32)
    for axis in range(3):
        weights = _overlaps(start[axis], step[axis], roi.shape[axis], lo[axis], hi[axis], labels.shape[axis])
        out = np.moveaxis(np.tensordot(weights, out, axes=(1, axis)), 0, axis)
    return np.clip(out, 0.0, 1.0)


def _overlaps(start: float, step: float, count: int, lo: int, hi: int, size: int) -> np.ndarray:
    """(view voxels, scan voxels lo..hi-1): the share of each view voxel's extent along one axis in each scan voxel,
    over the part of it inside the scan (an object cut by the scan's border continues up to it, as the nearest-
    neighbour mask has it); 0 for a view voxel whose centre lies outside the scan (the mask's outside value)."""
    centres = start + step * np.arange(count)
    voxels = np.arange(lo, hi)
    overlap = np.clip(np.minimum(voxels + 0.5, centres[:, None] + step / 2)
                      - np.maximum(voxels - 0.5, centres[:, None] - step / 2), 0.0, None)
    total = overlap.sum(axis=1, keepdims=True)
    inside = (centres >= -0.5) & (centres <= size - 0.5)
    return np.where(total > 0, overlap / np.maximum(total, 1e-12), 0.0).astype(np.float32) * inside[:, None]
