"""How far two judged candidates (runs/judgeV/a|b, runs/judge19) differ object by object, against how far chance
alone moves them: the paired per-object difference in spine and stand-in IoU@3 with a bootstrap 95 % interval over
objects (10,000 resamples), and each one's mean false-positive share of the error after 3 clicks.
Usage: python benchmarks/judge/paired_difference.py NAME=FOLDER NAME=FOLDER [NAME=FOLDER ...] (pairs: first vs each)"""
import json
import sys
from pathlib import Path

import numpy as np


def per_object(folder: Path, part: str, key: str) -> dict:
    objects = json.load(open(folder / "p1" / part / "evaluation.json"))["runs"]["model"]["objects"]
    return {(o["dataset"], o["case"], o["label"]): o["summary"][key] for o in objects}


def paired(base: dict, other: dict, rng) -> tuple:
    keys = sorted(base)
    diff = np.array([other[k] - base[k] for k in keys])
    means = diff[rng.integers(0, len(diff), (10_000, len(diff)))].mean(axis=1)
    return diff.mean(), np.percentile(means, 2.5), np.percentile(means, 97.5), len(diff)


def main(argv: list) -> None:
    named = [(a.split("=", 1)[0], Path(a.split("=", 1)[1])) for a in argv]
    (first, base), rng = named[0], np.random.default_rng(0)
    print("| vs " + first + " | spine IoU@3 diff [95 % CI] | stand-in IoU@3 diff [95 % CI] | spine FP share@3 |")
    print("|---|---|---|---|")
    fp = lambda f: np.mean([v for v in per_object(f, "spine", "fp_share@3").values() if v is not None])
    print(f"| {first} (itself) | | | {fp(base):.3f} |")
    for name, folder in named[1:]:
        cells = []
        for part in ("spine", "standin"):
            m, lo, hi, n = paired(per_object(base, part, "iou@3"), per_object(folder, part, "iou@3"), rng)
            cells.append(f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}] ({n})")
        print(f"| {name} | {cells[0]} | {cells[1]} | {fp(folder):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
