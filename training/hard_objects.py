"""Hard objects drawn more often: RITM's hard-sample weighting (SBD configs, p ∝ (1 - score)^1.25) in 3D.

The table comes from an evaluation of a model on the training split (`training.evaluate --subset train`): each
label object's weight is (1 - IoU@k)^gamma, so an object the model answers at IoU 0.5 is drawn about 17 times as
often as one at 0.95 within its case. Only which label of a case is drawn changes: case and folder shares, and the
supervoxel / synthetic / union shares, stay as the config says.

    python -m training.hard_objects runs/hard/eval/evaluation.json --out training/hard_objects_v19.json

A config turns it on with `"sampling": {"hard_objects": "training/hard_objects_v19.json", ...}`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from inference.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]
GAMMA = 1.25
LEAST = 1e-3  # a perfectly answered object is still drawn now and then


def table_from_evaluation(evaluation: dict, at: int = 3, gamma: float = GAMMA) -> dict:
    """{"dataset/case": {"label value": weight}} from an evaluation's per-object IoU after `at` clicks."""
    table: dict = {}
    for obj in evaluation["runs"]["model"]["objects"]:
        iou = obj["summary"].get(f"iou@{at}")
        if iou is None:
            raise ValueError(f"object {obj['dataset']}/{obj['case']} label {obj['label']}: no iou@{at} "
                             f"(evaluate with --max-clicks {at} or more)")
        weight = max(float(1.0 - iou), 0.0) ** gamma
        table.setdefault(f"{obj['dataset']}/{obj['case']}", {})[str(int(obj["label"]))] = max(weight, LEAST)
    return table


def object_probabilities(values, weights: dict) -> np.ndarray:
    """Draw probabilities over a case's label values; a value the table lacks (not evaluated: too small for the
    protocol, say) gets the case's median weight."""
    known = [weights[str(int(v))] for v in values if str(int(v)) in weights]
    fill = float(np.median(known)) if known else 1.0
    p = np.array([weights.get(str(int(v)), fill) for v in values], dtype=np.float64)
    return p / p.sum()


def attach(cases: list[dict], options: dict) -> None:
    """Give each case of the table its label-draw probabilities ("object_p", aligned with case["values"])."""
    path = (options or {}).get("hard_objects")
    if not path:
        return
    path = Path(path) if Path(path).is_absolute() else ROOT / path
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"hard_objects table {path}: {error}") from error
    for case in cases:
        if case["key"] in table and len(case["values"]):
            case["object_p"] = object_probabilities(case["values"], table[case["key"]])


def write_table(table: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(table, indent=1, sort_keys=True) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"), keep_backup=False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="evaluation.json of training.evaluate --subset train")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--at", type=int, default=3, help="clicks after which the IoU is read")
    parser.add_argument("--gamma", type=float, default=GAMMA)
    args = parser.parse_args(argv)
    try:
        evaluation = json.loads(args.evaluation.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"{args.evaluation}: {error}")
    table = table_from_evaluation(evaluation, args.at, args.gamma)
    write_table(table, args.out)
    weights = [w for case in table.values() for w in case.values()]
    print(f"{args.out}: {len(weights)} objects in {len(table)} cases, weight min / median / max "
          f"{min(weights):.3g} / {np.median(weights):.3g} / {max(weights):.3g}")


if __name__ == "__main__":
    main()
