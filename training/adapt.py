"""Adapt the model in use to a data folder: fine-tune it on the folder's finished scans, on this computer.

    eiseg-med3d adapt DATA_DIR [--minutes 10] [--from MODEL] [--resume]

1. The finished scans (EISegMed3D.json `finished`) and their <scan>_label.nii.gz are checked and cached; every
   label value is one object. With 3 or more finished, the most recently finished fifth (at least one) is held
   back to judge the result; the rest train.
2. The base model (default: the folder's chosen model, else the bundled one) is judged on the held-back scans
   by the protocol's simulated user (training.evaluation), then fine-tuned with the shared training loop
   (training.train.run: same sampler, click simulation and loss) from the package's own weights, with the
   network settings of its manifest and the loss / prompt recipe it was trained with (base_recipe), for the
   minutes given. Ctrl-C (or SIGTERM) stops after the current step
   with a checkpoint; --resume continues it.
3. The result is exported as a complete package (Paddle graph, legacy pair, ONNX, parity checked) into
   DATA_DIR/EISegMed3D-models/adapted-<time>/ and judged the same way. Its model.json names the base model,
   the scans used and held back, examples seen, minutes, and before/after accuracy ("adaptation").
Progress lines read "adapt [ 37%] <what>"; the package folder is the last line of the output.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from inference.model_choice import MODELS_FOLDER, STATE_NAME, stopped_runs

from .folder_data import AdaptError, FinishedScan, finished_scans, object_values, read_scan, write_cache

ROOT = Path(__file__).resolve().parents[1]

PACKAGE_PREFIX = "adapted-"
SUMMARY_KEYS = ("objects", "iou@1", "iou@3", "iou@5", "dice@1", "dice@3", "dice@5", "noc@85", "nof@85")
BETTER_BY = 0.005  # mIoU@3 must rise by at least this to call the adapted model better (and offer it)
PHASES = {"prepare": (0.0, 0.05), "before": (0.05, 0.15), "train": (0.15, 0.85), "export": (0.85, 0.92),
          "after": (0.92, 1.0)}
EXIT_STOPPED = 130


# --- reporting ------------------------------------------------------------------------------------------------
class Reporter:
    """Progress lines 'adapt [ NN%] message' on stdout (the Slicer button parses them), flushed at once."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def __call__(self, phase: str, fraction: float, message: str) -> None:
        lo, hi = PHASES[phase]
        overall = lo + (hi - lo) * min(max(fraction, 0.0), 1.0)
        self.line(f"adapt [{100 * overall:3.0f}%] {message}")

    def line(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)


# --- stopping and the training clock ----------------------------------------------------------------------------
class StopRequest:
    """First Ctrl-C / SIGTERM: finish the current step, checkpoint, stop. A second Ctrl-C interrupts at once."""

    def __init__(self, say):
        self.requested = False
        self.say = say
        self._told = False
        self._previous = {}

    def _handle(self, signum, frame):
        # Only set the flag: a handler that printed could wait forever on a lock its own thread holds.
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> bool:
        """Whether a stop was asked (said once, from the training loop, outside the handler)."""
        if self.requested and not self._told:
            self._told = True
            self.say("stopping after this training step (a checkpoint is kept; --resume continues)")
        return self.requested

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class ResumedClock:
    """The trainer, with its clock counting the training time of earlier (stopped) sessions of this run.

    training.train.run asks `agreed_max(elapsed)` once per step for the learning-rate schedule and the time
    limit; adding the earlier seconds keeps the schedule continuous over a stop and resume, and a stop request
    reads as "time is up", so the loop ends after the step with a checkpoint.
    """

    def __init__(self, trainer, earlier_s: float, stop: StopRequest):
        self._trainer, self._earlier, self._stop = trainer, earlier_s, stop

    def agreed_max(self, value: float) -> float:
        return float("inf") if self._stop.check() else self._trainer.agreed_max(value) + self._earlier

    def __getattr__(self, name):
        return getattr(self._trainer, name)


# --- what trains and with what -----------------------------------------------------------------------------------
def _missing(*modules) -> list[str]:
    """The modules that cannot be imported (imported here: a broken install counts as missing too)."""
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def choose_trainer(name: str):
    """(trainer class, loader of .npz Paddle-named weights, file the trainer's checkpoint leaves them in, label)."""
    if name == "auto":
        name = "torch" if not _missing("torch") else "paddle"
    if name == "torch":
        if _missing("torch"):
            raise AdaptError("adapting with --trainer torch needs PyTorch: pip install torch "
                             "(CPU-only: pip install torch --index-url https://download.pytorch.org/whl/cpu)")
        from .torch_bridge import TorchTrainer, load_paddle_named

        return TorchTrainer, load_paddle_named, "paddle_weights.npz", "torch"
    if name == "paddle":
        if _missing("paddle"):
            raise AdaptError("adapting with --trainer paddle needs PaddlePaddle: pip install paddlepaddle")
        from .network import load_weights
        from .paddle_trainer import PaddleTrainer

        return PaddleTrainer, lambda trainer, path: load_weights(trainer.net, path), "model.pdparams", "paddle"
    raise AdaptError(f"--trainer {name!r}: use auto, torch or paddle")


def check_dependencies() -> None:
    missing = _missing("paddle", "paddle2onnx", "onnx", "onnxruntime")
    if missing:
        raise AdaptError(f"adapting needs {', '.join(missing)} to export the adapted model: "
                         f"pip install {' '.join(missing).replace('paddle ', 'paddlepaddle ')} "
                         "(or, in the repository: pip install -e \".[train]\")")


def check_writable(folder: Path) -> Path:
    models = folder / MODELS_FOLDER
    probe = models / f".write-test-{os.getpid()}"
    try:
        models.mkdir(exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise AdaptError(f"{folder}: the data folder is not writable ({exc.strerror or exc}); the adapted model is "
                         "saved inside it - copy the folder somewhere writable or fix its permissions") from exc
    return models


def hold_back(scans: list[FinishedScan]) -> tuple[list[FinishedScan], list[FinishedScan]]:
    """(train, held back): with 3+ finished scans the latest finished fifth, at least one, is held back."""
    if len(scans) < 3:
        return list(scans), []
    count = max(1, round(len(scans) / 5))
    return list(scans[:-count]), list(scans[-count:])


def base_model_path(data_dir: Path, given) -> Path:
    from inference.model import default_package
    from inference.model_choice import chosen_model

    if given is not None:
        path = Path(given)
        path = path.parent if path.name == "model.json" else path
        if not (path / "model.json").is_file():
            raise AdaptError(f"{path}: not a model package folder (no model.json); --from needs one")
        return path.resolve()
    return (chosen_model(data_dir) or default_package()).resolve()


def training_manifest(base: dict) -> dict:
    """The base manifest without what belongs to its own weights (files, hashes, export, results, history)."""
    drop = ("files", "sha256", "export", "validation", "training", "adaptation", "network")
    return {k: v for k, v in base.items() if k not in drop}


RECIPE_KEYS = ("precision", "band_weight", "error_weight", "focal_gamma", "boundary_loss", "max_click_passes",
               "sampling")  # loss and prompt simulation


def base_recipe(manifest: dict) -> dict:
    """The loss and prompt-simulation settings the base model was trained with, so adapting continues the same
    recipe: its manifest's training.config (an adapted model records it), else the config file of its last
    training run (training.runs[-1].config, a path in this repository), else none (the loop's defaults)."""
    training = manifest.get("training") or {}
    config = training.get("config")
    if not isinstance(config, dict):
        runs = training.get("runs") or [{}]
        path = ROOT / str(runs[-1].get("config", "")) if isinstance(runs[-1], dict) else None
        try:
            config = json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            config = {}
    return {key: config[key] for key in RECIPE_KEYS if key in config}


def training_config(work: Path, network: dict, recipe: dict, args: dict) -> dict:
    return {"name": "adapt", "seed": args["seed"], "steps": args["steps"] or 10 ** 6,
            "batch_size": args["batch_size"], "lr": args["lr"], "warmup": args["warmup"], "weight_decay": 1e-4,
            "checkpoint_every": 10, "max_click_passes": 3, "workers": 0, **recipe, "network": network,
            "manifest": str(work / "base_manifest.json"), "split": str(work / "split.json"),
            "cache": str(work / "cache")}


# --- judging -------------------------------------------------------------------------------------------------------
def label_names(data_dir: Path) -> dict:
    from inference.progress import ProgressFile

    return {str(row["labelValue"]): row["name"] for row in ProgressFile(data_dir).label_table()}


def write_eval_folder(work: Path, scans: list[FinishedScan], names: dict) -> Path:
    """A dataset.json of the held-back scans (absolute paths), so training.evaluation judges them as it judges
    any data folder."""
    folder = work / "held_back"
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for scan in scans:
        _, label = read_scan(scan)
        counts = object_values(label)
        cases.append({"case": scan.rel, "image": str(scan.image.resolve()), "label": str(scan.label.resolve()),
                      "label_voxels": {str(v): n for v, n in counts.items()},
                      "label_names": {str(v): names.get(str(v), f"label {v}") for v in counts}})
    (folder / "dataset.json").write_text(json.dumps({"name": "held back", "cases": cases}, indent=1), encoding="utf-8")
    return folder


def judge(model_dir: Path, eval_folder: Path, max_clicks: int, report, phase: str) -> dict:
    """Mean accuracy of a model on the held-back scans with the protocol's simulated user."""
    from inference.model import load_model

    from .data import MIN_OBJECT_VOXELS
    from .evaluation import report as evaluation_report
    from .evaluation.run import evaluate

    report(phase, 0.0, f"judging {model_dir.name} on the held-back scans ({max_clicks} clicks per object)")
    results = evaluate([eval_folder], load_model(model_dir), max_clicks=max_clicks, min_voxels=MIN_OBJECT_VOXELS,
                       progress=False)
    aggregate = evaluation_report.aggregates(results["runs"]["model"])["all"]
    summary = {key: aggregate.get(key) for key in SUMMARY_KEYS}
    report(phase, 1.0, f"{model_dir.name}: mIoU@1 {_fmt(summary['iou@1'])}, mIoU@3 {_fmt(summary['iou@3'])}, "
                       f"NoC@85 {_fmt(summary['noc@85'], 1)}")
    return summary


def verdict(before: dict | None, after: dict | None) -> str:
    """better / worse / unchanged by mIoU@3 on the held-back scans; 'not checked' without any."""
    if not before or not after or before.get("iou@3") is None or after.get("iou@3") is None:
        return "not checked"
    change = after["iou@3"] - before["iou@3"]
    return "better" if change >= BETTER_BY else "worse" if change <= -BETTER_BY else "unchanged"


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- the run ---------------------------------------------------------------------------------------------------------
def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def new_run(data_dir: Path, models: Path, base: Path, options: dict, say) -> tuple[Path, dict]:
    scans = finished_scans(data_dir)
    train, held = hold_back(scans)
    stamp = _stamp()
    work = models / f".{PACKAGE_PREFIX}{stamp}"
    while work.exists():  # two runs in one second
        stamp += "b"
        work = models / f".{PACKAGE_PREFIX}{stamp}"
    work.mkdir()
    base_manifest = json.loads((base / "model.json").read_text(encoding="utf-8"))
    state = {"status": "new", "stamp": stamp, "data_dir": str(data_dir), "base": str(base),
             "base_name": base_manifest.get("name"), "base_sha256": base_manifest.get("sha256", {}),
             "train": [s.rel for s in train], "held_back": [s.rel for s in held],
             "keys": {s.rel: s.key for s in scans}, "options": options, "train_seconds": 0.0, "steps": 0}
    _write_json(work / STATE_NAME, state)
    if not held:
        say(f"only {len(scans)} finished scan(s): none held back, so the adapted model cannot be checked "
            "(finish 3 or more to get a before/after comparison)")
    return work, state


def adapt(data_dir, minutes: float = 10.0, base=None, resume: bool = False, steps: int | None = None,
          trainer: str = "auto", lr: float = 1e-4, batch_size: int = 2, warmup: int = 5, seed: int = 0,
          eval_clicks: int = 10, report: Reporter | None = None) -> Path | None:
    """Run (or resume) an adaptation; returns the package folder, or None when stopped early with a checkpoint."""
    report = report or Reporter()
    data_dir = Path(data_dir).absolute()
    if not data_dir.is_dir():
        raise AdaptError(f"{data_dir}: not a folder")
    check_dependencies()
    models = check_writable(data_dir)
    stopped = stopped_runs(data_dir)
    if resume:
        if not stopped:
            raise AdaptError(f"{models}: no stopped adaptation to resume; run without --resume to start one")
        work = stopped[-1]
        state = json.loads((work / STATE_NAME).read_text(encoding="utf-8"))
        state["options"].update({k: v for k, v in (("minutes", minutes), ("steps", steps)) if v is not None})
        options = state["options"]
        trainer = options["trainer"]  # its checkpoint is that back end's
    trainer_class, load_init, weights_name, trainer_label = choose_trainer(trainer)
    if resume:
        base = Path(state["base"])
        report.line(f"resuming {work.name}: {state['train_seconds'] / 60:.1f} of {options['minutes']:g} minutes done")
    else:
        options = {"minutes": minutes, "steps": steps, "lr": lr, "batch_size": batch_size, "warmup": warmup,
                   "seed": seed, "eval_clicks": eval_clicks, "trainer": trainer_label}
        base = base_model_path(data_dir, base)
        if stopped:
            report.line(f"note: a stopped adaptation exists ({stopped[-1].name}); --resume continues it")
        work, state = new_run(data_dir, models, base, options, report.line)
    report.line(f"base model: {base}")
    report.line(f"training on {len(state['train'])} finished scan(s), {len(state['held_back'])} held back"
                + (f": {', '.join(state['held_back'])}" if state["held_back"] else ""))
    scans = {rel: FinishedScan(rel, data_dir / rel, _label_of(data_dir / rel), key) for rel, key in state["keys"].items()}
    try:
        return _continue(work, state, base, scans, trainer_class, load_init, weights_name, report)
    except AdaptError:
        if state["status"] == "new":  # bad data found before any training: leave nothing to resume
            shutil.rmtree(work, ignore_errors=True)
        raise


def _label_of(image: Path) -> Path:
    from inference.datafolder import label_path

    return label_path(image)


def network_settings(manifest: dict, where: Path) -> dict:
    """The base package's `network` entry as training settings (so adapting follows its architecture)."""
    network = manifest.get("network")
    if not isinstance(network, dict):
        raise AdaptError(f"{where}: the manifest has no 'network' entry, so its network cannot be rebuilt for "
                         "training (only packages written by training/package_model.py can be adapted)")
    return {k: v for k, v in network.items() if k not in ("class", "parameters")}


def base_weights(base: Path, out: Path) -> None:
    """The base package's weights as .npz of Paddle names, checked against its ONNX graph."""
    from .package_weights import extract

    if out.exists():
        return
    try:
        extract(base, out)
    except (ValueError, KeyError, OSError) as exc:
        out.unlink(missing_ok=True)
        raise AdaptError(f"{base}: cannot read the model's weights back for training ({exc})") from exc


def _continue(work, state, base, scans, trainer_class, load_init, weights_name, report) -> Path | None:
    options = state["options"]
    train_scans = [scans[rel] for rel in state["train"]]
    held_scans = [scans[rel] for rel in state["held_back"]]
    base_manifest = json.loads((base / "model.json").read_text(encoding="utf-8"))
    network = network_settings(base_manifest, base / "model.json")
    manifest = training_manifest(base_manifest)
    _write_json(work / "base_manifest.json", manifest)
    write_cache(train_scans, manifest, work / "cache", lambda f, m: report("prepare", 0.5 * f, m))
    _write_json(work / "split.json", {"train": [s.key for s in train_scans], "val": []})
    base_weights(base, work / "base_weights.npz")
    report("prepare", 1.0, f"read the weights of {base.name} ({network})")
    eval_folder = write_eval_folder(work, held_scans, label_names(Path(state["data_dir"]))) if held_scans else None
    if eval_folder and state.get("before") is None:
        state["before"] = judge(base, eval_folder, options["eval_clicks"], report, "before")
        _write_json(work / STATE_NAME, state)

    config = training_config(work, network, base_recipe(base_manifest), options)
    _write_json(work / "config.json", config)
    run_dir = work / "run"
    if not _train(config, run_dir, state, work, trainer_class, load_init, report):
        return None

    package_dir = _export(config, run_dir / weights_name, work, state, base_manifest, report)
    after = judge(package_dir, eval_folder, options["eval_clicks"], report, "after") if eval_folder else None
    result = _finish(package_dir, work, state, after)
    report.line(f"before (base model): {_summary_line(state.get('before'))}")
    report.line(f"after (adapted):     {_summary_line(after)}")
    report.line(f"verdict: {result['verdict']}" + ("" if result["verdict"] != "worse" else
                                                   " - the adapted model is worse on the held-back scans; keep the base model"))
    report.line(str(package_dir))
    return package_dir


def _summary_line(summary: dict | None) -> str:
    if not summary:
        return "not measured (no held-back scan)"
    return (f"mIoU@1 {_fmt(summary['iou@1'])}  mIoU@3 {_fmt(summary['iou@3'])}  mIoU@5 {_fmt(summary['iou@5'])}  "
            f"NoC@85 {_fmt(summary['noc@85'], 1)}  ({summary['objects']} objects)")


def _train(config, run_dir, state, work, trainer_class, load_init, report) -> bool:
    """Fine-tune until the minutes (or steps) are used; False when stopped early (checkpoint kept)."""
    from .train import run

    options = state["options"]
    limit_s = 60.0 * options["minutes"]
    cap = options["steps"]
    if state["train_seconds"] >= limit_s or (cap and state["steps"] >= cap):
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = trainer_class(dict(config))
    load_init(trainer, work / "base_weights.npz")  # a checkpoint in run_dir, if any, wins (run resumes it)
    state["status"] = "training"
    _write_json(work / STATE_NAME, state)
    with StopRequest(report.line) as stop:
        ticker = _Ticker(lambda: (state["train_seconds"] + time.time() - started) / limit_s,
                         lambda f: report("train", f, f"training {_clock(f * limit_s)} of {_clock(limit_s)}"))
        started = time.time()
        report("train", state["train_seconds"] / limit_s, f"training started ({_clock(limit_s)} in all; Ctrl-C stops "
               "with a checkpoint)")
        ticker.start()
        try:
            summary = run(config, ResumedClock(trainer, state["train_seconds"], stop), run_dir,
                          steps=None, time_limit_s=limit_s)
        finally:
            ticker.stop()
    state["train_seconds"] += summary["seconds"]
    state["steps"] = int((run_dir / "step.txt").read_text(encoding="utf-8"))
    state["status"] = "stopped" if stop.requested else "trained"
    _write_json(work / STATE_NAME, state)
    if stop.requested:
        report.line(f"stopped after {state['steps']} steps ({state['train_seconds'] / 60:.1f} min); "
                    f"continue with: eiseg-med3d adapt {state['data_dir']} --resume")
        return False
    report("train", 1.0, f"trained {state['steps']} steps ({state['steps'] * config['batch_size']} examples) "
                         f"in {state['train_seconds'] / 60:.1f} min; {summary['steps_done']} of them in this session")
    return True


class _Ticker(threading.Thread):
    """Reports training progress every few seconds while the loop runs in the main thread."""

    def __init__(self, fraction, say, every_s: float = 5.0):
        super().__init__(daemon=True)
        self.fraction, self.say, self.every_s = fraction, say, every_s
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(self.every_s):
            self.say(min(self.fraction(), 1.0))

    def stop(self):
        self._done.set()
        self.join()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _export(config, weights: Path, work: Path, state: dict, base_manifest: dict, report) -> Path:
    from .package_model import package

    models = work.parent
    final = models / f"{PACKAGE_PREFIX}{state['stamp']}"
    partial = models / f".{PACKAGE_PREFIX}{state['stamp']}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    report("export", 0.0, "exporting the adapted model (Paddle graph, legacy pair, ONNX, parity check)")
    root_name = str(base_manifest.get("name", "model")).split("-adapted-")[0]
    options = state["options"]
    training = {
        "adapted_from": {"name": state["base_name"], "path": state["base"], "sha256": state["base_sha256"]},
        "data_dir": state["data_dir"], "scans_used": state["train"], "held_back": state["held_back"],
        "steps": state["steps"], "examples_seen": state["steps"] * config["batch_size"],
        "minutes": round(state["train_seconds"] / 60, 2), "minutes_asked": options["minutes"],
        "config": {key: config[key] for key in RECIPE_KEYS if key in config},
        "trainer": options["trainer"], "recipe": "training.train.run (the project's click-simulation training), "
        f"lr {options['lr']:g} with {options['warmup']} warm-up steps then cosine over the time given, batch "
        f"{config['batch_size']}, from the base model's weights",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    from paddle.utils import unique_name

    with unique_name.guard():  # parameter names numbered from 0, as training.package_weights reads them back
        package(config, weights, partial, f"{root_name}-adapted-{state['stamp']}",
                f"{base_manifest.get('name')} adapted to {Path(state['data_dir']).name} "
                f"({len(state['train'])} finished scans)", training)
    os.replace(partial, final)
    report("export", 1.0, f"wrote {final}")
    return final


def _finish(package_dir: Path, work: Path, state: dict, after: dict | None) -> dict:
    from .export import write_manifest

    manifest = json.loads((package_dir / "model.json").read_text(encoding="utf-8"))
    result = {"held_back": state["held_back"], "eval_clicks": state["options"]["eval_clicks"],
              "protocol": "training.evaluation (shared/docs/evaluation_protocol.md simulated user), mean over the "
                          "held-back scans' objects; NoC on IoU",
              "before": state.get("before"), "after": after, "verdict": verdict(state.get("before"), after),
              "better_by": BETTER_BY}
    manifest["adaptation"] = result
    write_manifest(package_dir, manifest)
    state["status"] = "done"
    state["package"] = str(package_dir)
    _write_json(work / STATE_NAME, state)
    shutil.rmtree(work)  # cache (copies of the user's scans) and checkpoints are no longer needed
    return result


# --- command line -----------------------------------------------------------------------------------------------------
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="eiseg-med3d adapt", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="data folder with finished scans")
    parser.add_argument("--minutes", type=float, default=None, help="training time (default 10; on --resume: "
                        "the run's own)")
    parser.add_argument("--from", dest="base", default=None, metavar="MODEL",
                        help="model package to start from (default: the folder's chosen model, else the bundled one)")
    parser.add_argument("--resume", action="store_true", help="continue the last stopped adaptation of this folder")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many training steps at most")
    parser.add_argument("--trainer", default="auto", choices=("auto", "torch", "paddle"),
                        help="training back end (auto: PyTorch when installed, else Paddle)")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--eval-clicks", type=int, default=10, help="simulated clicks per held-back object")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    minutes = args.minutes if args.minutes is not None or args.resume else 10.0
    if minutes is not None and minutes <= 0:
        raise AdaptError(f"--minutes {minutes:g}: must be more than 0")
    result = adapt(args.data_dir, minutes=minutes, base=args.base, resume=args.resume, steps=args.steps,
                   trainer=args.trainer, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                   eval_clicks=args.eval_clicks)
    return 0 if result is not None else EXIT_STOPPED


if __name__ == "__main__":
    raise SystemExit(main())
