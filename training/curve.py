"""The training curve: every snapshot of a run exported as a model package and judged on the validation split by
the protocol's simulated user (and the bright-ellipsoid test), metric against examples seen.

    python -m training.curve runs/cpu-universal-v2 --config training/configs/cpu_universal.json \\
        --out benchmarks/results/universal_v2_curve [--max-clicks 10] [--every 2]

Writes OUT/curve.json (one record per snapshot), OUT/curve.png, and keeps each package in OUT/packages/ (ignored
by git: they are rebuilt from the snapshots). A snapshot already evaluated is not evaluated again.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .data import DEFAULT_DATA
from .train import ROOT, load_config


def snapshots(run_dir: Path, with_last: bool = True) -> list[tuple[int, Path]]:
    """(step, weights) of every snapshot, and of the last checkpoint when it is newer than the last snapshot."""
    found = sorted((int(p.stem.split("_")[1]), p) for p in (run_dir / "snapshots").glob("step_*.npz"))
    last = run_dir / "paddle_weights.npz"
    if with_last and last.exists() and (run_dir / "step.txt").exists():
        step = int((run_dir / "step.txt").read_text())
        if not found or step > found[-1][0]:
            found.append((step, last))
    return found


def examples_seen(run_dir: Path, default_batch: int) -> dict:
    """{step: examples seen before it} from the run's log (lines written before the log said how many examples a
    step had count `default_batch`; a run may change its batch size when resumed)."""
    seen, total = {}, 0
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        total += record.get("examples", default_batch)
        seen[record["step"] + 1] = total
    return seen


def export(config: dict, weights: Path, out: Path, note: dict) -> Path:
    from .package_model import package

    if not (out / "model.json").exists():
        package(config, weights, out, config.get("package_name", "eiseg-vnet-universal"),
                "candidate of " + config["name"], note)
    return out


def judge(package: Path, data: Path, split: Path, max_clicks: int, out: Path, groups=("spine", "other")) -> dict:
    """Spine and other-structure validation metrics (model only) and the ellipsoid test of one package."""
    from .evaluation.adoption import OTHER, SPINE, ellipsoid_scores, evaluate_folders

    record = {}
    for group, folders in (("spine", SPINE), ("other", OTHER)):
        if group in groups:
            record[group] = evaluate_folders(package, [data / f for f in folders], out / group, max_clicks, split)["all"]
    record["ellipsoid"] = ellipsoid_scores(package)
    return record


def plot(records: list[dict], path: Path) -> None:
    seen = [r["examples"] for r in records]
    fig, axes = new_figure(3, (13, 3.6))
    for axis, (title, keys) in zip(axes, (("spine validation (IoU)", [("spine", "iou@1"), ("spine", "iou@3"), ("spine", "iou@10")]),
                                          ("other validation (Dice)", [("other", "dice@1"), ("other", "dice@3"), ("other", "dice@10")]),
                                          ("bright ellipsoid, 1 click (Dice)", [("ellipsoid", "mean_dice"), ("ellipsoid", "min_dice")]))):
        for group, key in keys:
            points = [(n, r[group][key]) for n, r in zip(seen, records) if group in r]
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
        label_axis(axis, title, "examples seen in this run")
    save_figure(fig, path)


def new_figure(panels: int, size: tuple) -> tuple:
    """(figure, axes) of `panels` side by side, drawn off screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=size)


def label_axis(axis, title: str, xlabel: str, fontsize: int | None = None) -> None:
    axis.set_title(title, fontsize=fontsize)
    axis.set_xlabel(xlabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8 if fontsize is None else fontsize - 2)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", type=Path, default=ROOT / "training" / "split.json")
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--every", type=int, default=1, help="judge every n-th snapshot (the last one always)")
    parser.add_argument("--logged-batch", type=int, default=None,
                        help="examples per step of log lines that do not say (default: the config's batch size)")
    parser.add_argument("--groups", default="spine,other", help="validation groups to judge: spine, other")
    parser.add_argument("--since-step", type=int, default=0, help="judge only snapshots from this step on")
    parser.add_argument("--snapshots-only", action="store_true", help="not the last checkpoint (while the run goes on)")
    parser.add_argument("--baseline", type=Path, help="also judge this package (recorded as step 0, e.g. the bundled model)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "curve.json"
    records = json.loads(path.read_text()) if path.exists() else []
    groups = tuple(args.groups.split(","))
    done = {r["step"] for r in records if all(g in r for g in groups)}
    todo = [s for s in snapshots(args.run_dir, with_last=not args.snapshots_only) if s[0] >= args.since_step]
    todo = [s for i, s in enumerate(todo) if i % args.every == 0 or i == len(todo) - 1]
    seen = examples_seen(args.run_dir, args.logged_batch or config["batch_size"])
    jobs = ([(0, None)] if args.baseline and 0 not in done else []) + [s for s in todo if s[0] not in done]
    for step, weights in jobs:
        folder = args.out / "packages" / f"step_{step:07d}"
        package = args.baseline if weights is None else export(config, weights, folder, {"run": config["name"], "step": step})
        old = next((r for r in records if r["step"] == step), {})
        record = {**old, "step": step, "examples": seen.get(step, 0), "package": str(package),
                  **judge(package, args.data, args.split, args.max_clicks, folder / "evaluation",
                          tuple(g for g in groups if g not in old))}
        records = sorted([r for r in records if r["step"] != step] + [record], key=lambda r: r["step"])
        path.write_text(json.dumps(records, indent=1) + "\n")
        other = record.get("other")
        print(f"step {step}: spine IoU@3 {record['spine']['iou@3']:.3f} NoC@85 {record['spine']['noc@85']:.2f} | "
              + (f"other Dice@3 {other['dice@3']:.3f} AUC {other['auc']:.3f} | " if other else "")
              + f"ellipsoid {record['ellipsoid']['mean_dice']:.3f}", flush=True)
    if records:
        seen = examples_seen(args.run_dir, args.logged_batch or config["batch_size"])  # the log has grown meanwhile
        for record in records:
            record["examples"] = seen.get(record["step"], record["examples"])
        path.write_text(json.dumps(records, indent=1) + "\n")
        plot(records, args.out / "curve.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
