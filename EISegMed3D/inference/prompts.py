"""Prompts beyond clicks (scribbles, a box, a lasso on one slice plane) and how they are drawn for the model.

The encoding (the same code serves training's simulated prompts):
- scribble: balls of the click radius (as a click, see clickmaps.py) at points at most half a radius apart along
  the polyline, into the positive or negative channel. Every model takes it.
- box (a rectangle on one plane of any orientation) and lasso (a closed polygon on one plane, filled): the voxels
  of the patch grid whose centre lies within half a patch voxel of the plane and whose projection onto the plane
  falls inside the rectangle / polygon get 1.0 in the model's "region" channel. A model without a "region"
  channel gets a positive lasso as its filled area in the positive channel and cannot take a box. A negative
  lasso (an area that is not the object) always goes into the negative channel as its filled area.
  A model whose manifest sets "region_prism" (a value in (0, 1)) also gets the rectangle / polygon extruded
  across the whole patch along the plane's normal at that value (1.0 stays on the plane): a one-voxel slice left
  the network unsure how far across the plane the object goes (benchmarks/results/experiments/box_misses_off_slice.md).
  Its "region_prism_with_clicks" (default: the same value) replaces that value once the session also holds a click,
  scribble or negative lasso: the previous mask then carries the box's answer, and a prism kept at full strength
  outweighed the clicks that correct it (benchmarks/results/experiments/universal_v17_result.md).

Prompts are stored like clicks in continuous scan voxel indices (i, j, k); the drawing functions work on a patch
grid in array order (k, j, i), with `metric` the size of a grid voxel along (k, j, i) (any unit, e.g. mm) so
distances and planes are physical on anisotropic grids.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clickmaps import Click, ball_radius, draw_ball
from .polygon2d import EDGE_EPS, inside_along_lines, inside_polygon
from .roi import Roi

REGION = "region"
POSITIVE, NEGATIVE = "positive_clicks", "negative_clicks"


@dataclass(frozen=True)
class Scribble:
    """A stroke: polyline of continuous voxel positions (i, j, k) and its sign."""

    points_ijk: tuple
    positive: bool

    @property
    def points_kji(self) -> np.ndarray:
        return np.asarray(self.points_ijk, dtype=np.float64).reshape(-1, 3)[:, ::-1]


@dataclass(frozen=True)
class Box:
    """A rectangle on one slice plane: its four corners (i, j, k) in order around it. Always positive."""

    corners_ijk: tuple
    positive: bool = True

    @property
    def polygon_kji(self) -> np.ndarray:
        return np.asarray(self.corners_ijk, dtype=np.float64).reshape(-1, 3)[:, ::-1]


@dataclass(frozen=True)
class Lasso:
    """A closed contour on one slice plane (filled): its vertices (i, j, k) in order, and its sign."""

    polygon_ijk: tuple
    positive: bool

    @property
    def polygon_kji(self) -> np.ndarray:
        return np.asarray(self.polygon_ijk, dtype=np.float64).reshape(-1, 3)[:, ::-1]


def channel_names(manifest: dict) -> list:
    """The click input's channel names in the model's order (the original three when the manifest lists none)."""
    for spec in manifest.get("inputs", ())[1:2]:
        return list(spec["channels"])
    return ["previous_mask", POSITIVE, NEGATIVE]


def prompt_points_kji(prompt) -> np.ndarray:
    """The points (k, j, i) that give a prompt's extent (for the ROI)."""
    if isinstance(prompt, Click):
        return prompt.kji[None]
    if isinstance(prompt, Scribble):
        return prompt.points_kji
    return prompt.polygon_kji


# --- geometry -------------------------------------------------------------------------------------------------

def plane_of(points) -> tuple[np.ndarray, np.ndarray, float]:
    """(centroid, unit normal, largest distance of a point from the plane) of the best-fit plane of >= 3 points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) < 3:
        raise ValueError(f"a plane needs at least 3 points, got {len(points)}")
    centroid = points.mean(axis=0)
    _, singular, vt = np.linalg.svd(points - centroid, full_matrices=False)
    if singular[1] <= 1e-9 * max(singular[0], 1e-300):
        raise ValueError("the points lie on one line (or one point): they span no plane")
    normal = vt[2]
    return centroid, normal, float(np.abs((points - centroid) @ normal).max())


def box_corners(corner_a, corner_b, normal, edge) -> np.ndarray:
    """The 4 corners (4, 3) of the rectangle with opposite corners a, b on the plane through a with `normal`,
    edges along `edge` (projected into the plane) and normal x edge. Metric coordinates (e.g. RAS mm)."""
    a, b = np.asarray(corner_a, dtype=np.float64), np.asarray(corner_b, dtype=np.float64)
    n = _unit(normal, "box plane normal")
    u = np.asarray(edge, dtype=np.float64)
    u = _unit(u - (u @ n) * n, "box edge direction (it is perpendicular to the plane)")
    v = np.cross(n, u)
    d = b - a
    du, dv = d @ u, d @ v
    if abs(du) < 1e-9 or abs(dv) < 1e-9:
        raise ValueError("the box corners are not opposite corners of a rectangle with some area on its plane")
    return np.array([a, a + du * u, a + du * u + dv * v, a + dv * v])


def scribble_points(points, spacing: float, metric=None) -> np.ndarray:
    """The polyline's vertices plus points between them, consecutive points at most `spacing` apart.

    `metric` scales each axis before measuring (e.g. voxel size in mm, points in voxel indices); `spacing` is in
    the scaled unit. Returns (M, 3) in the input coordinates; one point stays one point.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if spacing <= 0:
        raise ValueError(f"scribble spacing must be positive, got {spacing}")
    metric = np.ones(3) if metric is None else np.asarray(metric, dtype=np.float64)
    out = [points[:1]]
    for start, stop in zip(points[:-1], points[1:]):
        pieces = max(1, int(np.ceil(np.linalg.norm((stop - start) * metric) / spacing - 1e-9)))
        t = np.arange(1, pieces + 1)[:, None] / pieces
        out.append(start + t * (stop - start))
    return np.vstack(out)


def region_channel(shape, polygon_patch, metric=None, out: np.ndarray | None = None, prism: float = 0.0) -> np.ndarray:
    """Rasterise a planar polygon (N, 3) given in grid coordinates (k, j, i) onto a grid of `shape`.

    A voxel is set to 1.0 when its centre lies within half a grid voxel of the polygon's plane (half the voxel's
    extent along the normal: ||normal * metric|| / 2; a plane exactly halfway between two voxel layers takes the
    lower-index one only, so the region is one voxel thick) and its projection onto the plane falls inside the
    polygon (edges included). With `prism` > 0 every other voxel whose projection falls inside gets at least
    `prism`. `metric`: voxel size along (k, j, i), default isotropic. Draws into `out` (never lowering it) when given.
    """
    out = np.zeros(tuple(shape), dtype=np.float32) if out is None else out
    metric = np.ones(3) if metric is None else np.asarray(metric, dtype=np.float64)
    scaled = np.asarray(polygon_patch, dtype=np.float64).reshape(-1, 3) * metric
    centroid, normal, _ = plane_of(scaled)
    normal = normal * np.sign(normal[np.argmax(np.abs(normal))])  # fixed orientation: ties go the same way
    half = 0.5 * float(np.linalg.norm(normal * metric))
    u = _unit(np.cross(normal, np.eye(3)[np.argmin(np.abs(normal))]), "in-plane axis")
    v = np.cross(normal, u)
    outline = np.stack([(scaled - centroid) @ u, (scaled - centroid) @ v], axis=1)
    if prism > 0:
        _draw_prism(out, outline, centroid, normal, np.stack([u, v], axis=1), metric, prism)
    lo = np.maximum(np.floor((scaled.min(axis=0) - half) / metric).astype(int), 0)
    hi = np.minimum(np.ceil((scaled.max(axis=0) + half) / metric).astype(int) + 1, out.shape)
    if np.any(hi <= lo):
        return out
    centres = _centres(lo, hi)
    offsets = centres * metric - centroid
    distance = offsets @ normal
    near = (distance >= -half - EDGE_EPS) & (distance < half - EDGE_EPS)  # half-open: one layer when halfway
    hit = centres[near][inside_polygon(offsets[near] @ np.stack([u, v], axis=1), outline)]
    out[hit[:, 0], hit[:, 1], hit[:, 2]] = 1.0
    return out


def _centres(lo, hi) -> np.ndarray:
    """Grid indices (k, j, i) of the block lo:hi, one row per voxel."""
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def _draw_prism(out: np.ndarray, outline, centroid, normal, in_plane, metric, value: float) -> None:
    """Raise to `value` every voxel of `out` whose centre projects into the polygon `outline` (plane coordinates):
    column by column along the grid axis nearest the normal (one polygon test per column, not per voxel)."""
    axis = int(np.argmax(np.abs(normal)))
    hi = np.asarray(out.shape)
    hi[axis] = 1
    first = (_centres(np.zeros(3, int), hi) * metric - centroid) @ in_plane  # each column's first voxel, in the plane
    step = (np.eye(3)[axis] * metric) @ in_plane  # and how far one voxel along the column moves it
    inside = inside_along_lines(first, step, out.shape[axis], outline)  # (columns, voxels along them)
    inside = np.moveaxis(inside.reshape(*[n for a, n in enumerate(out.shape) if a != axis], out.shape[axis]), -1, axis)
    np.maximum(out, np.where(inside, np.float32(value), np.float32(0)), out=out)


def _unit(vector, what: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    length = np.linalg.norm(vector)
    if vector.shape != (3,) or not np.isfinite(length) or length < 1e-12:
        raise ValueError(f"{what}: not a usable 3D direction ({vector.tolist()})")
    return vector / length


# --- the model's prompt channels ------------------------------------------------------------------------------

def prompt_channels(prompts, roi: Roi, spacing_kji, manifest: dict, names) -> dict:
    """{channel name: float32 patch array} for positive_clicks, negative_clicks and (if in `names`) region."""
    channels = {POSITIVE: np.zeros(roi.shape, np.float32), NEGATIVE: np.zeros(roi.shape, np.float32)}
    if REGION in names:
        channels[REGION] = np.zeros(roi.shape, np.float32)
    voxel_mm = roi.voxel_mm(spacing_kji)
    radius, metric = ball_radius(manifest, voxel_mm)
    prism = prism_value(manifest, any(not _is_region(prompt, channels) for prompt in prompts))
    for prompt in prompts:
        sign = POSITIVE if prompt.positive else NEGATIVE
        if isinstance(prompt, Click):
            draw_ball(channels[sign], roi.to_patch(prompt.kji), radius, metric)
        elif isinstance(prompt, Scribble):
            for point in scribble_points(roi.to_patch(prompt.points_kji), radius / 2, metric):
                draw_ball(channels[sign], point, radius, metric)
        elif isinstance(prompt, (Box, Lasso)):
            if isinstance(prompt, Box) and REGION not in channels:
                raise ValueError(f"model {manifest.get('name')} has no 'region' input; boxes need a model trained with them")
            target = REGION if _is_region(prompt, channels) else sign
            region_channel(roi.shape, roi.to_patch(prompt.polygon_kji), voxel_mm, out=channels[target],
                           prism=prism if target == REGION else 0.0)
        else:
            raise TypeError(f"not a prompt: {prompt!r}")
    return channels


def prism_value(manifest: dict, clicked: bool) -> float:
    """The value a box / lasso footprint gets across its plane: "region_prism", or once the user has also clicked
    (`clicked`: any prompt drawn into the click channels) "region_prism_with_clicks" (default the same)."""
    prism = manifest.get("region_prism", 0.0)
    return manifest.get("region_prism_with_clicks", prism) if clicked else prism


def _is_region(prompt, channels: dict) -> bool:
    """A prompt drawn into the region channel: a positive box or lasso, for a model that has one."""
    return isinstance(prompt, (Box, Lasso)) and prompt.positive and REGION in channels
