"""Training (issue 3) on a synthetic data folder: cache, click simulation, train/inference parity, smoke
training, exact resume and packaging into a model the engine runs. No ../shared/data needed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
MANIFEST_SMOKE = REPO / "training" / "configs" / "manifest_smoke.json"
SHAPE_KJI = (36, 48, 40)  # (i, j, k) = 40 x 48 x 36
SPACING_IJK = (0.9, 1.0, 2.5)  # thick slices along k
TINY_VALUE = 3  # a 27-voxel blob: under MIN_OBJECT_VOXELS, never a target
KEYS = ["synth/case_000", "synth/case_001", "synth/case_002"]


def _ellipsoid(centre_kji, radius_mm):
    grid = np.indices(SHAPE_KJI, dtype=np.float64)
    spacing_kji = SPACING_IJK[::-1]
    dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre_kji, spacing_kji))
    return dist2 <= radius_mm ** 2


def _write_case(folder: Path, name: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, SHAPE_KJI).astype(np.float32)
    label = np.zeros(SHAPE_KJI, np.uint8)
    shift = rng.integers(-2, 3, 3)
    label[_ellipsoid(np.array((14, 16, 14)) + shift, 9.0)] = 1
    label[_ellipsoid(np.array((22, 32, 26)) + shift, 7.0)] = 2
    k, j, i = np.array((8, 38, 32)) + shift
    label[k - 1:k + 2, j - 1:j + 2, i - 1:i + 2] = TINY_VALUE
    image += np.choose(label, [0, 150, 300, 220]).astype(np.float32)
    for array, suffix in ((image, ""), (label, "_label")):
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing(SPACING_IJK)
        sitk.WriteImage(itk, str(folder / f"{name}{suffix}.nii.gz"))
    counts = {str(v): int((label == v).sum()) for v in (1, 2, TINY_VALUE)}
    return {"shape": list(SHAPE_KJI[::-1]), "spacing_mm": list(SPACING_IJK), "axcodes": "LPS",
            "label_voxels": counts, "case": name, "image": f"{name}.nii.gz", "label": f"{name}_label.nii.gz",
            "label_names": {"1": "vertebral body L4", "2": "intervertebral disc L4/L5", "3": "rib tip"}}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict:
    """Data folder, split, cache (built by training.data.main) and the smoke manifest."""
    from training import data

    root = tmp_path_factory.mktemp("train_synth")
    folder = root / "data" / "synth"
    folder.mkdir(parents=True)
    cases = [_write_case(folder, key.split("/")[1], seed) for seed, key in enumerate(KEYS)]
    (folder / "dataset.json").write_text(json.dumps({"name": "synth", "cases": cases}, indent=1), encoding="utf-8")
    split = root / "split.json"
    split.write_text(json.dumps({"train": KEYS[:2], "val": KEYS[2:]}), encoding="utf-8")
    cache = root / "cache"
    assert data.main(["--data", str(root / "data"), "--split", str(split), "--manifest", str(MANIFEST_SMOKE),
                      "--out", str(cache)]) == 0
    return {"root": root, "data": root / "data", "split": split, "cache": cache,
            "manifest": json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))}


def _cases(synth, keys=KEYS[:2]):
    from training.data import load_cache
    from training.sampler import object_boxes

    cases = load_cache(synth["cache"], keys)
    for case in cases:
        case["boxes"] = object_boxes(case["label"])
    return cases


# --- 1. cache -----------------------------------------------------------------------------------------------
def test_cache_keeps_engine_normalisation_labels_and_drops_tiny_objects(synth):
    from inference.normalize import intensity_stats, normalize
    from inference.volume import Volume
    from training.data import MIN_OBJECT_VOXELS, _crop_box, load_cache

    assert sorted(p.name for p in synth["cache"].glob("*.npz")) == [k.replace("/", "__") + ".npz" for k in KEYS]
    (case,) = load_cache(synth["cache"], [KEYS[0]])
    image = Volume.from_file(synth["data"] / "synth" / "case_000.nii.gz")
    label = Volume.from_file(synth["data"] / "synth" / "case_000_label.nii.gz").array
    spec = synth["manifest"]["normalization"]
    stats = intensity_stats(image.array, spec)
    assert case["stats"] == pytest.approx(stats)  # whole-scan statistics, as the engine computes them at set_volume
    np.testing.assert_allclose(case["spacing_kji"], SPACING_IJK[::-1])
    box = _crop_box(label > 0, case["spacing_kji"])
    np.testing.assert_array_equal(case["label"], label[box])
    raw = np.clip(image.array[box], stats["lo"], stats["hi"])
    step = (stats["hi"] - stats["lo"]) / 255
    assert case["image"].dtype == np.float32 and case["image"].shape == raw.shape
    assert np.abs(case["image"] - raw).max() <= step / 2 + 1e-3
    assert np.abs(normalize(case["image"], spec, stats) - normalize(raw, spec, stats)).max() <= step / stats["std"]
    counts = {int(v): int((label == v).sum()) for v in (1, 2, TINY_VALUE)}
    assert counts[TINY_VALUE] < MIN_OBJECT_VOXELS <= min(counts[1], counts[2])
    assert case["values"].tolist() == [1, 2]


# --- 2. sampler and click simulation ---------------------------------------------------------------------------
def _rounded(point):
    return tuple(np.round(point).astype(int))


def test_make_example_gives_patch_target_and_a_first_click_inside_the_object(synth):
    from training.sampler import make_example, to_arrays

    cases, manifest = _cases(synth), synth["manifest"]
    patch = tuple(manifest["patch_shape"])
    made = clicked = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        example = make_example(rng, cases[seed % 2], manifest)
        if example is None:
            continue
        made += 1
        assert example["image"].shape == patch and example["image"].dtype == np.float32
        assert example["gt"].shape == patch and example["gt"].sum() >= 20
        for point, positive in example["clicks"]:
            inside = example["gt"][_rounded(point)]
            assert inside == positive, f"seed {seed}: a {'positive' if positive else 'negative'} click at {point}"
        if not example["previous"].any():  # no existing segment: the user's first click is a positive one
            clicked += 1
            assert example["clicks"] and example["clicks"][0][1] is True
        image, channels = to_arrays(example, manifest)
        assert image.shape == (1,) + patch and channels.shape == (3,) + patch
        if example["clicks"]:
            assert channels[1].any()
    assert made >= 8 and clicked >= 4


def test_error_click_goes_to_the_larger_error_with_the_right_sign():
    from training.clicks import error_click

    gt = np.zeros((24, 24, 24), bool)
    gt[2:12, 2:12, 2:12] = True
    missed = np.zeros_like(gt)
    missed[14:21, 14:21, 14:21] = True  # a 7^3 cube the prediction missed; its deepest voxel is (17, 17, 17)
    extra = np.zeros_like(gt)
    extra[2:5, 16:19, 2:5] = True  # a 3^3 false positive
    rng = np.random.default_rng(0)

    point, positive = error_click(rng, gt | missed, gt | extra, (1.0, 1.0, 1.0), deterministic=True)
    assert positive is True and _rounded(point) == (17, 17, 17)
    for _ in range(5):
        point, positive = error_click(rng, gt | missed, gt | extra, (1.0, 1.0, 1.0))
        assert positive is True and missed[_rounded(point)]

    big_extra = np.zeros_like(gt)
    big_extra[13:22, 13:22, 13:22] = True  # now the false positive is the larger error
    point, positive = error_click(rng, gt, gt | big_extra, (1.0, 1.0, 1.0), deterministic=True)
    assert positive is False and _rounded(point) == (17, 17, 17)
    point, positive = error_click(rng, gt, gt | big_extra, (1.0, 1.0, 1.0))
    assert positive is False and big_extra[_rounded(point)]
    assert error_click(rng, gt, gt.copy(), (1.0, 1.0, 1.0)) is None


def test_augment_geometry_moves_points_with_the_voxels():
    from training.augment import augment_geometry

    base = np.random.default_rng(1)
    image = base.normal(size=(7, 9, 11)).astype(np.float32)  # distinct sizes catch a wrong axis order
    gt = image > 0.5
    others = image < -0.5
    points = [np.array(p, float) for p in ((0, 0, 0), (6, 8, 10), (3, 2, 9), (5, 7, 1))]
    seen = set()
    for seed in range(16):
        (new_image, new_gt, new_others), new_points = augment_geometry(np.random.default_rng(seed), (image, gt, others), points)
        seen.add(new_image.shape)
        for before, after in zip(points, new_points):
            b, a = _rounded(before), _rounded(after)
            assert new_image[a] == image[b] and new_gt[a] == gt[b] and new_others[a] == others[b]
        assert np.sort(new_image, axis=None).tolist() == np.sort(image, axis=None).tolist()
    assert len(seen) > 1  # permutations did happen


# --- 3. training and inference draw the same click maps ------------------------------------------------------
def test_training_click_maps_equal_the_engines(synth):
    from inference.clickmaps import Click, click_maps
    from inference.model_input import choose_roi, model_inputs
    from inference.normalize import intensity_stats
    from inference.volume import Volume
    from training.sampler import to_arrays

    manifest = synth["manifest"]
    volume = Volume.from_file(synth["data"] / "synth" / "case_001.nii.gz")
    spacing_kji = volume.spacing[::-1]
    clicks = [Click((12.3, 20.0, 13.6), True), Click((17.0, 25.5, 15.0), False), Click((9.0, 14.0, 12.2), True)]
    stats = intensity_stats(volume.array, manifest["normalization"])
    for zoom in (1.0, 1.5):
        roi = choose_roi(manifest, volume.shape, spacing_kji, [c.kji for c in clicks], None, zoom)
        positive, negative = click_maps(clicks, roi, spacing_kji, manifest)
        assert positive.sum() > 0 and negative.sum() > 0
        image, channels = model_inputs(volume.array, stats, None, clicks, roi, spacing_kji, manifest)
        example = {"image": image[0, 0], "gt": np.zeros(roi.shape, bool), "previous": np.zeros(roi.shape, np.float32),
                   "clicks": [(roi.to_patch(c.kji), c.positive) for c in clicks], "voxel_mm": roi.voxel_mm(spacing_kji)}
        train_image, train_channels = to_arrays(example, manifest)
        np.testing.assert_array_equal(train_channels[1], positive)
        np.testing.assert_array_equal(train_channels[2], negative)
        np.testing.assert_array_equal(train_channels, channels[0])
        np.testing.assert_array_equal(train_image, image[0])


# --- 4-6. smoke training, exact resume, packaging ------------------------------------------------------------
def _config(synth, name: str) -> Path:
    config = json.loads((REPO / "training" / "configs" / "smoke.json").read_text(encoding="utf-8"))
    config.update(name=name, steps=4, batch_size=1, workers=0, max_click_passes=1, checkpoint_every=2,
                  network={"base": 4, "levels": 2, "depths": [1, 1, 1]},
                  manifest=str(MANIFEST_SMOKE), split=str(synth["split"]), cache=str(synth["cache"]))
    path = synth["root"] / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _weights(run_dir: Path) -> dict:
    import paddle

    return {name: np.array(value) for name, value in paddle.load(str(run_dir / "model.pdparams")).items()}


@pytest.fixture(scope="module")
def smoke_run(synth) -> dict:
    """Four straight steps (run A)."""
    from training.train import main

    config = _config(synth, "smoke_a")
    run_dir = synth["root"] / "run_a"
    assert main(["--config", str(config), "--run-dir", str(run_dir)]) == 0
    return {"config": config, "run_dir": run_dir}


def test_smoke_training_writes_checkpoints_and_a_finite_log(smoke_run):
    run_dir = smoke_run["run_dir"]
    for name in ("model.pdparams", "optimizer.pdopt", "step.txt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "step.txt").read_text(encoding="utf-8") == "4"
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3]
    assert all(np.isfinite(line["loss"]) and line["loss"] > 0 for line in lines)
    assert {line["passes"] for line in lines} <= {0, 1}


def test_a_lost_run_folder_is_taken_up_at_its_step_from_committed_weights(synth, smoke_run):
    """--init with --start-step: the schedule and the examples go on from that step, with a fresh optimiser; a
    checkpoint in the run folder still wins over both."""
    from training.train import main

    config = _config(synth, "smoke_c")
    run_dir = synth["root"] / "run_c"
    weights = smoke_run["run_dir"] / "model.pdparams"
    assert main(["--config", str(config), "--run-dir", str(run_dir), "--init", str(weights), "--start-step", "2"]) == 0
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["step"] for line in lines] == [2, 3]  # steps 2 and 3 of the 4-step schedule, not 0-3 again
    assert (run_dir / "step.txt").read_text(encoding="utf-8") == "4"
    trained, start = _weights(run_dir), _weights(smoke_run["run_dir"])
    assert any(not np.array_equal(trained[n], start[n]) for n in trained)  # it trained from those weights
    # the run folder's checkpoint (step 4, the schedule's end) wins: nothing is trained again from step 2
    assert main(["--config", str(config), "--run-dir", str(run_dir), "--init", str(weights), "--start-step", "2"]) == 0
    assert len((run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    with pytest.raises(SystemExit):
        main(["--config", str(config), "--run-dir", str(synth["root"] / "run_d"), "--start-step", "2"])


def test_resumed_run_ends_with_the_same_weights(synth, smoke_run):
    from training.train import main

    config = _config(synth, "smoke_b")
    run_dir = synth["root"] / "run_b"
    assert main(["--config", str(config), "--run-dir", str(run_dir), "--steps", "2"]) == 0
    assert (run_dir / "step.txt").read_text(encoding="utf-8") == "2"
    halfway = _weights(run_dir)
    assert main(["--config", str(config), "--run-dir", str(run_dir), "--steps", "2"]) == 0
    assert (run_dir / "step.txt").read_text(encoding="utf-8") == "4"
    straight, resumed = _weights(smoke_run["run_dir"]), _weights(run_dir)
    assert set(straight) == set(resumed)
    assert any(not np.array_equal(halfway[n], resumed[n]) for n in resumed)  # the second call trained
    for name in straight:
        np.testing.assert_allclose(resumed[name], straight[name], rtol=0, atol=1e-6, err_msg=name)
    losses = [[json.loads(line)["loss"] for line in (d / "log.jsonl").read_text(encoding="utf-8").splitlines()]
              for d in (smoke_run["run_dir"], run_dir)]
    assert losses[0] == losses[1]


def test_two_process_data_parallel_run_averages_gradients(synth, smoke_run):
    """The multi-GPU path, run on two CPU processes (gloo): rank 0 draws the same examples as the one-process
    run, so its weights differ from that run's only if rank 1's gradients were averaged in; the ranks agree."""
    import os
    import subprocess
    import sys

    config = _config(synth, "smoke_dp")
    run_dir = synth["root"] / "run_dp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "EISegMed3D")]))
    done = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(synth["root"] / "dp_logs"), str(REPO / "training" / "train.py"),
                           "--config", str(config), "--run-dir", str(run_dir)],
                          env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "x 2 processes; replicas differ by 0" in done.stdout + done.stderr
    assert (run_dir / "step.txt").read_text(encoding="utf-8") == "4"
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3]  # logged once, by rank 0
    single, parallel = _weights(smoke_run["run_dir"]), _weights(run_dir)
    assert set(single) == set(parallel)
    assert max(float(np.abs(single[n] - parallel[n]).max()) for n in single) > 1e-6


def test_packaged_smoke_model_runs_in_the_engine(synth, smoke_run, tmp_path):
    import paddle

    from inference.clickmaps import Click
    from inference.model import load_model
    from inference.model_input import choose_roi, model_inputs
    from inference.normalize import intensity_stats
    from inference.session import InteractiveSession
    from inference.volume import Volume
    from training.network import build_network, load_weights
    from training.package_model import package
    from training.train import load_config

    config = load_config(smoke_run["config"])
    weights = smoke_run["run_dir"] / "model.pdparams"
    out = tmp_path / "smoke_model"
    manifest = package(config, weights, out, "smoke-test", "4-step smoke model", {"steps": 4})
    assert manifest["patch_shape"] == [32, 32, 32] and manifest["network"]["base"] == 4
    assert max(manifest["export"]["parity_max_abs_diff"].values()) <= 1e-4

    model = load_model(out)
    volume = Volume.from_file(synth["data"] / "synth" / "case_002.nii.gz")
    session = InteractiveSession(model)
    session.set_volume(volume)
    click = (14.0, 16.0, 14.0)  # (i, j, k) near the centre of blob 1
    result = session.add_click(ijk=click, positive=True)
    assert result.mask.shape == volume.shape and result.mask.dtype == np.uint8
    assert set(np.unique(result.mask).tolist()) <= {0, 1} and len(session.clicks) == 1

    # The engine's network is the trained one: same logits as the checkpoint in the dynamic graph.
    net = build_network(config)
    load_weights(net, weights)
    net.eval()
    spacing_kji = volume.spacing[::-1]
    clicks = [Click(click, True)]
    roi = choose_roi(model.manifest, volume.shape, spacing_kji, [c.kji for c in clicks])
    stats = intensity_stats(volume.array, model.manifest["normalization"])
    image, channels = model_inputs(volume.array, stats, None, clicks, roi, spacing_kji, model.manifest)
    with paddle.no_grad():
        expected = net(paddle.to_tensor(image), paddle.to_tensor(channels)).numpy()
    np.testing.assert_allclose(model.predict(image, channels), expected, atol=1e-4)


def test_click_branch_fusion_trains_exports_and_runs_in_the_engine(synth, tmp_path):
    """The original's fusion (clicks through a conv branch, scaled, added after the stem) is a config option:
    it trains, exports with graph parity and answers a click in the engine."""
    from inference.model import load_model
    from inference.session import InteractiveSession
    from inference.volume import Volume
    from training.network import BRANCH_SCALE_INIT, build_network, load_weights, parameter_count
    from training.package_model import package
    from training.train import load_config, main

    config_path = _config(synth, "smoke_branch")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["network"]["fusion"] = "branch"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    run_dir = synth["root"] / "run_branch"
    assert main(["--config", str(config_path), "--run-dir", str(run_dir)]) == 0

    config = load_config(config_path)
    trained, fresh = build_network(config), build_network(config)
    load_weights(trained, run_dir / "model.pdparams")
    assert float(fresh.click_scale.numpy()[0]) == pytest.approx(BRANCH_SCALE_INIT)
    assert float(trained.click_scale.numpy()[0]) != pytest.approx(BRANCH_SCALE_INIT, abs=1e-7)  # the scalar learns
    concat = build_network({"network": {**config["network"], "fusion": "concat"}})
    assert parameter_count(trained) > parameter_count(concat)

    manifest = package(config, run_dir / "model.pdparams", tmp_path / "branch", "branch-test", "", {"steps": 4})
    assert manifest["network"]["fusion"] == "branch"
    assert max(manifest["export"]["parity_max_abs_diff"].values()) <= 1e-4
    session = InteractiveSession(load_model(tmp_path / "branch"))
    session.set_volume(Volume.from_file(synth["data"] / "synth" / "case_002.nii.gz"))
    assert session.add_click(ijk=(14.0, 16.0, 14.0), positive=True).mask.shape == session.volume.shape


def test_unknown_fusion_is_refused():
    from training.network import build_network

    with pytest.raises(ValueError, match="fusion 'sum'"):
        build_network({"network": {"base": 4, "levels": 2, "depths": [1, 1, 1], "fusion": "sum"}})


def test_case_sampling_by_dataset_weights_every_folder_alike():
    from training.batches import case_weights

    keys = ["spine/case_000", "spine/case_001", "spine/case_002", "liver/case_000"]
    np.testing.assert_allclose(case_weights(keys, "case"), [0.25] * 4)
    by_folder = case_weights(keys, "dataset")
    np.testing.assert_allclose(by_folder, [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    assert by_folder.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="case sampling 'folder'"):
        case_weights(keys, "folder")


def test_case_sampling_folder_factors_scale_a_folders_share():
    from training.batches import case_weights

    keys = ["spine/case_000", "spine/case_001", "spine/case_002", "spine/case_003", "t2/case_000"]
    plain = case_weights(keys, "sqrt")  # shares 2 : 1
    np.testing.assert_allclose(plain[-1], 1 / 3)
    boosted = case_weights(keys, {"by": "sqrt", "folders": {"t2": 2.0}})  # shares 2 : 2
    np.testing.assert_allclose(boosted, [1 / 8] * 4 + [1 / 2])
    np.testing.assert_allclose(case_weights(keys, {"by": "case", "folders": {"t2": 4.0}}), [1 / 8] * 4 + [1 / 2])
    with pytest.raises(ValueError, match="no training case"):
        case_weights(keys, {"by": "sqrt", "folders": {"t1": 2.0}})


def test_dataset_sampling_run_trains_and_a_bad_setting_fails_before_training(synth):
    from training.batches import ExampleStream
    from training.train import main

    config_path = _config(synth, "smoke_by_dataset")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(case_sampling="dataset", steps=2)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    assert main(["--config", str(config_path), "--run-dir", str(synth["root"] / "run_by_dataset")]) == 0
    with pytest.raises(ValueError, match="case sampling"):
        ExampleStream(synth["cache"], KEYS[:2], synth["manifest"], 1, 0, sampling="by_folder")


def test_a_run_woken_after_a_long_pause_schedules_one_snapshot_not_one_a_step():
    from training.train import next_due

    # 20-minute snapshots; the run was stopped for 55 minutes just before the first was due
    due = next_due(1200.0, 1200.0 + 55 * 60, 1200.0)
    assert due == 4800.0  # the next grid time after 4500 s; before, 2400 s: a snapshot at each of the next steps
    assert next_due(1200.0, 1250.0, 1200.0) == 2400.0  # the usual case


def test_a_resumed_run_takes_up_its_training_clock_from_the_checkpointed_step(tmp_path):
    from training.train import trained_seconds

    log = tmp_path / "log.jsonl"
    assert trained_seconds(log, 0) == 0.0 and trained_seconds(log, 50) == 0.0  # no log yet: a fresh clock
    # steps 0-51 logged, the run killed after its checkpoint at step 50, resumed there, killed again after step 50's rerun
    lines = [{"step": s, "t": 10.0 * (s + 1)} for s in range(52)] + [{"step": 50, "t": 515.0}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert trained_seconds(log, 50) == 500.0  # step 49's time: steps 50 and 51 are trained again
    assert trained_seconds(log, 51) == 515.0  # the rerun's line for step 50 wins over the first


def test_export_parity_is_judged_relative_to_the_size_of_large_logits(tmp_path):
    """Trained networks give logits of several hundred, where float32 steps by ~6e-5: a package of such a network
    exports (the check scales the difference by max(1, |logit|)), and a graph of other weights is still refused."""
    import paddle

    from tiny_nets import TINY_PATCH, make_tiny_net, tiny_manifest
    from training.export import export_model, parity_check

    class Loud(paddle.nn.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image, clicks):
            return 300.0 * self.inner(image, clicks)

    loud = Loud(make_tiny_net(seed=3))
    loud.eval()
    manifest = export_model(loud, tmp_path / "loud", tiny_manifest(), TINY_PATCH, formats=("paddle", "onnx"))
    assert max(manifest["export"]["parity_max_scaled_diff"].values()) <= 1e-4
    other = Loud(make_tiny_net(seed=4))
    other.eval()
    _, scaled = parity_check(other, tmp_path / "loud", manifest)
    assert min(scaled.values()) > 1e-2


def test_the_example_worker_runs_at_the_configured_niceness_and_gives_the_same_examples(synth):
    """worker_nice only lowers the worker's priority: the batch is the one the same stream makes in-process."""
    import os

    from training.batches import ExampleStream

    niced = ExampleStream(synth["cache"], KEYS[:2], synth["manifest"], 2, 3, workers=1, keep_heap=True, worker_nice=4)
    try:
        assert niced.pool.apply(os.nice, (0,)) == os.nice(0) + 4 or os.nice(0) + 4 > 19
        batch = niced.batch(0)
    finally:
        niced.close()
    local = ExampleStream(synth["cache"], KEYS[:2], synth["manifest"], 2, 3).batch(0)
    for a, b in zip(batch, local):
        np.testing.assert_array_equal(a["image"], b["image"])
        assert [tuple(p) for p, _ in a["clicks"]] == [tuple(p) for p, _ in b["clicks"]]
