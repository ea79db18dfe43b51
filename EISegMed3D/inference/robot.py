"""The deterministic simulated user of the evaluation protocol (shared/docs/evaluation_protocol.md).

Error = ground truth XOR prediction; take its largest 26-connected component; click at the voxel of maximum
Euclidean distance to that component's border, the distance transform computed inside the component's bounding
box padded by one voxel (so the box edge and the scan edge count as border). Distances are in millimetres
(`variant="mm"`, primary for anisotropic MRI) or in voxels (`variant="voxel"`). The click is positive when the
component is missed foreground. Ties: the lowest flat index of the [k, j, i] array. No randomness.

In the engine (not training/) because `eiseg-med3d demo` clicks with it and Slicer ships no training package;
training.evaluation.robot re-exports it for the evaluation.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

VARIANTS = ("mm", "voxel")
_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


def _box(mask: np.ndarray) -> tuple | None:
    """Tight (k, j, i) slices around the non-zero voxels, or None when there are none."""
    found = ndimage.find_objects(mask.astype(np.uint8))
    return found[0] if found else None


def largest_component(error: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the largest 26-connected component; ties go to the one met first in flat order."""
    labels, count = ndimage.label(error, structure=_FULL)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    # label() numbers components in order of their first voxel, and argmax takes the first maximum.
    return labels == (int(np.argmax(sizes)) + 1)


def _depth(component: np.ndarray, spacing_kji=None) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each component voxel to its border, on the component's box padded by one voxel (the box
    edge counts as border), and the component index of that padded array's voxel 0."""
    box = _box(component)
    crop = np.pad(component[box], 1)
    return ndimage.distance_transform_edt(crop, sampling=spacing_kji), np.array([s.start - 1 for s in box])


def mm_sampling(spacing_ijk) -> tuple[float, float, float]:
    """Voxel size (i, j, k) as the [k, j, i] sampling the distance transforms take."""
    return tuple(float(s) for s in np.asarray(spacing_ijk, dtype=np.float64)[::-1])


def deepest_voxel(component: np.ndarray, spacing_kji=None) -> tuple[int, int, int]:
    """(k, j, i) of the component voxel farthest from its border; ties -> lowest flat index."""
    distance, origin = _depth(component, spacing_kji)
    flat = int(np.argmax(distance))  # first maximum in C order == lowest flat index of the full array
    return tuple(int(v) for v in np.unravel_index(flat, distance.shape) + origin)


FIRST_CLICKS = ("deepest", "edge")
EDGE_DEPTH_MM = 2.0


def edge_click(gt: np.ndarray, spacing_ijk, depth_mm: float = EDGE_DEPTH_MM) -> tuple[tuple[int, int, int], bool]:
    """A first click near the object's edge, as the original's users placed them: of the voxels of the largest
    part at most `depth_mm` inside the boundary, the one nearest (mm) to the deepest voxel, i.e. just inside the
    face nearest the centre. Ties: lowest flat index. Returns ((i, j, k), True)."""
    gt = np.asarray(gt) > 0
    region = _box(gt)
    if region is None:
        raise ValueError("edge_click: the object is empty")
    sampling = mm_sampling(spacing_ijk)
    depth, origin = _depth(largest_component(gt[region]), sampling)
    deepest = np.array(np.unravel_index(int(np.argmax(depth)), depth.shape))
    zone = np.argwhere((depth > 0) & (depth <= depth_mm))
    if len(zone) == 0:  # a layer thinner than depth_mm everywhere: every voxel is at the edge
        zone = np.argwhere(depth > 0)
    distance = np.sqrt((((zone - deepest) * np.array(sampling)) ** 2).sum(axis=1))
    local = zone[int(np.argmin(distance))]  # argwhere is in flat order, argmin takes the first minimum
    k, j, i = (int(v) for v in local + origin + [s.start for s in region])
    return (i, j, k), True


def next_click(gt: np.ndarray, pred: np.ndarray | None, spacing_ijk=None, variant: str = "mm"):
    """The simulated user's next click as ((i, j, k), positive), or None when the prediction is perfect.

    gt, pred: [k, j, i] masks on the same grid (pred None or empty for the first click); spacing_ijk: voxel
    size in mm along (i, j, k) as Volume.spacing gives it, used by the "mm" variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown click variant {variant!r}; use one of {VARIANTS}")
    gt = np.asarray(gt) > 0
    pred = np.zeros_like(gt) if pred is None else np.asarray(pred) > 0
    if gt.shape != pred.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match the ground truth {gt.shape}")
    error = gt ^ pred
    region = _box(error)  # the error lies inside this box: label and measure only there (scans are large)
    if region is None:
        return None
    component = largest_component(error[region])
    if variant == "mm":
        if spacing_ijk is None:
            raise ValueError("the mm variant needs the voxel spacing")
        sampling = mm_sampling(spacing_ijk)
    else:
        sampling = None
    k, j, i = deepest_voxel(component, sampling)
    k, j, i = k + region[0].start, j + region[1].start, i + region[2].start
    return (i, j, k), bool(gt[k, j, i])
