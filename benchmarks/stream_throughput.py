"""Example-stream throughput: the CPU recipe (training.batches.ExampleStream, in this process) against the torch
stream (training.torch_stream, here on the CPU; on a GPU machine it runs on the GPU), same cases and options.

    python benchmarks/stream_throughput.py [--steps 12] [--batch 2] [--write]

Cases: the first training case of every data folder in runs/cache (`python -m training.data --out runs/cache`,
`python -m training.pseudo_objects --cache runs/cache`); options: training/configs/cpu_universal.json's
"sampling". Per stream: examples/s of `batch(step)` and ms per example of one error-click pass (the target
shifted by 3 voxels stands in for a prediction), after 2 warm-up steps, interleaved round by round.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "EISegMed3D"), str(Path(__file__).resolve().parent)]
MARK_START, MARK_END = "<!-- torch-stream:start -->", "<!-- torch-stream:end -->"


def keys_one_per_folder(split: dict) -> list:
    seen, keys = set(), []
    for key in split["train"]:
        if key.split("/")[0] not in seen:
            seen.add(key.split("/")[0])
            keys.append(key)
    return keys


def measure(stream, steps: int, shift) -> tuple[float, float]:
    """(examples/s of batch(), ms per example of one error-click pass)."""
    make = clicks = 0.0
    count = 0
    for step in range(steps + 2):
        t0 = time.perf_counter()
        examples = stream.batch(step)
        t1 = time.perf_counter()
        _, _, targets = stream.arrays(examples)
        stream.add_error_clicks(examples, shift(targets))
        t2 = time.perf_counter()
        if step >= 2:
            make, clicks, count = make + t1 - t0, clicks + t2 - t1, count + stream.batch_size
    return count / make, 1000 * clicks / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="rewrite the section in BENCHMARKS.md")
    args = parser.parse_args(argv)
    import torch

    from training.batches import ExampleStream
    from training.stream_plans import load_cases
    from training.torch_stream import TorchExampleStream

    torch.set_num_threads(args.threads)
    config = json.loads((ROOT / "training/configs/cpu_universal.json").read_text())
    manifest = json.loads((ROOT / config["manifest"]).read_text())
    keys = keys_one_per_folder(json.loads((ROOT / config["split"]).read_text()))
    cache = ROOT / "runs" / "cache"
    cpu = ExampleStream(cache, keys, manifest, args.batch, 7, 0, "case", config["sampling"])
    device = TorchExampleStream(load_cases(cache, keys, True), manifest, args.batch, 7, "case", config["sampling"], "cpu")
    cpu_shift = lambda t: np.roll(t[:, 0] > 0.5, 3, axis=1)  # noqa: E731
    torch_shift = lambda t: torch.roll(t[:, 0] > 0.5, 3, 1)  # noqa: E731
    rows = {"CPU recipe (training.batches.ExampleStream, 1 process)": [], "torch stream on the CPU (2 threads)": []}
    for _ in range(2):  # interleaved rounds: both see the same load
        rows["CPU recipe (training.batches.ExampleStream, 1 process)"].append(measure(cpu, args.steps, cpu_shift))
        rows["torch stream on the CPU (2 threads)"].append(measure(device, args.steps, torch_shift))
    cpu.close()
    load = os.getloadavg()[0]
    lines = [MARK_START, "### Example streams: CPU recipe and torch stream (issue 9, item 2)", "",
             f"`python benchmarks/stream_throughput.py --steps {args.steps} --batch {args.batch} --write`: "
             f"{len(keys)} cases (one per data folder), cpu_universal.json's sampling, batch {args.batch}, "
             f"{args.steps} steps x 2 interleaved rounds, on this {os.cpu_count()}-core machine **while other jobs ran** "
             f"(load average {load:.1f} at the end), {platform.processor() or platform.machine()}, torch {torch.__version__}.", "",
             "| stream | examples / s (`batch`) | ms per example, one error-click pass |", "|---|---|---|"]
    for name, values in rows.items():
        rate = np.median([v[0] for v in values])
        click = np.median([v[1] for v in values])
        lines.append(f"| {name} | {rate:.1f} | {click:.0f} |")
        print(f"{name}: {rate:.1f} examples/s, {click:.0f} ms per example per click pass")
    lines += ["",
              "On a CPU the torch stream is the slower one; it exists for a GPU machine, where the same ops run batched "
              "on the card and only the case, target and ROI draws stay on the CPU (in `plan_workers` processes, a "
              "step ahead). Its GPU rate is **not measured**: no GPU was lent to the session that wrote it. The "
              "device command, ready to run (PyTorch + numpy + scipy; no Paddle, SimpleITK, scikit-image, tqdm or "
              "network; checkpoints, log and the 4 latest snapshots to `$OUT` as it goes):", "",
              "```",
              "python -m training.carry pack --init runs/init/bundled_v1.npz --out runs/gpu_pack.npz   # here, once",
              "bash training/gpu_train.sh 480          # on the device, carry: runs/gpu_pack.npz",
              "```", "",
              "The pack holds the training cases (uint8 image, labels, supervoxels, spacing, statistics) and the "
              "starting weights, xz-compressed, within what the working tree leaves of the device's 64 MiB; cases "
              "over that budget are dropped from the largest folder (water-fat spine), every other case first, listed in the pack's "
              "meta. What differs from the CPU recipe: `training.torch_stream.DIFFERENCES`.", MARK_END]
    section = "\n".join(lines)
    from sections import publish

    publish(section, args.write, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
