"""The simulated user's box-, lasso- and scribble-first modes: where the first prompt goes, and the evaluation end to end
with real exported models (a region-channel model for boxes, the 3-channel model for lassos)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.measure import points_in_poly

from inference import ClickError, InteractiveSession, Volume, load_model
from test_evaluation import _write_case
from training.evaluation.prompt_user import (first_box, first_lasso, first_scribble, largest_slice, simulate_prompt_first,
                                            through_plane_axis, widest_axis_slice)
from training.evaluation.run import evaluate


def test_the_through_plane_axis_is_the_thick_one():
    assert through_plane_axis((0.8, 0.8, 3.0)) == 0  # thick k: axial slices
    assert through_plane_axis((4.0, 0.5, 0.5)) == 2  # thick i: sagittal slices (sagittal spine MRI)
    assert through_plane_axis((1.0, 1.0, 1.0)) == 0


def _l_shape_with_a_hole(shape=(10, 24, 26)) -> np.ndarray:
    gt = np.zeros(shape, bool)
    gt[3:7, 4:20, 5:10] = True
    gt[3:7, 15:20, 5:22] = True  # an L on each axial slice
    gt[5, 4:8, 14:20] = True  # a separate smaller part, on the largest slice
    gt[5, 17, 8] = False  # a hole on the largest slice
    return gt


def test_largest_slice_and_first_box_on_it():
    gt = _l_shape_with_a_hole()
    assert largest_slice(gt, (0.7, 0.7, 3.0)) == (0, 5)
    box = first_box(gt, (0.7, 0.7, 3.0))
    rows, cols = np.nonzero(gt[5])
    assert box == {"ijk": ((cols.min(), rows.min(), 5.0), (cols.max(), rows.max(), 5.0)), "normal": (0.0, 0.0, 1.0)}
    sagittal = first_box(np.transpose(gt, (2, 1, 0)), (3.0, 0.7, 0.7))  # the same object, thick i axis
    assert sagittal["normal"] == (1.0, 0.0, 0.0) and sagittal["ijk"][0][0] == 5.0


def test_first_lasso_holds_exactly_the_largest_part_of_the_slice_holes_filled():
    gt = _l_shape_with_a_hole()
    lasso = first_lasso(gt, (0.7, 0.7, 3.0))
    points = np.array(lasso["ijk"])
    assert np.all(points[:, 2] == 5.0) and lasso["positive"] is True
    j, i = np.mgrid[0:gt.shape[1], 0:gt.shape[2]]
    inside = points_in_poly(np.stack([j.ravel(), i.ravel()], 1), points[:, [1, 0]]).reshape(j.shape)
    expected = np.zeros(gt.shape[1:], bool)
    expected[4:20, 5:10] = expected[15:20, 5:22] = True  # the L, its hole at (17, 8) filled, the other part left out
    np.testing.assert_array_equal(inside, expected)


def _scan(spacing_ijk=(0.9, 0.9, 2.5)):
    gt = np.zeros((14, 40, 44), bool)
    gt[4:10, 12:28, 14:30] = True
    matrix = np.diag([*spacing_ijk, 1.0])
    array = (np.random.default_rng(2).random(gt.shape) * 50 + 100 * gt).astype(np.float32)
    return Volume(array, matrix), gt


def test_box_first_then_clicks_with_a_region_model(region_model_dir):
    model = load_model(region_model_dir, backend="onnx", device="cpu", threads=1)
    volume, gt = _scan()
    records = simulate_prompt_first(InteractiveSession(model), volume, gt, 3, "box")
    assert [r["prompt"] for r in records] == ["box", "click", "click"]
    assert records[0]["ijk"] is None and records[1]["ijk"] is not None
    assert records[0]["dice"] > 0 and all(r["latency_s"] is None or r["latency_s"] > 0 for r in records)
    again = simulate_prompt_first(InteractiveSession(model), volume, gt, 3, "box")
    assert [(r["ijk"], r["dice"]) for r in again] == [(r["ijk"], r["dice"]) for r in records]  # deterministic


def test_box_first_needs_a_region_model(tiny_model_dir):
    model = load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1)
    volume, gt = _scan()
    with pytest.raises(ClickError, match="no 'region' input"):
        simulate_prompt_first(InteractiveSession(model), volume, gt, 2, "box")


def _tiny_folder(tmp_path, name: str):
    """A data folder with one synthetic case of two objects (1 x 1 x 2 mm voxels)."""
    folder = tmp_path / name
    folder.mkdir()
    cases = [_write_case(folder, "case_000", (20, 28, 28), [((8, 10, 10), 5.0), ((12, 18, 18), 6.0)], (1.0, 1.0, 2.0), 0)]
    (folder / "dataset.json").write_text(json.dumps({"name": name, "cases": cases}))
    return folder


def test_evaluate_lasso_first_end_to_end(tiny_model_dir, tmp_path):
    from training.evaluate import main

    folder = _tiny_folder(tmp_path, "tiny_spine")
    model = load_model(tiny_model_dir, backend="onnx", threads=1)
    results = evaluate([folder], model, max_clicks=2, progress=False, first_prompt="lasso")
    assert results["settings"]["first_prompt"] == "lasso"
    assert all([c["prompt"] for c in o["clicks"]] == ["lasso", "click"] for o in results["runs"]["model"])
    with pytest.raises(ValueError, match="growcut takes clicks only, no lasso"):
        evaluate([folder], model, max_clicks=1, progress=False, first_prompt="lasso", baselines=["growcut"])
    out = tmp_path / "report"
    assert main([str(folder), "--model", str(tiny_model_dir), "--backend", "onnx", "--threads", "1", "--max-clicks",
                 "2", "--first-prompt", "lasso", "--out", str(out), "--quiet"]) == 0
    document = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert set(document["runs"]) == {"model"} and document["settings"]["first_prompt"] == "lasso"


def test_first_scribble_runs_along_a_bent_tube_on_its_widest_slice():
    """A cord-like tube bent like an L in the planes j = 8-10, thin across them: the stroke lies on that sagittal plane,
    inside the tube, from one end of the L to the other (the skeleton's longest path, not a crossing segment)."""
    gt = np.zeros((40, 20, 30), bool)  # k, j, i
    gt[4:34, 8:11, 4:7] = True  # down along k at i 4-6
    gt[31:34, 8:11, 4:26] = True  # then along i at k 31-33
    axis, index = widest_axis_slice(gt, (1.0, 1.0, 1.0))
    assert axis == 1 and index in (8, 9, 10)  # the three j slices tie
    stroke = np.array(first_scribble(gt, (1.0, 1.0, 1.0))["ijk"])  # (i, j, k)
    assert np.all(stroke[:, 1] == index)
    kji = np.round(stroke[:, ::-1]).astype(int)
    assert gt[tuple(kji.T)].all()
    ends = {tuple(kji[0]), tuple(kji[-1])}
    assert any(k <= 7 for k, _, _ in ends) and any(i >= 22 for _, _, i in ends)  # from the top of the L to its foot
    steps = np.abs(np.diff(kji, axis=0)).max(axis=1)
    assert steps.max() == 1  # consecutive skeleton pixels: the stroke never leaves the tube


def test_evaluate_scribble_first_end_to_end(tiny_model_dir, tmp_path):
    folder = _tiny_folder(tmp_path, "tiny_cord")
    model = load_model(tiny_model_dir, backend="onnx", threads=1)
    results = evaluate([folder], model, max_clicks=3, progress=False, first_prompt="scribble")
    assert all([c["prompt"] for c in o["clicks"]] == ["scribble", "click", "click"] for o in results["runs"]["model"])
