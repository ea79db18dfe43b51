"""The eiseg-med3d command line on real files with a real exported model."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from inference import Volume
from inference.cli import main, parse_click
from inference.demo import SAMPLE_REFERENCE, SAMPLE_SCAN
from inference.progress import PROGRESS_NAME, ProgressFile
from test_progress import run_in_read_only_folder, shared_folder  # noqa: F401 - shared_folder is a fixture

ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(ENGINE_DIR)


@pytest.fixture
def scan(tmp_path):
    """A CT-like scan with flipped, permuted, anisotropic axes (LPS direction as many DICOM-derived NIfTI have)."""
    array = (np.random.default_rng(7).random((12, 30, 34)) * 300).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetDirection((-1, 0, 0, 0, 0, 1, 0, -1, 0))
    image.SetOrigin((12.5, -40.25, 100.0))
    path = tmp_path / "case.v2.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("eiseg-med3d") and ": error: " in lines[0]
    assert "Traceback" not in err
    return lines[0]


# --- segment --------------------------------------------------------------------------------------------------

def test_segment_writes_label_on_the_exact_grid(scan, tiny_model_dir, capsys):
    code, out, err = _run(["segment", scan, "--click", "17,15,6", "--click", "20,15,6:-", "--model", tiny_model_dir,
                           "--backend", "onnx", "--threads", "1"], capsys)
    assert code == 0, err
    label_file = scan.parent / "case.v2_label.nii.gz"  # <scan stem>_label.nii.gz, dots in the stem kept
    written, original = sitk.ReadImage(str(label_file)), sitk.ReadImage(str(scan))
    assert written.GetSize() == original.GetSize()
    assert written.GetOrigin() == original.GetOrigin()
    assert written.GetSpacing() == original.GetSpacing()
    assert written.GetDirection() == original.GetDirection()
    label = sitk.GetArrayFromImage(written)
    assert label[6, 15, 17] == 1 and set(np.unique(label)) == {0, 1}
    assert out.count(" ms (model ") == 2 and "click 2 (-)" in out and str(label_file) in out
    # a second run keeps the first label as backup
    assert _run(["segment", scan, "--click", "5,5,2", "--model", tiny_model_dir, "--backend", "onnx"], capsys)[0] == 0
    backup = sitk.GetArrayFromImage(sitk.ReadImage(str(scan.parent / "case.v2_label.bak.nii.gz")))
    assert np.array_equal(backup, label)


def test_segment_ras_clicks_with_negative_values_and_label_value(scan, tiny_model_dir, tmp_path, capsys):
    volume = Volume.from_file(scan)
    ras = ",".join(f"{v:.6f}" for v in volume.ijk_to_ras_point((17, 15, 6)))
    assert ras.startswith("-")  # argparse alone would take it for an option
    out_ras, out_ijk = tmp_path / "by_ras.nii.gz", tmp_path / "by_ijk.nii.gz"
    common = ["--model", tiny_model_dir, "--backend", "onnx", "--label-value", "300"]
    assert _run(["segment", scan, "--click-ras", ras, "--out", out_ras, *common], capsys)[0] == 0
    assert _run(["segment", scan, "--click", "17,15,6:+", "--out", out_ijk, *common], capsys)[0] == 0
    by_ras, by_ijk = (sitk.ReadImage(str(p)) for p in (out_ras, out_ijk))
    assert by_ras.GetPixelID() == sitk.sitkUInt16
    assert np.array_equal(sitk.GetArrayFromImage(by_ras), sitk.GetArrayFromImage(by_ijk))
    assert sitk.GetArrayFromImage(by_ras)[6, 15, 17] == 300
    assert not (scan.parent / "case.v2_label.nii.gz").exists()


def test_bad_click_exits_2_with_one_line_and_writes_nothing(scan, tiny_model_dir):
    """The real console entry point (python -m inference.cli), as a user runs it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ENGINE_DIR, REPO_DIR]))
    done = subprocess.run([sys.executable, "-m", "inference.cli", "segment", str(scan), "--click", "5,5,2",
                           "--click", "99,3,2:-", "--model", str(tiny_model_dir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert "'99,3,2:-'" in line and "outside the scan" in line and str(scan) in line and "(34, 30, 12)" in line
    assert not list(scan.parent.glob("*_label*"))


@pytest.mark.parametrize("click, words", [("1,2", "three numbers"), ("1,2,x", "three numbers"),
                                          ("1,2,3:?", "must be + or -")])
def test_malformed_click_is_one_line(scan, click, words, capsys):
    code, _, err = _run(["segment", scan, "--click", click], capsys)
    assert code == 2 and words in _one_error_line(err) and repr(click) in err


def test_segment_without_clicks_or_scan(scan, tmp_path, capsys):
    code, _, err = _run(["segment", scan], capsys)
    assert code == 2 and "at least one --click" in _one_error_line(err)
    missing = tmp_path / "missing.nii.gz"
    code, _, err = _run(["segment", missing, "--click", "1,1,1"], capsys)
    assert code == 2 and f"{missing}: no such file" in _one_error_line(err)
    code, _, err = _run(["segment", scan, "--click", "1,1,1", "--out", tmp_path / "no_dir" / "x.nii.gz"], capsys)
    assert code == 2 and "does not exist" in _one_error_line(err)


def test_segment_checks_the_output_folder_is_writable_before_the_model_runs(shared_folder, scan):
    """A read-only output folder is reported before the model loads (here: a model path that does not exist)."""
    local = shared_folder / scan.name
    local.write_bytes(scan.read_bytes())

    def segment():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["segment", str(local), "--click", "5,5,2", "--model", str(shared_folder / "no_model")])
        raise RuntimeError(f"exit {code}: {err.getvalue()}")

    kind, message = run_in_read_only_folder(shared_folder, segment)
    assert kind == "RuntimeError" and message.startswith("exit 2: "), (kind, message)
    assert "not writable" in message and str(shared_folder) in message and "no_model" not in message


def test_parse_click():
    assert parse_click("1.5,2,3") == ((1.5, 2.0, 3.0), True)
    assert parse_click(" -1,-2.5,3:- ") == ((-1.0, -2.5, 3.0), False)
    assert parse_click("4,5,6:+") == ((4.0, 5.0, 6.0), True)


# --- info, progress, help ---------------------------------------------------------------------------------------

def test_info_prints_manifest_backend_and_device(tiny_model_dir, capsys):
    code, out, _ = _run(["info", "--model", tiny_model_dir, "--backend", "onnx", "--device", "cpu"], capsys)
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines()
                if len(line.split()) > 1 and not line.startswith(("patch", "spacing", "click")))
    assert rows["backend"].strip() == "onnx" and rows["device"].strip() == "cpu"
    assert "tiny-test" in out and "(32, 32, 32)" in out and "3.0 mm" in out
    code, out, _ = _run(["info", "--model", tiny_model_dir, "--backend", "paddle", "--threads", "1"], capsys)
    assert code == 0 and "paddle" in out


def test_info_of_the_bundled_model_is_readable(capsys):
    """Nested manifest records (training runs, validation per data set) as short aligned lines, not raw JSON."""
    code, out, _ = _run(["info", "--backend", "onnx", "--threads", "1"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 110 and "{" not in out and '"' not in out
    assert lines[0].startswith("model") and "eiseg-vnet-universal" in lines[0]
    validation = next(n for n, line in enumerate(lines) if line.startswith("validation"))
    spine = next(n for n, line in enumerate(lines) if line.strip() == "spine_val")
    assert spine > validation and lines[spine + 1].split()[:3] == ["all", "objects", "34,"]
    assert re.search(r"dice@3 0\.\d+,", out) and "  runs" in out


def test_info_with_a_bad_model_path(tmp_path, capsys):
    code, _, err = _run(["info", "--model", tmp_path], capsys)
    assert code == 2 and str(tmp_path) in _one_error_line(err)


def test_progress_prints_a_table(tmp_path, capsys):
    data = tmp_path / "data.v1"
    (data / "sub").mkdir(parents=True)
    for name in ("a.nii.gz", "b.nrrd", "sub/c.mha"):
        sitk.WriteImage(sitk.Image(3, 3, 3, sitk.sitkInt16), str(data / name))
    sitk.WriteImage(sitk.Image(3, 3, 3, sitk.sitkUInt8), str(data / "a_label.nii.gz"))
    progress = ProgressFile(data)
    progress.record_scan("a.nii.gz", clicks=4, seconds=75.0, status="finished")
    progress.record_scan("b.nrrd", clicks=2, seconds=5.0)
    code, out, _ = _run(["progress", data], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["scan", "status", "clicks", "time", "label"]
    assert lines[1].split() == ["a.nii.gz", "finished", "4", "1:15", "yes"]
    assert lines[2].split() == ["b.nrrd", "in_progress", "2", "0:05", "no"]
    assert len(lines) == 4 and lines[3].startswith("1 of 2 scans finished")
    code, out, _ = _run(["progress", data, "--recursive"], capsys)
    assert "sub/c.mha" in out and "1 of 3 scans finished" in out


@pytest.mark.parametrize("recursive", [False, True])
def test_progress_on_a_folder_without_scans_says_so_and_what_it_reads(tmp_path, capsys, recursive):
    (tmp_path / "notes.txt").write_text("x")
    code, out, _ = _run(["progress", tmp_path] + (["--recursive"] if recursive else []), capsys)
    assert code == 0
    assert out.startswith(f"no scans found in {tmp_path}") and len(out.splitlines()) == 1
    for kind in ("*.nii", "*.nii.gz", "*.nrrd", "*.mha", "*.mhd", "DICOM series"):
        assert kind in out
    assert ("--recursive" in out) != recursive and "0 of 0" not in out


def test_restore_backup_on_a_healthy_progress_file_refuses_without_force(tmp_path, capsys):
    progress = ProgressFile(tmp_path)
    progress.record_scan("a.nii.gz", clicks=3, seconds=10.0)
    progress.record_scan("a.nii.gz", clicks=2, seconds=5.0)
    before = progress.path.read_bytes()
    for option in ("--restore-backup", "--start-fresh"):
        code, _, err = _run(["progress", tmp_path, option], capsys)
        line = _one_error_line(err)
        assert code == 2 and "is fine" in line and option in line and "--force" in line
        assert progress.path.read_bytes() == before
    code, _, err = _run(["progress", tmp_path, "--force"], capsys)
    assert code == 2 and "only goes with" in _one_error_line(err)
    code, _, _ = _run(["progress", tmp_path, "--restore-backup", "--force"], capsys)
    assert code == 0 and progress.read()["scans"]["a.nii.gz"]["clicks"] == 3
    assert [p.read_bytes() for p in tmp_path.glob("EISegMed3D.replaced-*.json")] == [before]


def test_progress_of_a_newer_version_is_refused_with_no_repair_hint(tmp_path, capsys):
    path = tmp_path / PROGRESS_NAME
    path.write_text(json.dumps({"version": 7, "labels": [], "finished": [], "reviews": {"a": 1}}))
    before = path.read_bytes()
    code, _, err = _run(["progress", tmp_path], capsys)
    line = _one_error_line(err)
    assert code == 2 and "newer EISeg-Med3D" in line and "--restore-backup" not in line
    code, _, err = _run(["progress", tmp_path, "--start-fresh"], capsys)
    assert code == 2 and "newer" in _one_error_line(err)
    assert path.read_bytes() == before


def test_progress_with_a_corrupt_file_is_one_line(tmp_path, capsys):
    (tmp_path / PROGRESS_NAME).write_text("{ not json")
    code, _, err = _run(["progress", tmp_path], capsys)
    assert code == 2 and PROGRESS_NAME in _one_error_line(err)
    code, _, err = _run(["progress", tmp_path / "nope"], capsys)
    assert code == 2 and "not a folder" in _one_error_line(err)


def test_progress_recovers_from_a_crash_with_the_backup(tmp_path, capsys):
    """A torn progress file is set aside; --restore-backup continues from the last good version."""
    from inference.progress import ProgressFile

    progress = ProgressFile(tmp_path)
    progress.record_scan("a.nii.gz", clicks=3, seconds=10.0)
    progress.record_scan("a.nii.gz", clicks=2, seconds=5.0)  # the backup now holds the first state
    text = (tmp_path / PROGRESS_NAME).read_text(encoding="utf-8")
    (tmp_path / PROGRESS_NAME).write_text(text[: len(text) // 2])  # as if the machine died mid-write
    code, _, err = _run(["progress", tmp_path], capsys)
    assert code == 2 and "--restore-backup" in _one_error_line(err)
    assert list(tmp_path.glob("EISegMed3D.corrupt-*.json"))
    code, out, _ = _run(["progress", tmp_path, "--restore-backup"], capsys)
    assert code == 0
    assert ProgressFile(tmp_path).read()["scans"]["a.nii.gz"]["clicks"] == 3


@pytest.mark.parametrize("command", [[], ["segment"], ["demo"], ["info"], ["progress"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: eiseg-med3d" in capsys.readouterr().out


def test_usage_errors_are_one_line(capsys):
    for argv in (["frobnicate"], ["segment"], ["info", "--backend", "tpu"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
        assert "--help" in _one_error_line(capsys.readouterr().err)


def test_evaluate_forwards_to_the_training_package(capsys):
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--help"])
    assert done.value.code == 0
    assert "DATA_DIR" in capsys.readouterr().out


# --- demo -------------------------------------------------------------------------------------------------------

def test_demo_writes_png_label_and_progress(tiny_model_dir, tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = _run(["demo", "--out", out_dir, "--model", tiny_model_dir, "--backend", "onnx", "--threads", "1"], capsys)
    assert code == 0, err
    scan = out_dir / SAMPLE_SCAN.name
    label = out_dir / "spine_ct_L2-L4_label.nii.gz"
    figure = out_dir / "spine_ct_L2-L4_L3.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    written, reference = sitk.ReadImage(str(label)), sitk.ReadImage(str(SAMPLE_REFERENCE))
    assert (written.GetOrigin(), written.GetSpacing(), written.GetDirection()) == \
           (reference.GetOrigin(), reference.GetSpacing(), reference.GetDirection())
    values = set(np.unique(sitk.GetArrayFromImage(written)))
    assert values == {0, 22}  # L3 in the reference's numbering
    data = json.loads((out_dir / PROGRESS_NAME).read_text(encoding="utf-8"))
    assert data["labels"] == [{"name": "L3", "labelValue": 22}] and data["leftOff"] == scan.name
    assert data["scans"][scan.name]["clicks"] == 3 and data["scans"][scan.name]["status"] == "in_progress"
    click_lines = [line for line in out.splitlines() if line.startswith("click ")]
    assert len(click_lines) == 3 and all(" ms (model " in line and ", Dice " in line for line in click_lines)
    assert click_lines[0].startswith("click 1 (+)")  # the simulated user starts with a positive click ...
    i, j, k = (int(v) for v in re.search(r"\(i, j, k\) \((\d+), (\d+), (\d+)\)", click_lines[0]).groups())
    assert sitk.GetArrayFromImage(reference)[k, j, i] == 22  # ... inside L3
    assert "Dice vs reference (L3) after 3 clicks" in out
    # the output folder is a data folder of its own: the progress command reads it
    assert _run(["progress", out_dir], capsys)[1].splitlines()[1].split()[:3] == [scan.name, "in_progress", "3"]


def test_info_on_the_paddle_backend_prints_no_paddle_import_warning(tiny_model_dir):
    """Paddle warns on import that ccache is missing (about compiling extensions, which the engine never does);
    CLI users read it as an error, so the engine imports Paddle without it."""
    engine = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "inference.cli", "info", "--model", str(tiny_model_dir), "--backend",
                           "paddle"], capture_output=True, text=True, cwd=engine, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "backend" in done.stdout and "paddle" in done.stdout
    assert "ccache" not in done.stderr and "Warning" not in done.stderr
