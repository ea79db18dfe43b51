"""Augmentations on the patch grid: flips, axis permutations, intensity curves, noise, thick slices."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def augment_geometry(rng, image, gt, others, points):
    """Random flips and axis order, applied alike to the arrays and to points (patch coordinates)."""
    shape = np.array(image.shape)
    points = [np.asarray(p, dtype=np.float64).copy() for p in points]
    for axis in range(3):
        if rng.random() < 0.5:
            image, gt, others = (np.flip(a, axis) for a in (image, gt, others))
            for p in points:
                p[axis] = shape[axis] - 1 - p[axis]
    order = rng.permutation(3)
    image, gt, others = (np.ascontiguousarray(a.transpose(order)) for a in (image, gt, others))
    return image, gt, others, [p[order] for p in points]


def thick_slices(rng, image: np.ndarray) -> np.ndarray:
    """Average blocks of 2-5 voxels along one axis and interpolate back: a thick-slice (sagittal 3-5 mm) scan."""
    axis = int(rng.integers(3))
    factor = int(rng.integers(2, 6))
    size = image.shape[axis]
    kept = ndimage.uniform_filter1d(image, factor, axis=axis)
    coarse = np.take(kept, np.arange(0, size, factor), axis=axis)
    zoom = [1.0] * 3
    zoom[axis] = size / coarse.shape[axis]
    return ndimage.zoom(coarse, zoom, order=1, mode="nearest", grid_mode=True)[tuple(slice(0, n) for n in image.shape)]


def augment_intensity(rng, image: np.ndarray) -> np.ndarray:
    """Contrast curve, scale/shift, noise and thick slices on a normalised image."""
    if rng.random() < 0.3:
        image = thick_slices(rng, image)
    if rng.random() < 0.5:
        lo, hi = float(image.min()), float(image.max())
        unit = (image - lo) / max(hi - lo, 1e-6)
        image = lo + unit ** rng.uniform(0.6, 1.6) * (hi - lo)
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
    if rng.random() < 0.5:
        image = image + rng.normal(0, rng.uniform(0.02, 0.15), image.shape)
    return image.astype(np.float32)
