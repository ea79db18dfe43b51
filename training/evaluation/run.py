"""The evaluation loop: every label value of every case is one object; the simulated user clicks until
`max_clicks`, driving the real engine path (InteractiveSession on a Volume read from disk) and the baselines
through the same interface. Deterministic: same data, model and settings give the same clicks and numbers.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics
from .baselines import BASELINES
from .prompt_user import FIRST_PROMPTS, simulate_prompt_first
from .robot import FIRST_CLICKS, VARIANTS, edge_click, next_click

MODEL_METHOD = "model"


@dataclass(frozen=True)
class EvalObject:
    dataset: str  # data folder name
    case: str  # case id, e.g. case_003
    image: Path
    label_path: Path
    value: int  # label value: the object is label == value
    name: str  # label name from dataset.json
    structure: str  # name without side / level / index, to pool e.g. all vertebral bodies

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.case}"


def structure_of(name: str) -> str:
    """Pool label names into structures: 'vertebral body L5 (expected; ...)' -> 'vertebral body',
    'rib_left_7' -> 'rib', 'intervertebral disc L5/S1' -> 'intervertebral disc'."""
    text = re.sub(r"\(.*?\)", " ", name.lower()).replace("_", " ")
    text = re.sub(r"\b[ctls]\d{1,2}(/[ctls]\d{1,2})?\b", " ", text)  # vertebral levels
    text = re.sub(r"\b(left|right|below|of|upper|lower|middle|lobe)\b|\b\d+\b", " ", text)
    text = " ".join(text.split())
    return text or name


def list_objects(data_dirs, cases=None, structures=None, min_voxels: int = 1) -> list[EvalObject]:
    """Objects of the data folders (each with a dataset.json), optionally only the given 'folder/case' keys and
    the structures whose label name or pooled structure contains one of `structures` (case-insensitive)."""
    wanted = set(cases) if cases is not None else None
    patterns = [s.lower() for s in structures] if structures else None
    found = []
    for folder in map(Path, data_dirs):
        meta_path = folder / "dataset.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no dataset.json in this data folder (cases[].image/label/label_names)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        for record in meta["cases"]:
            case = record.get("case") or _case_id(record["image"])
            if wanted is not None and f"{folder.name}/{case}" not in wanted:
                continue
            found += _case_objects(folder, case, record, patterns, min_voxels)
    return found


def _case_id(image: str) -> str:
    name = Path(image).name
    return name.split(".nii")[0].split(".")[0]


def _case_objects(folder: Path, case: str, record: dict, patterns, min_voxels: int) -> list[EvalObject]:
    names = {int(v): n for v, n in record.get("label_names", {}).items()}
    counts = {int(v): int(n) for v, n in record.get("label_voxels", {}).items()}
    values = sorted(counts) if counts else sorted(names)
    objects = []
    for value in values:
        if value == 0 or counts.get(value, min_voxels) < min_voxels:
            continue
        name = names.get(value, f"label {value}")
        structure = structure_of(name)
        if patterns and not any(p in name.lower() or p in structure for p in patterns):
            continue
        objects.append(EvalObject(folder.name, case, folder / record["image"], folder / record["label"],
                                  value, name, structure))
    return objects


def simulate(segmenter, volume, gt: np.ndarray, max_clicks: int, variant: str = "mm",
             first_click: str = "deepest") -> list[dict]:
    """Click with the simulated user up to `max_clicks` times; one record per click. `first_click="edge"` puts
    the first click just inside the object's edge (robot.edge_click) instead of at its deepest voxel.

    When the mask is already perfect the user stops: the remaining clicks repeat the last numbers, with no
    click position and no latency.
    """
    segmenter.set_volume(volume)
    pred, records = None, []
    for number in range(1, max_clicks + 1):
        if number == 1 and first_click == "edge":
            click = edge_click(gt, volume.spacing)
        else:
            click = next_click(gt, pred, volume.spacing, variant)
        if click is None:
            records.append({**records[-1], "click": number, "ijk": None, "positive": None,
                            "latency_s": None, "model_s": None})
            continue
        ijk, positive = click
        result = segmenter.add_click(ijk=ijk, positive=positive)
        pred = result.mask
        records.append({"click": number, "ijk": list(ijk), "positive": positive,
                        "dice": metrics.dice(gt, pred), "iou": metrics.iou(gt, pred),
                        "latency_s": float(result.latency_s), "model_s": float(result.model_s),
                        **metrics.error_profile(gt, pred)})
    return records


def method_factories(model=None, baselines=()) -> dict:
    """name -> callable making a fresh segmenter (a new session per object, as a user starts a new segment)."""
    factories = {}
    if model is not None:
        from inference.session import InteractiveSession

        factories[MODEL_METHOD] = lambda: InteractiveSession(model)
    for name in baselines:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
        factories[name] = BASELINES[name]
    return factories


def run_name(method: str, variant: str) -> str:
    """The primary (mm) variant carries the method's name; the voxel-unit variant is marked."""
    return method if variant == "mm" else f"{method} [voxel clicks]"


def evaluate(data_dirs, model=None, max_clicks: int = 20, structures=None, cases=None, baselines=(),
             variants=("mm",), min_voxels: int = 1, progress: bool = True, methods: dict | None = None,
             first_click: str = "deepest", first_prompt: str = "click") -> dict:
    """Evaluate the model (an inference Model, or None for baselines only) and the named baselines.

    Returns {"settings": {...}, "runs": {run name: [object record, ...]}}; each object record holds its
    per-click Dice, IoU and latency and its summary (metrics.object_summary). `methods` adds or replaces
    segmenter factories by name. `first_prompt` "box" or "lasso": step 1 is that prompt (prompt_user.py), then clicks.
    """
    from inference.volume import Volume
    from tqdm import tqdm

    if first_click not in FIRST_CLICKS:
        raise ValueError(f"unknown first click {first_click!r}; use one of {FIRST_CLICKS}")
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"unknown click variant {variant!r}; use one of {VARIANTS}")
    factories = {**method_factories(model, baselines), **(methods or {})}
    if not factories:
        raise ValueError("nothing to evaluate: give a model and/or baselines")
    _check_first_prompt(first_prompt, first_click, factories)
    objects = list_objects(data_dirs, cases, structures, min_voxels)
    runs = {run_name(m, v): [] for v in variants for m in factories}
    bar = tqdm(total=len(objects) * len(runs), desc="evaluate", unit="object", disable=not progress)
    current, volume, label = None, None, None
    for obj in objects:
        if obj.key != current:  # read each case once for all its objects and methods
            volume, label, current = Volume.from_file(obj.image), Volume.from_file(obj.label_path).array, obj.key
        gt = label == obj.value
        if not gt.any():
            bar.update(len(runs))
            continue
        for variant in variants:
            for method, factory in factories.items():
                bar.set_postfix_str(f"{method} {obj.key} {obj.name[:24]}")
                if first_prompt == "click":
                    records = simulate(factory(), volume, gt, max_clicks, variant, first_click)
                else:
                    records = simulate_prompt_first(factory(), volume, gt, max_clicks, first_prompt, variant)
                runs[run_name(method, variant)].append(_object_record(obj, int(gt.sum()), records))
                bar.update(1)
    bar.close()
    settings = {"data_dirs": [str(d) for d in data_dirs], "max_clicks": max_clicks, "variants": list(variants),
                "first_click": first_click, "first_prompt": first_prompt,
                "structures": list(structures) if structures else None, "cases": sorted(cases) if cases else None,
                "objects": len(objects), "min_voxels": min_voxels,
                "model": model.describe() if model is not None and hasattr(model, "describe") else None,
                "methods": list(factories)}
    return {"settings": settings, "runs": runs}


def _check_first_prompt(first_prompt: str, first_click: str, factories: dict) -> None:
    if first_prompt not in FIRST_PROMPTS:
        raise ValueError(f"unknown first prompt {first_prompt!r}; use one of {FIRST_PROMPTS}")
    if first_prompt == "click":
        return
    if first_click != "deepest":
        raise ValueError(f"first click {first_click!r} applies to clicks-first runs, not to first prompt {first_prompt!r}")
    for name, factory in factories.items():
        if not hasattr(factory(), f"add_{first_prompt}"):
            raise ValueError(f"{name} takes clicks only, no {first_prompt}: evaluate it with the clicks-first protocol")


def _object_record(obj: EvalObject, voxels: int, records: list[dict]) -> dict:
    summary = metrics.object_summary([r["dice"] for r in records], [r["iou"] for r in records])
    summary.update(metrics.error_summary(records))
    return {"dataset": obj.dataset, "case": obj.case, "label": obj.value, "name": obj.name,
            "structure": obj.structure, "voxels": voxels, "summary": summary, "clicks": records}
