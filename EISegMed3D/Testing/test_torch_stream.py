"""The GPU training path on the CPU (issue 9, item 2): training.torch_stream makes examples with the CPU recipe's
semantics (the engine's ROI and normalisation, clicks inside the object, the engine's click balls, one-voxel
region channels, error clicks in the error's deeper half), the carry pack round-trips under its size rule, and the
device command (training/gpu_train.sh) trains a few steps without Paddle, SimpleITK, scikit-image or tqdm."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from test_training import KEYS, MANIFEST_SMOKE, REPO, synth  # noqa: F401  (synth is a fixture)

torch = pytest.importorskip("torch", reason="PyTorch (the GPU training back end) is not installed")

OPTIONS = {"union": 0.15, "supervoxel": 0.2, "synthetic": 0.2, "box": 0.2, "lasso": 0.2, "scribble": 0.2,
           "contrast": "random"}


def _manifest() -> dict:
    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    manifest["inputs"][1]["channels"] = ["previous_mask", "positive_clicks", "negative_clicks", "region"]
    return manifest


@pytest.fixture(scope="module")
def cache(synth, tmp_path_factory) -> Path:
    """The synthetic cases' cache with their supervoxels (a copy: the shared fixture stays as it is)."""
    from training import pseudo_objects

    folder = tmp_path_factory.mktemp("torch_stream") / "cache"
    shutil.copytree(synth["cache"], folder)
    assert pseudo_objects.main(["--cache", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def stream(cache):
    from training.stream_plans import load_cases
    from training.torch_stream import TorchExampleStream

    return TorchExampleStream(load_cases(cache, KEYS[:2], True), _manifest(), 4, 5, "case", OPTIONS, "cpu")


def _cpu_case(cache: Path, key: str) -> dict:
    """A case as training.batches' workers hold it (for make_example)."""
    from training.batches import add_supervoxels
    from training.data import load_cache
    from training.sampler import object_boxes

    (case,) = load_cache(cache, [key])
    case["boxes"] = object_boxes(case["label"])
    add_supervoxels(case, cache)
    return case


# --- the CPU part: the same case, target and ROI as make_example -----------------------------------------------
def test_roi_is_the_one_make_example_chooses_for_the_same_draw(cache, stream, monkeypatch):
    from training import sampler
    from training.stream_plans import plan_roi

    seen = []
    real_sample = sampler.sample
    monkeypatch.setattr(sampler, "sample", lambda array, roi, **kw: seen.append(roi) or real_sample(array, roi, **kw))
    case = _cpu_case(cache, KEYS[0])
    compared = 0
    for seed in range(30):
        seen.clear()
        sampler.make_example(np.random.default_rng(seed), case, _manifest(), OPTIONS)
        plan = plan_roi(np.random.default_rng(seed), stream.cases[0], _manifest(), OPTIONS)
        if not seen:
            assert plan is None
            continue
        compared += 1
        np.testing.assert_allclose(plan["roi"].start, seen[0].start, rtol=0, atol=1e-12)
        np.testing.assert_allclose(plan["roi"].step, seen[0].step, rtol=0, atol=1e-12)
        assert plan["roi"].shape == seen[0].shape
    assert compared >= 20


def test_patch_is_the_engines_normalised_resampled_image_and_target(cache, stream):
    from inference.normalize import normalize
    from inference.roi import sample
    from training.stream_plans import plan_roi

    case = _cpu_case(cache, KEYS[0])
    manifest = _manifest()
    checked = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        plan = plan_roi(rng, stream.cases[0], manifest, OPTIONS)
        if plan is None or plan["kind"] == "synthetic":
            continue
        plan["case"] = 0
        image, gt, others = stream._patch(rng, plan, torch.Generator().manual_seed(0))
        expected = normalize(sample(case["image"], plan["roi"], order=1, mode="nearest"), manifest["normalization"], case["stats"])
        np.testing.assert_allclose(image.numpy(), expected, atol=2e-4)
        source = case["supervoxels"] if plan["kind"] == "supervoxel" else case["label"]
        labels = sample(source, plan["roi"], order=0, mode="constant", cval=0)
        expected_gt = np.isin(labels, plan["values"])
        assert (gt.numpy() == expected_gt).mean() > 0.999  # nearest rounding may differ on exact halves
        checked += 1
    assert checked >= 8


# --- the batch ----------------------------------------------------------------------------------------------------
def test_examples_have_their_target_in_the_patch_and_the_first_click_inside(stream):
    for step in range(4):
        examples = stream.batch(step)
        gt = examples["gt"].numpy()
        assert gt.shape == (4, 32, 32, 32) and (gt.reshape(4, -1).sum(1) >= 20).all()
        for b in np.flatnonzero(examples["first_valid"].numpy()):
            k, j, i = np.round(examples["first"][b].numpy()).astype(int)
            assert gt[b, k, j, i]
        images, clicks, targets = stream.arrays(examples)
        assert images.shape == (4, 1, 32, 32, 32) and clicks.shape == (4, 4, 32, 32, 32)
        assert torch.isfinite(images).all() and torch.equal(targets[:, 0] > 0.5, examples["gt"])


def test_click_balls_are_the_engines_for_the_same_points(stream):
    from training.sampler import click_channels

    for step in range(3):
        examples = stream.batch(step)
        for b in range(4):
            valid = examples["valid"][b].numpy()
            points = examples["points"][b].numpy()[valid]
            signs = examples["positive"][b].numpy()[valid]
            positive, negative = click_channels(list(zip(points, signs)), (32, 32, 32), _manifest(),
                                                examples["voxel_mm"][b].numpy())
            np.testing.assert_array_equal(examples["pos"][b].numpy(), positive)
            np.testing.assert_array_equal(examples["neg"][b].numpy(), negative)


def test_ball_maps_equal_draw_ball_on_anisotropic_grids_and_edges():
    from inference.clickmaps import draw_ball
    from training.torch_ops import ball_maps

    rng = np.random.default_rng(3)
    shape = (20, 24, 18)
    points = rng.uniform(-2, 22, (3, 9, 3))
    points[:, :3] = np.round(points[:, :3])  # voxel centres: some voxels lie exactly on the sphere
    metric = np.array([[1.0, 1.0, 1.0], [2.5, 0.9, 0.9], [0.5, 1.5, 1.0]])
    radius = np.array([3.0, 2.7, 1.5])
    positive = rng.random((3, 9)) < 0.5
    pos, neg = ball_maps(torch.from_numpy(points), torch.from_numpy(positive), torch.ones((3, 9), dtype=torch.bool),
                         shape, torch.from_numpy(radius), torch.from_numpy(metric))
    for b in range(3):
        expected = np.zeros((2,) + shape, np.float32)
        for p, s in zip(points[b], positive[b]):
            draw_ball(expected[0 if s else 1], p, radius[b], metric[b])
        np.testing.assert_array_equal(pos[b].numpy(), expected[0])
        np.testing.assert_array_equal(neg[b].numpy(), expected[1])


def test_region_channel_is_one_voxel_thick_on_an_axis_plane_over_the_object(stream):
    seen = 0
    for step in range(8):
        examples = stream.batch(step)
        for b in range(4):
            region = examples["region"][b].numpy() > 0
            if not region.any():
                continue
            seen += 1
            index = np.argwhere(region)
            assert min(np.unique(index[:, axis]).size for axis in range(3)) == 1
            assert (region & examples["gt"][b].numpy()).any()
    assert seen >= 3


def test_region_prism_manifest_extrudes_the_drawn_plane_across_the_patch(cache):
    from training.stream_plans import load_cases
    from training.torch_stream import TorchExampleStream

    manifest = {**_manifest(), "region_prism": 0.5}
    prism = TorchExampleStream(load_cases(cache, KEYS[:2], True), manifest, 4, 5, "case", OPTIONS, "cpu")
    seen = 0
    for step in range(8):
        examples = prism.batch(step)
        for b in range(4):
            region = examples["region"][b].numpy()
            if not region.any():
                continue
            seen += 1
            assert set(np.unique(region)) == {0.0, 0.5, 1.0}
            plane = np.argwhere(region == 1.0)
            axis = int(np.argmin([np.unique(plane[:, a]).size for a in range(3)]))
            footprint = np.take(region, plane[0, axis], axis=axis) == 1.0
            for index in range(region.shape[axis]):  # the same footprint on every slice across the plane
                np.testing.assert_array_equal(np.take(region, index, axis=axis) > 0, footprint)
    assert seen >= 3


def test_the_fed_prism_takes_its_with_clicks_value_where_the_example_has_clicks(cache):
    from training.stream_plans import load_cases
    from training.torch_stream import TorchExampleStream

    manifest = {**_manifest(), "region_prism": 0.5, "region_prism_with_clicks": 0.1}
    stream = TorchExampleStream(load_cases(cache, KEYS[:2], True), manifest, 4, 5, "case", OPTIONS, "cpu")
    seen = {True: 0, False: 0}
    for step in range(12):
        examples = stream.batch(step)
        for _ in range(2):  # as drawn, then after an error-click pass (a click wherever the prediction is wrong)
            fed = stream.arrays(examples)[1][:, manifest["inputs"][1]["channels"].index("region")]
            for b in range(4):
                drawn = examples["region"][b]
                if not drawn.any():
                    continue
                clicked = bool(examples["valid"][b].any())
                seen[clicked] += 1
                expected = torch.where(drawn == 0.5, 0.1 if clicked else 0.5, drawn)
                torch.testing.assert_close(fed[b], expected)
            examples = stream.add_error_clicks(examples, torch.zeros_like(examples["gt"]))
    assert seen[True] >= 3 and seen[False] >= 2


def test_edt_is_exact():
    from training.torch_ops import edt

    rng = np.random.default_rng(0)
    mask = ndimage.gaussian_filter(rng.random((3, 30, 34, 28)), (0, 3, 3, 3)) > 0.5
    mask[0, 0, 5:12, 5:12] = True  # on the border, which counts as outside
    spacing = np.array([[1.0, 1.0, 1.0], [0.8, 1.2, 3.0], [2.0, 2.0, 2.0]])
    depth = edt(torch.from_numpy(mask), torch.from_numpy(spacing)).numpy()
    for b in range(3):
        expected = ndimage.distance_transform_edt(np.pad(mask[b], 1), sampling=spacing[b])[1:-1, 1:-1, 1:-1]
        np.testing.assert_allclose(depth[b], expected, atol=1e-4)


@pytest.mark.parametrize("error", ["missed", "extra"])
def test_error_click_lies_in_the_larger_errors_deeper_half(stream, error):
    examples = stream.batch(1)
    gt = examples["gt"]
    prediction = gt.clone()
    for b in range(4):
        if error == "missed":
            core = ndimage.binary_erosion(gt[b].numpy(), iterations=1)
            prediction[b] = torch.from_numpy(gt[b].numpy() & ~core)  # the object's inside missed
        else:
            prediction[b] |= torch.from_numpy(ndimage.binary_dilation(gt[b].numpy(), iterations=4))
    before = examples["valid"].shape[1]
    after = stream.add_error_clicks(examples, prediction)
    assert torch.equal(after["previous"], prediction.float())
    wrong = (gt & ~prediction) if error == "missed" else (prediction & ~gt)
    for b in range(4):
        assert bool(after["valid"][b, before])
        assert bool(after["positive"][b, before]) == (error == "missed")
        k, j, i = after["points"][b, before].numpy().astype(int)
        region = wrong[b].numpy()
        depth = ndimage.distance_transform_edt(np.pad(region, 1), sampling=examples["voxel_mm"][b].numpy())[1:-1, 1:-1, 1:-1]
        assert region[k, j, i] and depth[k, j, i] > depth.max() / 2 - 1e-6
    channel = stream.names.index("positive_clicks" if error == "missed" else "negative_clicks")
    assert stream.arrays(after)[1][:, channel].sum() > stream.arrays(examples)[1][:, channel].sum()


def test_a_step_is_the_same_for_the_same_seed(cache, stream):
    from training.stream_plans import load_cases
    from training.torch_stream import TorchExampleStream

    again = TorchExampleStream(load_cases(cache, KEYS[:2], True), _manifest(), 4, 5, "case", OPTIONS, "cpu")
    for first, second in zip(stream.arrays(stream.batch(6)), again.arrays(again.batch(6))):
        assert torch.equal(first, second)
    assert not torch.equal(stream.arrays(stream.batch(7))[0], stream.arrays(stream.batch(6))[0])


def test_planner_processes_draw_the_same_examples(cache, stream):
    from training.stream_plans import load_cases
    from training.torch_stream import TorchExampleStream

    planned = TorchExampleStream(load_cases(cache, KEYS[:2], True), _manifest(), 4, 5, "case", OPTIONS, "cpu",
                                 planners=1, source=("cache", str(cache), KEYS[:2], True))
    try:
        for step in (2, 3, 9):  # 3 comes from the prefetch made during step 2; 9 is drawn on demand
            for first, second in zip(stream.arrays(stream.batch(step)), planned.arrays(planned.batch(step))):
                assert torch.equal(first, second)
    finally:
        planned.close()


# --- the carry pack -----------------------------------------------------------------------------------------------
def test_pack_keeps_every_array_and_drops_spread_over_the_largest_folder(cache, tmp_path):
    from training.carry import build_pack, choose_cases, extract_weights, load_pack_cases, pack_meta
    from training.stream_plans import load_cases

    init = tmp_path / "init.npz"
    np.savez(init, w=np.arange(10, dtype=np.float32))
    meta = build_pack(cache, KEYS[:2], init, tmp_path / "pack.npz", 40.0)
    assert meta["dropped"] == [] and pack_meta(tmp_path / "pack.npz")["kept"] == KEYS[:2]
    for packed, cached in zip(load_pack_cases(tmp_path / "pack.npz"), load_cases(cache, KEYS[:2], True)):
        for name in ("image_u8", "label", "supervoxels", "spacing_kji", "values"):
            np.testing.assert_array_equal(packed[name], cached[name])
        assert packed["stats"] == cached["stats"] and packed["key"] == cached["key"]
    assert extract_weights(tmp_path / "pack.npz", tmp_path / "out.npz").read_bytes() == init.read_bytes()

    sizes = {"a/1": 10, "a/2": 10, "a/3": 10, "b/1": 10, "c/1": 30}
    assert choose_cases(sizes, 50) == (["a/1", "b/1", "c/1"], ["a/2", "a/3"])
    eight = {f"w/{i}": 10 for i in range(8)}  # half must go: every other case, not the last four
    kept, dropped = choose_cases(eight, 40)
    assert sorted(dropped) == ["w/1", "w/3", "w/5", "w/7"] and kept == ["w/0", "w/2", "w/4", "w/6"]
    with pytest.raises(ValueError, match="not one case fits"):
        build_pack(cache, KEYS[:2], init, tmp_path / "small.npz", budget_mib=0.01)


# --- the device command -------------------------------------------------------------------------------------------
def test_the_device_command_trains_on_cpu_without_paddle_simpleitk_skimage_or_tqdm(cache, tmp_path):
    """training/gpu_train.sh as the device runs it, on a tiny pack, with those packages made unimportable."""
    from training.carry import build_pack
    from training.torch_bridge import InteractiveVNet, paddle_state

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(_manifest()), encoding="utf-8")
    network = {"base": 4, "levels": 2, "depths": [1, 1, 1], "click_channels": 4}
    init = tmp_path / "init.npz"
    np.savez(init, **paddle_state(InteractiveVNet(base=4, levels=2, depths=(1, 1, 1), click_channels=3)))
    build_pack(cache, KEYS[:2], init, tmp_path / "pack.npz", 40.0)
    config = json.loads((REPO / "training" / "configs" / "gpu_universal.json").read_text(encoding="utf-8"))
    config.update(batch_size=2, network=network, manifest=str(manifest), pack=str(tmp_path / "pack.npz"),
                  checkpoint_every=2, sampling=OPTIONS, plan_workers=0)
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor name in ('paddle', 'SimpleITK', 'skimage', 'tqdm', 'onnxruntime'):\n    sys.modules[name] = None\n")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "CONFIG": str(tmp_path / "config.json"), "PYTHON": sys.executable,
           "PYTHONPATH": str(blocker), "RUN_DIR": str(tmp_path / "run"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(REPO / "training" / "gpu_train.sh"), "120", "--steps", "4"], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [0, 1, 2, 3] and all(np.isfinite(e["loss"]) for e in log)
    assert (out / "step.txt").read_text() == "4" and "4 steps" in (out / "train.txt").read_text()
    with np.load(out / "paddle_weights.npz") as trained, np.load(init) as start:
        assert trained["stem.conv.weight"].shape[1] == 5  # image + 4 click channels, grown from the 3-channel init
        assert not np.allclose(trained["head.weight"], start["head.weight"])
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(left) <= 8 and not any("tmp_" in name for name in left)


def test_soft_targets_on_the_device_are_the_cpu_recipes(cache):
    """sampling "soft_target" in the torch stream: the covered fraction computed on the device equals
    training.soft_target.coverage for the same plan, travels through flips and axis order with the mask, and is
    what the trainer gets as its target."""
    from training.soft_target import coverage
    from training.stream_plans import load_cases, plan_once
    from training.torch_stream import TorchExampleStream

    options = {**OPTIONS, "soft_target": True}
    soft_stream = TorchExampleStream(load_cases(cache, KEYS[:2], True), _manifest(), 4, 5, "case", options, "cpu")
    rng = np.random.default_rng(11)
    compared = 0
    while compared < 6:
        plan = plan_once(rng, soft_stream.cases, soft_stream.weights, soft_stream.manifest, options)
        if plan is None or plan["kind"] == "synthetic":
            continue
        case = soft_stream.cases[plan["case"]]
        labels = case["supervoxels"] if plan["kind"] == "supervoxel" else case["label"]
        expected = coverage(labels, plan["roi"], plan["values"], plan["box"])
        np.testing.assert_allclose(soft_stream._soft(plan).numpy(), expected, atol=1e-5)
        compared += 1
    examples = soft_stream.batch(0)
    _, _, targets = soft_stream.arrays(examples)
    gt = examples["gt"][:, None]
    assert torch.equal(targets, examples["soft"][:, None])
    assert ((targets > 0.5) == gt).float().mean() > 0.97  # moved with the mask
    assert bool(((targets > 0.05) & (targets < 0.95)).any())  # soft at the edges
    plain = TorchExampleStream(load_cases(cache, KEYS[:2], True), _manifest(), 4, 5, "case", OPTIONS, "cpu")
    assert torch.equal(plain.arrays(plain.batch(0))[2], plain.batch(0)["gt"][:, None].float())
