"""Exact 2D polygon tests for drawing a box or lasso (inference/prompts.py): inside (edges included), point by point
and along many parallel lines at once (a prism across a patch: one crossing count per line)."""
from __future__ import annotations

import numpy as np

EDGE_EPS = 1e-6  # points this close to a polygon edge (in metric units) count as inside
_NEAR = 1e-4  # points this close to the outline are tested one by one; farther ones by their line's crossings


def inside_polygon(flat: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """Which 2D points lie inside the closed polygon `outline`, its edges included."""
    from skimage.measure import points_in_poly  # here, not at import: training on a GPU machine without skimage

    lo, hi = outline.min(axis=0) - EDGE_EPS, outline.max(axis=0) + EDGE_EPS
    candidate = np.all((flat >= lo) & (flat <= hi), axis=1)  # the polygon test only inside its bounding rectangle
    inside = np.zeros(len(flat), bool)
    inside[candidate] = points_in_poly(flat[candidate], outline)
    # Centres on an edge count as inside; rounding can put them a hair outside, so measure those few exactly.
    edge = np.flatnonzero(candidate & ~inside)
    inside[edge] = edge_distance(flat[edge], outline) <= EDGE_EPS
    return inside


def edge_distance(points: np.ndarray, polygon: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Distance of each 2D point to the closed polygon's outline (all edges at once, points in chunks)."""
    a, ab = polygon, np.roll(polygon, -1, axis=0) - polygon
    length2 = np.maximum((ab * ab).sum(axis=1), 1e-300)
    best = np.empty(len(points))
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk, None, :] - a[None]  # (points, edges, 2)
        t = np.clip((p * ab[None]).sum(axis=2) / length2, 0.0, 1.0)
        best[start:start + chunk] = np.sqrt(((p - t[..., None] * ab[None]) ** 2).sum(axis=2).min(axis=1)) if len(a) else np.inf
    return best


def inside_along_lines(first: np.ndarray, step: np.ndarray, count: int, outline: np.ndarray) -> np.ndarray:
    """(lines, count) bool: which points first[l] + t * step (t = 0 .. count - 1) lie inside the closed polygon
    `outline`, edges included, as inside_polygon says. A point's side is the parity of the outline's crossings of
    its line before it (exact away from the outline); points within _NEAR of an edge are tested one by one. Each
    edge meets a contiguous run of the lines sorted by their offset, so the work grows with the crossings only."""
    first, step, outline = (np.asarray(x, dtype=np.float64) for x in (first, step, outline))
    length = float(np.linalg.norm(step))
    if length * count < EDGE_EPS:  # the lines are points: one test each
        return np.repeat(inside_polygon(first, outline)[:, None], count, axis=1)
    unit = step / length
    across = np.array([-unit[1], unit[0]])
    offset, order = first @ across, np.argsort(first @ across)
    a_side, a_at = outline @ across, outline @ unit
    b_side, b_at = np.roll(a_side, -1), np.roll(a_at, -1)
    # (edge, line) pairs whose line passes within _NEAR of the edge: a run of the sorted offsets per edge
    lo = np.searchsorted(offset[order], np.minimum(a_side, b_side) - _NEAR, side="left")
    sizes = np.searchsorted(offset[order], np.maximum(a_side, b_side) + _NEAR, side="right") - lo
    edge = np.repeat(np.arange(len(outline)), sizes)
    line = order[np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))]
    side_a, side_b = a_side[edge] - offset[line], b_side[edge] - offset[line]  # signed distances from the line
    at_a, at_b = (a_at[edge] - first[line] @ unit) / length, (b_at[edge] - first[line] @ unit) / length  # in steps
    crossing = (side_a >= 0) != (side_b >= 0)  # half-open: a vertex on the line counts on one side only
    at = at_a + np.divide(side_a, side_a - side_b, out=np.zeros_like(side_a), where=crossing) * (at_b - at_a)
    after = np.clip(np.floor(at[crossing]) + 1, 0, count).astype(np.int64)  # the first point past the crossing
    passed = np.bincount(line[crossing] * (count + 1) + after, minlength=len(first) * (count + 1))
    inside = (np.cumsum(passed.reshape(len(first), count + 1)[:, :count], axis=1) % 2).astype(bool)
    # Points near the outline, tested one by one: the stretch of each pair's line within _NEAR of its edge.
    vector = np.roll(outline, -1, axis=0) - outline
    sine = (np.abs(vector @ across) / np.maximum(np.linalg.norm(vector, axis=1), 1e-300))[edge]
    reach = _NEAR / (length * np.maximum(sine, 1e-300))
    low = np.minimum(at_a, at_b) - _NEAR / length
    high = np.maximum(at_a, at_b) + _NEAR / length
    low = np.clip(np.ceil(np.where(crossing, np.maximum(low, at - reach), low)), 0, count).astype(np.int64)
    high = np.clip(np.floor(np.where(crossing, np.minimum(high, at + reach), high)), -1, count - 1).astype(np.int64)
    sizes = np.maximum(high - low + 1, 0)
    t = np.repeat(low - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
    if len(t):
        flat = np.unique(np.repeat(line, sizes) * count + t)
        rows, t = flat // count, flat % count
        inside[rows, t] = inside_polygon(first[rows] + (t[:, None] * length) * unit, outline)
    return inside
