"""Iterative click-simulation training (Paddle): `python -m training.train --config training/configs/cpu.json`.

Each step: draw a batch with starting clicks, run 0..N no-grad passes that feed the prediction back as the
previous mask and add an error-driven click, then one gradient step on the last pass. Checkpoints hold the
weights, optimiser, and step, so a stopped run resumes exactly (the data stream depends on seed and step only).
Several GPUs (or both cores of a small CPU machine), one process each, gradients averaged:
`python -m paddle.distributed.launch --nproc_per_node 2 training/train.py --config ...`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file, as paddle.distributed.launch does (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "training"

from .augment import scale_bounds
from .batches import ExampleStream, read_json
from .heap import keep_freed_memory
from .round_slots import RoundSlots

ROOT = Path(__file__).resolve().parents[1]


def load_config(path) -> dict:
    config = read_json(path)
    if (config.get("sampling") or {}).get("intensity_scale") is not None:
        try:
            scale_bounds(config["sampling"]["intensity_scale"])
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    for key in ("manifest", "split", "cache"):
        if key in config and not Path(config[key]).is_absolute():
            config[key] = str(ROOT / config[key])
    return config


def learning_rate(config: dict, step: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak, by steps or by the time limit, whichever is further."""
    peak, warmup, total = config["lr"], config.get("warmup", 100), config["steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return peak * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * progress)))


def seed_for_rank(config: dict, rank: int) -> None:
    """One of several training processes: its own examples (seed), but the same click-pass count each step as every
    other rank (passes_seed, read by `run`), so none waits for another at the gradient average."""
    config.setdefault("passes_seed", config["seed"])
    config["seed"] = config["seed"] * 1000 + rank


def run(config: dict, trainer, run_dir: Path, steps: int | None = None, time_limit_s: float | None = None,
        first_step: int = 0) -> dict:
    """The training loop shared by every framework back end (`trainer` does the maths).

    With several processes (one per GPU, or per CPU core) each draws its own examples; only rank 0 logs and
    saves, and the clock is agreed between ranks so all use the same learning rate and stop at the same step.
    """
    lead = getattr(trainer, "rank", 0) == 0
    if config.get("keep_freed_memory", True):
        keep_freed_memory()  # every step allocates and frees the same large blocks: keep them mapped
    run_dir.mkdir(parents=True, exist_ok=True)
    # a checkpoint in the run folder wins; without one the run starts at `first_step` (a lost run folder taken up
    # again from committed weights: same schedule and examples from there on, a fresh optimiser)
    start_step = trainer.resume(run_dir) or first_step
    total = config["steps"] if steps is None else min(config["steps"], start_step + steps)
    manifest = read_json(config["manifest"])
    stream = make_stream(config, manifest, trainer)
    slots = round_slots(config)
    # the run's training clock goes on from where the checkpoint left it, so a resumed run's log and snapshots share
    # one clock (training.average_weights picks "the last N minutes" by it); time limit and schedule are this call's
    run_clock = trained_seconds(run_dir / "log.jsonl", start_step) if lead else 0.0
    log = open(run_dir / "log.jsonl", "a") if lead else None
    started = time.time()
    step = start_step
    snapshot_s = 60.0 * config.get("snapshot_minutes", 0)
    next_snapshot = next_due(snapshot_s, run_clock, snapshot_s) if snapshot_s else 0.0
    try:
        bar = progress(range(start_step, total), initial=start_step, total=config["steps"], desc=config.get("name", "train"),
                       disable=not lead)
        for step in bar:
            if slots is not None:
                examples, passes = slots.batch(step, stream), 0
            else:
                examples = stream.batch(step)
                passes = np.random.default_rng([config.get("passes_seed", config["seed"]), step, 1]).integers(0, config.get("max_click_passes", 3) + 1)
            for _ in range(passes):
                images, clicks, _ = stream.arrays(examples)
                examples = stream.add_error_clicks(examples, trainer.predict(images, clicks) > 0.5)
            images, clicks, targets = stream.arrays(examples)
            elapsed = trainer.agreed_max(time.time() - started)
            clock = run_clock + elapsed  # the run's, across resumes (log and snapshots)
            time_fraction = elapsed / time_limit_s if time_limit_s else 0.0
            lr = learning_rate(config, step, time_fraction)
            # each example's click round; fresh = examples not trained on before (all of them with no-grad passes)
            if slots is not None:
                rounds, fresh = list(slots.round), slots.round.count(0)
                loss, probabilities = trainer.train_step_predicting(images, clicks, targets, lr)
                slots.advance(step, stream, probabilities > 0.5)
            else:
                rounds, fresh = [int(passes)] * len(examples), len(examples)
                loss = trainer.train_step(images, clicks, targets, lr)
            bar.set_postfix(loss=f"{loss:.3f}", passes=int(passes))
            if log:
                log.write(json.dumps({"step": step, "loss": round(loss, 5), "passes": int(passes), "t": round(clock, 1),
                                      "examples": len(examples) * getattr(trainer, "world", 1), "rounds": rounds,
                                      "fresh": fresh * getattr(trainer, "world", 1)}) + "\n")
            done = step + 1
            if done % config.get("checkpoint_every", 50) == 0 or done == total:
                trainer.save(run_dir, done)
                if log:
                    log.flush()
            if lead and snapshot_s and clock >= next_snapshot:
                trainer.save(run_dir, done)
                keep_snapshot(run_dir, done)
                next_snapshot = next_due(next_snapshot, clock, snapshot_s)
            if time_limit_s and elapsed > time_limit_s:
                trainer.save(run_dir, done)
                break
    finally:
        stream.close()
        if log:
            log.close()
    return {"steps_done": step + 1 - start_step if total > start_step else 0, "seconds": time.time() - started,
            "replica_spread": trainer.replica_spread()}


def make_stream(config: dict, manifest: dict, trainer):
    """The example stream: CPU worker processes (training.batches), or with `"stream": "torch"` examples made on
    the trainer's device (training.torch_stream; from the carry pack when the config names one)."""
    keys = read_json(config["split"])["train"]
    if config.get("stream", "cpu") == "torch":
        from .torch_stream import TorchExampleStream

        return TorchExampleStream.from_config(config, keys, manifest, trainer.device)
    return ExampleStream(config["cache"], keys, manifest, config["batch_size"], config["seed"], config.get("workers", 0),
                         config.get("case_sampling", "case"), config.get("sampling"), config.get("keep_freed_memory", True),
                         config.get("worker_nice", 0))


def round_slots(config: dict) -> RoundSlots | None:
    """`"rounds_per_example": N`: click rounds carried across steps (training.round_slots) instead of no-grad passes."""
    if not config.get("rounds_per_example"):
        return None
    if config.get("stream", "cpu") != "cpu":
        raise ValueError("rounds_per_example works with the CPU example stream (training.batches), not the torch stream")
    return RoundSlots(config["batch_size"], int(config["rounds_per_example"]))


def progress(iterable, **kwargs):
    """A tqdm bar, or the plain iterable where tqdm is not installed (a bare GPU machine)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(iterable)
    return tqdm(iterable, **kwargs)


class _NoBar:
    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, **_):
        pass


def logged_clock(log_path: Path) -> dict[int, float]:
    """Steps done -> the run's training clock then ("t" of the log line of the step before; where a run killed
    between checkpoints logged a step twice, the rerun's later line wins)."""
    clock = {}
    for line in log_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        clock[record["step"] + 1] = record["t"]
    return clock


def trained_seconds(log_path: Path, start_step: int) -> float:
    """The run's training clock at the step a resumed run starts from (0 for a new run)."""
    if start_step == 0 or not log_path.exists():
        return 0.0
    clock = logged_clock(log_path)
    return float(clock.get(start_step, max((t for s, t in clock.items() if s < start_step), default=0.0)))


def next_due(due: float, elapsed: float, period: float) -> float:
    """The first time on the `period` grid after `elapsed`: a run paused for an hour (kill -STOP) takes one
    snapshot when it wakes, not one a step until the grid catches up."""
    while due <= elapsed:
        due += period
    return due


def keep_snapshot(run_dir: Path, step: int) -> Path:
    """Copy the checkpoint's weights to snapshots/step_<n> (for the training curve: metric against examples seen)."""
    import shutil

    source = next(p for p in (run_dir / "paddle_weights.npz", run_dir / "model.pdparams") if p.exists())
    target = run_dir / "snapshots" / f"step_{step:07d}{source.suffix}"
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(source, target)
    return target


def run_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--run-dir", type=Path, help="checkpoints and log (default runs/<config name>)")
    parser.add_argument("--steps", type=int, help="stop after this many more steps (resume later)")
    parser.add_argument("--time-limit", type=float, help="stop (with a checkpoint) after this many seconds; the "
                        "learning-rate schedule then follows the clock, so such a run does not resume exactly")
    parser.add_argument("--init", type=Path, help="weights to start a new run from (.pdparams, or .npz of Paddle names)")
    parser.add_argument("--start-step", type=int, default=0,
                        help="with --init and no checkpoint in the run folder: begin the schedule and the example "
                        "stream at this step (a run folder lost between sessions, taken up from its committed "
                        "weights with a fresh optimiser)")
    return parser


def launch(argv, description: str, make_trainer, load_init) -> int:
    """Parse the command line, build the trainer, optionally load starting weights, train, report speed."""
    parser = run_parser(description)
    args = parser.parse_args(argv)
    if args.start_step and not args.init:
        parser.error("--start-step needs --init (the weights of that step)")
    config = load_config(args.config)
    trainer = make_trainer(config)
    if args.init:
        load_init(trainer, args.init)  # a checkpoint in the run folder, if any, still wins (resume)
    summary = run(config, trainer, args.run_dir or ROOT / "runs" / config["name"], args.steps, args.time_limit,
                  first_step=args.start_step)
    world = getattr(trainer, "world", 1)
    if getattr(trainer, "rank", 0) == 0:
        print(f"{summary['steps_done']} steps in {summary['seconds']:.0f} s "
              f"({3600 * summary['steps_done'] / max(summary['seconds'], 1e-9):.0f} steps/hour) on {trainer.device}"
              + (f" x {world} processes; replicas differ by {summary['replica_spread']:.3g}" if world > 1 else ""))
    if summary["replica_spread"] > 1e-5:
        raise RuntimeError(f"the {world} training processes ended with different weights "
                           f"(spread {summary['replica_spread']:.3g}): gradients were not averaged")
    return 0


def main(argv=None) -> int:
    from .network import load_weights
    from .paddle_trainer import PaddleTrainer

    return launch(argv, __doc__.splitlines()[0], PaddleTrainer, lambda trainer, path: load_weights(trainer.net, path))


if __name__ == "__main__":
    raise SystemExit(main())
