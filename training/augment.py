"""Augmentations on the patch grid: flips, axis permutations, intensity curves, noise, thick slices, and (with
`contrast: "random"`) SynthSeg-style contrast randomisation so that T1, T2, STIR, water-fat, CT and unseen
sequences all look familiar: random smooth monotone and non-monotone curves, inversion, bias fields, blur and
resolution loss."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def augment_geometry(rng, arrays, points):
    """Random flips and axis order, applied alike to every array (image, target, others, soft target) and to points
    (patch coordinates): (arrays, points)."""
    arrays = list(arrays)
    shape = np.array(arrays[0].shape)
    points = [np.asarray(p, dtype=np.float64).copy() for p in points]
    for axis in range(3):
        if rng.random() < 0.5:
            arrays = [np.flip(a, axis) for a in arrays]
            for p in points:
                p[axis] = shape[axis] - 1 - p[axis]
    order = rng.permutation(3)
    arrays = [np.ascontiguousarray(a.transpose(order)) for a in arrays]
    return arrays, [p[order] for p in points]


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


def augment_intensity(rng, image: np.ndarray, contrast: str = "gamma", scale_range=None) -> np.ndarray:
    """Contrast curve (a gamma, or with contrast "random" the randomisation below), scale/shift, noise and thick
    slices on a normalised image; with `scale_range` (lo, hi) half the images are also multiplied by a factor drawn
    log-uniformly from it (see wide_scale)."""
    if rng.random() < 0.3:
        image = thick_slices(rng, image)
    if contrast == "random" and rng.random() < 0.8:
        image = randomise_contrast(rng, image)
    elif rng.random() < 0.5:
        lo, hi = float(image.min()), float(image.max())
        unit = (image - lo) / max(hi - lo, 1e-6)
        image = lo + unit ** rng.uniform(0.6, 1.6) * (hi - lo)
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
    if scale_range is not None:
        image = image * wide_scale(rng, scale_range)
    if rng.random() < 0.5:
        image = image + rng.normal(0, rng.uniform(0.02, 0.15), image.shape)
    return image.astype(np.float32)


def scale_bounds(scale_range) -> tuple[float, float]:
    """(low, high) of a sampling "intensity_scale", or a ValueError saying what is wrong with it."""
    try:
        lo, hi = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not 0 < lo <= hi < float("inf"):
        raise ValueError(f"sampling intensity_scale {scale_range!r}: give [low, high] with 0 < low <= high")
    return lo, hi


def wide_scale(rng, scale_range) -> float:
    """1 for half the draws, else a factor log-uniform in `scale_range` (the config's sampling "intensity_scale").

    The engine's z-score comes from the whole scan, so the same tissue lands at different values: the training
    cases' clipped maxima lie between z 1.4 (CT) and 6.2 (T2 spine), a bright object on a dark scan reaches z 8,
    and the recipe alone scales by +-15 %. Tried in cpu-universal-v12 (not adopted): the bundled model was already
    robust to real fields of view, and the ellipsoid's failures were not the scale
    (benchmarks/results/experiments/universal_v11_v12_result.md)."""
    lo, hi = scale_bounds(scale_range)
    if rng.random() < 0.5:
        return 1.0
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_curve(rng, unit: np.ndarray) -> np.ndarray:
    """A random smooth intensity curve on [0, 1]: monotone (either direction) or non-monotone (a bright object may
    turn dark, a dark one grey), through 4-7 knots with cubic-like smoothing."""
    knots = int(rng.integers(4, 8))
    x = np.linspace(0.0, 1.0, knots)
    kind = rng.random()
    if kind < 0.55:
        y = np.cumsum(rng.uniform(0.05, 1.0, knots)); y = (y - y[0]) / max(y[-1] - y[0], 1e-6)
    elif kind < 0.75:
        y = 1.0 - x
    else:
        y = rng.uniform(0.0, 1.0, knots)
    fine = np.linspace(0.0, 1.0, 64)
    lut = ndimage.gaussian_filter1d(np.interp(fine, x, y), 2.0, mode="nearest")
    return np.interp(unit, fine, lut)


def bias_field(rng, shape, strength: float) -> np.ndarray:
    """A smooth multiplicative field (MRI coil shading), exp of upsampled 3x3x3 noise."""
    coarse = rng.normal(0.0, strength, (3, 3, 3))
    field = ndimage.zoom(coarse, np.array(shape) / 3.0, order=1, mode="nearest")[tuple(slice(0, n) for n in shape)]
    return np.exp(field).astype(np.float32)


def resolution_loss(rng, image: np.ndarray) -> np.ndarray:
    """Blur or down-and-up sampling by 1.5-3x: a low-resolution or smooth sequence."""
    if rng.random() < 0.5:
        return ndimage.gaussian_filter(image, rng.uniform(0.4, 1.2))
    factor = rng.uniform(1.5, 3.0)
    coarse = ndimage.zoom(image, 1.0 / factor, order=1)
    return ndimage.zoom(coarse, np.array(image.shape) / np.array(coarse.shape), order=1, mode="nearest")[
        tuple(slice(0, n) for n in image.shape)]


def randomise_contrast(rng, image: np.ndarray) -> np.ndarray:
    """Contrast randomisation on a normalised patch; keeps the patch's value range."""
    lo, hi = float(image.min()), float(image.max())
    span = max(hi - lo, 1e-6)
    unit = (image - lo) / span
    if rng.random() < 0.7:
        unit = random_curve(rng, unit)
    if rng.random() < 0.4:
        unit = unit * bias_field(rng, image.shape, rng.uniform(0.1, 0.35))
    # Clipped to the patch's range, as the engine's percentile normalisation clips a shaded scan.
    image = (lo + np.clip(unit, 0.0, 1.0) * span).astype(np.float32)
    if rng.random() < 0.25:
        image = resolution_loss(rng, image)
    return image
