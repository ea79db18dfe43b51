"""What a wider network or a larger patch costs per network run, on the shipped runtimes (issue 9, item 5).

Each variant is the project's network (training.network.InteractiveVNet, the bundled manifest's inputs) with random
weights, exported exactly as a shipped package is (training.export.export_model: Paddle static graph and ONNX via
paddle2onnx), loaded by the engine's loader (inference.model.load_model) and timed on random inputs. The variants
run round-robin, one run each per round, so machine load falls on all alike; medians are reported with their ratio
to the bundled shape (base 8, 64^3).

    python benchmarks/network_cost.py [--rounds 15] [--threads 2] [--write]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "EISegMed3D"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sections import publish  # noqa: E402

MARK_START, MARK_END = "<!-- network-cost:start -->", "<!-- network-cost:end -->"

BUNDLED = ROOT / "EISegMed3D" / "Resources" / "Models" / "eiseg-vnet-universal"
VARIANTS = [  # (label, base, patch edge)
    ("base 8, 64^3 (bundled)", 8, 64),
    ("base 12, 64^3", 12, 64),
    ("base 16, 64^3", 16, 64),
    ("base 8, 80^3", 8, 80),
    ("base 8, 96^3", 8, 96),
]


def export_variant(base: int, edge: int, out: Path) -> Path:
    import paddle

    from training.export import export_model
    from training.network import InteractiveVNet

    manifest = json.loads((BUNDLED / "model.json").read_text())
    clicks = next(spec for spec in manifest["inputs"] if spec["name"] == "clicks")
    paddle.seed(0)
    net = InteractiveVNet(base=base, levels=4, depths=(1, 2, 2, 2, 2), click_channels=len(clicks["channels"]))
    keep = {k: v for k, v in manifest.items() if k not in ("files", "sha256", "export", "training", "validation")}
    export_model(net, out, keep, (edge, edge, edge), formats=("paddle", "onnx"), parity=False)
    return out


def time_variants(folders: list, backend: str, threads: int, rounds: int) -> list:
    from inference.model import load_model

    models, inputs = [], []
    for folder in folders:
        model = load_model(folder, backend=backend, threads=threads)
        edge = model.manifest["patch_shape"][0]
        rng = np.random.default_rng(0)
        image = rng.normal(size=(1, 1, edge, edge, edge)).astype(np.float32)
        clicks = (rng.random((1, len(model.manifest["inputs"][1]["channels"]), edge, edge, edge)) > 0.99).astype(np.float32)
        model.predict(image, clicks)  # warm-up
        models.append(model)
        inputs.append((image, clicks))
    times = [[] for _ in folders]
    for _ in range(rounds):
        for index, (model, (image, clicks)) in enumerate(zip(models, inputs)):
            started = time.perf_counter()
            model.predict(image, clicks)
            times[index].append(time.perf_counter() - started)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="paddle,onnx")
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folders = [export_variant(base, edge, Path(tmp) / f"b{base}_p{edge}") for _, base, edge in VARIANTS]
        results = {b: time_variants(folders, b, args.threads, args.rounds) for b in args.backends.split(",")}
    from latency import cpu_model

    cpu = cpu_model()
    backends = args.backends.split(",")
    lines = [MARK_START, "## What a wider network or a larger patch costs per run (issue 9, item 5)", "",
             f"- Command: `python benchmarks/network_cost.py --rounds {args.rounds} --threads {args.threads}"
             + (" --write`" if args.write else "`"),
             f"- Machine: {cpu}, {args.threads} threads; variants round-robin, {args.rounds} runs each; random weights, "
             "exported as a shipped package (Paddle static graph, ONNX via paddle2onnx).", "",
             "| network | " + " | ".join(f"{b} median (min) | ratio" for b in backends) + " |",
             "|---|" + "---|---|" * len(backends)]
    for index, (label, _, _) in enumerate(VARIANTS):
        cells = []
        for b in backends:
            median = statistics.median(results[b][index])
            ratio = median / statistics.median(results[b][0])
            cells += [f"{median * 1000:.0f} ({min(results[b][index]) * 1000:.0f}) ms", f"{ratio:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(MARK_END)
    publish("\n".join(lines) + "\n", args.write, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
