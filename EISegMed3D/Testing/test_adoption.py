"""The adoption-rule measurements as one command (training/evaluation/adoption.py), on a real exported ONNX model."""
from __future__ import annotations

import json

import pytest

from training.evaluation.adoption import main


def test_a_part_is_measured_once_and_kept_part_by_part(bright_model_dir, tmp_path, capsys):
    out = tmp_path / "judge"
    assert main(["--model", str(bright_model_dir), "--out", str(out), "--parts", "ellipsoid"]) == 0
    record = json.loads((out / "adoption.json").read_text())
    # the bright-voxel network finds a bright ellipsoid on dark noise: what the ellipsoid test asks of a real model
    assert len(record["ellipsoid"]["rows"]) == 12
    assert record["ellipsoid"]["min_dice"] > 0.5
    assert f"ellipsoid: mean {record['ellipsoid']['mean_dice']:.4f}" in capsys.readouterr().out
    # a second call reads the stored part instead of measuring it again
    record["ellipsoid"]["mean_dice"] = 0.1234
    (out / "adoption.json").write_text(json.dumps(record))
    assert main(["--model", str(bright_model_dir), "--out", str(out), "--parts", "ellipsoid"]) == 0
    assert "ellipsoid: mean 0.1234" in capsys.readouterr().out


def test_a_missing_stand_in_folder_is_named_before_anything_runs(bright_model_dir, tmp_path):
    with pytest.raises(SystemExit, match="nowhere: no stand-in folder here"):
        main(["--model", str(bright_model_dir), "--out", str(tmp_path), "--parts", "standin",
              "--standin", str(tmp_path / "nowhere")])
    assert not (tmp_path / "adoption.json").exists()


def test_the_long_run_curve_keeps_one_summary_per_candidate_and_draws_it(bright_model_dir, tmp_path):
    from benchmarks import long_run_curve

    judged = tmp_path / "judge"
    assert main(["--model", str(bright_model_dir), "--out", str(judged), "--parts", "ellipsoid"]) == 0
    ellipsoid = json.loads((judged / "adoption.json").read_text())["ellipsoid"]
    curve = tmp_path / "curve"
    start = {"name": "start", "examples": 0, "ellipsoid": {"mean_dice": 0.5, "min_dice": 0.4}}
    curve.mkdir()
    (curve / "candidates.json").write_text(json.dumps([start]))
    assert long_run_curve.main([str(curve), "--add", str(judged / "adoption.json"), "--name", "step 100",
                                "--examples", "400"]) == 0
    records = json.loads((curve / "candidates.json").read_text())
    assert [r["name"] for r in records] == ["start", "step 100"]
    assert records[1]["ellipsoid"] == {"mean_dice": ellipsoid["mean_dice"], "min_dice": ellipsoid["min_dice"]}
    assert "rows" not in records[1]["ellipsoid"]  # per-object rows stay in the adoption folder
    assert (curve / "curve.png").stat().st_size > 10_000
    # the same candidate judged again replaces its record, it is not listed twice
    assert long_run_curve.main([str(curve), "--add", str(judged / "adoption.json"), "--name", "step 100",
                                "--examples", "404"]) == 0
    assert [(r["name"], r["examples"]) for r in json.loads((curve / "candidates.json").read_text())] == [
        ("start", 0), ("step 100", 404)]


def test_corrections_on_every_spine_validation_object_of_the_split(bright_model_dir, tmp_path):
    import numpy as np
    import SimpleITK as sitk

    from inference import load_model
    from training.evaluation.corrections import correction_fractions, spine_validation_objects, summary

    for folder, case, values in (("spine_mri_a", "case_001", (2, 5)), ("ct_organs", "case_003", (1,))):
        (tmp_path / folder).mkdir()
        labels = np.zeros((24, 40, 40), np.uint8)
        image = np.zeros(labels.shape, np.float32)
        for n, value in enumerate(values):
            labels[6:18, 6:20, 4 + 18 * n:16 + 18 * n] = value
            image[6:18, 6:20, 4 + 18 * n:14 + 18 * n] = 200.0  # the bright part is smaller: a false region to remove
        for array, name in ((image, f"{case}.nii.gz"), (labels, f"{case}_label.nii.gz")):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / folder / name))
        (tmp_path / folder / "dataset.json").write_text(json.dumps({"cases": [
            {"case": case, "image": f"{case}.nii.gz", "label": f"{case}_label.nii.gz",
             "label_names": {str(v): f"object {v}" for v in values}}]}))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["spine_mri_a/case_000"], "val": ["spine_mri_a/case_001", "ct_organs/case_003"]}))
    objects = spine_validation_objects(tmp_path, split)
    assert objects == [("spine_mri_a", "case_001", 2), ("spine_mri_a", "case_001", 5)]  # spine cases only, every label
    record = summary(correction_fractions(load_model(str(bright_model_dir), backend="onnx", threads=1), tmp_path, objects))
    assert record["positive"]["n"] == 2
    assert record["positive"]["mean"] == pytest.approx(np.mean(record["positive"]["values"]), abs=1e-4)
