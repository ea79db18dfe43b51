"""Training throughput, everything included (example generation, no-grad click passes, augmentation, train step):
the earlier pipeline (Paddle, one process per core) and the fast one (PyTorch twin, bf16 + channels-last, one
example worker overlapping the train step), side by side on the same machine, in turn.

    python benchmarks/train_throughput.py [--rounds 2] [--write]

Each pipeline trains from the bundled weights on the real training cache (runs/cache, `python -m training.data
--out runs/cache`); the rate is taken from the run's own log between a warm-up step and the last step, so process
start-up and case loading are not counted. Examples/h = steps x batch x processes / hours; new objects/h counts each
object once (with click rounds carried across steps one object is trained at several rounds).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
MARK_START, MARK_END = "<!-- throughput:start -->", "<!-- throughput:end -->"
INIT = ROOT / "runs" / "init" / "bundled_v1.npz"


def torch_command(config, run) -> list:
    return ["-m", "training.torch_bridge", "--config", str(config), "--run-dir", str(run), "--init", str(INIT)]


def torchrun_command(config, run) -> list:
    """One process per core, gradients averaged (gloo): torch's own launcher around torch_command."""
    return ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] + torch_command(config, run)


PIPELINES = {
    "before: Paddle, 2 processes x 1 core (cpu_continue.json)": {
        "config": "training/configs/cpu_continue.json", "steps": 20, "warmup": 4, "processes": 2,
        "command": lambda config, run: ["-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                                        str(run / "launch_logs"), str(ROOT / "training" / "train.py"), "--config",
                                        str(config), "--run-dir", str(run), "--init", str(INIT)],
        "env": {"OMP_NUM_THREADS": "1"}},
    "after: PyTorch fp32 (cpu_universal.json, precision fp32)": {
        "config": "training/configs/cpu_universal.json", "steps": 80, "warmup": 10, "processes": 1,
        "override": {"precision": "fp32"},
        "command": torch_command, "env": {}},
    "after: PyTorch bf16 + channels-last (cpu_universal.json)": {
        "config": "training/configs/cpu_universal.json", "steps": 80, "warmup": 10, "processes": 1,
        "command": torch_command, "env": {}},
    # Today's recipe (batch 4, up to 5 click passes, one example worker): glibc's heap as it comes, kept (training.heap),
    # and kept with the example worker at a lower priority
    **{f"recipe v7, {label}": {"config": "training/configs/cpu_universal_v7.json", "steps": 70, "warmup": 10,
                               "processes": 1, "override": override, "command": torch_command, "env": {}}
       for label, override in (("glibc's default heap (keep_freed_memory false)", {"keep_freed_memory": False}),
                               ("freed memory kept (training.heap)", {}),
                               ("freed memory kept, example worker at nice 10", {"worker_nice": 10}))},
    # v10's deeper network: up to 5 no-grad passes before each step, or the rounds carried across steps
    # (training.round_slots: every round 0-5 of each object trained once, no pass)
    **{f"recipe v10, {label}": {"config": "training/configs/cpu_universal_v10.json", "steps": 70, "warmup": 10,
                                "processes": 1, "override": override, "command": torch_command, "env": {}}
       for label, override in (("no-grad click passes 0-5", {}),
                               ("click rounds carried across steps (rounds_per_example 6)", {"rounds_per_example": 6}))},
    # The bundled model's recipe (v6): the next batch made by one example worker beside the 2-thread train step, or
    # in the train process between steps (no process competing for the two cores)
    **{f"recipe v6, {label}": {"config": "training/configs/cpu_universal_v6.json", "steps": 70, "warmup": 10,
                               "processes": 1, "override": override, "command": torch_command, "env": {}}
       for label, override in (("one example worker at nice 10", {"workers": 1, "worker_nice": 10}),
                               ("examples made in the train process (workers 0)", {"workers": 0}))},
    # v13's pair (soft targets; click passes 0-5 or 0-3), at the bundled recipe's 2 threads and no example worker
    # (the runs themselves went side by side at 1 thread each)
    **{f"recipe v13, {label}": {"config": f"training/configs/cpu_universal_v13{x}.json", "steps": 70, "warmup": 10,
                                "processes": 1, "override": {"threads": 2, "workers": 0}, "command": torch_command,
                                "env": {}}
       for label, x in (("soft targets, click passes 0-5 (v13a)", "a"), ("soft targets, click passes 0-3 (v13b)", "b"))},
    # The same recipes as one process on 2 threads (batch 4) or two processes on 1 thread each (batch 2 each, gradients
    # averaged: the same batch-4 step, test_torch_data_parallel); examples made in the train process either way
    **{f"{recipe}, {label}": {"config": f"training/configs/cpu_universal_{x}.json", "steps": steps, "warmup": 10,
                              "processes": processes, "override": {"threads": threads, "workers": 0, "batch_size": batch},
                              "command": command, "env": {"OMP_NUM_THREADS": str(threads)}}
       for recipe, x in (("data parallel v6", "v6"), ("data parallel v13a", "v13a"))
       for label, processes, threads, batch, steps, command in (
           ("1 process x 2 threads, batch 4", 1, 2, 4, 70, torch_command),
           ("2 processes x 1 thread, batch 2 each (torchrun, gloo)", 2, 1, 2, 70, torchrun_command))},
}


def measure(spec: dict, workdir: Path) -> dict:
    config = json.loads((ROOT / spec["config"]).read_text(encoding="utf-8"))
    config.update(spec.get("override", {}), steps=spec["steps"], checkpoint_every=10 ** 6, snapshot_minutes=0)
    for key in ("manifest", "split", "cache"):
        config[key] = str(ROOT / config[key])
    run = Path(tempfile.mkdtemp(dir=workdir))
    path = run / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "EISegMed3D")]), **spec["env"])
    done = subprocess.run([sys.executable] + spec["command"](path, run), cwd=ROOT, env=env, capture_output=True,
                          encoding="utf-8", errors="replace")
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    warm, last = lines[spec["warmup"] - 1], lines[-1]
    steps = last["step"] - warm["step"]
    hours = (last["t"] - warm["t"]) / 3600
    examples = steps * config["batch_size"] * spec["processes"]
    passes = statistics.mean(line["passes"] for line in lines[spec["warmup"]:])
    # objects not trained on before (with carried rounds an object is trained at several rounds; logs before the
    # "fresh" field: every example was new)
    fresh = sum(line.get("fresh", line["examples"]) for line in lines[spec["warmup"]:])
    # The same seed, data stream and start: the fp32 and bf16 runs are a matched pair, their losses comparable.
    losses = [line["loss"] for line in lines]
    return {"steps": steps, "seconds": round(last["t"] - warm["t"], 1), "examples_per_h": round(examples / hours),
            "new_objects_per_h": round(fresh / hours),
            "mean_passes": round(passes, 2), "loss_first_half": round(statistics.mean(losses[:len(losses) // 2]), 4),
            "loss_second_half": round(statistics.mean(losses[len(losses) // 2:]), 4)}


def render(results: dict, command: str, machine: str) -> str:
    lines = [MARK_START, "### Training throughput, everything included", "",
             f"`{command}` on {machine}. Each pipeline trains from the bundled weights on the real training cache; "
             "rates from each run's log after its warm-up steps (start-up and case loading not counted); the "
             "pipelines ran in turn, round by round. Examples/h = steps x batch x processes / hours; new objects/h "
             "counts each object once (carried click rounds train one object at several rounds).", "",
             "| pipeline | examples/h, median (each round) | new objects/h | steps timed | mean no-grad click passes | "
             "mean loss, first / second half |",
             "|---|---|---|---|---|---|"]
    baseline = None
    for name, rounds in results.items():
        rates = [r["examples_per_h"] for r in rounds]
        median = statistics.median(rates)
        baseline = baseline or median
        lines.append(f"| {name} | **{median:,.0f}** ({', '.join(f'{r:,}' for r in rates)}); "
                     f"x{median / baseline:.1f} | {statistics.median(r['new_objects_per_h'] for r in rounds):,.0f} | "
                     f"{sum(r['steps'] for r in rounds)} | "
                     f"{statistics.mean(r['mean_passes'] for r in rounds):.2f} | "
                     f"{statistics.mean(r['loss_first_half'] for r in rounds):.3f} / "
                     f"{statistics.mean(r['loss_second_half'] for r in rounds):.3f} |")
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from latency import cpu_model
    from sections import publish

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", help="comma list of pipeline name prefixes (before, after, recipe)")
    parser.add_argument("--write", action="store_true", help="rewrite this benchmark's section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not INIT.exists():
        raise SystemExit(f"{INIT}: missing; make it with python -m training.package_weights "
                         f"EISegMed3D/Resources/Models/eiseg-vnet-universal --out {INIT}")
    chosen = {name: spec for name, spec in PIPELINES.items()
              if not args.only or any(name.startswith(p) for p in args.only.split(","))}
    results = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory() as workdir:
        for round_ in range(args.rounds):
            for name, spec in chosen.items():
                results[name].append(measure(spec, Path(workdir)))
                print(f"round {round_ + 1}: {name}: {results[name][-1]}", flush=True)
    text = render(results, "python benchmarks/train_throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv),
                  f"{cpu_model()}, {os.cpu_count()} cores")
    publish(text, args.write, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
