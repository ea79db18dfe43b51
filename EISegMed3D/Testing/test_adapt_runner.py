"""The Qt-free half of Slicer's "Adapt model to this folder" (EISegMed3DLib.adapt_runner) and the folder's
remembered model choice (inference.model_choice, validated by inference.progress). Real files, no Slicer."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from adapt_fixtures import REPO


def _package(folder: Path, verdict: str, before=0.5, after=0.6) -> Path:
    folder.mkdir(parents=True)
    summary = lambda v: {"objects": 3, "iou@1": v - 0.1, "iou@3": v, "iou@5": v + 0.01, "noc@85": 7.0}
    manifest = {"name": "m-adapted-x", "training": {"scans_used": ["a.nii.gz", "b.nii.gz"], "minutes": 9.5},
                "adaptation": {"verdict": verdict, "before": summary(before), "after": summary(after),
                               "held_back": ["c.nii.gz"]}}
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_command_is_an_argument_list_and_resume_keeps_the_runs_own_base():
    from EISegMed3DLib.adapt_runner import adapt_command

    command = adapt_command("/opt/Slicer dir/bin/PythonSlicer", "/data/my scans", 10, model="/m/adapted 1")
    assert command == ["/opt/Slicer dir/bin/PythonSlicer", "-m", "inference.cli", "adapt", "/data/my scans",
                       "--minutes", "10", "--from", "/m/adapted 1"]
    resumed = adapt_command("py", "/data", 7.5, model="/m", resume=True)
    assert resumed[-1] == "--resume" and "--from" not in resumed and resumed[resumed.index("--minutes") + 1] == "7.5"


def test_environment_reaches_the_engine_and_the_training_code_of_the_checkout():
    from EISegMed3DLib.adapt_runner import MODULE_DIR, adapt_environment, training_root

    assert training_root() == REPO
    env = adapt_environment({"PATH": "/bin", "PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(MODULE_DIR), str(REPO), "/elsewhere"]
    assert env["PATH"] == "/bin" and env["PYTHONUNBUFFERED"] == "1"


def test_progress_lines_are_parsed_and_others_ignored():
    from EISegMed3DLib.adapt_runner import parse_progress

    assert parse_progress("adapt [ 37%] training 1:51 of 5:00\n") == (37, "training 1:51 of 5:00")
    assert parse_progress("adapt [100%] adapted-1: mIoU@3 0.8") == (100, "adapted-1: mIoU@3 0.8")
    assert parse_progress("adapt:  12%|###   | 5/40 [00:02<00:14, loss=2.1]") is None
    assert parse_progress("base model: /x") is None


def test_the_package_is_the_last_line_only_when_it_is_a_package(tmp_path):
    from EISegMed3DLib.adapt_runner import package_from_output

    package = _package(tmp_path / "adapted-1", "better")
    assert package_from_output(["adapt [ 99%] x", str(package), ""]) == package
    assert package_from_output([str(package), "stopped after 3 steps; continue with --resume"]) is None
    assert package_from_output([]) is None


@pytest.mark.parametrize("verdict, offered", [("better", True), ("worse", False), ("unchanged", False),
                                              ("not checked", False)])
def test_only_a_better_model_is_offered_and_the_text_says_why(tmp_path, verdict, offered):
    from EISegMed3DLib.adapt_runner import read_result, result_text

    result = read_result(_package(tmp_path / "p", verdict, before=0.5, after=0.6 if offered else 0.4))
    assert result.offer is offered
    text = result_text(result)
    assert "mIoU@3 0.500" in text and "2 finished scan(s)" in text and "c.nii.gz" in text
    assert ("Switch to it" in text) is offered
    if verdict == "worse":
        assert "WORSE" in text


def test_a_plain_model_is_not_read_as_an_adapted_one(tmp_path):
    from EISegMed3DLib.adapt_runner import read_result

    (tmp_path / "model.json").write_text(json.dumps({"name": "plain"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not an adapted model"):
        read_result(tmp_path)


# --- the folder remembers the choice --------------------------------------------------------------------------------
def test_choice_is_remembered_relative_to_the_folder_and_kept_with_the_progress(tmp_path):
    from inference.model_choice import chosen_model, read_choice, remember_choice
    from inference.progress import ProgressFile

    data = tmp_path / "data"
    data.mkdir()
    ProgressFile(data).mark_finished("a.nii.gz")
    package = _package(data / "EISegMed3D-models" / "adapted-1", "better")
    assert read_choice(data) is None and chosen_model(data) is None
    remember_choice(data, package, use=True)
    saved = json.loads((data / "EISegMed3D.json").read_text(encoding="utf-8"))
    assert saved["model"]["package"] == "EISegMed3D-models/adapted-1" and saved["model"]["use"] is True
    assert saved["finished"] == ["a.nii.gz"]  # the rest of the progress file is kept
    assert chosen_model(data) == package

    moved = tmp_path / "moved"
    data.rename(moved)  # the folder moved: the relative path still finds the package
    assert chosen_model(moved) == moved / "EISegMed3D-models" / "adapted-1"
    remember_choice(moved, moved / "EISegMed3D-models" / "adapted-1", use=False)
    assert chosen_model(moved) is None and read_choice(moved)["use"] is False


def test_a_malformed_choice_is_reported_not_reset(tmp_path):
    from inference.errors import ProgressError
    from inference.model_choice import chosen_model

    text = json.dumps({"version": 1, "finished": ["a.nii.gz"], "model": {"package": 3}})
    (tmp_path / "EISegMed3D.json").write_text(text, encoding="utf-8")
    with pytest.raises(ProgressError, match="'model' must be"):
        chosen_model(tmp_path)
    assert (tmp_path / "EISegMed3D.json").read_text(encoding="utf-8") == text


def test_a_stopped_run_is_found_and_a_finished_one_is_not(tmp_path):
    from EISegMed3DLib.adapt_runner import stopped_run

    assert stopped_run(tmp_path) is None
    for name, status in ((".adapted-20260101-000000", "done"), (".adapted-20260102-000000", "stopped")):
        (tmp_path / "EISegMed3D-models" / name).mkdir(parents=True)
        (tmp_path / "EISegMed3D-models" / name / "adapt_state.json").write_text(json.dumps({"status": status}))
    assert stopped_run(tmp_path).name == ".adapted-20260102-000000"
