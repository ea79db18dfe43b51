"""Click latency and peak memory of the engine on CPU, both backends; results into BENCHMARKS.md.

    python benchmarks/latency.py [--scan PATH] [--clicks N] [--out BENCHMARKS.md]

Latency: a simulated user (training.evaluation.robot.next_click, mm variant) segments several vertebral bodies
of a full-size scan with N clicks each; ClickResult.latency_s / model_s / runs are collected per click, the first
click of each object apart from the later ones. Memory: a fresh subprocess per backend and volume (the scan, and a
synthetic 512x512x400 int16 volume) loads the model, runs 5 clicks and reports ru_maxrss. Every measurement runs in
its own subprocess so that one runtime's thread pools and allocations never colour the other's numbers.

This is a benchmark, not a test: run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "EISegMed3D"), str(ROOT)]

import sections  # noqa: E402  (benchmarks/, the script's folder)
from inference.datafolder import label_path  # noqa: E402
from training.evaluation.metrics import dice  # noqa: E402

DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "spine_mri_vertebral_bodies_t2" / "case_000.nii.gz"
BACKENDS = ("onnx", "paddle")
THREADS = 2
TARGET_P50_MS = {"onnx": 150.0, "paddle": 300.0}
TARGET_RSS_GB = 1.5
SYNTHETIC_SHAPE_KJI = (400, 512, 512)  # 512 x 512 x 400 voxels (i, j, k)
SYNTHETIC_SPACING_IJK = (0.8, 0.8, 1.0)  # a typical CT grid
RSS_CLICKS = 5
MARK_START, MARK_END = "<!-- latency:start -->", "<!-- latency:end -->"
RESULT_PREFIX = "RESULT "


# --- helpers shared by the workers -----------------------------------------------------------------------------
def rss_now_mb() -> float:
    """Current resident set size (VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports kB


def crop_box(mask: np.ndarray, margin: int) -> tuple:
    """Bounding box of `mask` grown by `margin` voxels, clipped to the array."""
    where = np.nonzero(mask)
    return tuple(slice(max(0, int(w.min()) - margin), min(n, int(w.max()) + margin + 1))
                 for w, n in zip(where, mask.shape))


def robot_click(gt_crop: np.ndarray, box: tuple, session, spacing_ijk):
    """The simulated user's next click in scan (i, j, k), judged inside `box` (keeps the harness small in memory)."""
    from training.evaluation.robot import next_click

    found = next_click(gt_crop, session.mask[box], spacing_ijk, variant="mm")
    if found is None:
        return None
    (i, j, k), positive = found
    return (i + box[2].start, j + box[1].start, k + box[0].start), positive


def runtime_version(backend: str) -> str:
    if backend == "onnx":
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__}"
    import paddle
    return f"paddlepaddle {paddle.__version__}"


# --- worker: latency on the real scan --------------------------------------------------------------------------
def worker_latency(backend: str, scan: Path, label: Path, labels: list[int], clicks: int) -> dict:
    from inference.model import load_model
    from inference.session import InteractiveSession
    from inference.volume import Volume

    volume = Volume.from_file(scan)
    truth = Volume.from_file(label).array
    labels = labels or [int(v) for v in np.unique(truth) if v != 0]
    tick = time.perf_counter()
    model = load_model(backend=backend, device="cpu", threads=THREADS)  # includes the warm-up predict
    load_s = time.perf_counter() - tick
    session = InteractiveSession(model)
    tick = time.perf_counter()
    session.set_volume(volume)
    set_volume_s = time.perf_counter() - tick
    records, objects = [], []
    for value in labels:
        gt = truth == value
        if not gt.any():
            print(f"label {value} absent from {label}; skipped", file=sys.stderr)
            continue
        session.reset()
        box = crop_box(gt, margin=24)
        for index in range(clicks):
            click = robot_click(gt[box], box, session, volume.spacing)
            if click is None:
                break
            result = session.add_click(ijk=click[0], positive=click[1])
            records.append({"label": value, "index": index, "positive": click[1], "latency_s": result.latency_s,
                            "model_s": result.model_s, "runs": result.runs})
        objects.append({"label": value, "clicks": sum(r["label"] == value for r in records),
                        "dice": dice(session.mask, gt)})
    return {"backend": backend, "version": runtime_version(backend), "model": model.describe(),
            "patch": "x".join(str(n) for n in model.patch_shape),
            "load_s": load_s, "set_volume_s": set_volume_s, "clicks": records, "objects": objects,
            "scan_shape_ijk": list(volume.shape[::-1]), "spacing_ijk": [float(s) for s in volume.spacing]}


# --- worker: peak memory -----------------------------------------------------------------------------------------
def synthetic_volume():
    """512x512x400 int16: noisy background and a bright sphere of radius 25 mm, built slice by slice (no big temps).

    Returns the volume and the sphere's box grown by 24 voxels (computed from the geometry, not from a full-size mask).
    """
    from inference.volume import Volume

    nk, nj, ni = SYNTHETIC_SHAPE_KJI
    si, sj, sk = SYNTHETIC_SPACING_IJK
    radius = 25.0
    array = np.empty(SYNTHETIC_SHAPE_KJI, dtype=np.int16)
    rng = np.random.default_rng(0)
    jj, ii = np.meshgrid((np.arange(nj) - nj / 2) * sj, (np.arange(ni) - ni / 2) * si, indexing="ij")
    in_plane = jj ** 2 + ii ** 2
    for k in range(nk):
        inside = in_plane + ((k - nk / 2) * sk) ** 2 <= radius ** 2
        array[k] = rng.integers(-60, 60, size=(nj, ni), dtype=np.int16) + np.int16(1000) * inside
    box = tuple(slice(max(0, int(n / 2 - radius / s) - 24), min(n, int(n / 2 + radius / s) + 26))
                for n, s in zip(SYNTHETIC_SHAPE_KJI, (sk, sj, si)))
    return Volume(array, np.diag([si, sj, sk, 1.0])), box


def worker_rss(backend: str, which: str, scan: Path, label: Path, labels: list[int]) -> dict:
    from inference.model import load_model
    from inference.session import InteractiveSession
    from inference.volume import Volume

    stages = {"imports": rss_now_mb()}
    model = load_model(backend=backend, device="cpu", threads=THREADS)
    stages["model loaded"] = rss_now_mb()
    if which == "synthetic":
        volume, box = synthetic_volume()
        gt_crop = volume.array[box] > 500  # the sphere: 1000 + noise against noise in [-60, 60)
    else:
        volume = Volume.from_file(scan)
        truth = Volume.from_file(label).array
        gt = truth == (labels[0] if labels else int(truth.max()))
        box = crop_box(gt, margin=24)
        gt_crop = gt[box].copy()
        del truth, gt  # only the crop is kept: the harness should not inflate the engine's peak
    stages["volume built"] = rss_now_mb()
    session = InteractiveSession(model)
    session.set_volume(volume)
    stages["set_volume"] = rss_now_mb()
    latencies = []
    for _ in range(RSS_CLICKS):
        click = robot_click(gt_crop, box, session, volume.spacing)
        if click is None:
            break
        latencies.append(session.add_click(ijk=click[0], positive=click[1]).latency_s)
    stages["after clicks"] = rss_now_mb()
    return {"backend": backend, "volume": which, "shape_ijk": list(volume.shape[::-1]),
            "dtype": str(volume.array.dtype), "volume_mb": volume.array.nbytes / 2 ** 20,
            "mask_mb": session.mask.nbytes / 2 ** 20, "stages_mb": stages, "peak_mb": peak_rss_mb(),
            "clicks": len(latencies), "latency_s": latencies, "dice": dice(session.mask[box], gt_crop)}


# --- driver ------------------------------------------------------------------------------------------------------
def run_worker(args: list[str]) -> dict:
    """Run this script as a worker subprocess and return the JSON it prints on its RESULT line."""
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    print("  $", " ".join(command[1:]), flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"worker {' '.join(args)} failed with exit code {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise SystemExit(f"worker {' '.join(args)} printed no result line")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summarize(result: dict) -> dict:
    """p50 / p95 in ms for first / later / all clicks, model time and the rest (ROI, maps, resampling, masks)."""
    clicks = result["clicks"]
    pick = {"first": [c for c in clicks if c["index"] == 0], "later": [c for c in clicks if c["index"] > 0],
            "all": clicks}
    out = {}
    for name, group in pick.items():
        total = [1000 * c["latency_s"] for c in group]
        model = [1000 * c["model_s"] for c in group]
        rest = [t - m for t, m in zip(total, model)]
        per_run = [1000 * c["model_s"] / c["runs"] for c in group if c["runs"]]
        out[name] = {"n": len(group), "p50": pct(total, 50), "p95": pct(total, 95), "model_p50": pct(model, 50),
                     "model_p95": pct(model, 95), "rest_p50": pct(rest, 50), "rest_p95": pct(rest, 95),
                     "per_run_p50": pct(per_run, 50), "runs_mean": float(np.mean([c["runs"] for c in group]))
                     if group else float("nan"), "model_share": sum(model) / sum(total) if total else float("nan")}
    return out


def cpu_ticks() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / hz, steal / hz


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def other_load(start: tuple, end: tuple) -> dict:
    """CPU the rest of the machine used while we measured, in cores: a benchmark is only clean when this is ~0."""
    wall = end[0] - start[0]
    busy = end[1][0] - start[1][0]
    steal = end[1][1] - start[1][1]
    ours = end[2] - start[2]
    return {"wall_s": wall, "other_cores": max(0.0, busy - steal - ours) / wall, "steal_cores": steal / wall}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def ms(value: float) -> str:
    return f"{value:.0f}"


def latency_table(summaries: dict, results: dict) -> list[str]:
    rows = ["| backend | clicks | first click p50 / p95 | later clicks p50 / p95 | all clicks p50 / p95 "
            "| model p50 / p95 (all) | rest p50 / p95 (all) | model per run p50 | runs / click | model load + warm-up |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for backend in BACKENDS:
        s, r = summaries[backend], results[backend]
        rows.append(f"| {backend} | {s['all']['n']} ({s['first']['n']} first) "
                    f"| {ms(s['first']['p50'])} / {ms(s['first']['p95'])} "
                    f"| {ms(s['later']['p50'])} / {ms(s['later']['p95'])} "
                    f"| **{ms(s['all']['p50'])}** / {ms(s['all']['p95'])} "
                    f"| {ms(s['all']['model_p50'])} / {ms(s['all']['model_p95'])} "
                    f"| {ms(s['all']['rest_p50'])} / {ms(s['all']['rest_p95'])} "
                    f"| {ms(s['all']['per_run_p50'])} | {s['all']['runs_mean']:.2f} | {r['load_s']:.2f} s |")
    o, p = summaries["onnx"], summaries["paddle"]
    ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"  # noqa: E731
    rows.append(f"| onnx / paddle | | {ratio(o['first']['p50'], p['first']['p50'])} "
                f"| {ratio(o['later']['p50'], p['later']['p50'])} | {ratio(o['all']['p50'], p['all']['p50'])} "
                f"| {ratio(o['all']['model_p50'], p['all']['model_p50'])} "
                f"| {ratio(o['all']['rest_p50'], p['all']['rest_p50'])} "
                f"| {ratio(o['all']['per_run_p50'], p['all']['per_run_p50'])} | "
                f"| {ratio(results['onnx']['load_s'], results['paddle']['load_s'])} |")
    return rows


def memory_table(memory: list[dict]) -> list[str]:
    rows = ["| backend | volume (i x j x k, dtype) | volume array | after model load | after set_volume "
            "| after 5 clicks | **peak RSS** | target | click latency p50 (5 clicks) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for m in memory:
        shape = " x ".join(str(n) for n in m["shape_ijk"])
        target = "" if m["volume"] != "synthetic" else \
            ("met" if m["peak_mb"] / 1024 <= TARGET_RSS_GB else "**MISSED**") + f" (<= {TARGET_RSS_GB} GB)"
        st = m["stages_mb"]
        rows.append(f"| {m['backend']} | {m['volume']} {shape}, {m['dtype']} | {m['volume_mb']:.0f} MB "
                    f"| {st['model loaded']:.0f} MB | {st['set_volume']:.0f} MB | {st['after clicks']:.0f} MB "
                    f"| **{m['peak_mb']:.0f} MB** ({m['peak_mb'] / 1024:.2f} GB) | {target} "
                    f"| {ms(1000 * pct(m['latency_s'], 50))} ms |")
    return rows


def verdicts(summaries: dict, memory: list[dict], results: dict) -> tuple[list[str], list[str]]:
    """(target table rows, plain sentences about misses and what dominates)."""
    rows = ["| target | measured | verdict |", "|---|---|---|"]
    notes = []
    for backend in BACKENDS:
        s = summaries[backend]["all"]
        ok = s["p50"] <= TARGET_P50_MS[backend]
        rows.append(f"| click p50 <= {TARGET_P50_MS[backend]:.0f} ms ({backend}) | {ms(s['p50'])} ms "
                    f"| {'met' if ok else '**MISSED**'} |")
        share = 100 * s["model_share"]
        where = "the network" if share >= 50 else "the code around the network (ROI, click maps, resampling, masks)"
        sentence = (f"{backend}: p50 {ms(s['p50'])} ms, of which the network {ms(s['model_p50'])} ms "
                    f"(network = {share:.0f} % of all click time, {s['runs_mean']:.2f} runs per click, "
                    f"{ms(s['per_run_p50'])} ms per run); the rest {ms(s['rest_p50'])} ms. Dominated by {where}.")
        notes.append(("Target MISSED. " if not ok else "Target met. ") + sentence)
    most = max(c["runs"] for b in BACKENDS for c in results[b]["clicks"])
    notes.append(f"Network runs per click: at most {most} here. A click runs the network once per ROI zoom-out step "
                 "(objects reaching the ROI border), so clicks on objects larger than the initial ROI cost a multiple "
                 "of the per-run model time.")
    for m in memory:
        if m["volume"] == "synthetic":
            ok = m["peak_mb"] / 1024 <= TARGET_RSS_GB
            rows.append(f"| peak RSS <= {TARGET_RSS_GB} GB, 512x512x400 ({m['backend']}) "
                        f"| {m['peak_mb'] / 1024:.2f} GB | {'met' if ok else '**MISSED**'} |")
            if not ok:
                notes.append(f"Peak RSS target MISSED with {m['backend']}: {m['peak_mb']:.0f} MB for a "
                             f"{m['volume_mb']:.0f} MB volume (model loaded: {m['stages_mb']['model loaded']:.0f} MB).")
    return rows, notes


def render(args, results: dict, memory: list[dict], command: str, load: dict) -> str:
    summaries = {b: summarize(results[b]) for b in BACKENDS}
    target_rows, notes = verdicts(summaries, memory, results)
    first = results[BACKENDS[0]]
    scan_shape = " x ".join(str(n) for n in first["scan_shape_ijk"])
    spacing = " x ".join(f"{s:g}" for s in first["spacing_ijk"])
    dice_line = "; ".join(f"{b}: " + ", ".join(f"label {o['label']} {o['dice']:.3f} ({o['clicks']} clicks)"
                                               for o in results[b]["objects"]) for b in BACKENDS)
    versions = ", ".join(results[b]["version"] for b in BACKENDS)
    lines = [
        MARK_START,
        "## Click latency and memory (engine, CPU)",
        "",
        f"- Command: `{command}` (run with the background CPU training job paused: `kill -STOP` before, `kill -CONT` after)",
        f"- Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores; both runtimes on CPU with {THREADS} threads",
        f"- Machine load from other processes during the {load['wall_s']:.0f} s run: {load['other_cores']:.2f} cores "
        f"busy, {load['steal_cores']:.2f} cores stolen by the hypervisor (from /proc/stat minus this benchmark's CPU "
        "time; near 0 means clean numbers)",
        f"- Versions: Python {platform.python_version()}, numpy {np.__version__}, {versions}",
        f"- Model: {first['model'].split(' (')[0]} (bundled default, patch {first['patch']})",
        f"- Scan: `{args.scan}` ({scan_shape} voxels, {spacing} mm); objects: labels "
        f"{', '.join(str(o['label']) for o in first['objects'])} (vertebral bodies), up to {args.clicks} clicks each "
        "from the simulated user `training.evaluation.robot.next_click` (mm variant)",
        "- Latency = `ClickResult.latency_s` (click to full-grid mask, all included); model = `ClickResult.model_s` "
        "(inside the network, summed over runs); rest = latency - model. Model load includes the warm-up predict.",
        "- set_volume (intensity statistics, once per scan): "
        + ", ".join(f"{b} {1000 * results[b]['set_volume_s']:.0f} ms" for b in BACKENDS),
        f"- Final Dice per object (sanity check, not an evaluation): {dice_line}",
        "",
        "### Click latency (ms)",
        "",
        *latency_table(summaries, results),
        "",
        "### Peak memory (fresh process per row: load model, build volume, set_volume, 5 simulated clicks)",
        "",
        *memory_table(memory),
        "",
        "The synthetic volume is 512 x 512 x 400 int16 (0.8 x 0.8 x 1 mm) with noise and a bright 25 mm sphere. "
        "Peak RSS is `resource.getrusage(RUSAGE_SELF).ru_maxrss` of that process (Python, runtime, model, volume, "
        "session mask and history included).",
        "",
        "### Targets (issue 2)",
        "",
        *target_rows,
        "",
        *[f"- {note}" for note in notes],
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def update_section(path: Path, section: str) -> None:
    sections.update_section(path, section, MARK_START, MARK_END)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN)
    parser.add_argument("--label", type=Path, default=None, help="default: <scan>_label next to the scan")
    parser.add_argument("--labels", default="all", help="label values of the objects to segment, e.g. 2,4,6 (default: all)")
    parser.add_argument("--clicks", type=int, default=5, help="clicks per object")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--worker", choices=("latency", "rss"), help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--volume", choices=("synthetic", "scan"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.label = args.label or label_path(args.scan)
    labels = None if args.labels == "all" else [int(v) for v in args.labels.split(",")]

    if args.worker == "latency":
        result = worker_latency(args.backend, args.scan, args.label, labels, args.clicks)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.worker == "rss":
        result = worker_rss(args.backend, args.volume, args.scan, args.label, labels)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    for needed in (args.scan, args.label):
        if not needed.is_file():
            print(f"SKIPPED: {needed} is absent (the benchmark needs a full-size scan and its label from "
                  "../shared/data; pass --scan PATH [--label PATH])")
            return 0
    command = "python benchmarks/latency.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    common = ["--scan", str(args.scan), "--label", str(args.label), "--labels", args.labels]
    results = {}
    start = (time.perf_counter(), cpu_ticks(), children_cpu_s())
    for backend in BACKENDS:
        print(f"latency, {backend} ...", flush=True)
        results[backend] = run_worker(["--worker", "latency", "--backend", backend, "--clicks", str(args.clicks), *common])
    memory = []
    for which in ("synthetic", "scan"):
        for backend in BACKENDS:
            print(f"peak RSS, {backend}, {which} volume ...", flush=True)
            memory.append(run_worker(["--worker", "rss", "--backend", backend, "--volume", which, *common]))
    load = other_load(start, (time.perf_counter(), cpu_ticks(), children_cpu_s()))
    if load["other_cores"] > 0.2 or load["steal_cores"] > 0.2:
        print(f"WARNING: other processes used {load['other_cores']:.2f} cores (steal {load['steal_cores']:.2f}) "
              "while measuring: latencies are inflated; rerun on an idle machine", file=sys.stderr)
    section = render(args, results, memory, command, load)
    print()
    print(section)
    update_section(args.out, section)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
