"""Latency of a box, a lasso and a scribble on a real scan, beside a click (issue 12: p50 <= 150 ms like a click).

    python benchmarks/prompts_latency.py [--scan PATH] [--labels 2,4,6] [--repeats 3] [--write]

Per object of the scan's label map, on a fresh session each time: the protocol's first click, a lasso and a box on
the object's largest slice across the thick-slice axis (training/evaluation/prompt_user.py) and a scribble through
that slice's object voxels. Every prompt runs on the bundled model; only a model without a "region" channel (the
box needs one) has its box run on the same architecture built with 4 click channels (random weights: the time of
the network is that of a trained one; the number of zoom-out runs may differ). ONNX Runtime, 2 threads. Writes its
section of BENCHMARKS.md with --write.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "EISegMed3D"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "spine_mri_vertebral_bodies_t2" / "case_000.nii.gz"
MARK_START, MARK_END = "<!-- prompts-latency:start -->", "<!-- prompts-latency:end -->"
THREADS = 2
RUNTIMES = {"onnx": "ONNX Runtime", "paddle": "Paddle Inference (oneDNN)"}


def region_model(out: Path, bundled) -> Path:
    """The bundled architecture with a 4th click channel, random weights, exported to ONNX with a region manifest."""
    import paddle

    from training.export import export_model
    from training.network import build_network

    manifest = json.loads((ROOT / "training" / "configs" / "manifest_prompts.json").read_text(encoding="utf-8"))
    manifest["name"] = "bundled architecture, 4 click channels, random weights (latency only)"
    manifest["patch_shape"] = list(bundled.patch_shape)
    paddle.seed(0)
    net = build_network({"network": {"base": 8, "levels": 4, "depths": [1, 2, 2, 2, 2], "click_channels": 4}})
    export_model(net, out, manifest, bundled.patch_shape, formats=("onnx", "paddle"))
    return out


def scribble_through(gt: np.ndarray, axis: int, index: int) -> list[tuple]:
    """A stroke across the slice's object voxels: from the first to the last along its longer side, via the middle."""
    from training.evaluation.prompt_user import _slice_points

    rows, cols = np.nonzero(np.take(gt, index, axis=axis))
    order = np.argsort(cols if np.ptp(cols) >= np.ptp(rows) else rows)
    picks = [order[0], order[len(order) // 2], order[-1]]
    return _slice_points(axis, index, [(rows[p], cols[p]) for p in picks])


def measure(scan: Path, labels, repeats: int, package: Path | None = None, backend: str = "onnx") -> dict:
    from inference.datafolder import label_path
    from inference.model import load_model
    from inference.prompts import REGION, channel_names
    from inference.session import InteractiveSession
    from inference.volume import Volume
    from training.evaluation.prompt_user import first_box, first_lasso, largest_slice
    from training.evaluation.robot import next_click

    volume = Volume.from_file(scan)
    truth = Volume.from_file(label_path(scan)).array
    labels = labels or [int(v) for v in np.unique(truth) if v != 0]
    bundled = boxed = load_model(package, backend=backend, device="cpu", threads=THREADS)  # None: the bundled model
    if REGION not in channel_names(bundled.manifest):  # the box needs a region channel
        with tempfile.TemporaryDirectory() as tmp:
            boxed = load_model(region_model(Path(tmp), bundled), backend=backend, device="cpu", threads=THREADS)
    sessions = {"bundled": InteractiveSession(bundled), "region": InteractiveSession(boxed)}
    for session in sessions.values():
        session.set_volume(volume)
    rows = []
    for value in labels:
        gt = truth == value
        if not gt.any():
            continue
        axis, index = largest_slice(gt, volume.spacing)
        click, _ = next_click(gt, None, volume.spacing)
        prompts = {"click": ("bundled", "add_click", {"ijk": click}),
                   "lasso": ("bundled", "add_lasso", first_lasso(gt, volume.spacing)),
                   "scribble": ("bundled", "add_scribble", {"ijk": scribble_through(gt, axis, index)}),
                   "box": ("region", "add_box", first_box(gt, volume.spacing))}
        for kind, (which, method, kwargs) in prompts.items():
            session = sessions[which]
            for _ in range(repeats):
                session.reset()
                result = getattr(session, method)(**kwargs)
                rows.append({"label": value, "prompt": kind, "latency_s": result.latency_s, "model_s": result.model_s,
                             "runs": result.runs})
    return {"scan": str(scan), "shape_ijk": list(volume.shape[::-1]), "spacing_ijk": [float(s) for s in volume.spacing],
            "labels": labels, "repeats": repeats, "rows": rows, "model": bundled.describe(),
            "package": None if package is None else str(package), "backend": bundled.backend,
            "box_random": boxed is not bundled}


def render(result: dict, command: str, machine: str) -> str:
    model = f"`{Path(result['package']).name}`" if result.get("package") else "the bundled model"
    models = (f"Box: the same architecture with 4 click channels, random weights; the others: {model}"
              if result.get("box_random", True) else f"every prompt on {model} (it has a region channel)")
    lines = [MARK_START, "## Prompt latency: box, lasso, scribble beside a click", "",
             f"`{command}` — scan `{Path(result['scan']).name}` ({' x '.join(map(str, result['shape_ijk']))} voxels, "
             f"{' x '.join(f'{s:.2f}' for s in result['spacing_ijk'])} mm), labels {result['labels']}, each prompt "
             f"{result['repeats']}x on a fresh object, {RUNTIMES[result.get('backend', 'onnx')]} {THREADS} threads, {machine}. {models}.", "",
             "| prompt | n | p50 latency | p95 latency | p50 model | runs (mean) |", "|---|---|---|---|---|---|"]
    for kind in ("click", "box", "lasso", "scribble"):
        picked = [r for r in result["rows"] if r["prompt"] == kind]
        if not picked:
            continue
        latency = np.array([r["latency_s"] for r in picked]) * 1000
        model = np.array([r["model_s"] for r in picked]) * 1000
        runs = np.mean([r["runs"] for r in picked])
        lines.append(f"| {kind} | {len(picked)} | {np.percentile(latency, 50):.0f} ms | {np.percentile(latency, 95):.0f} ms "
                     f"| {np.percentile(model, 50):.0f} ms | {runs:.2f} |")
    lines += ["", "Latency is prompt to mask, all included; one model run costs the same for every prompt, the rest "
              "(drawing the prompt, resampling, clean-up) is the difference.", MARK_END]
    return "\n".join(lines)


def main(argv=None) -> int:
    from sections import update_section

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN)
    parser.add_argument("--labels", default="", help="label values, e.g. 2,4,6 (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="a trained package with a region channel for all prompts")
    parser.add_argument("--backend", default="onnx", choices=("onnx", "paddle", "auto"), help="model runtime")
    parser.add_argument("--machine", default="the shared 2-core machine (a training run was using the CPU)",
                        help="how the machine was loaded, for the write-up")
    parser.add_argument("--write", action="store_true", help="rewrite this benchmark's section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not args.scan.is_file():
        raise SystemExit(f"{args.scan}: scan not found (../shared/data is not in the repository)")
    labels = [int(v) for v in args.labels.split(",") if v.strip()]
    tick = time.perf_counter()
    result = measure(args.scan, labels, args.repeats, args.model, args.backend)
    text = render(result, "python benchmarks/prompts_latency.py " + shlex.join(argv), args.machine)
    print(text)
    print(f"({time.perf_counter() - tick:.0f} s)")
    if args.write:
        update_section(ROOT / "BENCHMARKS.md", text, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
