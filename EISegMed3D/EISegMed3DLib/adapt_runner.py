"""The Qt-free half of "Adapt model to this folder": the command to run, its progress lines, its result.

The widget runs `eiseg-med3d adapt` (training.adapt) as a separate process, so Slicer stays free while the CPU
trains; this module builds that command and environment, reads the process's output, and reads the adapted
package's manifest to decide whether to offer it (only when it was better on the held-back scans).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[1]  # EISegMed3D/: holds the engine package `inference`
PROGRESS_LINE = re.compile(r"^adapt \[\s*(\d{1,3})%\] (.*)$")
# What adapting needs beyond the engine (module name -> pip requirement). PyTorch is optional: faster on a CPU.
REQUIRED = {"paddle": "paddlepaddle>=3.0", "paddle2onnx": "paddle2onnx>=2.0", "onnx": "onnx>=1.15"}
OPTIONAL = {"torch": "torch"}


def training_root(module_dir: Path = MODULE_DIR) -> Path | None:
    """The folder that holds the `training` package: the repository root when the module runs from a checkout
    (training is not shipped in the extension), or None when `training` is importable (installed with pip)."""
    if (module_dir.parent / "training" / "adapt.py").is_file():
        return module_dir.parent
    if importlib.util.find_spec("training.adapt") is not None:
        return None
    raise RuntimeError("Adapting needs the EISeg-Med3D training code, which the Slicer extension does not ship: "
                       "run Slicer with the module from a clone of the repository, or pip install it there "
                       "(pip install \"eiseg-med3d[train]\")")


def missing_requirements(optional: bool = False) -> list[str]:
    """pip requirements of the packages adapting needs that are not installed (with `optional`, PyTorch too)."""
    wanted = {**REQUIRED, **(OPTIONAL if optional else {})}
    return [req for module, req in wanted.items() if importlib.util.find_spec(module) is None]


def adapt_command(python: str, data_dir, minutes: float, model=None, resume: bool = False) -> list[str]:
    """The argument list (no shell: paths with spaces stay whole) that adapts `data_dir`."""
    command = [str(python), "-m", "inference.cli", "adapt", str(Path(data_dir)), "--minutes", f"{float(minutes):g}"]
    if model is not None and not resume:  # a resumed run keeps the base model it started from
        command += ["--from", str(Path(model))]
    if resume:
        command.append("--resume")
    return command


def adapt_environment(base_env: dict, module_dir: Path = MODULE_DIR) -> dict:
    """`base_env` with PYTHONPATH leading to the engine and the training code; unbuffered output."""
    roots = [str(module_dir)]
    root = training_root(module_dir)
    if root is not None:
        roots.append(str(root))
    if base_env.get("PYTHONPATH"):
        roots.append(base_env["PYTHONPATH"])
    return {**base_env, "PYTHONPATH": os.pathsep.join(roots), "PYTHONUNBUFFERED": "1"}


def parse_progress(line: str) -> tuple[int, str] | None:
    """(percent, message) of an 'adapt [ 37%] message' line, else None."""
    match = PROGRESS_LINE.match(line.strip())
    return (min(int(match[1]), 100), match[2]) if match else None


def package_from_output(lines: list[str]) -> Path | None:
    """The adapted package: the last line of the output, when it is a package folder."""
    for line in reversed(lines):
        if line.strip():
            path = Path(line.strip())
            return path if (path / "model.json").is_file() else None
    return None


def stopped_run(data_dir) -> Path | None:
    """The work folder of the last adaptation that was stopped (it can be resumed), if any."""
    from inference.model_choice import stopped_runs

    runs = stopped_runs(data_dir)
    return runs[-1] if runs else None


@dataclass(frozen=True)
class AdaptResult:
    package: Path
    verdict: str  # better, worse, unchanged, not checked
    before: dict | None
    after: dict | None
    held_back: list
    scans_used: list
    minutes: float

    @property
    def offer(self) -> bool:
        """Offer the switch only when the adapted model was better on the held-back scans."""
        return self.verdict == "better"


def read_result(package) -> AdaptResult:
    path = Path(package) / "model.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    adaptation, training = manifest.get("adaptation"), manifest.get("training", {})
    if not isinstance(adaptation, dict):
        raise ValueError(f"{path}: not an adapted model (no 'adaptation' entry)")
    return AdaptResult(Path(package), adaptation.get("verdict", "not checked"), adaptation.get("before"),
                       adaptation.get("after"), list(adaptation.get("held_back", [])),
                       list(training.get("scans_used", [])), float(training.get("minutes", 0.0)))


def _metrics(summary: dict | None) -> str:
    if not summary:
        return "not measured"
    return " ".join(f"{name} {summary[key]:.3f}" if summary.get(key) is not None else f"{name} -"
                    for name, key in (("mIoU@1", "iou@1"), ("mIoU@3", "iou@3"), ("mIoU@5", "iou@5")))


def result_text(result: AdaptResult) -> str:
    """What the user reads when the run ends."""
    head = (f"Trained {result.minutes:.1f} min on {len(result.scans_used)} finished scan(s); "
            f"checked on {len(result.held_back)} held-back scan(s)" + (f" ({', '.join(result.held_back)})"
                                                                       if result.held_back else "") + ".")
    lines = [head, f"Before (current model): {_metrics(result.before)}", f"After (adapted model): {_metrics(result.after)}"]
    lines.append({"better": "The adapted model is better on the held-back scans. Switch to it for this folder?",
                  "worse": "The adapted model is WORSE on the held-back scans: keeping the current model.",
                  "unchanged": "The adapted model is no better on the held-back scans: keeping the current model.",
                  "not checked": "With fewer than 3 finished scans nothing could be held back to check the adapted "
                                 "model, so it is not offered; finish more scans and adapt again."}
                 .get(result.verdict, f"Verdict: {result.verdict}"))
    lines.append(f"Saved in {result.package}")
    return "\n".join(lines)
