"""Soft training targets: the fraction of each view voxel an object covers.

The engine resamples the network's probabilities back to the scan linearly and thresholds them at 0.5, so a network
trained on a nearest-neighbour mask can at best draw the view grid's staircase; trained on the covered fraction, the
0.5 level of its answer can fall between view voxels where the object's edge does (benchmarks/target_ceiling.py
measures what each target allows).
"""
from __future__ import annotations

import numpy as np

from inference.roi import Roi


def coverage(labels: np.ndarray, roi: Roi, values=None, box: tuple | None = None) -> np.ndarray:
    """Fraction of each view voxel inside the object: `labels` (scan voxels, [k, j, i]) in `values`, or `labels`
    itself as a mask when `values` is None. Scan voxels are taken as cubes of constant value and each view voxel as
    the box of one view step around its centre, one axis at a time (the overlaps are separable). Only the scan
    voxels under the view are read; with `box` (slices holding the whole object) only those inside it too."""
    first, stop = read_region(labels.shape, roi, box)
    crop = labels[first[0]:stop[0], first[1]:stop[1], first[2]:stop[2]]
    out = (crop if values is None else np.isin(crop, values)).astype(np.float32)
    overlaps = axis_overlaps(roi, labels.shape, first, stop)
    for axis in sorted(range(3), key=lambda a: roi.shape[a] / out.shape[a]):  # the most shrinking first
        index, weight = overlaps[axis]
        view = [1, 1, 1]
        view[axis] = -1
        out = sum(np.take(out, index[:, t], axis=axis) * weight[:, t].reshape(view) for t in range(index.shape[1]))
    return np.clip(out, 0.0, 1.0)


def read_region(scan_shape, roi: Roi, box: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(first, stop) scan indices per axis of the voxels under the view, within `box` when given."""
    start, step = np.asarray(roi.start, dtype=np.float64), np.abs(np.asarray(roi.step, dtype=np.float64))
    shape = np.array(scan_shape)
    end = start + (np.array(roi.shape) - 1) * step
    first = np.clip(np.floor(start - step / 2).astype(int), 0, shape - 1)
    stop = np.clip(np.ceil(end + step / 2).astype(int) + 1, first + 1, shape)
    if box is not None:  # scan voxels outside the object add nothing
        first = np.clip([s.start for s in box], first, stop - 1)
        stop = np.clip([s.stop for s in box], first + 1, stop)
    return first, stop


def axis_overlaps(roi: Roi, scan_shape, first, stop) -> list:
    """Per axis, (indices into the read voxels, weights) of _overlaps."""
    start, step = np.asarray(roi.start, dtype=np.float64), np.abs(np.asarray(roi.step, dtype=np.float64))
    return [_overlaps(start[a], step[a], roi.shape[a], int(scan_shape[a]), int(first[a]), int(stop[a])) for a in range(3)]


def dense(index: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """The (view voxels, read voxels) matrix of one axis's overlaps (for matrix products on a device)."""
    matrix = np.zeros((index.shape[0], size), dtype=np.float32)
    np.add.at(matrix, (np.repeat(np.arange(index.shape[0]), index.shape[1]), index.ravel()), weight.ravel())
    return matrix


def _overlaps(start: float, step: float, count: int, size: int, first: int, stop: int):
    """(indices into the read scan voxels first..stop-1, weights), each (view voxels, taps): the share of each view
    voxel's extent along one axis in each scan voxel it overlaps, over the part of it inside the scan (an object cut
    by the scan's border continues up to it, as the nearest-neighbour mask has it), and 0 for a view voxel whose
    centre lies outside the scan (the mask's outside value) or for a scan voxel not read (outside the object)."""
    centres = start + step * np.arange(count)
    voxels = np.floor(centres - step / 2 + 0.5).astype(int)[:, None] + np.arange(int(np.ceil(step)) + 1)
    overlap = np.clip(np.minimum(voxels + 0.5, centres[:, None] + step / 2)
                      - np.maximum(voxels - 0.5, centres[:, None] - step / 2), 0.0, None)
    overlap[(voxels < 0) | (voxels >= size)] = 0.0
    total = overlap.sum(axis=1, keepdims=True)
    weight = np.where(total > 0, overlap / np.maximum(total, 1e-12), 0.0)
    weight[(centres < -0.5) | (centres > size - 0.5)] = 0.0
    weight[(voxels < first) | (voxels >= stop)] = 0.0
    return np.clip(voxels - first, 0, stop - first - 1), weight.astype(np.float32)
