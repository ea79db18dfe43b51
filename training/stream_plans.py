"""The CPU part of training.torch_stream, without torch (so planner processes start fast): each example's case,
target and ROI, drawn as training.sampler.make_example draws them, and the cases' loading (cache or carry pack).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inference.model_input import choose_roi

from .batches import case_weights
from .sampler import object_boxes

ROOT = Path(__file__).resolve().parents[1]


_PLANNER: dict = {}


def source_of(config: dict, keys: list) -> tuple:
    if config.get("pack"):
        path = Path(config["pack"])
        return ("pack", str(path if path.is_absolute() else ROOT / path))
    return ("cache", str(config["cache"]), list(keys), bool(config.get("sampling", {}).get("supervoxel")))


def load_source(source: tuple) -> list[dict]:
    if source[0] == "pack":
        from .carry import load_pack_cases

        return load_pack_cases(Path(source[1]))
    return load_cases(Path(source[1]), source[2], source[3] if len(source) > 3 else True)


def init_planner(source: tuple, manifest: dict, sampling: str, options: dict) -> None:
    cases = [cpu_part(case) for case in load_source(source)]
    _PLANNER.update(cases=cases, manifest=manifest, options=options,
                    weights=case_weights([case["key"] for case in cases], sampling))


def plan_slot(seed: tuple):
    return draw_plan(seed, _PLANNER["cases"], _PLANNER["weights"], _PLANNER["manifest"], _PLANNER["options"])


def draw_plan(seed: tuple, cases, weights, manifest, options):
    """(the slot's first plan that has a target, the rng's state after it) for seed (seed, step, slot)."""
    rng = np.random.default_rng(seed)
    while True:
        plan = plan_once(rng, cases, weights, manifest, options)
        if plan is not None:
            return plan, rng.bit_generator.state


def plan_once(rng, cases, weights, manifest, options) -> dict | None:
    """One draw of case (as training.batches._example draws it), target and ROI."""
    index = rng.integers(len(cases)) if np.ptp(weights) == 0 else rng.choice(len(cases), p=weights)
    plan = plan_roi(rng, cases[int(index)], manifest, options)
    if plan is not None:
        plan["case"] = int(index)
    return plan


def plan_roi(rng, case: dict, manifest: dict, options: dict) -> dict | None:
    """The target and ROI of one example, drawn as training.sampler.make_example draws them up to the ROI's
    jitter (same rng, same order: the same seed gives the same case, target, first click and ROI)."""
    draw = rng.random() if options else 1.0
    cut = np.cumsum([options.get("union", 0.0), options.get("supervoxel", 0.0), options.get("synthetic", 0.0)])
    plan: dict = {"spacing": np.asarray(case["spacing_kji"], dtype=np.float64)}
    if draw < cut[0]:
        target, plan["kind"] = label_target(rng, case, union=True), "union"
    elif draw < cut[1] and "supervoxels" in case:
        target, plan["kind"] = label_target(rng, case, supervoxels=True), "supervoxel"
    elif draw < cut[2]:
        target, plan["kind"] = _synthetic(rng, case, plan), "synthetic"
    else:
        target, plan["kind"] = label_target(rng, case), "label"
    if target is None:
        return None
    _, values, box, first_scan, _ = target
    plan.update(values=values, box=box, first_scan=np.asarray(first_scan, dtype=np.float64))
    known = rng.random() < 0.5
    zoom = rng.uniform(0.75, 1.4) if known else rng.uniform(0.8, 1.3)
    roi = choose_roi(manifest, case["label"].shape, plan["spacing"], [first_scan], box if known else None, zoom)
    plan["roi"] = type(roi)(roi.start + rng.uniform(-0.1, 0.1, 3) * np.array(roi.shape) * roi.step, roi.step, roi.shape)
    return plan


def label_target(rng, case: dict, union: bool = False, supervoxels: bool = False):
    """training.sampler._label_target, draw for draw, with each object's voxel lists kept: the first click's
    distance transform of a brain-sized object costs a second on the CPU, which would starve a GPU, and it is the
    same at every draw of that object."""
    label_map, values, boxes = (case["supervoxels"], case["sv_values"], case["sv_boxes"]) if supervoxels else \
        (case["label"], case["values"], case["boxes"])
    if len(values) == 0:
        return None
    value = int(rng.choice(values))
    box = boxes.get(value)
    if box is None:
        return None
    chosen = [value]
    if union:
        near = _memo(case, ("near", value), lambda: _neighbour_values(label_map, box, value))
        other = int(rng.choice(near)) if near.size else None  # pseudo_objects.neighbour_value's draw
        if other is None or other not in boxes:
            return None
        chosen.append(other)
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(box, boxes[other]))
    everywhere, core = _memo(case, ("first", supervoxels, tuple(chosen)),
                             lambda: _first_click_sets(np.isin(label_map[box], chosen), case["spacing_kji"]))
    # clicks.first_positive: 40 % anywhere in the object, else its deep core (each a _pick: rng.choice of indices).
    index = everywhere if rng.random() < 0.4 else core
    if index.size == 0:
        return None
    first = np.array(np.unravel_index(rng.choice(index), tuple(s.stop - s.start for s in box)), dtype=np.float64)
    return label_map, chosen, box, first + [s.start for s in box], None


def _memo(case: dict, key, compute):
    memo = case.setdefault("memo", {})
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _neighbour_values(label: np.ndarray, box: tuple, value: int, reach: int = 4) -> np.ndarray:
    """The values pseudo_objects.neighbour_value draws from: other labels within `reach` voxels of `value`."""
    from scipy import ndimage

    grown = tuple(slice(max(s.start - reach, 0), s.stop + reach) for s in box)
    local = label[grown]
    near = ndimage.binary_dilation(local == value, iterations=reach) & (local != value) & (local > 0)
    return np.unique(local[near])


def _first_click_sets(mask: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """(every voxel, the deep-core voxels) of `mask` as flat indices, the sets clicks.first_positive draws from."""
    from scipy import ndimage

    everywhere = np.flatnonzero(mask)
    depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    core = np.flatnonzero(depth > depth.max() / 1.7) if depth.max() > 0 else everywhere
    return everywhere, core


def _synthetic(rng, case: dict, plan: dict):
    """training.sampler._synthetic_target's draws (centre, semi-axes), kept for the device to draw the shape."""
    shape = np.array(case["label"].shape)
    centre = rng.uniform(0.15, 0.85, 3) * (shape - 1)
    semi_mm = np.exp(rng.uniform(np.log(2.0), np.log(40.0), 3))
    half = np.ceil(semi_mm / plan["spacing"]).astype(int)
    box = tuple(slice(int(max(c - h, 0)), int(min(c + h + 1, n))) for c, h, n in zip(centre, half, shape))
    plan.update(centre=centre, semi_mm=semi_mm)
    return None, None, box, centre, None


def cpu_part(case: dict) -> dict:
    """What the CPU keeps of a case: the label maps (for the target and its first click) and their boxes."""
    part = {"key": case["key"], "label": case["label"], "spacing_kji": np.asarray(case["spacing_kji"], np.float64),
            "values": np.asarray(case["values"]), "boxes": object_boxes(case["label"])}
    if "supervoxels" in case:
        part["supervoxels"] = case["supervoxels"]
        part["sv_boxes"] = object_boxes(case["supervoxels"])
        part["sv_values"] = np.array(sorted(part["sv_boxes"]), dtype=np.int32)
    return part


def load_cases(cache_dir: Path, keys: list, supervoxels: bool) -> list[dict]:
    """Cases of the training cache (runs/cache) as the stream takes them: image_u8, label, supervoxels, stats."""
    from .pseudo_objects import supervoxel_path

    cases = []
    for key in keys:
        with np.load(Path(cache_dir) / (key.replace("/", "__") + ".npz")) as npz:
            case = {name: npz[name] for name in npz.files}
        case["stats"], case["key"] = json.loads(str(case["stats"])), key
        path = supervoxel_path(cache_dir, key)
        if supervoxels and path.exists():
            with np.load(path) as npz:
                case["supervoxels"] = npz["supervoxels"]
        cases.append(case)
    return cases
