"""Builds exactly what the network sees (ROI choice, image, click and previous-mask channels).

Shared by the interactive session and by training, so both feed the model identical inputs.
"""
from __future__ import annotations

import numpy as np

from . import roi as roi_mod
from .normalize import normalize
from .prompts import channel_names, prompt_channels


# A box or lasso gives the object's size in its plane only. Across the plane the object may reach as far as it is
# wide, and off-centre (users draw on the largest slice, not the middle one): without this the first run cut
# vertebral bodies off across the plane and a second, zoomed-out run was needed (benchmarks/prompts_latency.py).
PLANAR_REACH = 1.5
# How much wider each view is when the object touches the view's faces (the session's zoom-out; training draws it too).
ZOOM_STEP = 1.5


def choose_roi(manifest: dict, scan_shape, spacing_kji, points_kji, mask_box=None, zoom: float = 1.0,
               focus_kji=None, extent_known: bool = False) -> roi_mod.Roi:
    """The ROI for the current prompts and mask, per the manifest's spacing policy; `zoom` > 1 widens it.

    `points_kji`: every prompt point; `focus_kji`: the latest prompt's points (default: the last point), where
    the ROI goes when the whole is too large; `extent_known`: a box or lasso gave the object's size, so the
    initial ROI size does not apply.
    """
    policy = manifest["spacing_policy"]
    patch = tuple(manifest["patch_shape"])
    if policy["type"] == "whole_volume_grid":
        grid_kji = tuple(policy["grid_ijk"])[::-1]
        return roi_mod.whole_volume_roi(scan_shape, grid_kji)
    points = np.asarray(points_kji, dtype=np.float64).reshape(-1, 3)
    focus = points[-1:] if focus_kji is None else np.asarray(focus_kji, dtype=np.float64).reshape(-1, 3)
    if mask_box is not None:
        corners = np.array([[s.start for s in mask_box], [s.stop - 1 for s in mask_box]], dtype=np.float64)
        points = np.vstack([points, corners])
    lo, hi = points.min(axis=0), points.max(axis=0)
    size = roi_mod.roi_size_mm(lo, hi, spacing_kji, policy, object_known=mask_box is not None or extent_known) * zoom
    if extent_known and mask_box is None:
        size *= PLANAR_REACH
    limit = policy.get("max_roi_mm")
    if limit and size > limit:
        # Too large to see at the model's resolution: refine around the latest prompt only (the rest of the
        # object, outside the ROI, is kept as it is). A box or lasso larger than the limit is still seen whole.
        lo, hi = focus.min(axis=0), focus.max(axis=0)
        size = max(float(limit), roi_mod.roi_size_mm(lo, hi, spacing_kji, policy, object_known=True))
    return roi_mod.isotropic_roi(lo, hi, spacing_kji, patch, size)


def widened_roi(manifest: dict, spacing_kji, roi: roi_mod.Roi, found_patch: np.ndarray, points_kji, mask_box=None,
                focus_kji=None, step: float = 1.5) -> roi_mod.Roi | None:
    """The next ROI after `roi` cut the object off at a face: centred on all that is known of the object (what
    the run found, the prompts, the current mask) and as large as that needs with the margin, between the size
    of `roi` and `step` times it (and the policy's largest size). None for an object cut off on both sides of an
    axis: it is longer than the view, its ends are unknown, and centring on the find let a leak drag the view
    after it (CT muscles: Dice@1 -0.1 to -0.18), so the caller zooms out around the prompts (choose_roi).

    Zooming out around the prompts instead wasted the side of the view away from the cut: an off-centre click
    on a 48 mm vertebral body went from 64 mm at 1 mm voxels to 96 mm at 1.5 mm, where a shifted 64 mm view
    holds it whole (benchmarks/results/experiments/recentred_zoom.md). The session uses it for a first prompt."""
    found = np.argwhere(found_patch)
    if found.size and np.any((found.min(axis=0) == 0) & (found.max(axis=0) == np.array(roi.shape) - 1)):
        return None
    policy = manifest["spacing_policy"]
    spacing = np.asarray(spacing_kji, dtype=np.float64)
    points = np.asarray(points_kji, dtype=np.float64).reshape(-1, 3)
    known = [points]
    if mask_box is not None:
        known.append(np.array([[s.start for s in mask_box], [s.stop - 1 for s in mask_box]], dtype=np.float64))
    if found.size:
        known.append(roi.start + np.array([found.min(axis=0), found.max(axis=0)]) * roi.step)
    lo, hi = np.vstack(known).min(axis=0), np.vstack(known).max(axis=0)
    current = float(roi.step[0] * spacing[0] * min(roi.shape))  # isotropic: the edge of the cube
    size = min(max(current, roi_mod.roi_size_mm(lo, hi, spacing, policy, object_known=True)), current * step)
    limit = policy.get("max_roi_mm")
    if limit and size > limit:
        size = float(limit)
        if float(((hi - lo + 1) * spacing).max()) > limit:  # larger than any view: refine around the latest prompt
            focus = points[-1:] if focus_kji is None else np.asarray(focus_kji, dtype=np.float64).reshape(-1, 3)
            lo, hi = focus.min(axis=0), focus.max(axis=0)
    return roi_mod.isotropic_roi(lo, hi, spacing, tuple(manifest["patch_shape"]), size)


# A stroke longer than the largest ROI is seen through windows of that size along it, each its own model run, so
# a vessel or the cord keeps the fine grid a click would get (seen whole at once, a 20 cm stroke put the cord in
# 2 patch voxels and the answer covered 50 times its volume). Consecutive windows overlap by 40 %.
WINDOW_STRIDE = 0.6


def stroke_windows(manifest: dict, scan_shape, spacing_kji, stroke_kji) -> list[roi_mod.Roi] | None:
    """Windows of the largest ROI centred at even steps along a stroke too long for one, or None when one ROI of
    at most the largest size holds it (or the policy sets no largest size)."""
    policy = manifest["spacing_policy"]
    limit = policy.get("max_roi_mm")
    if policy["type"] != "roi_isotropic" or not limit:
        return None
    points = np.asarray(stroke_kji, dtype=np.float64).reshape(-1, 3)
    spacing = np.asarray(spacing_kji, dtype=np.float64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    if roi_mod.roi_size_mm(lo, hi, spacing, policy, object_known=True) <= limit:
        return None
    lengths = np.linalg.norm(np.diff(points, axis=0) * spacing, axis=1)
    along = np.concatenate([[0.0], np.cumsum(lengths)])
    count = int(np.ceil(along[-1] / (WINDOW_STRIDE * limit))) + 1
    centres = [np.array([np.interp(t, along, points[:, a]) for a in range(3)]) for t in np.linspace(0, along[-1], count)]
    patch = tuple(manifest["patch_shape"])
    return [roi_mod.isotropic_roi(c, c, spacing, patch, float(limit)) for c in centres]


def model_inputs(image_kji, stats, mask_kji, prompts, roi, spacing_kji, manifest, previous=None) -> tuple[np.ndarray, np.ndarray]:
    """(image, clicks) tensors of shape (1, 1, *patch) and (1, C, *patch) in the model's axis order.

    The C click channels are drawn by the names the manifest lists (previous_mask, positive_clicks,
    negative_clicks and, for models trained with boxes and lassos, region); `prompts` are Click, Scribble, Box and
    Lasso objects. `previous` (patch grid) replaces the resampled mask as the previous-mask channel, for models
    trained on their own soft output (the original EISeg-Med3D model).
    """
    spec = manifest["normalization"]
    names = channel_names(manifest)
    image = normalize(roi_mod.sample(image_kji, roi, order=1, mode="nearest"), spec, stats)
    if previous is None:
        previous = roi_mod.sample(mask_kji, roi, order=1, mode="constant") if mask_kji is not None else np.zeros(roi.shape, np.float32)
    drawn = {"previous_mask": previous, **prompt_channels(prompts, roi, spacing_kji, manifest, names)}
    channels = np.stack([drawn[name] for name in names])
    return to_model_order(image[None, None], manifest), to_model_order(channels[None], manifest)


def to_model_order(tensor: np.ndarray, manifest: dict) -> np.ndarray:
    """(N, C, k, j, i) -> the manifest's axis order (the original model wants (N, C, i, j, k))."""
    if manifest.get("axis_order", "kji") == "ijk":
        tensor = tensor.transpose(0, 1, 4, 3, 2)
    return np.ascontiguousarray(tensor, dtype=np.float32)


def from_model_order(tensor: np.ndarray, manifest: dict) -> np.ndarray:
    if manifest.get("axis_order", "kji") == "ijk":
        tensor = tensor.transpose(0, 1, 4, 3, 2)
    return tensor
