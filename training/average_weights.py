"""Average the weights of one run's snapshots (stochastic weight averaging over the tail of a run).

Snapshots of a run on a decaying learning rate scatter around a minimum; their mean is usually better than any
one of them, and it is steadier between runs (the bright-ellipsoid test moved by 0.08 between v5's snapshots).
The network's InstanceNorm keeps no running statistics, so an averaged network needs no recalibration.

    python -m training.average_weights runs/cpu-universal-v6 --last-minutes 60 --out runs/v6_swa.npz
    python -m training.average_weights --files a.npz b.npz --out mean.npz
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from inference.atomic import atomic_write

from .curve import snapshots
from .train import logged_clock


def average(paths: list[Path]) -> dict[str, np.ndarray]:
    """Element-wise mean of .npz weight files with the same names and shapes (float32 out, fp16 files welcome)."""
    if not paths:
        raise ValueError("no weight files to average")
    total, reference = None, None
    for path in paths:
        with np.load(path) as npz:
            arrays = {name: npz[name].astype(np.float64) for name in npz.files}
        if total is None:
            total, reference = arrays, path
            continue
        if arrays.keys() != total.keys():
            raise ValueError(f"{path}: its weight names differ from those of {reference} "
                             f"({sorted(arrays.keys() ^ total.keys())[:3]} ...)")
        for name, array in arrays.items():
            if array.shape != total[name].shape:
                raise ValueError(f"{path}: {name} has shape {array.shape}, {reference} has {total[name].shape}")
            total[name] += array
    return {name: (array / len(paths)).astype(np.float32) for name, array in total.items()}


def tail_snapshots(run_dir: Path, minutes: float) -> list[tuple[int, Path]]:
    """(step, weights) of the snapshots taken in the run's last `minutes` of training, and of its last checkpoint.

    Time is the run's own training clock (log.jsonl's "t" of the step), so a paused or resumed run counts only
    the time it trained."""
    clock = logged_clock(run_dir / "log.jsonl")
    found = snapshots(run_dir, with_last=True)
    if not found:
        raise ValueError(f"{run_dir}: no snapshots and no checkpoint")
    end = clock.get(found[-1][0], max(clock.values(), default=0.0))
    return [(step, path) for step, path in found if end - clock.get(step, end) <= 60.0 * minutes]


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as handle:  # a file handle: np.savez would append ".npz" to a temporary name
        np.savez(handle, **arrays)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Average weight files (.npz of Paddle names) into one.")
    parser.add_argument("run_dir", type=Path, nargs="?", help="a run folder: average its snapshots' tail")
    parser.add_argument("--last-minutes", type=float, default=60.0, help="with run_dir: the tail's length")
    parser.add_argument("--files", type=Path, nargs="+", help="average these files instead")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if bool(args.files) == bool(args.run_dir):
        parser.error("give either a run folder or --files")
    chosen = [(None, p) for p in args.files] if args.files else tail_snapshots(args.run_dir, args.last_minutes)
    mean = average([path for _, path in chosen])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: _savez(tmp, mean), keep_backup=False)
    print(json.dumps({"out": str(args.out), "averaged": [{"step": s, "file": str(p)} for s, p in chosen]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
