"""Click simulation for training (RITM-style, in 3D, on the patch grid).

First click anywhere in the object, edges included (the original's users saw edge clicks fail because its
training clicked near centres); negatives on the border ring, other structures and background; then
error-driven clicks from the model's own prediction.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def _pick(rng: np.random.Generator, mask: np.ndarray):
    index = np.flatnonzero(mask)
    if index.size == 0:
        return None
    return np.array(np.unravel_index(rng.choice(index), mask.shape), dtype=np.float64)


def deep_core(object_mask: np.ndarray, spacing) -> np.ndarray:
    """The object's deep core (distance to its edge over max / 1.7, RITM's rule), or all of it when it has none."""
    depth = ndimage.distance_transform_edt(np.pad(object_mask, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    return depth > depth.max() / 1.7 if depth.max() > 0 else object_mask


def first_positive(rng, object_mask: np.ndarray, spacing) -> np.ndarray | None:
    """A voxel of the object: 40 % uniform over all of it (edges too), 60 % from its deep core."""
    if rng.random() < 0.4:
        return _pick(rng, object_mask)
    return _pick(rng, deep_core(object_mask, spacing))


def first_click_sets(object_mask: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """(every voxel, the deep-core voxels) of the object as flat indices: what first_positive draws from, to keep
    for an object drawn again and again (its distance transform is the costly part)."""
    return np.flatnonzero(object_mask), np.flatnonzero(deep_core(object_mask, spacing))


def first_positive_from_sets(rng, sets: tuple, shape) -> np.ndarray | None:
    """first_positive's draw, from first_click_sets (the same random numbers, the same voxel)."""
    index = sets[0] if rng.random() < 0.4 else sets[1]
    if index.size == 0:
        return None
    return np.array(np.unravel_index(rng.choice(index), tuple(shape)), dtype=np.float64)


def _geometric(rng, p_zero: float, cap: int) -> int:
    count = 0
    while count < cap and rng.random() > p_zero:
        count += 1
    return count


def initial_clicks(rng, gt: np.ndarray, others: np.ndarray, first=None) -> list[tuple[np.ndarray, bool]]:
    """Positive and negative clicks (patch coordinates) a user might give before seeing any result."""
    clicks = []
    if first is not None:
        clicks.append((first, True))
    for _ in range(_geometric(rng, 0.6, 3)):
        point = _pick(rng, gt)
        if point is not None:
            clicks.append((point, True))
    ring = ndimage.binary_dilation(gt, iterations=int(rng.integers(2, 7))) & ~gt
    for _ in range(_geometric(rng, 0.5, 3)):
        draw = rng.random()
        region = ring if draw < 0.5 else (others & ~gt if draw < 0.9 else ~gt)
        point = _pick(rng, region) if region.any() else _pick(rng, ring)
        if point is not None:
            clicks.append((point, False))
    return clicks


def _depth(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance of each voxel of `mask` to the nearest voxel outside it, the array border counting as outside.
    Computed over the mask's bounding box only (exactly the same values: the zero ring around the box is nearer
    than anything beyond it), which makes a small error's click several times cheaper."""
    box = tuple(slice(s.start, s.stop) for s in ndimage.find_objects(mask.astype(np.uint8))[0])
    depth = np.zeros(mask.shape, dtype=np.float64)
    depth[box] = ndimage.distance_transform_edt(np.pad(mask[box], 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    return depth


def error_click(rng, gt: np.ndarray, prediction: np.ndarray, spacing, deterministic: bool = False):
    """The next corrective click: in the larger error (missed or extra), at a random voxel of its deeper half."""
    best = None
    for error, positive in ((gt & ~prediction, True), (prediction & ~gt, False)):
        if not error.any():
            continue
        depth = _depth(error, spacing)
        if best is None or depth.max() > best[0].max():
            best = (depth, positive)
    if best is None:
        return None
    depth, positive = best
    if deterministic:
        return np.array(np.unravel_index(int(np.argmax(depth)), depth.shape), dtype=np.float64), positive
    return _pick(rng, depth > depth.max() / 2), positive
