"""The interactive session: clicks on one scan -> one 3D object mask, with undo / redo.

Each click runs the model on an ROI around the clicks and the current object (zooming out while the object
touches the ROI border), maps probabilities back onto the scan grid and thresholds them there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .clickmaps import Click
from .errors import ClickError, SessionError, VolumeError
from .mask_ops import bounding_box, changed_box, clean_components
from .model_input import choose_roi, from_model_order, model_inputs
from .normalize import intensity_stats
from .roi import to_scan
from .volume import Volume

_ZOOM_STEP = 1.5


@dataclass
class ClickResult:
    mask: np.ndarray  # uint8 [k, j, i], the current object on the full scan grid
    changed_box: tuple  # (k, j, i) slices that differ from the previous mask
    latency_s: float  # click to mask, all included
    model_s: float  # time inside the network
    runs: int  # network runs (more than one when the ROI zoomed out)


@dataclass
class _Step:
    """One undoable change: the click list and the mask content inside `box` before and after it."""

    clicks_before: list
    clicks_after: list
    box: tuple
    before: np.ndarray
    after: np.ndarray
    soft: tuple | None = None  # (roi, probabilities) after the step, for models fed their own soft output


class InteractiveSession:
    """Turns clicks into a 3D mask for one object of one scan. Drive it from one thread at a time."""

    def __init__(self, model):
        self.model = model
        self.manifest = model.manifest
        self.volume: Volume | None = None
        self._stats = None
        self.mask: np.ndarray | None = None
        self._mask_box = None  # bounding box of self.mask, kept up to date so a click never scans the whole mask
        self.clicks: list[Click] = []
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []

    # --- scan and mask ---------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        """Start on a scan (intensity statistics are computed here once, not per click)."""
        name = volume.path or "volume"
        if min(volume.shape) < 1:
            raise VolumeError(f"{name}: empty image of shape {volume.shape}")
        self._stats = intensity_stats(volume.array, self.manifest["normalization"], str(name))
        self.volume = volume
        self.mask = np.zeros(volume.shape, dtype=np.uint8)
        self._mask_box = None
        self.clicks, self._undo, self._redo = [], [], []

    def set_mask(self, mask_kji: np.ndarray) -> None:
        """Continue from an existing segment: it becomes the previous mask of the next click."""
        self._require_volume()
        mask_kji = np.asarray(mask_kji)
        if mask_kji.shape != self.volume.shape:
            raise SessionError(f"mask shape {mask_kji.shape} does not match the scan {self.volume.shape}")
        self.mask = (mask_kji > 0).astype(np.uint8)
        self._mask_box = bounding_box(self.mask)
        self.clicks, self._undo, self._redo = [], [], []

    def reset(self) -> None:
        """Forget the object: empty mask, no clicks, no history."""
        self._require_volume()
        self.mask = np.zeros(self.volume.shape, dtype=np.uint8)
        self._mask_box = None
        self.clicks, self._undo, self._redo = [], [], []

    # --- clicks ----------------------------------------------------------------------------------------------
    def add_click(self, ijk=None, ras=None, positive: bool = True) -> ClickResult:
        """Add a click given in voxel (i, j, k) or RAS mm coordinates and update the mask."""
        self._require_volume()
        started = time.perf_counter()
        click = Click(tuple(float(v) for v in self._click_ijk(ijk, ras)), bool(positive))
        clicks = self.clicks + [click]
        box, values, model_s, runs, soft = self._predict(clicks)
        new = (values > self.manifest.get("threshold", 0.5)).astype(np.uint8)
        origin = np.array([s.start for s in box])
        new = clean_components(new, [c.kji - origin for c in clicks if c.positive],
                               [c.kji - origin for c in clicks if not c.positive], self.mask[box])
        step = _Step(self.clicks, clicks, box, self.mask[box].copy(), new, soft)
        self._apply(step, forward=True)
        self._undo.append(step)
        self._redo.clear()
        return ClickResult(self.mask, changed_box(step.before, step.after, box), time.perf_counter() - started, model_s, runs)

    def undo(self) -> ClickResult:
        return self._replay(self._undo, self._redo, forward=False)

    def redo(self) -> ClickResult:
        return self._replay(self._redo, self._undo, forward=True)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    # --- internals -------------------------------------------------------------------------------------------
    def _require_volume(self) -> None:
        if self.volume is None:
            raise SessionError("no scan: call set_volume() first")

    def _click_ijk(self, ijk, ras) -> np.ndarray:
        if (ijk is None) == (ras is None):
            raise ClickError("give a click as exactly one of ijk=(i, j, k) or ras=(r, a, s)")
        point = self.volume.ras_to_ijk_point(ras) if ras is not None else np.asarray(ijk, dtype=np.float64)
        if point.shape != (3,) or not np.all(np.isfinite(point)):
            raise ClickError(f"click {ijk if ras is None else ras} is not a finite 3D point")
        if not self.volume.contains_ijk(point):
            where = f"voxel (i, j, k) {_fmt(point)}"
            where = f"RAS {_fmt(ras)} = {where}" if ras is not None else where
            scan = f" {self.volume.path}" if self.volume.path else ""
            raise ClickError(f"click at {where} is outside the scan{scan} of size (i, j, k) {self.volume.shape[::-1]}")
        return point

    def _predict(self, clicks) -> tuple:
        """Run the model, zooming out while the object touches an ROI face inside the scan."""
        volume, manifest = self.volume, self.manifest
        spacing_kji = volume.spacing[::-1]
        mask_box = self._mask_box
        points = [c.kji for c in clicks]
        max_zoom = manifest["spacing_policy"].get("max_zoom_out", 1)
        zoom, model_s, runs, roi = 1.0, 0.0, 0, None
        while True:
            previous_roi, roi = roi, choose_roi(manifest, volume.shape, spacing_kji, points, mask_box, zoom)
            if previous_roi is not None and np.allclose(roi.step, previous_roi.step) and np.allclose(roi.start, previous_roi.start):
                roi = previous_roi  # at the size limit: zooming out changes nothing
                break
            image, click_channels = model_inputs(volume.array, self._stats, self.mask, clicks, roi, spacing_kji,
                                                 manifest, self._soft_previous(roi))
            tick = time.perf_counter()
            logits = self.model.predict(image, click_channels)
            model_s += time.perf_counter() - tick
            runs += 1
            prob = 1.0 / (1.0 + np.exp(-from_model_order(logits, manifest)[0, 0]))
            if zoom * _ZOOM_STEP > max_zoom or not _touches_inner_face(prob > manifest.get("threshold", 0.5), roi, volume.shape):
                break
            zoom *= _ZOOM_STEP
        box, values = to_scan(prob, roi, volume.shape)
        soft = (roi, prob.astype(np.float32)) if manifest.get("previous_mask") == "soft" else None
        return box, values, model_s, runs, soft

    def _soft_previous(self, roi):
        """The last soft output when the model wants it and it lies on this very ROI grid, else None."""
        soft = self._undo[-1].soft if self._undo else None
        if soft is None or soft[0].shape != roi.shape or not (np.allclose(soft[0].start, roi.start)
                                                             and np.allclose(soft[0].step, roi.step)):
            return None
        return soft[1]

    def _apply(self, step: _Step, forward: bool) -> None:
        self.mask[step.box] = step.after if forward else step.before
        self._mask_box = _updated_box(self.mask, self._mask_box, step.box)
        self.clicks = list(step.clicks_after if forward else step.clicks_before)

    def _replay(self, source: list, target: list, forward: bool) -> ClickResult:
        self._require_volume()
        if not source:
            raise SessionError(f"nothing to {'redo' if forward else 'undo'}")
        started = time.perf_counter()
        step = source.pop()
        self._apply(step, forward)
        target.append(step)
        old, new = (step.before, step.after) if forward else (step.after, step.before)
        return ClickResult(self.mask, changed_box(old, new, step.box), time.perf_counter() - started, 0.0, 0)


def _fmt(point) -> str:
    """(1.5, 2.0, -3.25): plain numbers, not numpy reprs, in messages."""
    return "(" + ", ".join(f"{float(v):.6g}" for v in np.asarray(point, dtype=np.float64).ravel()) + ")"


def _updated_box(mask: np.ndarray, old_box, changed: tuple):
    """The mask's bounding box after `changed` was rewritten: only old box + changed box can hold voxels."""
    region = changed if old_box is None else tuple(slice(min(a.start, b.start), max(a.stop, b.stop))
                                                   for a, b in zip(old_box, changed))
    local = bounding_box(mask[region])
    return None if local is None else tuple(slice(r.start + b.start, r.start + b.stop) for r, b in zip(region, local))


def _touches_inner_face(mask_patch: np.ndarray, roi, scan_shape) -> bool:
    """True when the object reaches an ROI face that lies inside the scan (more object may be beyond it)."""
    for axis in range(3):
        first = np.take(mask_patch, 0, axis=axis)
        last = np.take(mask_patch, mask_patch.shape[axis] - 1, axis=axis)
        if first.any() and roi.start[axis] > 0.5:
            return True
        if last.any() and roi.end[axis] < scan_shape[axis] - 1.5:
            return True
    return False
