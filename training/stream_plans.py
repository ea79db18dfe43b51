"""The CPU part of training.torch_stream, without torch (so planner processes start fast): each example's case,
target and ROI, drawn as training.sampler.make_example draws them, and the cases' loading (cache or carry pack).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .batches import case_weights
from .hard_objects import attach as attach_hard_objects
from .sampler import draw_target_and_roi, object_boxes

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
    attach_hard_objects(cases, options)
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
    """The target and ROI of one example, drawn by training.sampler.make_example's own code (same rng, same order:
    the same seed gives the same case, target, first click and ROI); the device draws the voxels."""
    target = draw_target_and_roi(rng, case, manifest, options)
    if target is None:
        return None
    plan = {"spacing": np.asarray(case["spacing_kji"], dtype=np.float64), "kind": target["kind"],
            "values": target["values"], "box": target["box"], "roi": target["roi"],
            "first_scan": np.asarray(target["first_scan"], dtype=np.float64)}
    if target["kind"] == "synthetic":
        plan.update(centre=target["centre"], semi_mm=target["semi_mm"])
    return plan


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
