"""Clicks and their encoding as ball maps on the ROI grid (radius in mm, so thick slices get round balls)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roi import Roi


@dataclass(frozen=True)
class Click:
    """A user click: continuous voxel position (i, j, k) and its sign."""

    ijk: tuple
    positive: bool

    @property
    def kji(self) -> np.ndarray:
        return np.asarray(self.ijk, dtype=np.float64)[::-1]


def ball_radius(manifest: dict, voxel_mm: np.ndarray) -> tuple[float, np.ndarray]:
    """(radius, per-axis metric) of a click ball in the manifest's unit: mm, or patch voxels for the original."""
    if "click_radius_voxels" in manifest:
        return float(manifest["click_radius_voxels"]), np.ones(3)
    radius = max(float(manifest["click_radius_mm"]), manifest.get("click_radius_min_voxels", 1.0) * float(voxel_mm.min()))
    return radius, np.asarray(voxel_mm, dtype=np.float64)


def ball_radius_mm(manifest: dict, voxel_mm: np.ndarray) -> float:
    """The click ball's radius in mm on a view of `voxel_mm` voxels (the original model's is given in its voxels)."""
    radius, _ = ball_radius(manifest, voxel_mm)
    return radius * float(np.min(voxel_mm)) if "click_radius_voxels" in manifest else radius


def draw_ball(target: np.ndarray, centre_patch, radius: float, metric: np.ndarray) -> None:
    """Set to 1 the voxels of `target` within `radius` of `centre_patch` (distances scaled per axis by `metric`)."""
    centre = np.asarray(centre_patch, dtype=np.float64)
    reach = radius / metric
    lo = np.maximum(np.floor(centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(centre + reach).astype(int) + 1, target.shape)
    if np.any(hi <= lo):
        return
    axes = [(np.arange(a, b) - c) * m for a, b, c, m in zip(lo, hi, centre, metric)]
    dist2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    view = target[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    view[dist2 <= radius * radius] = 1.0


def click_maps(clicks, roi: Roi, spacing_kji, manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative ball maps (float32, patch shape) for the clicks that fall near the ROI."""
    positive = np.zeros(roi.shape, dtype=np.float32)
    negative = np.zeros(roi.shape, dtype=np.float32)
    radius, metric = ball_radius(manifest, roi.voxel_mm(spacing_kji))
    for click in clicks:
        draw_ball(positive if click.positive else negative, roi.to_patch(click.kji), radius, metric)
    return positive, negative
