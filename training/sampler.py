"""One training example: an ROI chosen like the engine chooses it, resampled with the engine's own code."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.clickmaps import ball_radius, draw_ball
from inference.model_input import choose_roi
from inference.normalize import normalize
from inference.roi import sample

from .augment import augment_intensity, augment_geometry
from .clicks import first_positive, initial_clicks


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


def make_example(rng: np.random.Generator, case: dict, manifest: dict) -> dict | None:
    """Image, target, starting clicks and previous mask for one object of one cached case."""
    values = case["values"]
    if len(values) == 0:
        return None
    value = int(rng.choice(values))
    box = case["boxes"].get(value)
    if box is None:
        return None
    spacing = case["spacing_kji"]
    label = case["label"]
    local = label[box] == value
    first = first_positive(rng, local, spacing)
    if first is None:
        return None
    first_scan = first + [s.start for s in box]
    known = rng.random() < 0.5
    mask_box = box if known else None
    zoom = rng.uniform(0.75, 1.4) if known else rng.uniform(0.8, 1.3)
    roi = choose_roi(manifest, label.shape, spacing, [first_scan], mask_box, zoom)
    roi = type(roi)(roi.start + rng.uniform(-0.1, 0.1, 3) * np.array(roi.shape) * roi.step, roi.step, roi.shape)

    labels = sample(label, roi, order=0, mode="constant", cval=0).astype(np.int64)
    gt = labels == value
    if gt.sum() < 20:
        return None
    image = normalize(sample(case["image"], roi, order=1, mode="nearest"), manifest["normalization"], case["stats"])
    image, gt, others, (start_click,) = augment_geometry(rng, image, gt, (labels > 0) & (labels != value),
                                                          [roi.to_patch(first_scan)])
    image = augment_intensity(rng, image)
    voxel_mm = roi.voxel_mm(spacing)

    refine = rng.random() < 0.1
    previous = perturbed_mask(rng, gt).astype(np.float32) if refine else np.zeros(gt.shape, np.float32)
    if refine:
        start_click = None
    elif not _inside(gt, start_click):  # the click fell off a thin edge when resampled
        start_click = first_positive(rng, gt, voxel_mm)
    clicks = initial_clicks(rng, gt, others, start_click) if start_click is not None or refine else []
    return {"image": image, "gt": gt, "previous": previous, "clicks": clicks, "voxel_mm": voxel_mm}


def to_arrays(example: dict, manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, D, H, W), clicks (3, D, H, W)) for the network."""
    positive, negative = click_channels(example["clicks"], example["gt"].shape, manifest, example["voxel_mm"])
    return example["image"][None], np.stack([example["previous"], positive, negative])


def _inside(mask: np.ndarray, point) -> bool:
    index = np.round(point).astype(int)
    return bool(np.all(index >= 0) and np.all(index < mask.shape) and mask[tuple(index)])
