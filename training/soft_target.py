"""Soft training targets: the fraction of each view voxel an object covers.

The engine resamples the network's probabilities back to the scan linearly and thresholds them at 0.5, so a network
trained on a nearest-neighbour mask can at best draw the view grid's staircase; trained on the covered fraction, the
0.5 level of its answer can fall between view voxels where the object's edge does (benchmarks/target_ceiling.py
measures what each target allows).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.roi import Roi, sample


def coverage(labels: np.ndarray, roi: Roi, values=None) -> np.ndarray:
    """Fraction of each view voxel inside the object: `labels` (scan voxels, [k, j, i]) in `values`, or `labels`
    itself as a mask when `values` is None. The object is averaged over a view voxel's
    extent along each axis (a Gaussian of the box's spread, on top of the linear sampling's own), then sampled
    linearly onto the view. Reads only the scan voxels under the view (plus the filter's reach)."""
    step = np.abs(np.asarray(roi.step, dtype=np.float64))
    # A box of width s has variance s^2 / 12; linear interpolation already contributes 1/6 (its tent).
    sigma = np.sqrt(np.maximum(step ** 2 / 12.0 - 1.0 / 6.0, 0.0))
    reach = np.ceil(3 * sigma).astype(int) + 2
    lo = np.clip(np.floor(np.minimum(roi.start, roi.end)).astype(int) - reach, 0, np.array(labels.shape))
    hi = np.clip(np.ceil(np.maximum(roi.start, roi.end)).astype(int) + reach + 1, lo + 1, labels.shape)
    crop = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    crop = (crop if values is None else np.isin(crop, values)).astype(np.float32)
    if np.any(sigma > 0):
        crop = ndimage.gaussian_filter(crop, sigma, mode="constant", truncate=3.0)
    local = Roi(np.asarray(roi.start, dtype=np.float64) - lo, roi.step, roi.shape)
    return np.clip(sample(crop, local, order=1, mode="constant", cval=0.0), 0.0, 1.0)
