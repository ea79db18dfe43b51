"""Evaluation outputs: JSON (per object per click + aggregates), a markdown table, a Dice-vs-clicks plot."""
from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import metrics
from .robot import EDGE_DEPTH_MM

LABELS = {"model": "EISeg-Med3D model", "growcut": "Grow from seeds (Slicer GrowCut)",
          "random_walker": "Random walker (scikit-image)"}
TABLE_K = (1, 3, 5, 10)


def display_name(run: str) -> str:
    base, _, rest = run.partition(" ")
    return f"{LABELS.get(base, base)} {rest}".strip()


def _latencies(objects: list[dict]) -> dict:
    """(latency, model time) pairs pooled over objects, the first click apart (it also sets up the ROI)."""
    pairs = {"first": [], "later": []}
    for obj in objects:
        for record in obj["clicks"]:
            if record["latency_s"] is not None:
                pairs["first" if record["click"] == 1 else "later"].append((record["latency_s"], record["model_s"]))
    return pairs


def _grouped(objects: list[dict], key: str) -> dict:
    groups: dict[str, list] = {}
    for obj in objects:
        groups.setdefault(obj[key], []).append(obj)
    return {name: metrics.aggregate([o["summary"] for o in group], _latencies(group)) for name, group in sorted(groups.items())}


def aggregates(objects: list[dict]) -> dict:
    """Aggregates over all objects, per dataset and per structure."""
    return {"all": metrics.aggregate([o["summary"] for o in objects], _latencies(objects)),
            "per_dataset": _grouped(objects, "dataset"), "per_structure": _grouped(objects, "structure")}


def curve(objects: list[dict], max_clicks: int) -> list:
    """Mean Dice after 1..max_clicks clicks."""
    return [metrics.mean(o["clicks"][n]["dice"] for o in objects if len(o["clicks"]) > n) for n in range(max_clicks)]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def build(results: dict, command: str | None = None, split: str | None = None) -> dict:
    """The JSON document: settings, provenance, and per run its aggregates, Dice curve and objects."""
    settings = results["settings"]
    document = {"protocol": "shared/docs/evaluation_protocol.md; NoC thresholds on IoU; AUC of Dice over clicks 1..5",
                "command": command or " ".join([Path(sys.executable).name] + sys.argv),
                "machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "split": split or "all cases", "settings": settings, "runs": {}}
    for run, objects in results["runs"].items():
        document["runs"][run] = {"aggregates": aggregates(objects), "dice_curve": curve(objects, settings["max_clicks"]),
                                 "objects": objects}
    return document


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ms(latency: dict | None, key: str) -> str:
    return "–" if not latency or latency.get(key) is None else f"{latency[key] * 1000:.0f}"


def _accuracy_row(name: str, agg: dict) -> str:
    cells = [name, str(agg["objects"])]
    cells += [_fmt(agg[f"dice@{k}"]) for k in TABLE_K] + [_fmt(agg[f"iou@{k}"]) for k in TABLE_K]
    cells += [_fmt(agg["noc@85"], 2), _fmt(agg["noc@90"], 2), f"{agg['nof@85']}/{agg['nof@90']}", _fmt(agg["auc"])]
    return "| " + " | ".join(cells) + " |"


def _error_row(name: str, agg: dict) -> str:
    cells = [name, str(agg["objects"])]
    for k in metrics.ERROR_K:
        cells += [_fmt(agg.get(f"fp_share@{k}"), 2), _fmt(agg.get(f"near_boundary@{k}"), 2)]
    return "| " + " | ".join(cells) + " |"


def _latency_row(name: str, agg: dict) -> str:
    first, later = agg.get("latency_first"), agg.get("latency_later")
    cells = [name, _ms(first, "p50_s"), _ms(first, "p95_s"), _ms(first, "model_p50_s"),
             _ms(later, "p50_s"), _ms(later, "p95_s"), _ms(later, "model_p50_s"), _ms(later, "rest_p50_s")]
    return "| " + " | ".join(cells) + " |"


ACCURACY_HEADER = ("| | objects | " + " | ".join(f"Dice@{k}" for k in TABLE_K) + " | "
                   + " | ".join(f"IoU@{k}" for k in TABLE_K) + " | NoC@85 | NoC@90 | NoF 85/90 | AUC(1-5) |")
ERROR_HEADER = ("| | objects | " + " | ".join(f"FP share@{k} | near boundary@{k}" for k in metrics.ERROR_K) + " |")
LATENCY_HEADER = ("| | 1st click p50 ms | 1st p95 ms | 1st model p50 ms | later p50 ms | later p95 ms "
                  "| later model p50 ms | later rest p50 ms |")


def header_rule(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def markdown(document: dict) -> str:
    """Tables per run: overall, per dataset, per structure; then latency."""
    settings = document["settings"]
    lines = ["# Interactive segmentation benchmark", "",
             f"- Command: `{document['command']}`", f"- Machine: {document['machine']}", f"- Date: {document['date']}",
             f"- Data: {', '.join(settings['data_dirs'])}; split: {document['split']}; objects: {settings['objects']}",
             f"- Model: {settings.get('model') or '–'}",
             f"- Simulated user: largest 26-connected error component, deepest voxel "
             f"({', '.join(settings['variants'])} distance), up to {settings['max_clicks']} clicks, deterministic."
             + (f" First click just inside the object's edge ({EDGE_DEPTH_MM:g} mm deep, on the face nearest its centre)."
                if settings.get("first_click") == "edge" else ""),
             "- NoC@85/90 use IoU thresholds, capped at 20 (a failure counts 20); NoF = failures at 85/90; "
             "AUC = trapezoid area of Dice over clicks 1..5 (max 4.0).", ""]
    runs = document["runs"]
    lines += ["## All objects", "", ACCURACY_HEADER, header_rule(ACCURACY_HEADER)]
    lines += [_accuracy_row(display_name(run), data["aggregates"]["all"]) for run, data in runs.items()]
    for level, title in (("per_dataset", "Per dataset"), ("per_structure", "Per structure")):
        lines += ["", f"## {title}", "", ACCURACY_HEADER, header_rule(ACCURACY_HEADER)]
        names = sorted({name for data in runs.values() for name in data["aggregates"][level]})
        for name in names:
            for run, data in runs.items():
                if name in data["aggregates"][level]:
                    lines.append(_accuracy_row(f"{name} — {display_name(run)}", data["aggregates"][level][name]))
    lines += ["", "## Where the remaining error lies", "",
              "Means over objects after k clicks: FP share = false positives / all error voxels (the rest are missed "
              "voxels); near boundary = share of the error voxels within one voxel (26-neighbourhood) of the "
              "reference boundary, i.e. edge disagreement rather than a missed or leaked region.", "",
              ERROR_HEADER, header_rule(ERROR_HEADER)]
    for run, data in runs.items():
        lines.append(_error_row(display_name(run), data["aggregates"]["all"]))
        lines += [_error_row(f"{name} — {display_name(run)}", agg) for name, agg in data["aggregates"]["per_dataset"].items()]
    lines += ["", "## Latency (click to mask; model = time inside the network or algorithm)", "",
              LATENCY_HEADER, header_rule(LATENCY_HEADER)]
    lines += [_latency_row(display_name(run), data["aggregates"]["all"]) for run, data in runs.items()]
    return "\n".join(lines) + "\n"


def plot(document: dict, path: Path) -> Path:
    """Mean Dice after each click, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for run, data in document["runs"].items():
        values = [np.nan if v is None else v for v in data["dice_curve"]]
        axes.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=display_name(run))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("clicks")
    axes.set_ylabel("mean Dice")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.set_title(f"Dice vs clicks ({document['settings']['objects']} objects, {document['split']})")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write(results: dict, out_dir, command: str | None = None, split: str | None = None) -> dict:
    """Write evaluation.json, evaluation.md and dice_vs_clicks.png into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = build(results, command, split)
    paths = {"json": out_dir / "evaluation.json", "markdown": out_dir / "evaluation.md",
             "plot": out_dir / "dice_vs_clicks.png"}
    paths["json"].write_text(json.dumps(document, indent=1), encoding="utf-8")
    paths["markdown"].write_text(markdown(document), encoding="utf-8")
    plot(document, paths["plot"])
    return paths
