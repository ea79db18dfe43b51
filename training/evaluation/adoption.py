"""Every measurement an adoption rule asks of a candidate model, in one command (the rules of
benchmarks/results/experiments/universal_v*_rule.md): spine validation, the unseen-contrast stand-in, the other
validation structures, the bright ellipsoid, and corrective clicks.

    python -m training.evaluation.adoption --model PACKAGE --out DIR [--parts spine,standin,other,ellipsoid,corrections]

The stand-in folders are built first (runs/ does not survive a session):
    python benchmarks/sequence_standin.py ../shared/data/spine_mri_vertebral_bodies_waterfat --split training/split.json --out runs/post/t1like_val
    python benchmarks/sequence_standin.py ../shared/data/spine_mri_vertebral_bodies_t2 --split training/split.json --air-percentile 5 --out runs/post/t2_t1like_val

Writes DIR/adoption.json part by part (a part already there is not measured again) and prints one line a part.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference.atomic import atomic_write

from ..data import DEFAULT_DATA as DATA

ROOT = Path(__file__).resolve().parents[2]
SPLIT = ROOT / "training" / "split.json"
SPINE = ["spine_mri_vertebral_bodies_t2", "spine_mri_vertebral_bodies_waterfat", "spine_mri_intervertebral_discs"]
OTHER = ["ct_mr_totalsegmentator_examples", "lesion_mri_pyradiomics", "spinal_cord_mri_sct"]
STANDIN = [ROOT / "runs" / "post" / "t1like_val", ROOT / "runs" / "post" / "t2_t1like_val"]
PARTS = ("spine", "standin", "other", "ellipsoid", "corrections")
KEYS = ("objects", "dice@1", "dice@3", "dice@5", "dice@10", "iou@1", "iou@3", "iou@5", "iou@10", "noc@85", "auc")


def evaluate_folders(package: Path, folders: list[Path], out: Path, max_clicks: int = 10,
                     split: Path | None = SPLIT, threads: int | None = None) -> dict:
    """The protocol's simulated user on the folders' (validation) objects, model only, ONNX Runtime; returns the
    aggregate over all objects and one per data folder."""
    from training import evaluate

    argv = [str(f) for f in folders] + ["--model", str(package), "--backend", "onnx", "--max-clicks", str(max_clicks),
                                        "--baselines", "", "--out", str(out), "--quiet"]
    argv += ["--split", str(split), "--subset", "val"] if split else []
    argv += ["--threads", str(threads)] if threads else []
    evaluate.run(evaluate.build_parser().parse_args(argv))
    aggregates = json.loads((out / "evaluation.json").read_text())["runs"]["model"]["aggregates"]
    pick = lambda agg: {k: agg[k] for k in KEYS if k in agg}  # noqa: E731
    return {"all": pick(aggregates["all"]),
            "per_dataset": {name: pick(agg) for name, agg in aggregates["per_dataset"].items()}}


def ellipsoid_scores(package: Path) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ellipsoid

    rows = ellipsoid.run(package)
    return {"mean_dice": round(sum(r["dice"] for r in rows) / len(rows), 4), "min_dice": min(r["dice"] for r in rows),
            "rows": rows}


def correction_scores(package: Path, threads: int | None = None) -> dict:
    from inference import load_model

    from .corrections import correction_fractions, summary

    return summary(correction_fractions(load_model(str(package), backend="onnx", threads=threads)))


def measure(part: str, package: Path, out: Path, data: Path = DATA, standin=STANDIN, threads=None) -> dict:
    if part == "spine":
        return evaluate_folders(package, [data / f for f in SPINE], out / "spine", threads=threads)
    if part == "standin":
        return evaluate_folders(package, list(standin), out / "standin", split=None, threads=threads)
    if part == "other":
        return evaluate_folders(package, [data / f for f in OTHER], out / "other", threads=threads)
    if part == "ellipsoid":
        return ellipsoid_scores(package)
    if part == "corrections":
        return correction_scores(package, threads)
    raise ValueError(f"unknown part {part!r} (parts: {', '.join(PARTS)})")


def summary(part: str, record: dict) -> str:
    if part in ("spine", "standin", "other"):
        a = record["all"]
        return (f"{part}: {a['objects']} objects, IoU@3 {a['iou@3']:.4f}, Dice@3 {a['dice@3']:.4f}, "
                f"NoC@85 {a['noc@85']:.2f}, AUC {a['auc']:.3f}")
    if part == "ellipsoid":
        return f"ellipsoid: mean {record['mean_dice']:.4f}, min {record['min_dice']:.4f}"
    return (f"corrections: positive median {record['positive']['median']:.4f}, "
            f"negative median {record['negative']['median']:.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="model package folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--standin", type=Path, nargs="+", default=STANDIN)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    for folder in args.standin:
        if "standin" in args.parts and not (folder / "dataset.json").is_file():
            raise SystemExit(f"{folder}: no stand-in folder here; build it first (see --help)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "adoption.json"
    record = json.loads(path.read_text()) if path.exists() else {"model": str(args.model)}
    for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
        if part not in record:
            record[part] = measure(part, args.model, args.out, args.data, args.standin, args.threads)
            atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"), keep_backup=False)
        print(summary(part, record[part]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
