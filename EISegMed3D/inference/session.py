"""The interactive session: prompts on one scan -> one 3D object mask, with undo / redo.

Prompts are clicks, scribbles, a box and lassos (prompts.py), mixed freely. Each runs the model on an ROI around
the prompts and the current object (zooming out while the object touches the ROI border), maps probabilities
back onto the scan grid and thresholds them there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .clickmaps import Click, ball_radius_mm
from .errors import ClickError, SessionError, VolumeError
from .mask_ops import bounding_box, changed_box, clean_components, grow_from_click, labels_at, seeds_in_ball
from .model_input import ZOOM_STEP, choose_roi, from_model_order, model_inputs, stroke_windows, widened_roi
from .nested_views import keep_finer
from .normalize import intensity_stats
from .prompts import REGION, Box, channel_names, Lasso, Scribble, box_corners, plane_of, prompt_points_kji, region_channel, scribble_points
from .roi import to_scan
from .volume import Volume


@dataclass
class ClickResult:
    mask: np.ndarray  # uint8 [k, j, i], the current object on the full scan grid
    changed_box: tuple  # (k, j, i) slices that differ from the previous mask
    latency_s: float  # click to mask, all included
    model_s: float  # time inside the network
    runs: int  # network runs (more than one when the ROI zoomed out)


@dataclass
class _Step:
    """One undoable change: the prompt list and the mask content inside `box` before and after it."""

    prompts_before: list
    prompts_after: list
    box: tuple
    before: np.ndarray
    after: np.ndarray
    soft: tuple | None = None  # (roi, probabilities) after the step, for models fed their own soft output


class InteractiveSession:
    """Turns prompts into a 3D mask for one object of one scan. Drive it from one thread at a time."""

    def __init__(self, model):
        self.model = model
        self.manifest = model.manifest
        self.volume: Volume | None = None
        self._stats = None
        self.mask: np.ndarray | None = None
        self._mask_box = None  # bounding box of self.mask, kept up to date so a click never scans the whole mask
        self.last_roi = None  # the patch grid of the latest model run (where the prompts were drawn)
        self.prompts: list = []  # Click, Scribble, Box, Lasso in the order given
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
        self.prompts, self._undo, self._redo = [], [], []

    def set_mask(self, mask_kji: np.ndarray) -> None:
        """Continue from an existing segment: it becomes the previous mask of the next click."""
        self._require_volume()
        mask_kji = np.asarray(mask_kji)
        if mask_kji.shape != self.volume.shape:
            raise SessionError(f"mask shape {mask_kji.shape} does not match the scan {self.volume.shape}")
        self.mask = (mask_kji > 0).astype(np.uint8)
        self._mask_box = bounding_box(self.mask)
        self.prompts, self._undo, self._redo = [], [], []

    def reset(self) -> None:
        """Forget the object: empty mask, no clicks, no history."""
        self._require_volume()
        self.mask = np.zeros(self.volume.shape, dtype=np.uint8)
        self._mask_box = None
        self.prompts, self._undo, self._redo = [], [], []

    @property
    def clicks(self) -> list:
        """The clicks among the prompts, in order."""
        return [p for p in self.prompts if isinstance(p, Click)]

    # --- prompts ---------------------------------------------------------------------------------------------
    def add_click(self, ijk=None, ras=None, positive: bool = True) -> ClickResult:
        """Add a click given in voxel (i, j, k) or RAS mm coordinates and update the mask."""
        self._require_volume()
        started = time.perf_counter()
        point = self._to_ijk(ijk, ras, "click")[0]
        return self._add(Click(tuple(float(v) for v in point), bool(positive)), started)

    def add_scribble(self, ijk=None, ras=None, positive: bool = True) -> ClickResult:
        """Add a stroke: a polyline of points (i, j, k) or RAS mm, drawn as click balls along it."""
        self._require_volume()
        started = time.perf_counter()
        points = self._to_ijk(ijk, ras, "scribble", many=True)
        return self._add(Scribble(_as_tuples(points), bool(positive)), started)

    def add_box(self, ijk=None, ras=None, normal=None, plane=None) -> ClickResult:
        """Add a rectangle on one slice plane around the object: two opposite corners (i, j, k) or RAS mm.

        The plane: `normal` (with ijk= in voxel index axes, e.g. (0, 0, 1) for an axial slice; with ras= a RAS
        direction), or `plane` = three points of it in the corners' frame (edges run along plane[0] -> plane[1]),
        or nothing when the two corners share one voxel index (that axis is the normal). Without `plane` the
        edges run along the scan axis lying most in the plane.
        """
        self._require_volume()
        started = time.perf_counter()
        if REGION not in channel_names(self.manifest):
            raise ClickError(f"model {self.manifest['name']} has no 'region' input; boxes need a model trained with them")
        corners = self._to_ijk(ijk, ras, "box corner", many=True)
        if len(corners) != 2:
            raise ClickError(f"a box takes two opposite corners, got {len(corners)} points")
        to_ras = self.volume.ijk_to_ras_point
        a, b = to_ras(corners[0]), to_ras(corners[1])
        normal_ras, edge = self._box_plane(corners, normal, plane, ras is not None)
        try:
            rectangle = box_corners(a, b, normal_ras, edge)
        except ValueError as error:
            raise ClickError(f"box {_fmt(ijk if ras is None else ras)}: {error}") from error
        box = Box(_as_tuples([self.volume.ras_to_ijk_point(p) for p in rectangle]))
        return self._add(box, started)

    def add_lasso(self, ijk=None, ras=None, positive: bool = True) -> ClickResult:
        """Add a closed contour on one slice plane (filled): >= 3 vertices (i, j, k) or RAS mm, in order."""
        self._require_volume()
        started = time.perf_counter()
        points = self._to_ijk(ijk, ras, "lasso point", many=True)
        ras_points = np.array([self.volume.ijk_to_ras_point(p) for p in points])
        try:
            centroid, normal, off_plane = plane_of(ras_points)
        except ValueError as error:
            raise ClickError(f"lasso of {len(points)} points: {error}") from error
        tolerance = 0.5 * float(self.volume.spacing.max())
        if off_plane > tolerance:
            raise ClickError(f"lasso points are not on one plane: one lies {off_plane:.3g} mm from it "
                             f"(at most {tolerance:.3g} mm, half the largest voxel size)")
        flat = ras_points - np.outer((ras_points - centroid) @ normal, normal)  # exactly planar
        return self._add(Lasso(_as_tuples([self.volume.ras_to_ijk_point(p) for p in flat]), bool(positive)), started)

    def add_prompt(self, prompt) -> ClickResult:
        """Re-add a prompt object taken from `prompts` (e.g. to replay a list)."""
        self._require_volume()
        started = time.perf_counter()
        if isinstance(prompt, Box) and REGION not in channel_names(self.manifest):
            raise ClickError(f"model {self.manifest['name']} has no 'region' input; boxes need a model trained with them")
        if not isinstance(prompt, (Click, Scribble, Box, Lasso)):
            raise ClickError(f"not a prompt: {prompt!r}")
        for point in prompt_points_kji(prompt)[:, ::-1]:
            self._to_ijk(point, None, "prompt point")
        return self._add(prompt, started)

    def _add(self, prompt, started: float) -> ClickResult:
        prompts = self.prompts + [prompt]
        box, values, model_s, runs, soft = self._predict(prompts)
        new = (values > self.manifest.get("threshold", 0.5)).astype(np.uint8)
        positive, negative = self._seed_points(prompts, box)
        if isinstance(prompt, Click) and prompt.positive:
            click = prompt.kji - [s.start for s in box]
            new = grow_from_click(new, values, click)
            spacing_kji = self.volume.spacing[::-1]
            radius = ball_radius_mm(self.manifest, self.last_roi.voxel_mm(spacing_kji))
            positive = np.vstack([positive, seeds_in_ball(new, click, radius, spacing_kji)])
        new = clean_components(new, positive, negative, self.mask[box])
        step = _Step(self.prompts, prompts, box, self.mask[box].copy(), new, soft)
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

    def _to_ijk(self, ijk, ras, what: str, many: bool = False) -> np.ndarray:
        """(N, 3) voxel positions of a point (N = 1) or of a point list; each must be inside the scan."""
        if (ijk is None) == (ras is None):
            raise ClickError(f"give a {what} as exactly one of ijk=(i, j, k) or ras=(r, a, s)" if not many else
                             f"give the {what}s as exactly one of ijk=[(i, j, k), ...] or ras=[(r, a, s), ...]")
        try:
            given = np.asarray(ras if ras is not None else ijk, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ClickError(f"{what}{'s' if many else ''} {ras if ras is not None else ijk!r}: not numbers ({error})") from error
        if (given.shape != (3,) if not many else (given.ndim != 2 or given.shape[1:] != (3,) or len(given) == 0)) \
                or not np.all(np.isfinite(given)):
            raise ClickError(f"{what} {_fmt(given) if given.size < 7 else given.tolist()} is not "
                             f"{'a finite 3D point' if not many else 'a list of finite 3D points'}")
        points = given.reshape(-1, 3)
        if ras is not None:
            points = np.array([self.volume.ras_to_ijk_point(p) for p in points])
        for number, (point, original) in enumerate(zip(points, given.reshape(-1, 3))):
            if not self.volume.contains_ijk(point):
                where = f"voxel (i, j, k) {_fmt(point)}"
                where = f"RAS {_fmt(original)} = {where}" if ras is not None else where
                scan = f" {self.volume.path}" if self.volume.path else ""
                label = f"{what} {number + 1}" if many else what
                raise ClickError(f"{label} at {where} is outside the scan{scan} of size (i, j, k) {self.volume.shape[::-1]}")
        return points

    def _box_plane(self, corners_ijk, normal, plane, in_ras: bool) -> tuple[np.ndarray, np.ndarray]:
        """(unit normal, edge direction) in RAS of a box's plane, from normal / plane / the corners."""
        matrix = self.volume.ijk_to_ras[:3, :3]
        if normal is not None and plane is not None:
            raise ClickError("give the box plane as normal= or as plane= (three points), not both")
        edge = None
        if plane is not None:
            points = np.asarray(plane, dtype=np.float64)
            if points.shape != (3, 3) or not np.all(np.isfinite(points)):
                raise ClickError(f"box plane {np.asarray(plane).tolist()}: expected three 3D points")
            if not in_ras:
                points = np.array([self.volume.ijk_to_ras_point(p) for p in points])
            normal_ras, edge = np.cross(points[1] - points[0], points[2] - points[0]), points[1] - points[0]
        elif normal is not None:
            normal = np.asarray(normal, dtype=np.float64)
            if normal.shape != (3,) or not np.all(np.isfinite(normal)):
                raise ClickError(f"box normal {normal.tolist()}: expected a 3D direction")
            # In voxel indices the normal holds the plane's equation coefficients, so it maps by the inverse transpose.
            normal_ras = normal if in_ras else np.linalg.inv(matrix).T @ normal
        else:
            same = np.flatnonzero(np.abs(corners_ijk[0] - corners_ijk[1]) < 1e-3)
            if len(same) != 1:
                raise ClickError("box corners share no single voxel index (i, j or k): give the plane with normal= "
                                 "or plane=")
            normal_ras = np.linalg.inv(matrix).T @ np.eye(3)[same[0]]
        length = np.linalg.norm(normal_ras)
        if not length > 1e-12:
            raise ClickError("box plane: the normal or the three plane points span no plane")
        normal_ras = normal_ras / length
        if edge is None:
            axes = matrix / np.linalg.norm(matrix, axis=0)
            edge = axes[:, int(np.argmin(np.abs(normal_ras @ axes)))]
        return normal_ras, edge

    def _seed_points(self, prompts, box) -> tuple[list, list]:
        """Local (k, j, i) points of each sign in `box`: components holding positive ones are kept (mask_ops)."""
        origin = np.array([s.start for s in box], dtype=np.float64)
        shape = tuple(s.stop - s.start for s in box)
        spacing_kji = self.volume.spacing[::-1]
        signs = {True: [np.zeros((0, 3))], False: [np.zeros((0, 3))]}
        for prompt in prompts:
            if isinstance(prompt, Scribble):
                points = scribble_points(prompt.points_kji, float(spacing_kji.min()) / 2, spacing_kji) - origin
            elif isinstance(prompt, (Box, Lasso)) and min(shape) > 0:
                points = np.argwhere(region_channel(shape, prompt.polygon_kji - origin, spacing_kji) > 0)
            else:
                points = prompt_points_kji(prompt) - origin
            signs[prompt.positive].append(points)
        return np.vstack(signs[True]), np.vstack(signs[False])

    def _predict(self, prompts) -> tuple:
        """Run the model, widening the view while the object touches an ROI face inside the scan (centred on what
        was found: model_input.widened_roi), or along a long stroke in windows."""
        volume, manifest = self.volume, self.manifest
        spacing_kji = volume.spacing[::-1]
        if isinstance(prompts[-1], Scribble):
            windows = stroke_windows(manifest, volume.shape, spacing_kji, prompts[-1].points_kji)
            if windows:
                return self._predict_windows(prompts, windows)
        mask_box = self._mask_box
        points = np.vstack([prompt_points_kji(p) for p in prompts])
        focus = prompt_points_kji(prompts[-1])
        extent_known = any(isinstance(p, (Box, Lasso)) and p.positive for p in prompts)
        max_zoom = manifest["spacing_policy"].get("max_zoom_out", 1)
        threshold = manifest.get("threshold", 0.5)
        keeps = manifest["spacing_policy"].get("wider_view_keeps", 0.0)
        max_runs = 1 + int(np.floor(np.log(max_zoom) / np.log(ZOOM_STEP) + 1e-9))  # as many as zooming out takes
        if isinstance(prompts[-1], Scribble):
            # A stroke lies inside the object, and one view says nearly all: zooming out changed spine Dice@1 by
            # 0.003 and cost a second run on over half the strokes (benchmarks/results/experiments/scribble_one_view.md).
            max_runs = 1
        roi = choose_roi(manifest, volume.shape, spacing_kji, points, mask_box, 1.0, focus, extent_known)
        first_size, model_s, runs, views = roi.step[0] * spacing_kji[0], 0.0, 0, []
        while True:
            prob, seconds = self._run_model(prompts, roi, self._soft_previous(roi))
            model_s += seconds
            runs += 1
            views.append((roi, prob))
            found = prob > threshold
            if runs > 1 and (_lost_the_click(prompts[-1], views[-2], roi, found, threshold) or
                             _kept_less_than(keeps, prompts[-1], views[-2], roi, found, threshold)):
                # The wider view lost what the last one found under the positive click (candidate models answered
                # a long object with nothing at the coarser voxels): an answer without its click is never right.
                # With the policy's "wider_view_keeps", also one that kept less than that share of the finer find
                # (every model answers a long ellipsoid's wider view with half of it: long_ellipsoid_views.md).
                views.pop()
                roi, prob = views[-1]
                break
            if runs >= max_runs or not _touches_inner_face(found, roi, volume.shape):
                break
            # A first prompt's view may sit off the object's centre: centre the next on the find. Otherwise (a mask
            # centres the view, or the object is longer than it) zoom out around the prompts.
            wider = widened_roi(manifest, spacing_kji, roi, found, points, None, focus, ZOOM_STEP) if mask_box is None else None
            if wider is None:
                zoom = roi.step[0] * spacing_kji[0] / first_size * ZOOM_STEP
                wider = choose_roi(manifest, volume.shape, spacing_kji, points, mask_box, zoom, focus, extent_known)
            if wider.step[0] * spacing_kji[0] / first_size > max_zoom + 1e-9 or (
                    np.allclose(wider.step, roi.step) and np.allclose(wider.start, roi.start)):
                break  # as far out as the policy allows, or at the size limit: another run would see the same
            roi = wider
        box, values = to_scan(prob, roi, volume.shape)
        ramp = manifest["spacing_policy"].get("keep_finer_view")
        finer = [(r, p) for r, p in views[:-1] if r.step[0] < roi.step[0] * 0.9]  # zoomed out, not just recentred
        if ramp and finer:
            values = keep_finer(box, values, finer, volume.shape, float(ramp))
        self.last_roi = roi
        soft = (roi, prob.astype(np.float32)) if manifest.get("previous_mask") == "soft" else None
        return box, values, model_s, runs, soft

    def _run_model(self, prompts, roi, previous=None) -> tuple[np.ndarray, float]:
        """Foreground probability on the ROI's patch grid, and the seconds spent in the network."""
        spacing_kji = self.volume.spacing[::-1]
        image, click_channels = model_inputs(self.volume.array, self._stats, self.mask, prompts, roi, spacing_kji,
                                             self.manifest, previous)
        tick = time.perf_counter()
        logits = self.model.predict(image, click_channels)
        seconds = time.perf_counter() - tick
        return probability(from_model_order(logits, self.manifest)[0, 0]), seconds

    def _predict_windows(self, prompts, windows) -> tuple:
        """One model run per window; probabilities averaged where windows overlap. Scan voxels of the windows'
        bounding box that no window covers keep the current mask."""
        volume = self.volume
        boxes = [w.scan_box(volume.shape) for w in windows]
        box = tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))
        shape = tuple(s.stop - s.start for s in box)
        total, count = np.zeros(shape, np.float32), np.zeros(shape, np.uint8)
        model_s = 0.0
        for roi in windows:
            prob, seconds = self._run_model(prompts, roi)
            model_s += seconds
            part, values = to_scan(prob, roi, volume.shape)
            local = tuple(slice(p.start - b.start, p.stop - b.start) for p, b in zip(part, box))
            total[local] += values
            count[local] += 1
        # In place: the windows' box of a long diagonal stroke on a fine scan holds tens of millions of voxels.
        uncovered = count == 0
        np.divide(total, count, out=total, where=~uncovered)
        total[uncovered] = self.mask[box][uncovered]
        self.last_roi = windows[-1]
        return box, total, model_s, len(windows), None

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
        self.prompts = list(step.prompts_after if forward else step.prompts_before)

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


def probability(logits: np.ndarray) -> np.ndarray:
    """Sigmoid without overflow: trained models give logits of -1000 far from the object, where 1 / (1 + exp(-x))
    warned "overflow encountered in exp" on every click."""
    return expit(logits)


def _fmt(point) -> str:
    """(1.5, 2.0, -3.25): plain numbers, not numpy reprs, in messages."""
    return "(" + ", ".join(f"{float(v):.6g}" for v in np.asarray(point, dtype=np.float64).ravel()) + ")"


def _as_tuples(points) -> tuple:
    return tuple(tuple(float(v) for v in p) for p in points)


def _updated_box(mask: np.ndarray, old_box, changed: tuple):
    """The mask's bounding box after `changed` was rewritten: only old box + changed box can hold voxels."""
    region = changed if old_box is None else tuple(slice(min(a.start, b.start), max(a.stop, b.stop))
                                                   for a, b in zip(old_box, changed))
    local = bounding_box(mask[region])
    return None if local is None else tuple(slice(r.start + b.start, r.start + b.stop) for r, b in zip(region, local))


def _lost_the_click(prompt, last_view, roi, found: np.ndarray, threshold: float) -> bool:
    """True when `prompt` is a positive click that the last view's answer held and this view's (`found`) does not."""
    if not (isinstance(prompt, Click) and prompt.positive):
        return False
    held_before = labels_at(last_view[1] > threshold, last_view[0].to_patch(prompt.kji))
    return bool(held_before) and not labels_at(found, roi.to_patch(prompt.kji))


def _kept_less_than(share: float, prompt, last_view, roi, found: np.ndarray, threshold: float) -> bool:
    """True when `prompt` is a positive click and this view (`found` on `roi`) holds less than `share` of the last
    view's answer (its found voxels looked up, nearest, in this view)."""
    if not share or not (isinstance(prompt, Click) and prompt.positive):
        return False
    last_roi, last_prob = last_view
    finer = np.argwhere(last_prob > threshold)
    if len(finer) == 0:
        return False
    index = np.round(roi.to_patch(last_roi.start + finer * last_roi.step)).astype(int)
    inside = np.all((index >= 0) & (index < found.shape), axis=1)
    kept = found[tuple(index[inside].T)].sum()
    return kept < share * len(finer)


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
