"""Benchmark `eiseg-med3d adapt` (issue 11, item 4): does adapting to a user's finished scans help on that
source's other scans?

A simulated user finishes the first N scans of one source (a ../shared/data folder the base model did not train
on): their reference labels become the finished labels of a fresh data folder (symlinks, nothing copied). The
product's own adaptation (training.adapt.adapt, exactly what the command runs: it holds one of them back when
N >= 3) trains for M minutes; the adapted package and the base model are then judged on the source's OTHER
scans (other subjects) with the protocol's simulated user, the same clicks for both: mIoU@1/3/5, NoC@85.

    python benchmarks/adapt.py ../shared/data/spine_mri_vertebral_bodies_t2 --model BASE_PACKAGE \\
        --split training/split.json --finished 1,3,5 --minutes 5,10,20 --max-clicks 20 \\
        --out benchmarks/results/adapt --benchmarks BENCHMARKS.md
    python benchmarks/adapt.py SOURCE --model BASE --smoke      # minutes 0.2, N 1 and 3, 3 clicks, 2 test scans

The full run is 3 x (5 + 10 + 20) = 105 minutes of training plus the judging, on the machine's CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT, ROOT / "EISegMed3D"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from benchmarks.sections import update_section  # noqa: E402

KEYS = ("iou@1", "iou@3", "iou@5", "noc@85")
START, END = "<!-- adapt benchmark: start -->", "<!-- adapt benchmark: end -->"


def source_cases(source: Path) -> list[dict]:
    meta = json.loads((source / "dataset.json").read_text(encoding="utf-8"))
    return sorted(meta["cases"], key=lambda c: c["case"])


def seen_in_training(source: Path, cases: list[dict], split: Path | None) -> list[str]:
    """The source's cases the base model trained on, by the split it was trained with."""
    if split is None:
        return []
    train = set(json.loads(split.read_text(encoding="utf-8")).get("train", []))
    return [f"{source.name}/{c['case']}" for c in cases if f"{source.name}/{c['case']}" in train]


def user_folder(folder: Path, source: Path, finished: list[dict]) -> Path:
    """A data folder whose finished scans are `finished` (links to the source's scans and reference labels)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names = {}
    for case in finished:
        for kind, suffix in (("image", ".nii.gz"), ("label", "_label.nii.gz")):
            os.symlink((source / case[kind]).resolve(), folder / f"{case['case']}{suffix}")
        names.update(case.get("label_names", {}))
    labels = [{"name": name, "labelValue": int(value)} for value, name in sorted(names.items(), key=lambda kv: int(kv[0]))]
    progress = {"version": 1, "labels": labels, "finished": [f"{c['case']}.nii.gz" for c in finished]}
    (folder / "EISegMed3D.json").write_text(json.dumps(progress, indent=1), encoding="utf-8")
    return folder


def judge(model_dir: Path, source: Path, cases: list[str], max_clicks: int) -> dict:
    from inference.model import load_model
    from training.data import MIN_OBJECT_VOXELS
    from training.evaluation import report
    from training.evaluation.run import evaluate

    results = evaluate([source], load_model(model_dir), max_clicks=max_clicks, cases=cases,
                       min_voxels=MIN_OBJECT_VOXELS, progress=False)
    aggregate = report.aggregates(results["runs"]["model"])["all"]
    return {key: aggregate.get(key) for key in ("objects",) + KEYS}


def run(args) -> dict:
    from training.adapt import adapt

    cases = source_cases(args.source)
    most = max(n for n, _ in args.cells)
    test = [c for c in cases[most:]][: args.test_cases or None]
    if not test:
        raise SystemExit(f"{args.source}: {len(cases)} cases; need more than {most} (N finished + other subjects)")
    test_keys = [f"{args.source.name}/{c['case']}" for c in test]
    seen = seen_in_training(args.source, cases, args.split)
    if seen:
        print(f"WARNING: the base model trained on {len(seen)} case(s) of this source ({', '.join(seen[:4])}...): "
              "the benchmark then measures adaptation to a source it already knows", flush=True)
    base = Path(args.model).resolve() if args.model else None
    if base is None:
        from inference.model import default_package

        base = default_package().resolve()
    print(f"judging the base model {base.name} on {len(test)} other scan(s)", flush=True)
    meta = json.loads((args.source / "dataset.json").read_text(encoding="utf-8"))
    result = {"source": str(args.source), "derived": {k: meta[k] for k in ("derived_from", "note") if k in meta},
              "base": str(base), "test_cases": test_keys, "seen_in_base_training": seen,
              "max_clicks": args.max_clicks, "trainer": args.trainer, "base_test": judge(base, args.source, test_keys,
                                                                                          args.max_clicks),
              "cells": []}
    for n, minutes in args.cells:
        folder = user_folder(args.out / "work" / f"finished_{n}", args.source, cases[:n])
        started = time.time()
        package = adapt(folder, minutes=minutes, base=base, trainer=args.trainer, eval_clicks=args.max_clicks,
                        lr=args.lr)
        manifest = json.loads((package / "model.json").read_text(encoding="utf-8"))
        cell = {"finished": n, "minutes": minutes, "trained_on": len(manifest["training"]["scans_used"]),
                "held_back": manifest["adaptation"]["held_back"], "steps": manifest["training"]["steps"],
                "examples": manifest["training"]["examples_seen"],
                "train_minutes": manifest["training"]["minutes"], "wall_minutes": round((time.time() - started) / 60, 2),
                "held_back_verdict": manifest["adaptation"]["verdict"],
                "test": judge(package, args.source, test_keys, args.max_clicks)}
        result["cells"].append(cell)
        print(json.dumps(cell), flush=True)
        if not args.keep:
            shutil.rmtree(folder)
    return result


def markdown(result: dict, command: str, plot: Path | None) -> str:
    base = result["base_test"]
    fmt = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"
    lines = [START, "## Adapting to a folder's finished scans (`eiseg-med3d adapt`)", "",
             f"Source `{Path(result['source']).name}`; base model `{Path(result['base']).name}`; judged on "
             f"{len(result['test_cases'])} other scan(s) ({base['objects']} objects), simulated user up to "
             f"{result['max_clicks']} clicks, the same clicks for both models. Trainer: {result['trainer']}. "
             + (f"The source is derived from `{Path(result['derived']['derived_from']).name}`: "
                f"{result['derived'].get('note', '')}. " if result.get("derived", {}).get("derived_from") else "")
             + ("**The base model trained on this source** (" + ", ".join(result["seen_in_base_training"]) + ")."
                if result["seen_in_base_training"] else "The base model did not train on this source."),
             "", "| finished N (trained on) | minutes | steps | mIoU@1 | mIoU@3 | mIoU@5 | NoC@85 | mIoU@3 vs base | "
             "verdict on held-back |", "|---|---|---|---|---|---|---|---|---|",
             f"| base model | - | - | {fmt(base['iou@1'])} | {fmt(base['iou@3'])} | {fmt(base['iou@5'])} | "
             f"{fmt(base['noc@85'], 1)} | - | - |"]
    for cell in result["cells"]:
        test = cell["test"]
        delta = None if test["iou@3"] is None or base["iou@3"] is None else test["iou@3"] - base["iou@3"]
        lines.append(f"| {cell['finished']} ({cell['trained_on']}) | {cell['minutes']:g} | {cell['steps']} | "
                     f"{fmt(test['iou@1'])} | {fmt(test['iou@3'])} | {fmt(test['iou@5'])} | {fmt(test['noc@85'], 1)} | "
                     f"{'-' if delta is None else f'{delta:+.3f}'} | {cell['held_back_verdict']} |")
    lines += ["", f"Command: `{command}`", ""]
    if plot is not None:
        lines += [f"![mIoU@3 against minutes]({plot.relative_to(ROOT).as_posix() if plot.is_relative_to(ROOT) else plot})", ""]
    lines.append(END)
    return "\n".join(lines)


def plot_minutes(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in sorted({c["finished"] for c in result["cells"]}):
        cells = sorted((c for c in result["cells"] if c["finished"] == n), key=lambda c: c["minutes"])
        ax.plot([0] + [c["minutes"] for c in cells], [result["base_test"]["iou@3"]] + [c["test"]["iou@3"] for c in cells],
                marker="o", label=f"{n} finished")
    ax.axhline(result["base_test"]["iou@3"], color="grey", linestyle="--", label="base model")
    ax.set_xlabel("adaptation minutes (CPU)")
    ax.set_ylabel("mIoU@3 on the source's other scans")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _numbers(text: str, kind=float) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a data folder with dataset.json (one source, several subjects)")
    parser.add_argument("--model", default=None, help="base model package (default: the bundled one)")
    parser.add_argument("--split", type=Path, default=None, help="the split the base model trained with (to check)")
    parser.add_argument("--finished", default="1,3,5", help="numbers of finished scans N")
    parser.add_argument("--minutes", default="5,10,20", help="adaptation minutes")
    parser.add_argument("--cells", default=None, help="N:minutes pairs instead of every N x minutes, e.g. 5:5,5:10,1:10")
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--test-cases", type=int, default=0, help="judge on at most this many other scans (0: all)")
    parser.add_argument("--trainer", default="auto", choices=("auto", "torch", "paddle"))
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--smoke", action="store_true", help="N 1,3; 0.2 minutes; 3 clicks; 2 test scans")
    parser.add_argument("--keep", action="store_true", help="keep the user folders and adapted packages")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "adapt")
    parser.add_argument("--benchmarks", type=Path, default=None, help="update this BENCHMARKS.md section")
    args = parser.parse_args(argv)
    if args.smoke:
        args.finished, args.minutes, args.max_clicks, args.test_cases = "1,3", "0.2", 3, 2
    args.finished, args.minutes = _numbers(args.finished, int), _numbers(args.minutes)
    args.cells = ([(int(n), float(m)) for n, m in (pair.split(":") for pair in args.cells.split(","))] if args.cells
                  else [(n, m) for n in args.finished for m in args.minutes])
    args.out.mkdir(parents=True, exist_ok=True)
    result = run(args)
    command = "python benchmarks/adapt.py " + shlex.join(argv)
    result["command"] = command
    (args.out / "adapt.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot = plot_minutes(result, args.out / "miou3_vs_minutes.png")
    text = markdown(result, command, plot)
    (args.out / "adapt.md").write_text(text + "\n", encoding="utf-8")
    if args.benchmarks:
        update_section(args.benchmarks, text, START, END)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
