"""The training curve of a long run judged candidate by candidate: each candidate's adoption measurements
(`python -m training.evaluation.adoption`) against the examples it has seen since its starting weights.

    # add a candidate (its adoption.json files, one per half of the parts when they ran side by side)
    python benchmarks/long_run_curve.py benchmarks/results/universal_v16_curve --name "step 14,000" \\
        --examples 28400 --add runs/judge16b/p1/adoption.json runs/judge16b/p2/adoption.json
    python benchmarks/long_run_curve.py benchmarks/results/universal_v16_curve      # redraw curve.png

Keeps OUT/candidates.json (one summary per candidate, no per-object rows: those stay in the adoption folders) and
draws OUT/curve.png. The record with 0 examples is the starting model (the bundled one).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.curve import label_axis, new_figure, save_figure  # noqa: E402


def summarise(adoption: dict) -> dict:
    """The numbers an adoption rule reads, from one or more merged adoption.json records."""
    record = {}
    for part in ("spine", "standin"):
        if part in adoption:
            a = adoption[part]["all"]
            record[part] = {k: a[k] for k in ("iou@1", "iou@3", "iou@10", "noc@85") if k in a}
    if "other" in adoption:
        a = adoption["other"]["all"]
        record["other"] = {k: a[k] for k in ("dice@1", "dice@3", "auc")}
    if "ellipsoid" in adoption:
        record["ellipsoid"] = {k: adoption["ellipsoid"][k] for k in ("mean_dice", "min_dice")}
    if "corrections" in adoption:
        record["corrections"] = {sign: adoption["corrections"][sign]["median"] for sign in ("positive", "negative")}
    return record


def add(records: list[dict], name: str, examples: int, paths: list[Path]) -> list[dict]:
    merged = {}
    for path in paths:
        merged.update({k: v for k, v in json.loads(path.read_text()).items() if k != "model"})
    record = {"name": name, "examples": examples, **summarise(merged),
              "source": ", ".join(str(p) for p in paths)}
    return sorted([r for r in records if r["name"] != name] + [record], key=lambda r: r["examples"])


def plot(records: list[dict], path: Path) -> None:
    panels = (("spine validation and the unseen-contrast stand-in (IoU)",
               [("spine", "iou@1"), ("spine", "iou@3"), ("spine", "iou@10"), ("standin", "iou@3")]),
              ("other structures (Dice@3), bright ellipsoid (Dice), corrective clicks (median share)",
               [("other", "dice@3"), ("ellipsoid", "mean_dice"), ("ellipsoid", "min_dice"),
                ("corrections", "positive"), ("corrections", "negative")]))
    fig, axes = new_figure(2, (13, 4))
    for axis, (title, keys) in zip(axes, panels):
        for group, key in keys:
            points = [(r["examples"], r[group][key]) for r in records if key in r.get(group, {})]
            line, = axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{group} {key}")
            if points and records[0]["examples"] == 0 and key in records[0].get(group, {}):
                axis.axhline(records[0][group][key], color=line.get_color(), linestyle=":", linewidth=0.8)
        label_axis(axis, title, "examples seen since the starting (bundled) weights", fontsize=9)
    fig.suptitle("dotted: the starting model", fontsize=8)
    save_figure(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--add", type=Path, nargs="+", help="adoption.json files of one candidate")
    parser.add_argument("--name", help="the candidate's name (with --add), e.g. 'step 14,000'")
    parser.add_argument("--examples", type=int, help="examples seen since the starting weights (with --add)")
    args = parser.parse_args(argv)
    path = args.out / "candidates.json"
    records = json.loads(path.read_text()) if path.exists() else []
    if args.add:
        if args.name is None or args.examples is None:
            parser.error("--add needs --name and --examples")
        records = add(records, args.name, args.examples, args.add)
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1) + "\n")
    if not records:
        raise SystemExit(f"{path}: no candidates yet (add one with --add)")
    plot(records, args.out / "curve.png")
    print(f"{len(records)} records -> {args.out / 'curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
