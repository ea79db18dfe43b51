"""The simulated user's box-, lasso- and scribble-first modes (issue 12): that prompt first, then the protocol's clicks.

The first prompt goes on the object's largest slice across the scan's through-plane axis: the axis of the largest
voxel spacing (the thick-slice axis; k when the scan is isotropic), the slice where the object's cross-section has
the most voxels (ties: lowest index). There the simulated user draws
- box: the rectangle through the centres of the outermost object voxels of that slice (every object voxel of the
  slice lies inside or on it);
- lasso: the outer contour of the slice's largest 2D component (skimage.measure.find_contours at level 0.5, which
  passes half-way between object and background voxel centres, so the filled contour holds exactly that
  component's voxel centres, holes filled).
A scribble goes where a user strokes along a long, thin object: on the axis-plane slice (any of the three) whose
cross-section has the largest area in mm^2, along the longest path of the 2D skeleton of that slice's largest
component (skimage.morphology.skeletonize; the path is the skeleton tree's diameter), every skeleton pixel of it.
Deterministic, no jitter. Then each further step is robot.next_click on the current error, as in the protocol.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import breadth_first_order
from skimage.graph import pixel_graph
from skimage.measure import find_contours
from skimage.morphology import skeletonize

from . import metrics
from .robot import next_click

FIRST_PROMPTS = ("click", "box", "lasso", "scribble")


def through_plane_axis(spacing_ijk) -> int:
    """Array axis (0 = k, 1 = j, 2 = i) of the largest voxel spacing; k when spacings tie."""
    spacing_kji = np.asarray(spacing_ijk, dtype=np.float64)[::-1]
    return int(np.flatnonzero(spacing_kji >= spacing_kji.max() - 1e-6)[0])


def largest_slice(gt: np.ndarray, spacing_ijk) -> tuple[int, int]:
    """(array axis, index) of the slice across the through-plane axis with the most object voxels."""
    axis = through_plane_axis(spacing_ijk)
    counts = (np.asarray(gt) > 0).sum(axis=tuple(a for a in range(3) if a != axis))
    if not counts.any():
        raise ValueError("the object is empty")
    return axis, int(np.argmax(counts))


def _slice_points(axis: int, index: int, rows_cols) -> list[tuple]:
    """2D (row, col) positions on slice `index` of array axis `axis` -> (i, j, k) points."""
    points = []
    for row, col in rows_cols:
        kji = [0.0, 0.0, 0.0]
        others = [a for a in range(3) if a != axis]
        kji[axis], kji[others[0]], kji[others[1]] = float(index), float(row), float(col)
        points.append(tuple(kji[::-1]))
    return points


def first_box(gt: np.ndarray, spacing_ijk) -> dict:
    """add_box arguments: two opposite corners (i, j, k) and the slice normal in voxel indices."""
    axis, index = largest_slice(gt, spacing_ijk)
    plane = np.take(np.asarray(gt) > 0, index, axis=axis)
    rows, cols = np.nonzero(plane)
    a, b = _slice_points(axis, index, [(rows.min(), cols.min()), (rows.max(), cols.max())])
    if rows.min() == rows.max() or cols.min() == cols.max():  # one voxel thin on the slice: widen by half a voxel
        a, b = _slice_points(axis, index, [(rows.min() - 0.5, cols.min() - 0.5), (rows.max() + 0.5, cols.max() + 0.5)])
    normal = [0.0, 0.0, 0.0]
    normal[2 - axis] = 1.0  # array axis -> (i, j, k) component
    return {"ijk": (a, b), "normal": tuple(normal)}


def first_lasso(gt: np.ndarray, spacing_ijk) -> dict:
    """add_lasso arguments: the outer contour (i, j, k) of the largest 2D part of the largest slice."""
    axis, index = largest_slice(gt, spacing_ijk)
    plane = np.take(np.asarray(gt) > 0, index, axis=axis)
    labels, count = ndimage.label(plane)
    sizes = np.bincount(labels.ravel())[1:]
    part = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
    contours = find_contours(np.pad(part, 1).astype(np.float32), 0.5)
    outline = max(contours, key=len)[:-1] - 1.0  # closed: the last point repeats the first; undo the padding
    return {"ijk": _slice_points(axis, index, outline), "positive": True}


def widest_axis_slice(gt: np.ndarray, spacing_ijk) -> tuple[int, int]:
    """(array axis, index) of the axis-plane slice, of all three orientations, with the largest object area (mm^2)."""
    spacing_kji = np.asarray(spacing_ijk, dtype=np.float64)[::-1]
    best = None
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        areas = (np.asarray(gt) > 0).sum(axis=tuple(others)) * spacing_kji[others[0]] * spacing_kji[others[1]]
        if best is None or areas.max() > best[0]:
            best = (float(areas.max()), axis, int(np.argmax(areas)))
    if best[0] == 0:
        raise ValueError("the object is empty")
    return best[1], best[2]


def _longest_path(skeleton: np.ndarray) -> np.ndarray:
    """(row, col) of the skeleton pixels on its longest path (8-connected; from a farthest end to the other)."""
    pixels = np.argwhere(skeleton)
    if len(pixels) <= 2:
        return pixels
    graph, nodes = pixel_graph(skeleton, connectivity=2)
    far = breadth_first_order(graph, 0, directed=False, return_predecessors=False)[-1]
    order, predecessors = breadth_first_order(graph, far, directed=False)
    node, path = order[-1], []
    while node >= 0:
        path.append(node)
        node = predecessors[node]
    return np.column_stack(np.unravel_index(nodes[path], skeleton.shape))


def first_scribble(gt: np.ndarray, spacing_ijk) -> dict:
    """add_scribble arguments: a stroke (i, j, k) along the skeleton of the widest axis-plane cross-section."""
    axis, index = widest_axis_slice(gt, spacing_ijk)
    plane = np.take(np.asarray(gt) > 0, index, axis=axis)
    labels, _ = ndimage.label(plane)
    part = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    path = _longest_path(skeletonize(part))
    return {"ijk": _slice_points(axis, index, path), "positive": True}


FIRST_ARGUMENTS = {"box": first_box, "lasso": first_lasso, "scribble": first_scribble}


def simulate_prompt_first(segmenter, volume, gt: np.ndarray, max_steps: int, first_prompt: str,
                          variant: str = "mm") -> list[dict]:
    """Step 1 a box or lasso (as above), then robot.next_click; one record per step, as run.simulate writes them
    (step 1 has "prompt" and no click position)."""
    if first_prompt not in FIRST_ARGUMENTS:
        raise ValueError(f"first prompt {first_prompt!r}: use box, lasso or scribble (clicks: run.simulate)")
    segmenter.set_volume(volume)
    records, pred = [], None
    for number in range(1, max_steps + 1):
        if number == 1:
            arguments = FIRST_ARGUMENTS[first_prompt](gt, volume.spacing)
            result = getattr(segmenter, f"add_{first_prompt}")(**arguments)
            ijk, positive, prompt = None, True, first_prompt
        else:
            click = next_click(gt, pred, volume.spacing, variant)
            if click is None:
                records.append({**records[-1], "click": number, "prompt": "click", "ijk": None, "positive": None,
                                "latency_s": None, "model_s": None})
                continue
            ijk, positive = click
            result = segmenter.add_click(ijk=ijk, positive=positive)
            prompt = "click"
        pred = result.mask
        records.append({"click": number, "prompt": prompt, "ijk": list(ijk) if ijk is not None else None,
                        "positive": positive, "dice": metrics.dice(gt, pred), "iou": metrics.iou(gt, pred),
                        "latency_s": float(result.latency_s), "model_s": float(result.model_s),
                        **metrics.error_profile(gt, pred)})
    return records


__all__ = ["FIRST_PROMPTS", "through_plane_axis", "largest_slice", "widest_axis_slice", "first_box", "first_lasso",
           "first_scribble", "simulate_prompt_first"]
