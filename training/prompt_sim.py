"""Simulated prompts beyond clicks, on the patch grid, encoded as the engine encodes them (inference/prompts.py):

- box: the rectangle around the object's cross-section on one slice plane, filled, in the "region" channel;
- lasso: the object's cross-section on one slice plane (its outline jittered by up to a voxel), filled, in "region";
- scribble: balls of the click radius along a stroke inside the object (positive) or outside it (negative).

The region channel is one voxel thick (the voxels within half a patch voxel of the plane), as the engine rasterises
a box or lasso drawn in a slice view; a manifest's "region_prism" adds the filled shape across the patch along the
plane's normal at that value, as the engine then draws it, and "region_prism_with_clicks" its value once clicks
follow (`prism_with_clicks`, applied when the channels are fed). Simulated planes are the patch's axis planes: the
engine's ROI grid is aligned with the scan's axes, so a box drawn in a slice view of the scan's own orientation
lands on one of them.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.prompts import prism_value


def largest_slices(gt: np.ndarray, axis: int, keep: float = 0.5) -> np.ndarray:
    """Indices along `axis` whose cross-section has at least `keep` of the largest one's area."""
    areas = gt.sum(axis=tuple(a for a in range(3) if a != axis))
    return np.flatnonzero(areas >= keep * areas.max()) if areas.max() > 0 else np.array([], int)


def region_prompt(rng, gt: np.ndarray, kind: str, prism: float = 0.0) -> np.ndarray | None:
    """The region channel of a simulated box or lasso on a random axis plane through a large cross-section
    (extruded across the patch at `prism` when that is > 0)."""
    axis = int(rng.integers(3))
    candidates = largest_slices(gt, axis, keep=rng.uniform(0.3, 0.9))
    if candidates.size == 0:
        return None
    index = int(rng.choice(candidates))
    section = np.take(gt, index, axis=axis)
    if kind == "lasso":
        steps = int(rng.integers(0, 2))
        if steps and rng.random() < 0.5:
            section = ndimage.binary_dilation(section, iterations=steps)
        elif steps:
            eroded = ndimage.binary_erosion(section, iterations=steps)
            section = eroded if eroded.any() else section
        filled = ndimage.binary_fill_holes(section)
    else:
        rows, cols = np.nonzero(section)
        jitter = rng.integers(-1, 3, 4)
        r0, r1 = max(rows.min() - jitter[0], 0), min(rows.max() + jitter[1], section.shape[0] - 1)
        c0, c1 = max(cols.min() - jitter[2], 0), min(cols.max() + jitter[3], section.shape[1] - 1)
        filled = np.zeros(section.shape, bool)
        filled[r0:r1 + 1, c0:c1 + 1] = True
    region = np.expand_dims(filled * np.float32(prism), axis).repeat(gt.shape[axis], axis).astype(np.float32)
    slicer = [slice(None)] * 3
    slicer[axis] = index
    region[tuple(slicer)] = filled
    return region


def stroke_points(rng, mask: np.ndarray, spacing: float, knots: int = 3) -> list[np.ndarray]:
    """Points at most `spacing` voxels apart along a polyline through `knots` random voxels of `mask`, kept where
    they lie in `mask` (a scribble along the object, or along background for a negative one)."""
    index = np.argwhere(mask)
    if len(index) < 2:
        return []
    corners = index[rng.choice(len(index), size=min(knots, len(index)), replace=False)].astype(np.float64)
    corners = corners[np.argsort(corners[:, int(np.argmax(np.ptp(corners, axis=0)))])]  # ordered, not zig-zag
    points = []
    for a, b in zip(corners[:-1], corners[1:]):
        count = max(2, int(np.ceil(np.linalg.norm(b - a) / spacing)) + 1)
        for t in np.linspace(0.0, 1.0, count):
            point = a + t * (b - a)
            if mask[tuple(np.round(point).astype(int))]:
                points.append(point)
    return points


def scribble_clicks(rng, gt: np.ndarray, others: np.ndarray, radius_vox: float, positive: bool):
    """A scribble as the list of (point, sign) balls the click channels draw."""
    if positive:
        core = ndimage.binary_erosion(gt, iterations=1)
        region = core if core.any() else gt
    else:
        ring = ndimage.binary_dilation(gt, iterations=int(rng.integers(2, 6))) & ~gt
        region = (others & ~gt) if others.any() and rng.random() < 0.5 else ring
    return [(p, positive) for p in stroke_points(rng, region, max(radius_vox / 2.0, 0.5), int(rng.integers(2, 5)))]


def prism_with_clicks(region, manifest: dict, clicked):
    """The region channel as the engine feeds it once clicks follow the box / lasso: the prism (every value below the
    plane's 1.0, drawn at "region_prism") rescaled to "region_prism_with_clicks" where `clicked` (a bool, or a
    per-example bool tensor shaped to broadcast over `region`); numpy arrays and torch tensors alike."""
    drawn = manifest.get("region_prism", 0.0)
    if region is None or not drawn:
        return region
    lowered = 1.0 - prism_value(manifest, True) / drawn
    return region - (region < 1) * region * lowered * clicked
