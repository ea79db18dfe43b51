"""One training example: an ROI chosen like the engine chooses it, resampled with the engine's own code."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.clickmaps import ball_radius, draw_ball
from inference.model_input import ZOOM_STEP, choose_roi
from inference.normalize import normalize
from inference.roi import sample

from .augment import augment_intensity, augment_geometry
from .clicks import first_click_sets, first_positive, first_positive_from_sets, initial_clicks
from .prompt_sim import prism_with_clicks, region_prompt, scribble_clicks
from .pseudo_objects import neighbour_values, paste_shape, smooth_shape
from .soft_target import coverage


def object_boxes(label: np.ndarray) -> dict:
    """Bounding box of every label value (computed once per case)."""
    return {value + 1: box for value, box in enumerate(ndimage.find_objects(label)) if box is not None}


def click_channels(clicks, shape, manifest: dict, voxel_mm) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative ball maps for clicks given in patch coordinates (as the engine draws them)."""
    radius, metric = ball_radius(manifest, np.asarray(voxel_mm))
    maps = np.zeros((2,) + tuple(shape), dtype=np.float32)
    for point, positive in clicks:
        draw_ball(maps[0 if positive else 1], point, radius, metric)
    return maps[0], maps[1]


def perturbed_mask(rng, gt: np.ndarray) -> np.ndarray:
    """An imperfect existing segment (too big, too small or shifted) to learn refinement from."""
    how = rng.integers(3)
    steps = int(rng.integers(1, 4))
    if how == 0:
        return ndimage.binary_dilation(gt, iterations=steps)
    if how == 1:
        return ndimage.binary_erosion(gt, iterations=steps)
    return np.roll(gt, tuple(rng.integers(-steps, steps + 1, size=3)), axis=(0, 1, 2))


def make_example(rng: np.random.Generator, case: dict, manifest: dict, options: dict | None = None) -> dict | None:
    """Image, target, starting prompts and previous mask for one object of one cached case.

    `options` (the config's "sampling"; empty = the original recipe, draw for draw): "union" / "supervoxel" /
    "synthetic" are the probabilities of a target that is two neighbouring labels, a supervoxel, or a smooth shape
    pasted onto the image; "box" / "lasso" / "scribble" those of a first prompt of that kind; "contrast": "random"
    turns on contrast randomisation; "intensity_scale": [lo, hi] multiplies half the images by a factor in that
    range (augment.wide_scale); "soft_target": true adds "soft", the fraction of each view voxel the object covers
    (training.soft_target), which the loss then uses in place of the mask; "zoomed_out": p draws that share of the
    unknown-extent views one engine zoom step wider; "sharp_edge": p pastes that share of the synthetic shapes clean,
    flat with a step edge (pseudo_objects.edge_sigma).
    """
    options = options or {}
    target = draw_target_and_roi(rng, case, manifest, options)
    if target is None:
        return None
    roi, values, first_scan = target["roi"], target["values"], target["first_scan"]
    spacing = case["spacing_kji"]
    voxel_mm = roi.voxel_mm(spacing)

    image = normalize(sample(case["image"], roi, order=1, mode="nearest"), manifest["normalization"], case["stats"])
    if target["kind"] == "synthetic":
        gt = smooth_shape(rng, roi.shape, roi.to_patch(target["centre"]), target["semi_mm"] / voxel_mm)
        image = paste_shape(rng, image, gt, options.get("sharp_edge", 0.0))
        others = sample(case["label"], roi, order=0, mode="constant", cval=0) > 0
        others &= ~gt
    else:
        labels = sample(target["label_map"], roi, order=0, mode="constant", cval=0).astype(np.int64)
        gt = np.isin(labels, values)
        scan_labels = labels if target["label_map"] is case["label"] else sample(case["label"], roi, order=0, mode="constant", cval=0)
        others = (scan_labels > 0) & ~gt
    if gt.sum() < 20:
        return None
    # The soft target draws no random number: with or without it, an example's draws are the same.
    soft = soft_target(target, roi) if options.get("soft_target") else None
    arrays = (image, gt, others) if soft is None else (image, gt, others, soft)
    arrays, (start_click,) = augment_geometry(rng, arrays, [roi.to_patch(first_scan)])
    image, gt, others = arrays[:3]
    image = augment_intensity(rng, image, options.get("contrast", "gamma"), options.get("intensity_scale"))

    refine = rng.random() < 0.1
    previous = perturbed_mask(rng, gt).astype(np.float32) if refine else np.zeros(gt.shape, np.float32)
    region, clicks = None, []
    prompt = _prompt_kind(rng, options) if not refine else None
    if prompt in ("box", "lasso"):
        region = region_prompt(rng, gt, prompt, manifest.get("region_prism", 0.0))
    if refine or region is not None:
        start_click = None
    elif not _inside(gt, start_click):  # the click fell off a thin edge when resampled
        start_click = first_positive(rng, gt, voxel_mm)
    if prompt == "scribble":
        radius = ball_radius(manifest, np.asarray(voxel_mm))[0] / float(np.min(voxel_mm))
        clicks = scribble_clicks(rng, gt, others, radius, positive=rng.random() < 0.8)
    if region is not None and rng.random() < 0.5:
        pass  # a box or lasso alone: the user has not clicked yet
    elif start_click is not None or refine or region is not None:
        clicks = clicks + initial_clicks(rng, gt, others, start_click)
    example = {"image": image, "gt": gt, "previous": previous, "clicks": clicks, "voxel_mm": voxel_mm, "region": region}
    if soft is not None:
        example["soft"] = arrays[3]
    return example


def soft_target(target: dict, roi) -> np.ndarray | None:
    """The covered fraction of each view voxel (training.soft_target) for a label target; a synthetic shape is drawn
    on the view grid itself, so its mask is its target (None: the loss uses the mask)."""
    if target["kind"] == "synthetic":
        return None
    return coverage(target["label_map"], roi, target["values"], target["box"])


def _prompt_kind(rng, options: dict) -> str | None:
    if not any(options.get(k) for k in ("box", "lasso", "scribble")):
        return None
    draw = rng.random()
    for kind in ("box", "lasso", "scribble"):
        if draw < options.get(kind, 0.0):
            return kind
        draw -= options.get(kind, 0.0)
    return None


def draw_target_and_roi(rng, case: dict, manifest: dict, options: dict) -> dict | None:
    """The example's target (kind, label map and values, box, first click in scan indices; a synthetic shape's
    centre and semi-axes) and its ROI, chosen like the engine chooses it, jittered. Shared with the GPU stream's
    planner (training.stream_plans), so both draw the same examples from the same random numbers."""
    draw = rng.random() if options else 1.0
    cut = np.cumsum([options.get("union", 0.0), options.get("supervoxel", 0.0), options.get("synthetic", 0.0)])
    if draw < cut[0]:
        target = _label_target(rng, case, union=True)
    elif draw < cut[1] and "supervoxels" in case:
        target = _label_target(rng, case, supervoxels=True)
    elif draw < cut[2]:
        target = _synthetic_target(rng, case)
    else:
        target = _label_target(rng, case)
    if target is None:
        return None
    known = rng.random() < 0.5
    zoom = rng.uniform(0.75, 1.4) if known else rng.uniform(0.8, 1.3)
    if not known and options.get("zoomed_out", 0.0) and rng.random() < options["zoomed_out"]:
        # The view the engine turns to when a first click's answer touches the faces: one zoom step wider (capped
        # at the policy's largest view). Long objects are answered there, at coarser voxels, and the recipe's
        # unknown-extent views never reached it (the 35 mm ellipsoid: 24 mm across in the first view, 18 in it).
        zoom *= ZOOM_STEP
    roi = choose_roi(manifest, case["label"].shape, case["spacing_kji"], [target["first_scan"]],
                     target["box"] if known else None, zoom)
    target["roi"] = type(roi)(roi.start + rng.uniform(-0.1, 0.1, 3) * np.array(roi.shape) * roi.step, roi.step, roi.shape)
    return target


def _label_target(rng, case: dict, union: bool = False, supervoxels: bool = False) -> dict | None:
    """A label (or supervoxel, or a label and a neighbour) and its first click. A label's neighbour list and
    first-click voxel sets are kept in the case: the distance transform of a brain-sized object costs up to a
    second, and it is the same at every draw of that object (the draws are first_positive's)."""
    label_map, values, boxes = (case["supervoxels"], case["sv_values"], case["sv_boxes"]) if supervoxels else \
        (case["label"], case["values"], case["boxes"])
    if len(values) == 0:
        return None
    # "object_p": hard objects drawn more often (training.hard_objects); label maps only, never supervoxels
    weights = None if supervoxels else case.get("object_p")
    value = int(rng.choice(values)) if weights is None else int(rng.choice(values, p=weights))
    box = boxes.get(value)
    if box is None:
        return None
    chosen = [value]
    if union:
        near = _memo(case, ("near", value), lambda: neighbour_values(label_map, box, value))
        other = int(rng.choice(near)) if near.size else None  # pseudo_objects.neighbour_value's draw
        if other is None or other not in boxes:
            return None
        chosen.append(other)
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(box, boxes[other]))
    def compute_sets():
        return first_click_sets(np.isin(label_map[box], chosen), case["spacing_kji"])

    # Supervoxels are small and many (hundreds a case): keeping theirs would cost memory, not save time.
    sets = compute_sets() if supervoxels else _memo(case, ("first", tuple(chosen)), compute_sets)
    first = first_positive_from_sets(rng, sets, tuple(b.stop - b.start for b in box))
    if first is None:
        return None
    return {"kind": "union" if union else ("supervoxel" if supervoxels else "label"), "label_map": label_map,
            "values": chosen, "box": box, "first_scan": first + [s.start for s in box]}


def _memo(case: dict, key, compute):
    memo = case.setdefault("memo", {})
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _synthetic_target(rng, case: dict) -> dict:
    """A smooth random shape (semi-axes 2-40 mm, any elongation) centred somewhere in the cached crop."""
    shape = np.array(case["label"].shape)
    centre = rng.uniform(0.15, 0.85, 3) * (shape - 1)
    spacing = np.asarray(case["spacing_kji"], dtype=np.float64)
    semi_mm = np.exp(rng.uniform(np.log(2.0), np.log(40.0), 3))
    half = np.ceil(semi_mm / spacing).astype(int)
    box = tuple(slice(int(max(c - h, 0)), int(min(c + h + 1, n))) for c, h, n in zip(centre, half, shape))
    return {"kind": "synthetic", "label_map": None, "values": None, "box": box, "first_scan": centre,
            "centre": centre, "semi_mm": semi_mm}


def click_channel_names(manifest: dict) -> list[str]:
    return next(spec["channels"] for spec in manifest["inputs"] if spec["name"] == "clicks")


def to_arrays(example: dict, manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, D, H, W), clicks (C, D, H, W)) for the network, channels as the manifest names them."""
    positive, negative = click_channels(example["clicks"], example["gt"].shape, manifest, example["voxel_mm"])
    maps = {"previous_mask": example["previous"], "positive_clicks": positive, "negative_clicks": negative}
    region = prism_with_clicks(example.get("region"), manifest, bool(example["clicks"]))
    maps["region"] = region if region is not None else np.zeros(example["gt"].shape, np.float32)
    return example["image"][None], np.stack([maps[name] for name in click_channel_names(manifest)])


def _inside(mask: np.ndarray, point) -> bool:
    index = np.round(point).astype(int)
    return bool(np.all(index >= 0) and np.all(index < mask.shape) and mask[tuple(index)])
