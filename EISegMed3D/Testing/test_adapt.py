"""`eiseg-med3d adapt` (issue 11): an untrained tiny model adapts on a synthetic folder of finished scans and
gets better on its held-back scan; stop and resume; the bundled model and the labels stay untouched; clear
errors for unusable folders. No ../shared/data needed."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from adapt_fixtures import REPO, synthetic_folder, untrained_package, write_scan

TRAIN_ARGS = ["--steps", "40", "--lr", "3e-3", "--eval-clicks", "5", "--trainer", "paddle"]


def _digests(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def base_package(tmp_path_factory) -> Path:
    return untrained_package(tmp_path_factory.mktemp("adapt_base") / "tiny-untrained")


@pytest.fixture(scope="module")
def adapted(tmp_path_factory, base_package) -> dict:
    """One adaptation through the CLI: 4 finished scans (3 train, 1 held back), 1 unfinished."""
    from inference.cli import main
    from inference.model import default_package

    data = synthetic_folder(tmp_path_factory.mktemp("adapt_data") / "folder", finished=4, unfinished=1)
    labels_before = {p.name: p.read_bytes() for p in data.glob("*_label.nii.gz")}
    bundled_before, base_before = _digests(default_package()), _digests(base_package)
    out = tmp_path_factory.mktemp("adapt_out") / "stdout.txt"
    with open(out, "w", encoding="utf-8") as handle:
        saved, sys.stdout = sys.stdout, handle
        try:
            code = main(["adapt", str(data), "--from", str(base_package), "--minutes", "10"] + TRAIN_ARGS)
        finally:
            sys.stdout = saved
    lines = out.read_text(encoding="utf-8").splitlines()
    return {"code": code, "lines": lines, "data": data, "labels_before": labels_before,
            "bundled_before": bundled_before, "base_before": base_before}


def test_adapt_prints_the_package_folder_last_and_it_got_better(adapted, base_package):
    from inference.model import load_model

    assert adapted["code"] == 0, adapted["lines"][-20:]
    package = Path(adapted["lines"][-1])
    assert package.parent == adapted["data"] / "EISegMed3D-models" and package.name.startswith("adapted-")
    manifest = json.loads((package / "model.json").read_text(encoding="utf-8"))
    adaptation = manifest["adaptation"]
    assert adaptation["held_back"] == ["case_03.nii.gz"]  # the latest finished of four
    before, after = adaptation["before"], adaptation["after"]
    assert before["objects"] == after["objects"] == 2
    assert after["iou@3"] > before["iou@3"] + 0.05, (before, after)
    assert adaptation["verdict"] == "better"
    training = manifest["training"]
    assert training["scans_used"] == ["case_00.nii.gz", "case_01.nii.gz", "case_02.nii.gz"]
    assert training["held_back"] == ["case_03.nii.gz"]
    assert training["steps"] == 40 and training["examples_seen"] == 80
    assert training["adapted_from"]["name"] == "tiny-untrained" and Path(training["adapted_from"]["path"]) == base_package
    assert 0 < training["minutes"] < 10
    assert training["config"] == {"max_click_passes": 3}  # the recipe it trained with, for a next adaptation
    assert manifest["network"]["base"] == 4 and manifest["patch_shape"] == [32, 32, 32]
    assert max(manifest["export"]["parity_max_abs_diff"].values()) <= 1e-4
    assert set(manifest["files"]) == {"paddle", "paddle_legacy", "onnx"}
    for backend in ("paddle", "onnx"):
        assert load_model(package, backend=backend).name == manifest["name"]
    assert any(line.startswith("adapt [") and "training" in line for line in adapted["lines"])
    assert not list((adapted["data"] / "EISegMed3D-models").glob(".adapted-*"))  # work folder cleaned up


def test_adapt_leaves_the_bundled_model_the_base_and_the_labels_untouched(adapted, base_package):
    from inference.model import default_package

    assert _digests(default_package()) == adapted["bundled_before"]
    assert _digests(base_package) == adapted["base_before"]
    assert {p.name: p.read_bytes() for p in adapted["data"].glob("*_label.nii.gz")} == adapted["labels_before"]
    assert not (adapted["data"] / "case_04_label.nii.gz").exists()


def test_an_adapted_package_can_be_adapted_again(adapted, tmp_path):
    """Its weights read back (parameter names of the package it wrote) and it trains on."""
    from training.adapt import base_weights

    package = Path(adapted["lines"][-1])
    base_weights(package, tmp_path / "weights.npz")
    with np.load(tmp_path / "weights.npz") as arrays:
        assert "stem.conv.weight" in arrays.files


def _stopped_run(data: Path, base: Path) -> subprocess.CompletedProcess:
    """Start adapt as its own process with the command and environment the Slicer button uses, send Ctrl-C
    once training has started, and collect its output (killed, and so failing, if it hangs)."""
    from EISegMed3DLib.adapt_runner import adapt_command, adapt_environment

    command = adapt_command(sys.executable, data, 10, model=base) + ["--steps", "12", "--trainer", "paddle"]
    env = adapt_environment(dict(os.environ, OMP_NUM_THREADS="1"))
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watchdog = threading.Timer(600, process.kill)
    watchdog.start()
    try:
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "training started" in line:
                process.send_signal(signal.SIGINT)
        process.wait()
    finally:
        watchdog.cancel()
    return subprocess.CompletedProcess(command, process.returncode, "\n".join(lines))


def test_ctrl_c_keeps_a_checkpoint_and_resume_finishes_the_run(tmp_path, base_package):
    """Two finished scans: none can be held back, so the result is 'not checked' (and would not be offered)."""
    from EISegMed3DLib.adapt_runner import package_from_output, parse_progress
    from inference.cli import main

    data = synthetic_folder(tmp_path / "folder", finished=2, unfinished=0)
    stopped = _stopped_run(data, base_package)
    assert stopped.returncode == 130, stopped.stdout[-2000:]
    lines = stopped.stdout.splitlines()
    assert "--resume" in lines[-1] and package_from_output(lines) is None
    assert 15 <= [p for p, _ in filter(None, map(parse_progress, lines))][-1] < 85  # stopped while training
    (work,) = (data / "EISegMed3D-models").glob(".adapted-*")
    state = json.loads((work / "adapt_state.json").read_text(encoding="utf-8"))
    assert state["status"] == "stopped" and 1 <= state["steps"] < 12, state
    assert not list((data / "EISegMed3D-models").glob("adapted-*"))  # no package from a stopped run

    out = tmp_path / "resume.txt"
    with open(out, "w", encoding="utf-8") as handle:
        saved, sys.stdout = sys.stdout, handle
        try:
            assert main(["adapt", str(data), "--resume"]) == 0
        finally:
            sys.stdout = saved
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(f"resuming {work.name}")
    assert any(f"{12 - state['steps']} of them in this session" in line for line in lines)  # from the checkpoint
    manifest = json.loads((Path(lines[-1]) / "model.json").read_text(encoding="utf-8"))
    assert manifest["training"]["steps"] == 12 and manifest["training"]["examples_seen"] == 24
    assert manifest["training"]["trainer"] == "paddle"  # the resumed run kept its back end
    assert manifest["adaptation"]["verdict"] == "not checked" and manifest["adaptation"]["held_back"] == []
    assert not work.exists()  # cleaned up once the package is written


# --- choices -------------------------------------------------------------------------------------------------------
def test_hold_back_keeps_the_latest_finished_fifth_from_three_scans_on():
    from training.adapt import hold_back

    def sizes(n):
        train, held = hold_back(list(range(n)))
        assert train + held == list(range(n))
        return len(train), len(held)

    assert [sizes(n) for n in (1, 2, 3, 5, 7, 8, 20)] == [(1, 0), (2, 0), (2, 1), (4, 1), (6, 1), (6, 2), (16, 4)]


def test_verdict_calls_better_only_above_the_margin():
    from training.adapt import BETTER_BY, verdict

    assert verdict({"iou@3": 0.6}, {"iou@3": 0.6 + BETTER_BY + 1e-9}) == "better"
    assert verdict({"iou@3": 0.6}, {"iou@3": 0.602}) == "unchanged"
    assert verdict({"iou@3": 0.6}, {"iou@3": 0.5}) == "worse"
    assert verdict(None, {"iou@3": 0.9}) == "not checked"


def test_adapting_continues_the_base_models_loss_and_prompt_recipe(tmp_path):
    from training.adapt import base_recipe, training_config

    recorded = {"training": {"config": {"band_weight": 3.0, "sampling": {"box": 0.1}, "lr": 0.5, "steps": 9}}}
    assert base_recipe(recorded) == {"band_weight": 3.0, "sampling": {"box": 0.1}}  # not its lr or length
    by_run = {"training": {"runs": [{"config": "training/configs/smoke.json"}]}}
    assert base_recipe(by_run) == {"max_click_passes": 1}
    assert base_recipe({"training": {"runs": [{"config": "no/such.json"}]}}) == {} == base_recipe({})
    config = training_config(tmp_path, {"base": 4}, base_recipe(recorded),
                             {"seed": 0, "steps": None, "batch_size": 2, "lr": 1e-4, "warmup": 5})
    assert config["band_weight"] == 3.0 and config["lr"] == 1e-4 and config["network"] == {"base": 4}


# --- clear errors ----------------------------------------------------------------------------------------------------
def _adapt_error(capsys, *argv) -> str:
    from inference.cli import main

    assert main(["adapt", *map(str, argv), "--trainer", "paddle"]) == 2
    return capsys.readouterr().err


def test_no_finished_scans_is_a_clear_error(tmp_path, capsys, base_package):
    data = synthetic_folder(tmp_path / "f", finished=0, unfinished=2)
    error = _adapt_error(capsys, data, "--from", base_package)
    assert "no finished scans" in error and "EISegMed3D.json" in error


def test_missing_empty_and_misaligned_labels_are_clear_errors(tmp_path, capsys, base_package):
    data = synthetic_folder(tmp_path / "f", finished=3, unfinished=0)
    (data / "case_01_label.nii.gz").unlink()
    error = _adapt_error(capsys, data, "--from", base_package)
    assert "case_01_label.nii.gz" in error and "missing" in error

    write_scan(data, "case_01", seed=7)
    empty = sitk.ReadImage(str(data / "case_00_label.nii.gz")) * 0
    sitk.WriteImage(empty, str(data / "case_00_label.nii.gz"))
    error = _adapt_error(capsys, data, "--from", base_package)
    assert "case_00_label.nii.gz" in error and "empty" in error

    write_scan(data, "case_00", seed=8)
    shifted = sitk.ReadImage(str(data / "case_00_label.nii.gz"))
    shifted.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(data / "case_00_label.nii.gz"))
    error = _adapt_error(capsys, data, "--from", base_package)
    assert "case_00_label.nii.gz" in error and "grid" in error
    assert not list((data / "EISegMed3D-models").glob(".adapted-*"))  # nothing left to resume


def test_a_folder_that_cannot_hold_the_model_is_a_clear_error(tmp_path, capsys, base_package):
    data = synthetic_folder(tmp_path / "f", finished=3, unfinished=0)
    (data / "EISegMed3D-models").write_text("in the way")  # as root, permissions would not stop a write
    error = _adapt_error(capsys, data, "--from", base_package)
    assert "not writable" in error and str(data) in error


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_folder_is_a_clear_error(tmp_path, capsys, base_package):
    data = synthetic_folder(tmp_path / "f", finished=3, unfinished=0)
    data.chmod(0o555)
    try:
        error = _adapt_error(capsys, data, "--from", base_package)
    finally:
        data.chmod(0o755)
    assert "not writable" in error


def test_a_missing_training_dependency_says_how_to_install_it(tmp_path, capsys, monkeypatch, base_package):
    data = synthetic_folder(tmp_path / "f", finished=3, unfinished=0)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    from inference.cli import main

    assert main(["adapt", str(data), "--from", str(base_package), "--trainer", "torch"]) == 2
    assert "pip install torch" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "paddle2onnx", None)
    assert main(["adapt", str(data), "--from", str(base_package), "--trainer", "paddle"]) == 2
    assert "pip install paddle2onnx" in capsys.readouterr().err


# --- the benchmark's simulated user (benchmarks/adapt.py) ------------------------------------------------------------
def test_benchmark_user_folder_finishes_the_first_scans_of_a_source(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_adapt", REPO / "benchmarks" / "adapt.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from training.folder_data import finished_scans, read_scan

    source = tmp_path / "source"
    source.mkdir()
    cases = []
    for n in range(4):
        write_scan(source, f"case_{n:03d}", seed=200 + n)
        cases.append({"case": f"case_{n:03d}", "image": f"case_{n:03d}.nii.gz", "label": f"case_{n:03d}_label.nii.gz",
                      "label_names": {"1": "blob", "2": "small blob"}})
    (source / "dataset.json").write_text(json.dumps({"cases": cases[::-1]}), encoding="utf-8")
    listed = bench.source_cases(source)
    assert [c["case"] for c in listed] == ["case_000", "case_001", "case_002", "case_003"]
    folder = bench.user_folder(tmp_path / "user", source, listed[:3])
    scans = finished_scans(folder)
    assert [s.rel for s in scans] == ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    assert read_scan(scans[0])[1].max() == 2  # the reference label, through the link
    assert json.loads((folder / "EISegMed3D.json").read_text())["labels"][0] == {"name": "blob", "labelValue": 1}
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["source/case_001", "other/case_000"]}), encoding="utf-8")
    assert bench.seen_in_training(source, listed, split) == ["source/case_001"]
