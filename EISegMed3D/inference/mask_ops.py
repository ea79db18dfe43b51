"""Small operations on binary masks: bounding boxes, changed regions and the click-driven clean-up."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .clickmaps import draw_ball

_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


def bounding_box(mask: np.ndarray):
    """Slices of the smallest box holding every non-zero voxel, or None for an empty mask."""
    if mask is None:
        return None
    boxes = ndimage.find_objects((mask > 0).astype(np.uint8))
    return boxes[0] if boxes else None


def changed_box(before: np.ndarray, after: np.ndarray, box: tuple) -> tuple:
    """Scan-grid slices of the voxels that differ between `before` and `after` (both cropped to `box`)."""
    local = bounding_box(before != after)
    if local is None:
        return tuple(slice(s.start, s.start) for s in box)
    return tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, local))


def clean_components(mask: np.ndarray, positive_points, negative_points=(), previous=None) -> np.ndarray:
    """Keep the components that hold a positive click; drop those holding only negative clicks.

    Components with no click survive only where they may belong to the object already: they overlap the
    previous mask or touch the border of the region (the object may continue outside it). Points are local
    (k, j, i) indices into `mask`.
    """
    mask = _fill_holes_under(mask, positive_points)
    labels, count = ndimage.label(mask, structure=_FULL)
    if count == 0:
        return mask
    holding_positive = labels_at(labels, positive_points)
    holding_negative = labels_at(labels, negative_points) - holding_positive
    keep = set(holding_positive)
    border = set(np.unique(np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
                                           labels[:, -1].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])))
    overlapping = set(np.unique(labels[previous > 0])) if previous is not None else set()
    for label in range(1, count + 1):
        if label not in holding_negative and (label in border or label in overlapping):
            keep.add(label)
    keep.discard(0)
    return np.isin(labels, sorted(keep)).astype(np.uint8)


# A positive click's own voxel at this probability or above is not the network's background, only its doubt: long
# objects cut by the view on both sides were seen marked all around the click with the click itself at p 0.3-0.47.
CLICK_FLOOR = 0.3


def grow_from_click(mask: np.ndarray, probability: np.ndarray, point, floor: float = CLICK_FLOOR) -> np.ndarray:
    """The mask plus what the network sees connected to a positive click whose own voxel ended below threshold:
    the voxels joined to the click through probability >= `floor` (hysteresis from the click). Without it such a
    click gives an empty mask, the one answer a user who clicked an obvious object cannot use. Unchanged when the
    clicked voxel is in the mask or below `floor` (the network's answer is "not here"). `point`: local (k, j, i)."""
    index = tuple(np.round(np.asarray(point, dtype=np.float64)).astype(int))
    if not all(0 <= i < n for i, n in zip(index, mask.shape)) or mask[index] or probability[index] < floor:
        return mask
    labels, _ = ndimage.label(probability >= floor, structure=_FULL)
    return ((mask > 0) | (labels == labels[index])).astype(mask.dtype)


def seeds_in_ball(mask: np.ndarray, point, radius_mm: float, spacing_kji) -> np.ndarray:
    """Local (k, j, i) voxels of `mask` within a positive click's ball, when the click's own voxel is not in `mask`.

    Passed to `clean_components` as positive points, they keep the components the network marked within the ball it
    was told is object. Without them an answer that wraps the click with an open gap at it holds no click and is
    dropped whole: candidates answered a long bright ellipsoid with nothing this way
    (benchmarks/results/experiments/click_ball_rule.md). Empty when the click's voxel is in the mask (the usual case).
    """
    centre = np.asarray(point, dtype=np.float64)
    index = tuple(np.round(centre).astype(int))
    if not all(0 <= i < n for i, n in zip(index, mask.shape)) or mask[index]:
        return np.zeros((0, 3))
    ball = np.zeros(mask.shape, dtype=np.uint8)
    draw_ball(ball, centre, radius_mm, np.asarray(spacing_kji, dtype=np.float64))
    return np.argwhere((ball > 0) & (mask > 0)).astype(np.float64)


def _fill_holes_under(mask: np.ndarray, positive_points) -> np.ndarray:
    """Fill an enclosed hole of the object where a positive click lies in it. A network can mark an object all
    around a click but leave the clicked voxel itself below threshold; without this the component would hold no
    positive click and be dropped, and the user's positive click would give an empty mask. Only computed when a
    positive click falls outside the mask (rare), so a normal click pays nothing."""
    index = np.round(np.asarray(positive_points, dtype=np.float64).reshape(-1, 3)).astype(int)
    index = index[np.all((index >= 0) & (index < mask.shape), axis=1)]
    outside = index[mask[index[:, 0], index[:, 1], index[:, 2]] == 0] if len(index) else index
    box = bounding_box(mask)
    if len(outside) == 0 or box is None:
        return mask
    # A hole lies within the mask's bounding box (all beyond it is connected background), so only that box is
    # filled: the same holes at a fraction of the cost, since a box or lasso puts seed points outside every time.
    lo = np.array([s.start for s in box])
    outside = outside[np.all((outside >= lo) & (outside < [s.stop for s in box]), axis=1)] - lo
    if len(outside) == 0:
        return mask
    local = mask[box] > 0
    hole_labels, _ = ndimage.label(ndimage.binary_fill_holes(local) & ~local, structure=_FULL)
    clicked = {int(v) for v in hole_labels[outside[:, 0], outside[:, 1], outside[:, 2]] if v}
    if not clicked:
        return mask
    filled = mask > 0
    filled[box] |= np.isin(hole_labels, sorted(clicked))
    return filled


def labels_at(labels: np.ndarray, points) -> set:
    """Labels under the points (rounded to voxels; points outside the array are ignored)."""
    index = np.round(np.asarray(points, dtype=np.float64).reshape(-1, 3)).astype(int)
    index = index[np.all((index >= 0) & (index < labels.shape), axis=1)]
    found = labels[index[:, 0], index[:, 1], index[:, 2]]
    return {int(label) for label in np.unique(found) if label}


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """2|A∩B| / (|A|+|B|); 1.0 when both are empty."""
    gt, pred = np.asarray(gt) > 0, np.asarray(pred) > 0
    total = int(gt.sum()) + int(pred.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(gt, pred).sum()) / total
