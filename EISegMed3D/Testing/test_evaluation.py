"""Evaluation: the simulated user, the metrics, the baselines and an end-to-end run on real files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from training.evaluation import metrics
from training.evaluation.baselines import GrowCutSegmenter, RandomWalkerSegmenter
from training.evaluation.robot import edge_click, next_click
from training.evaluation.run import evaluate, list_objects, structure_of


def _ball(shape, centre_kji, radius, spacing_kji=(1.0, 1.0, 1.0)):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre_kji, spacing_kji))
    return dist2 <= radius ** 2


# --- simulated user -------------------------------------------------------------------------------------------
def test_first_click_is_the_centre_of_a_sphere_and_positive():
    gt = _ball((24, 26, 30), (10, 12, 14), 6)
    ijk, positive = next_click(gt, None, spacing_ijk=(1.0, 1.0, 1.0))
    assert ijk == (14, 12, 10) and positive is True


def test_ties_go_to_the_lowest_flat_index():
    gt = np.zeros((12, 16, 20), dtype=bool)
    gt[2:9, 3:12, 4:15] = True  # depth 4 along k at k=5; j 6..8 and i 7..11 all reach it
    assert next_click(gt, None, (1.0, 1.0, 1.0), "voxel") == ((7, 6, 5), True)
    # two equal cubes: the one met first in flat [k, j, i] order wins
    twins = np.zeros((20, 10, 10), dtype=bool)
    twins[12:17, 2:7, 2:7] = True
    twins[2:7, 2:7, 2:7] = True
    assert next_click(twins, None, (1.0, 1.0, 1.0)) == ((4, 4, 4), True)


def test_millimetre_distance_changes_the_click_on_thick_slices():
    # Slab A: thin in k voxels (7) but 28 mm thick at 4 mm slices; cube B: 9 voxels each way, 9 mm in-plane.
    gt = np.zeros((12, 18, 30), dtype=bool)
    gt[1:8, 1:16, 1:16] = True  # A: depth 4 voxels / 8 mm
    gt[1:10, 1:10, 16:25] = True  # B: depth 5 voxels / 5 mm, joined to A (one component)
    (i_vox, _, _), _ = next_click(gt, None, (1.0, 1.0, 4.0), "voxel")
    (i_mm, _, _), _ = next_click(gt, None, (1.0, 1.0, 4.0), "mm")
    assert i_vox >= 16, "voxel units: the cube is deepest"
    assert i_mm < 16, "millimetres: the slab is deepest"


def test_click_sign_and_largest_component():
    gt = _ball((30, 30, 30), (15, 15, 15), 8)
    small_miss = gt.copy()
    small_miss[15, 15, 21:24] = False  # 3 voxels missed
    big_false = small_miss.copy()
    big_false[2:7, 2:7, 2:7] = True  # 125 voxels of false foreground
    ijk, positive = next_click(gt, big_false, (1.0, 1.0, 1.0))
    assert positive is False and ijk == (4, 4, 4)
    ijk, positive = next_click(gt, small_miss, (1.0, 1.0, 1.0))
    assert positive is True and ijk[2] == 15 and ijk[1] == 15 and 21 <= ijk[0] <= 23
    assert next_click(gt, gt, (1.0, 1.0, 1.0)) is None


def test_first_click_lands_in_the_largest_object_part():
    gt = _ball((30, 30, 40), (15, 15, 10), 3) | _ball((30, 30, 40), (15, 15, 28), 7)
    ijk, positive = next_click(gt, np.zeros_like(gt), (1.0, 1.0, 1.0))
    assert ijk == (28, 15, 15) and positive


# --- metrics --------------------------------------------------------------------------------------------------
def test_edge_click_lies_just_inside_the_face_nearest_the_centre():
    from scipy import ndimage

    spacing_kji = (2.0, 1.0, 1.0)  # thick slices along k: depth is measured in mm
    gt = _ball((30, 50, 50), (15, 25, 25), 12, spacing_kji)
    (i, j, k), positive = edge_click(gt, spacing_kji[::-1])
    assert positive and gt[k, j, i]
    depth = ndimage.distance_transform_edt(np.pad(gt, 1), sampling=spacing_kji)[k + 1, j + 1, i + 1]
    assert 0 < depth <= 2.0
    centre_mm = np.sqrt((((np.array([k, j, i]) - (15, 25, 25)) * spacing_kji) ** 2).sum())
    assert 9.0 <= centre_mm <= 12.0  # near the edge, not the centre (12 mm radius)
    assert edge_click(gt, spacing_kji[::-1]) == ((i, j, k), True)  # deterministic
    thin = np.zeros((5, 20, 20), bool)
    thin[2, 5:15, 5:15] = True  # one voxel thick, 2 mm deep nowhere: every voxel is at the edge
    (i, j, k), _ = edge_click(thin, (1.0, 1.0, 4.0))
    assert thin[k, j, i]
    with pytest.raises(ValueError, match="empty"):
        edge_click(np.zeros((4, 4, 4), bool), (1.0, 1.0, 1.0))


def test_dice_and_iou_by_hand():
    gt = np.zeros(10, bool)
    gt[:4] = True
    pred = np.zeros(10, bool)
    pred[2:6] = True  # 2 shared, union 6
    assert metrics.dice(gt, pred) == pytest.approx(0.5)
    assert metrics.iou(gt, pred) == pytest.approx(2 / 6)
    assert metrics.dice(np.zeros(3), np.zeros(3)) == 1.0


def test_noc_failures_and_auc():
    assert metrics.noc([0.5, 0.86, 0.95], 0.85) == (2, False)
    assert metrics.noc([0.5, 0.86, 0.95], 0.90) == (3, False)
    assert metrics.noc([0.5] * 20, 0.85) == (20, True)
    assert metrics.noc([0.5, 0.6], 0.85) == (20, True)  # too few clicks: failure, counts the cap
    assert metrics.auc([0.5, 0.7, 0.8, 0.9, 1.0]) == pytest.approx(0.6 + 0.75 + 0.85 + 0.95)
    assert metrics.auc([1.0] * 20) == pytest.approx(4.0)
    ok = metrics.object_summary([0.9] * 5, [0.95] * 5)
    bad = metrics.object_summary([0.2] * 5, [0.1] * 5)
    agg = metrics.aggregate([ok, bad], {"first": [(0.3, 0.1), (0.5, 0.2)]})
    assert agg["noc@85"] == pytest.approx((1 + 20) / 2) and agg["nof@85"] == 1 and agg["nof@90"] == 1
    assert agg["dice@1"] == pytest.approx(0.55) and agg["dice@10"] is None
    assert agg["latency_first"]["p50_s"] == pytest.approx(0.4)


def test_error_profile_tells_an_edge_shell_from_a_missed_region():
    gt = np.zeros((30, 30, 30), bool)
    gt[5:25, 5:25, 5:25] = True
    grown = np.zeros_like(gt)
    grown[4:26, 4:26, 4:26] = True  # one voxel too big all round: every error voxel touches the edge
    shell = metrics.error_profile(gt, grown)
    assert shell == {"fp": 22 ** 3 - 20 ** 3, "fn": 0, "near_boundary": 1.0}
    missed = gt.copy()
    missed[5:25, 5:25, 5:15] = False  # half the cube missed: most error voxels lie deep inside
    half = metrics.error_profile(gt, missed)
    assert half["fp"] == 0 and half["fn"] == 20 * 20 * 10
    assert half["near_boundary"] == pytest.approx((4000 - 18 * 18 * 9) / 4000)  # its outer layer only
    assert metrics.error_profile(gt, gt) == {"fp": 0, "fn": 0, "near_boundary": None}
    # an object cut by the scan border: the border is not its boundary, so a missed layer there is not "edge"
    edge = np.zeros_like(gt)
    edge[0:10, 0:10, 0:10] = True
    inside = edge.copy()
    inside[0, :, :] = False
    assert metrics.error_profile(edge, inside)["near_boundary"] == pytest.approx(19 / 100)  # only j or i == 9
    summary = metrics.error_summary([shell, half, shell], ks=(1, 2, 3, 4))
    assert summary["fp_share@1"] == 1.0 and summary["fp_share@2"] == 0.0 and summary["fp_share@4"] is None
    assert summary["near_boundary@2"] == half["near_boundary"]


def test_structure_names_pool_levels_and_sides():
    assert structure_of("vertebral body L5 (expected; k-th from caudal)") == "vertebral body"
    assert structure_of("intervertebral disc L5/S1") == "intervertebral disc"
    assert structure_of("rib_left_7") == "rib"
    assert structure_of("spinal cord") == "spinal cord"


# --- baselines ------------------------------------------------------------------------------------------------
def _bright_sphere_volume():
    from inference.volume import Volume

    gt = _ball((40, 44, 48), (20, 22, 24), 9)
    noise = np.random.default_rng(0).normal(0, 12, gt.shape)
    image = (gt * 100 + 20 + noise).astype(np.float32)
    return Volume(image, np.diag([1.0, 1.0, 1.5, 1.0])), gt


@pytest.mark.parametrize("segmenter", [GrowCutSegmenter, RandomWalkerSegmenter])
def test_baseline_segments_a_bright_sphere_from_one_click(segmenter):
    volume, gt = _bright_sphere_volume()
    method = segmenter()
    method.set_volume(volume)
    (i, j, k), positive = next_click(gt, None, volume.spacing)
    result = method.add_click(ijk=(i, j, k), positive=positive)
    assert result.mask.shape == gt.shape and result.mask.dtype == np.uint8
    assert metrics.dice(gt, result.mask) > 0.8
    assert result.latency_s >= result.model_s > 0


def test_growcut_negative_click_removes_a_leak():
    volume, gt = _bright_sphere_volume()
    image = volume.array.copy()
    image[18:23, 20:25, 33:40] = 170  # a brighter structure glued to the sphere: not part of the object
    from inference.volume import Volume

    volume = Volume(image, volume.ijk_to_ras)
    method = GrowCutSegmenter()
    method.set_volume(volume)
    first = method.add_click(ijk=(24, 22, 20), positive=True).mask.copy()
    leak = int(first[18:23, 20:25, 34:40].sum())
    second = method.add_click(ijk=(37, 22, 20), positive=False).mask
    assert leak > 0 and int(second[18:23, 20:25, 34:40].sum()) < leak
    assert metrics.dice(gt, second) > metrics.dice(gt, first)


# --- end to end -----------------------------------------------------------------------------------------------
def _write_case(folder, name, shape, centres, spacing_ijk, seed):
    image = np.random.default_rng(seed).normal(40, 8, shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    spacing_kji = spacing_ijk[::-1]
    for value, (centre, radius) in enumerate(centres, start=1):
        ball = _ball(shape, centre, radius, spacing_kji)
        label[ball] = value
        image[ball] += 60 * value
    for array, suffix in ((image, ""), (label, "_label")):
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing(spacing_ijk)
        sitk.WriteImage(itk, str(folder / f"{name}{suffix}.nii.gz"))
    return {"case": name, "image": f"{name}.nii.gz", "label": f"{name}_label.nii.gz",
            "label_names": {"1": "vertebral body L5", "2": "intervertebral disc L5/S1"},
            "label_voxels": {str(v): int((label == v).sum()) for v in (1, 2)}}


@pytest.fixture()
def tiny_data(tmp_path):
    folder = tmp_path / "tiny_spine"
    folder.mkdir()
    cases = [_write_case(folder, "case_000", (20, 28, 28), [((8, 10, 10), 5.0), ((12, 18, 18), 6.0)], (1.0, 1.0, 2.0), 0),
             _write_case(folder, "case_001", (18, 26, 30), [((9, 12, 10), 6.0), ((9, 14, 21), 5.0)], (1.0, 1.0, 2.0), 1)]
    (folder / "dataset.json").write_text(json.dumps({"name": "tiny_spine", "cases": cases}))
    return folder


def test_list_objects_filters_cases_and_structures(tiny_data):
    assert len(list_objects([tiny_data])) == 4
    only = list_objects([tiny_data], cases=["tiny_spine/case_001"], structures=["disc"])
    assert [(o.case, o.value, o.structure) for o in only] == [("case_001", 2, "intervertebral disc")]


def test_evaluate_end_to_end_with_the_real_engine(tiny_model_dir, tiny_data, tmp_path):
    from inference.model import load_model
    from training.evaluate import main

    model = load_model(tiny_model_dir, backend="onnx", threads=1)
    results = evaluate([tiny_data], model, max_clicks=3, baselines=["growcut"], variants=("mm", "voxel"), progress=False)
    assert set(results["runs"]) == {"model", "growcut", "model [voxel clicks]", "growcut [voxel clicks]"}
    objects = results["runs"]["model"]
    assert len(objects) == 4 and all(len(o["clicks"]) == 3 for o in objects)
    first = objects[0]["clicks"][0]
    assert first["positive"] is True and first["model_s"] > 0 and first["latency_s"] >= first["model_s"]
    # deterministic: the same run gives the same clicks and numbers
    again = evaluate([tiny_data], model, max_clicks=3, progress=False)
    strip = lambda runs: [[(c["ijk"], c["dice"]) for c in o["clicks"]] for o in runs]  # noqa: E731
    assert strip(again["runs"]["model"]) == strip(objects)
    for click in (c for o in objects for c in o["clicks"] if c["iou"] < 1):  # error counts agree with Dice and IoU
        inter = click["iou"] * (click["fp"] + click["fn"]) / (1 - click["iou"])
        assert click["dice"] == pytest.approx(2 * inter / (2 * inter + click["fp"] + click["fn"]))
        assert 0.0 <= click["near_boundary"] <= 1.0
    assert all(o["summary"]["fp_share@3"] is not None for o in objects)

    edge = evaluate([tiny_data], model, max_clicks=2, progress=False, first_click="edge")
    assert edge["settings"]["first_click"] == "edge"
    assert [o["clicks"][0]["ijk"] for o in edge["runs"]["model"]] != [o["clicks"][0]["ijk"] for o in objects]
    assert all(o["clicks"][0]["positive"] for o in edge["runs"]["model"])
    with pytest.raises(ValueError, match="first click"):
        evaluate([tiny_data], model, max_clicks=1, progress=False, first_click="centre")

    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["tiny_spine/case_000"], "val": ["tiny_spine/case_001"]}))
    out = tmp_path / "report"
    assert main([str(tiny_data), "--model", str(tiny_model_dir), "--backend", "onnx", "--threads", "1",
                 "--max-clicks", "2", "--baselines", "growcut", "--split", str(split), "--subset", "val",
                 "--out", str(out), "--quiet"]) == 0
    document = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert document["settings"]["objects"] == 2 and set(document["runs"]) == {"model", "growcut"}
    assert {o["case"] for o in document["runs"]["growcut"]["objects"]} == {"case_001"}
    assert set(document["runs"]["model"]["aggregates"]["per_structure"]) == {"vertebral body", "intervertebral disc"}
    table = (out / "evaluation.md").read_text(encoding="utf-8")
    assert "NoC@85" in table and "Grow from seeds" in table and "tiny_spine" in table
    assert "near boundary@3" in table
    assert document["runs"]["model"]["aggregates"]["all"]["near_boundary@3"] is None  # only 2 clicks were made
    png = (out / "dice_vs_clicks.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
