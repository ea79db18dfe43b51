"""Small operations on binary masks: bounding boxes, changed regions and the click-driven clean-up."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

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
    labels, count = ndimage.label(mask, structure=_FULL)
    if count == 0:
        return mask
    holding_positive = _labels_at(labels, positive_points)
    holding_negative = _labels_at(labels, negative_points) - holding_positive
    keep = set(holding_positive)
    border = set(np.unique(np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
                                           labels[:, -1].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])))
    overlapping = set(np.unique(labels[previous > 0])) if previous is not None else set()
    for label in range(1, count + 1):
        if label not in holding_negative and (label in border or label in overlapping):
            keep.add(label)
    keep.discard(0)
    return np.isin(labels, sorted(keep)).astype(np.uint8)


def _labels_at(labels: np.ndarray, points) -> set:
    """Labels under the points (rounded to voxels; points outside the array are ignored)."""
    index = np.round(np.asarray(points, dtype=np.float64).reshape(-1, 3)).astype(int)
    index = index[np.all((index >= 0) & (index < labels.shape), axis=1)]
    found = labels[index[:, 0], index[:, 1], index[:, 2]]
    return {int(label) for label in np.unique(found) if label}
