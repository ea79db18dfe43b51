"""Training issue 9 on synthetic data: the fast PyTorch trainer (bf16, channels-last), the band-weighted loss (same in
Paddle), the 4th "region" click channel and its warm start, pseudo-objects, contrast randomisation, simulated
box / lasso / scribble prompts, and the bounded-box error click. No ../shared/data needed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from test_training import KEYS, MANIFEST_SMOKE, REPO, _cases, _config, synth  # noqa: F401  (synth is a fixture)

torch = pytest.importorskip("torch", reason="PyTorch (the fast training back end) is not installed")

SAMPLING = {"union": 0.15, "supervoxel": 0.2, "synthetic": 0.2, "box": 0.15, "lasso": 0.15, "scribble": 0.1,
            "contrast": "random"}


def _prompt_manifest() -> dict:
    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    manifest["inputs"][1]["channels"] = ["previous_mask", "positive_clicks", "negative_clicks", "region"]
    return manifest


# --- the error click over the error's bounding box equals the full distance transform ------------------------
@pytest.mark.parametrize("seed", range(5))
def test_error_click_depth_over_the_box_equals_the_full_transform(seed):
    from training.clicks import _depth

    rng = np.random.default_rng(seed)
    mask = ndimage.binary_dilation(rng.random((30, 26, 34)) > 0.995, iterations=2)
    mask[0, 3:9, 4:10] = True  # touching the array border, which counts as outside
    spacing = (2.5, 1.0, 0.8)
    full = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    np.testing.assert_array_equal(_depth(mask, spacing), full)


# --- the loss --------------------------------------------------------------------------------------------------
def test_boundary_band_is_grey_dilation_minus_erosion_over_the_cube_on_irregular_shapes():
    """The band by one axis at a time equals the cubic structuring element's, at the patch edges too (beyond the
    edge is ignored: no band along a face the object touches)."""
    from training.torch_bridge import boundary_band

    rng = np.random.default_rng(4)
    blobs = ndimage.gaussian_filter(rng.normal(size=(2, 1, 24, 20, 28)), (0, 0, 2, 2, 2)) > 0.05
    targets = blobs.astype(np.float32)
    for width in (1, 2):
        cube = (2 * width + 1,) * 3
        expected = np.stack([ndimage.grey_dilation(t[0], size=cube, mode="constant", cval=0.0)
                             - ndimage.grey_erosion(t[0], size=cube, mode="constant", cval=1.0) for t in targets])
        band = boundary_band(torch.from_numpy(targets).contiguous(memory_format=torch.channels_last_3d), width)
        np.testing.assert_array_equal(band.numpy()[:, 0], expected)
        assert 0 < expected.mean() < 0.9


def test_boundary_band_is_the_shell_around_the_edge_and_both_frameworks_agree():
    import paddle

    from training.paddle_trainer import boundary_band as paddle_band, dice_bce_loss
    from training.torch_bridge import boundary_band, interactive_loss

    target = np.zeros((1, 1, 20, 20, 20), np.float32)
    target[0, 0, 6:14, 6:14, 6:14] = 1
    band = boundary_band(torch.from_numpy(target), 2).numpy()[0, 0]
    # within 2 voxels (chessboard) of the cube's faces on either side: a shell from 4 to 15, minus the 10-9 core
    expected = np.zeros((20, 20, 20), bool)
    expected[4:16, 4:16, 4:16] = True
    expected[8:12, 8:12, 8:12] = False
    np.testing.assert_array_equal(band > 0, expected)
    np.testing.assert_array_equal(paddle_band(paddle.to_tensor(target), 2).numpy()[0, 0], band)
    logits = np.random.default_rng(0).normal(size=target.shape).astype(np.float32)
    ours = float(interactive_loss(torch.from_numpy(logits), torch.from_numpy(target), band_weight=3.0))
    theirs = float(dice_bce_loss(paddle.to_tensor(logits), paddle.to_tensor(target), band_weight=3.0))
    assert ours == pytest.approx(theirs, rel=1e-5)
    plain = float(interactive_loss(torch.from_numpy(logits), torch.from_numpy(target)))
    assert ours != pytest.approx(plain, rel=1e-3)  # the band weights changed the loss


def test_the_previous_mask_error_weight_targets_what_a_correction_changes_and_both_frameworks_agree():
    import paddle

    from training.paddle_trainer import dice_bce_loss
    from training.torch_bridge import interactive_loss, previous_error

    target = np.zeros((2, 1, 12, 12, 12), np.float32)
    target[:, 0, 3:9, 3:9, 3:9] = 1
    previous = np.zeros_like(target)
    previous[0, 0, 3:9, 3:9, 3:11] = 0.9  # example 0: a mask that leaks 2 voxels; example 1: no mask yet
    error = previous_error(torch.from_numpy(previous), torch.from_numpy(target)).numpy()
    expected = np.zeros_like(target)
    expected[0, 0, 3:9, 3:9, 9:11] = 1
    np.testing.assert_array_equal(error, expected)  # the leak only; nothing for the example without a mask
    logits = np.random.default_rng(1).normal(size=target.shape).astype(np.float32)
    logits[0, 0, 3:9, 3:9, 9:11] = 4.0  # the network repeats the leak
    t = {name: torch.from_numpy(a) for name, a in (("l", logits), ("t", target), ("p", previous))}
    weighted = float(interactive_loss(t["l"], t["t"], 3.0, previous=t["p"], error_weight=2.0))
    plain = float(interactive_loss(t["l"], t["t"], 3.0, previous=t["p"]))
    assert weighted > plain + 1e-3  # repeating the previous mask's error now costs more
    theirs = float(dice_bce_loss(paddle.to_tensor(logits), paddle.to_tensor(target), 3.0,
                                 previous=paddle.to_tensor(previous), error_weight=2.0))
    assert weighted == pytest.approx(theirs, rel=1e-5)


def test_missed_and_extra_voxels_of_the_previous_mask_are_weighted_apart_in_both_frameworks():
    import paddle

    from training.loss_weights import error_weights
    from training.paddle_trainer import dice_bce_loss
    from training.torch_bridge import interactive_loss, previous_error

    target = np.zeros((1, 1, 12, 12, 12), np.float32)
    target[0, 0, 3:9, 3:9, 3:9] = 1
    previous = np.zeros_like(target)
    previous[0, 0, 3:9, 3:9, 5:11] = 0.9  # misses x 3-4, adds x 9-10
    error = previous_error(torch.from_numpy(previous), torch.from_numpy(target)).numpy()
    assert (error[0, 0, 3:9, 3:9, 9:11] == 1).all() and (error[0, 0, 3:9, 3:9, 3:5] == -1).all()
    assert np.abs(error).sum() == 2 * 36 * 2
    logits = np.random.default_rng(2).normal(size=target.shape).astype(np.float32)
    t = {name: torch.from_numpy(a) for name, a in (("l", logits), ("t", target), ("p", previous))}
    loss = {w: float(interactive_loss(t["l"], t["t"], 3.0, previous=t["p"], error_weight=w))
            for w in (0.0, 2.0, (2.0, 0.0), (0.0, 2.0), (2.0, 2.0))}
    assert loss[2.0] == pytest.approx(loss[(2.0, 2.0)], rel=1e-6)  # a number weights both alike
    assert len({round(v, 5) for v in loss.values()}) == 4  # missed-only and extra-only weight different voxels
    theirs = float(dice_bce_loss(paddle.to_tensor(logits), paddle.to_tensor(target), 3.0,
                                 previous=paddle.to_tensor(previous), error_weight=(3.0, 0.5)))
    ours = float(interactive_loss(t["l"], t["t"], 3.0, previous=t["p"], error_weight=(3.0, 0.5)))
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert error_weights({"missed": 3, "extra": 0.5}) == (3.0, 0.5) and error_weights(2) == (2.0, 2.0)
    with pytest.raises(ValueError, match="unknown keys"):
        error_weights({"miss": 3})


def test_the_focal_weight_moves_the_loss_onto_wrong_voxels_and_both_frameworks_agree():
    import paddle

    from training.paddle_trainer import dice_bce_loss
    from training.torch_bridge import focal_scale, interactive_loss

    target = np.zeros((2, 1, 12, 12, 12), np.float32)
    target[:, 0, 3:9, 3:9, 3:9] = 1
    logits = np.where(target > 0, 4.0, -4.0).astype(np.float32)  # confident and right ...
    logits[0, 0, 3:9, 3:9, 9:11] = 2.0  # ... except a leak in example 0
    logits[1, 0, 3:5, 3:9, 3:9] = -1.0  # and a miss in example 1
    t = torch.from_numpy(logits).requires_grad_(True)
    scale = focal_scale(t, torch.from_numpy(target), 2.0)
    assert not scale.requires_grad
    np.testing.assert_allclose(scale.mean(dim=(1, 2, 3, 4)).numpy(), 1.0, rtol=1e-5)  # mean 1 in each example
    assert float(scale[0, 0, 4, 4, 9]) > 100 * float(scale[0, 0, 5, 5, 5])  # the leak outweighs a right voxel
    assert float(scale[1, 0, 3, 5, 5]) > 100 * float(scale[1, 0, 7, 5, 5])  # and so does the miss
    focal = interactive_loss(t, torch.from_numpy(target), 3.0, focal_gamma=2.0)
    focal.backward()
    wrong_share = float(t.grad[0, 0, 3:9, 3:9, 9:11].abs().sum() / t.grad[0].abs().sum())
    t.grad = None
    interactive_loss(t, torch.from_numpy(target), 3.0).backward()
    plain_share = float(t.grad[0, 0, 3:9, 3:9, 9:11].abs().sum() / t.grad[0].abs().sum())
    assert wrong_share > plain_share + 0.05  # the gradient goes where the mask is wrong
    with torch.no_grad():
        assert float(interactive_loss(t, torch.from_numpy(target), 3.0, focal_gamma=0.0)) == pytest.approx(
            float(interactive_loss(t, torch.from_numpy(target), 3.0)))  # gamma 0: the loss as before
    theirs = float(dice_bce_loss(paddle.to_tensor(logits), paddle.to_tensor(target), 3.0, focal_gamma=2.0))
    assert float(focal) == pytest.approx(theirs, rel=1e-5)


# --- the region channel and its warm start ----------------------------------------------------------------------
def test_a_network_with_a_region_channel_starts_out_answering_clicks_as_the_old_one(tmp_path):
    from training.torch_bridge import TorchTrainer, load_paddle_named, paddle_state

    config = {"seed": 0, "lr": 1e-3, "precision": "fp32", "network": {"base": 4, "levels": 2, "depths": [1, 1, 1]}}
    old = TorchTrainer(config)
    np.savez(tmp_path / "old.npz", **paddle_state(old.net))
    new = TorchTrainer({**config, "network": {**config["network"], "click_channels": 4}})
    load_paddle_named(new, tmp_path / "old.npz")
    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, 1, 16, 16, 16)).astype(np.float32)
    clicks = (rng.random((1, 3, 16, 16, 16)) > 0.9).astype(np.float32)
    with_region = np.concatenate([clicks, np.zeros((1, 1, 16, 16, 16), np.float32)], axis=1)
    np.testing.assert_allclose(new.predict(image, with_region), old.predict(image, clicks), atol=1e-6)
    with_region[:, 3, 8] = 1  # and the new channel is wired in (non-zero gradient path once trained)
    assert new.net.stem.conv.weight.shape[1] == 5


def test_paddle_and_torch_networks_agree_with_a_region_channel(tmp_path):
    import paddle

    from training.network import build_network, load_weights
    from training.torch_bridge import TorchTrainer, paddle_state

    network = {"base": 4, "levels": 2, "depths": [1, 1, 1], "click_channels": 4}
    twin = TorchTrainer({"seed": 0, "lr": 1e-3, "precision": "fp32", "network": network})
    np.savez(tmp_path / "w.npz", **paddle_state(twin.net))
    net = build_network({"network": network})
    load_weights(net, tmp_path / "w.npz")
    net.eval()
    rng = np.random.default_rng(2)
    image = rng.normal(size=(1, 1, 16, 16, 16)).astype(np.float32)
    clicks = (rng.random((1, 4, 16, 16, 16)) > 0.9).astype(np.float32)
    ours = torch.sigmoid(twin.net.eval()(torch.from_numpy(image), torch.from_numpy(clicks))).detach().numpy()[:, 0]
    theirs = paddle.nn.functional.sigmoid(net(paddle.to_tensor(image), paddle.to_tensor(clicks))).numpy()[:, 0]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_channels_last_stays_channels_last_through_each_norm_with_the_same_numbers():
    """InstanceNorm answers in NCDHW order; the activation after it must see the conv's channels-last layout, or its
    backward meets two layouts (3-8 times slower on the CPU). Same outputs and gradients as the default layout."""
    from training.torch_bridge import InteractiveVNet

    torch.manual_seed(0)
    net = InteractiveVNet(base=4, levels=2, depths=(1, 1, 1), click_channels=4)
    wide = InteractiveVNet(base=4, levels=2, depths=(1, 1, 1), click_channels=4)
    wide.load_state_dict(net.state_dict())
    wide = wide.to(memory_format=torch.channels_last_3d)
    seen = []
    for module in wide.modules():
        if isinstance(module, torch.nn.LeakyReLU):
            module.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    image, clicks = torch.randn(2, 1, 16, 16, 16), (torch.rand(2, 4, 16, 16, 16) > 0.9).float()
    expected = net(image, clicks)
    got = wide(image.contiguous(memory_format=torch.channels_last_3d), clicks.contiguous(memory_format=torch.channels_last_3d))
    assert len(seen) == 10 and all(x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
                                   for x in seen if min(x.shape[2:]) > 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    expected.square().mean().backward()
    got.square().mean().backward()
    for (name, a), b in zip(net.named_parameters(), wide.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_extra_stages_deepen_a_trained_network_without_changing_an_answer_and_both_frameworks_agree(tmp_path):
    import paddle

    from training.network import build_network, load_weights
    from training.torch_bridge import TorchTrainer, load_paddle_named, paddle_state

    config = {"seed": 0, "lr": 1e-2, "precision": "fp32", "network": {"base": 4, "levels": 2, "depths": [1, 1, 1]}}
    old = TorchTrainer(config)
    np.savez(tmp_path / "old.npz", **paddle_state(old.net))
    deeper = {**config["network"], "extra_stages": [0, 1, 2]}
    new = TorchTrainer({**config, "network": deeper})
    assert not any(name.startswith("extras.") for name in old.net.state_dict())  # old names unchanged
    load_paddle_named(new, tmp_path / "old.npz")
    rng = np.random.default_rng(3)
    image = rng.normal(size=(2, 1, 16, 16, 16)).astype(np.float32)
    clicks = (rng.random((2, 3, 16, 16, 16)) > 0.9).astype(np.float32)
    target = (rng.random((2, 1, 16, 16, 16)) > 0.5).astype(np.float32)
    np.testing.assert_allclose(new.predict(image, clicks), old.predict(image, clicks), atol=1e-6)
    before = {k: v.clone() for k, v in new.net.state_dict().items() if k.startswith("extras.")}
    new.train_step(image, clicks, target, 1e-2)
    moved = [k for k, v in new.net.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert any(k.endswith("convs.1.norm.weight") for k in moved)  # the zero scale learns: the stage is wired in
    np.savez(tmp_path / "new.npz", **paddle_state(new.net))
    net = build_network({"network": deeper})
    fresh = [stage.convs[-1].norm for level in net.extras for stage in level]
    assert len(fresh) == 3 and all(not norm.scale.numpy().any() and not norm.bias.numpy().any() for norm in fresh)
    load_weights(net, tmp_path / "new.npz")
    net.eval()
    theirs = paddle.nn.functional.sigmoid(net(paddle.to_tensor(image), paddle.to_tensor(clicks))).numpy()[:, 0]
    np.testing.assert_allclose(new.predict(image, clicks), theirs, atol=1e-5)
    with pytest.raises(ValueError, match="extra_stages"):
        build_network({"network": {**deeper, "extra_stages": [1, 1]}})



def test_extra_stages_at_a_small_scale_learn_from_the_first_step_in_both_frameworks(tmp_path):
    import paddle

    from training.network import build_network, load_weights
    from training.torch_bridge import TorchTrainer, paddle_state

    network = {"base": 4, "levels": 2, "depths": [1, 1, 1], "extra_stages": [0, 1, 1]}
    rng = np.random.default_rng(5)
    image = torch.from_numpy(rng.normal(size=(2, 1, 16, 16, 16)).astype(np.float32))
    clicks = torch.from_numpy((rng.random((2, 3, 16, 16, 16)) > 0.9).astype(np.float32))

    def inner_gradient(scale):
        trainer = TorchTrainer({"seed": 0, "lr": 1e-3, "precision": "fp32",
                                "network": {**network, "extra_stage_scale": scale}})
        trainer.net(image, clicks).square().mean().backward()
        return trainer, float(trainer.net.extras[1][0].convs[0].conv.weight.grad.abs().sum())

    assert inner_gradient(0.0)[1] == 0.0  # at scale 0 the new stage's own convolutions cannot learn
    trainer, gradient = inner_gradient(0.1)
    assert gradient > 0.0
    net = build_network({"network": {**network, "extra_stage_scale": 0.1}})
    assert all(np.allclose(stage.convs[-1].norm.scale.numpy(), 0.1) for level in net.extras for stage in level)
    np.savez(tmp_path / "w.npz", **paddle_state(trainer.net))
    load_weights(net, tmp_path / "w.npz")
    net.eval()
    theirs = paddle.nn.functional.sigmoid(net(paddle.to_tensor(image.numpy()), paddle.to_tensor(clicks.numpy())))
    np.testing.assert_allclose(trainer.predict(image.numpy(), clicks.numpy()), theirs.numpy()[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="extra_stage_scale"):
        build_network({"network": {**network, "extra_stage_scale": -1}})

# --- pseudo-objects, contrast, prompts -------------------------------------------------------------------------
def test_supervoxels_cover_the_image_in_regions_of_the_allowed_size():
    from training.pseudo_objects import MAX_CM3, MIN_CM3, supervoxels

    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.normal(size=(60, 70, 80)), 3).astype(np.float32)
    labels = supervoxels(image, (1.0, 1.0, 1.0))
    assert labels.shape == image.shape and labels.dtype == np.uint16
    sizes = np.bincount(labels.ravel())[1:]
    sizes = sizes[sizes > 0] / 1000.0
    assert len(sizes) >= 10
    assert sizes.min() >= MIN_CM3 * 0.99 and sizes.max() <= MAX_CM3
    assert 0.3 < (labels > 0).mean() < 0.8  # about half the cells: those whose border is an edge


def test_supervoxels_keep_an_object_with_a_visible_border_and_drop_cells_of_flat_tissue():
    from training.pseudo_objects import supervoxels

    rng = np.random.default_rng(1)
    # Flat textured tissue with a slow ramp (no edges) and one bright block with a sharp border.
    image = np.linspace(0, 40, 64, dtype=np.float32)[None, None, :] + rng.normal(0, 4, (64, 64, 64)).astype(np.float32)
    image[20:36, 24:40, 22:38] += 200
    labels = supervoxels(image, (1.0, 1.0, 1.0), mean_cm3=4.0)
    block = np.zeros(image.shape, bool)
    block[20:36, 24:40, 22:38] = True
    kept_in_block = (labels[block] > 0).mean()
    kept_far = (labels[:, :, 50:][:, :, :] > 0).mean()  # far from the block: flat tissue only
    assert kept_in_block > 0.8
    assert kept_far < 0.65  # unfiltered: 1.0


def test_a_smooth_shape_is_painted_with_a_clear_contrast_and_a_soft_edge():
    from training.pseudo_objects import paste_shape, smooth_shape

    rng = np.random.default_rng(4)
    background = ndimage.gaussian_filter(rng.normal(size=(48, 48, 48)), 2).astype(np.float32)
    shape = smooth_shape(rng, background.shape, (24, 22, 26), (12, 5, 8))
    assert 0.5 < shape.sum() / (4 / 3 * np.pi * 12 * 5 * 8) < 2.0  # about the ellipsoid's volume
    assert ndimage.label(shape)[1] >= 1 and shape[24, 22, 26]
    painted = paste_shape(rng, background, shape)
    core = ndimage.binary_erosion(shape, iterations=2)
    assert abs(float(painted[core].mean() - background[core].mean())) > 0.8 * float(background.std())
    far = ~ndimage.binary_dilation(shape, iterations=4)
    np.testing.assert_allclose(painted[far], background[far], atol=1e-3)  # nothing painted away from the shape


def test_a_clean_shape_is_flat_with_a_step_edge_in_both_frameworks_and_the_default_stays_soft():
    """"sharp_edge": the share of synthetic shapes pasted clean, flat with a step edge (nothing outside the shape is
    touched); the default keeps the blurred edge that spills a voxel or more outside."""
    from training.pseudo_objects import paste_shape, smooth_shape
    from training.torch_stream import _paste

    rng = np.random.default_rng(4)
    background = ndimage.gaussian_filter(rng.normal(size=(40, 40, 40)), 2).astype(np.float32)
    shape = smooth_shape(rng, background.shape, (20, 20, 20), (8, 6, 7))
    ring = ndimage.binary_dilation(shape) & ~shape  # the voxels just outside the shape
    for seed in range(3):
        soft = paste_shape(np.random.default_rng(seed), background, shape)
        assert np.abs(soft[ring] - background[ring]).max() > 0.1 * float(background.std())
    for seed in range(3):
        sharp = paste_shape(np.random.default_rng(seed), background, shape, sharp=1.0)
        np.testing.assert_array_equal(sharp[~shape], background[~shape])
        assert np.ptp(sharp[shape]) < 1e-5  # a flat fill, as the engine's percentile clip makes a small bright object
        assert abs(float(sharp[shape].mean() - background[shape].mean())) > 0.5 * float(background.std())
        on_device = _paste(np.random.default_rng(seed), torch.from_numpy(background), torch.from_numpy(shape),
                           torch.Generator().manual_seed(seed), sharp=1.0).numpy()
        np.testing.assert_array_equal(on_device[~shape], background[~shape])
        assert np.ptp(on_device[shape]) < 1e-5
    mixed = [paste_shape(np.random.default_rng(seed), background, shape, sharp=0.5) for seed in range(20)]
    stepped = sum(bool(np.array_equal(m[~shape], background[~shape])) for m in mixed)
    assert 4 <= stepped <= 16  # about half


def test_synthetic_targets_are_made_with_the_first_click_inside(synth):
    from training.sampler import make_example

    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    case = _cases(synth)[0]
    made = 0
    for seed in range(40):
        example = make_example(np.random.default_rng(seed), case, manifest, {"synthetic": 1.0})
        if example is None:
            continue
        made += 1
        assert example["gt"].sum() >= 20
        positives = [p for p, sign in example["clicks"] if sign]
        for point in positives:
            assert example["gt"][tuple(np.round(point).astype(int))]
    assert made >= 10


def test_union_target_is_the_object_and_a_neighbour_within_reach():
    from training.pseudo_objects import neighbour_value
    from training.sampler import _label_target, object_boxes

    label = np.zeros((30, 30, 30), np.uint8)
    label[5:15, 5:25, 5:25] = 1
    label[17:25, 5:25, 5:25] = 2  # 2 voxels below label 1
    label[5:15, 5:25, 28:30] = 3  # 3 voxels beside label 1
    label[27:30, 0:3, 0:3] = 4  # far from everything
    boxes = object_boxes(label)
    rng = np.random.default_rng(0)
    assert {neighbour_value(rng, label, boxes[1], 1) for _ in range(30)} == {2, 3}
    assert neighbour_value(rng, label, boxes[4], 4) is None
    case = {"label": label, "values": np.array([1]), "boxes": boxes, "spacing_kji": np.ones(3)}
    target = _label_target(rng, case, union=True)
    values, box, first = target["values"], target["box"], target["first_scan"]
    assert values[0] == 1 and values[1] in (2, 3)
    assert np.isin(label[tuple(np.round(first).astype(int))], values)
    union = np.isin(label, values)
    assert union[box].sum() == union.sum()  # the box holds both objects


@pytest.mark.parametrize("kind", ["box", "lasso"])
def test_box_and_lasso_prompts_lie_on_one_plane_around_the_cross_section(kind):
    from training.prompt_sim import region_prompt

    gt = np.zeros((40, 40, 40), bool)
    gt[10:30, 12:26, 8:33] = ndimage.binary_dilation(np.ones((20, 14, 25), bool), iterations=0)
    gt = ndimage.binary_erosion(ndimage.binary_dilation(gt, iterations=2), iterations=3)
    for seed in range(10):
        region = region_prompt(np.random.default_rng(seed), gt, kind)
        assert region is not None
        planes = [np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        axis = int(np.argmin([len(p) for p in planes]))
        assert len(planes[axis]) == 1  # one voxel thick
        section = np.take(gt, planes[axis][0], axis=axis)
        drawn = np.take(region, planes[axis][0], axis=axis) > 0
        overlap = (drawn & section).sum() / section.sum()
        assert overlap > 0.7  # a box may be drawn a voxel tight on each side
        if kind == "box":
            rows, cols = np.nonzero(drawn)
            assert drawn.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # a filled rectangle
        else:
            assert (drawn ^ section).sum() <= 0.35 * section.sum()  # the outline, jittered by at most a voxel


@pytest.mark.parametrize("kind", ["box", "lasso"])
def test_box_and_lasso_prompts_with_a_prism_extrude_the_plane_across_the_patch(kind):
    from training.prompt_sim import region_prompt

    gt = np.zeros((30, 34, 38), bool)
    gt[8:22, 10:25, 6:30] = True
    for seed in range(6):
        flat = region_prompt(np.random.default_rng(seed), gt, kind)
        region = region_prompt(np.random.default_rng(seed), gt, kind, prism=0.5)  # the same draw, extruded
        np.testing.assert_array_equal(region == 1.0, flat > 0)
        assert set(np.unique(region)) == {0.0, 0.5, 1.0}
        axis = int(np.argmin([np.unique(np.argwhere(flat)[:, a]).size for a in range(3)]))
        footprint = flat.any(axis=axis)
        for index in range(gt.shape[axis]):
            np.testing.assert_array_equal(np.take(region, index, axis=axis) > 0, footprint)


def test_fed_region_takes_the_with_clicks_prism_value_only_once_there_are_clicks():
    from training.prompt_sim import region_prompt
    from training.sampler import to_arrays

    gt = np.zeros((30, 34, 38), bool)
    gt[8:22, 10:25, 6:30] = True
    manifest = json.loads((REPO / "training/configs/manifest_prompts_prism.json").read_text(encoding="utf-8"))
    manifest.update(region_prism=0.5, region_prism_with_clicks=0.0)
    region = region_prompt(np.random.default_rng(3), gt, "box", prism=0.5)
    example = {"image": np.zeros(gt.shape, np.float32), "gt": gt, "previous": np.zeros(gt.shape, np.float32),
               "clicks": [], "voxel_mm": (1.0, 1.0, 1.0), "region": region}
    index = manifest["inputs"][1]["channels"].index("region")
    np.testing.assert_array_equal(to_arrays(example, manifest)[1][index], region)
    example["clicks"] = [(np.array([15.0, 17.0, 18.0]), True)]
    np.testing.assert_array_equal(to_arrays(example, manifest)[1][index], (region == 1.0).astype(np.float32))


def test_scribble_is_a_dense_line_of_balls_inside_the_object():
    from training.prompt_sim import scribble_clicks

    gt = np.zeros((40, 40, 40), bool)
    gt[5:35, 15:25, 15:25] = True
    clicks = scribble_clicks(np.random.default_rng(3), gt, np.zeros_like(gt), radius_vox=3.0, positive=True)
    assert len(clicks) >= 5 and all(sign for _, sign in clicks)
    points = np.array([p for p, _ in clicks])
    assert all(gt[tuple(np.round(p).astype(int))] for p in points)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    assert np.median(steps) <= 1.5 + 1e-9  # at most half a radius apart along the stroke


def test_contrast_randomisation_keeps_the_range_and_changes_the_contrast():
    from training.augment import randomise_contrast

    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.normal(size=(32, 32, 32)), 2).astype(np.float32) * 3
    changed = 0
    for seed in range(10):
        out = randomise_contrast(np.random.default_rng(seed), image)
        assert out.shape == image.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert out.min() >= image.min() - 1e-3 and out.max() <= image.max() + 1e-3
        changed += abs(np.corrcoef(out.ravel(), image.ravel())[0, 1]) < 0.95
    assert changed >= 2  # some curves are non-monotone or inverted


def test_default_sampling_is_unchanged_by_the_new_options(synth):
    """Without "sampling" options the recipe draws exactly as before (earlier runs reproduce)."""
    from training.sampler import make_example

    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    case = _cases(synth)[0]
    a = make_example(np.random.default_rng(11), case, manifest)
    b = make_example(np.random.default_rng(11), case, manifest, {})
    assert a is not None and b is not None
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["region"] is None


def test_zoomed_out_views_are_the_engines_next_view_for_an_unknown_extent():
    """"zoomed_out" widens that share of the unknown-extent views by the session's zoom step, never past the policy's
    largest view; off (0 or absent) it draws view for view as before."""
    from inference.model_input import ZOOM_STEP
    from training.sampler import draw_target_and_roi, object_boxes

    manifest = json.loads((REPO / "EISegMed3D/Resources/Models/eiseg-vnet-universal/model.json").read_text("utf-8"))
    policy = manifest["spacing_policy"]
    label = np.zeros((160, 160, 160), np.uint8)
    label[76:84, 76:84, 76:84] = 1  # 8 mm: a known-extent view stays small, so a wide view is an unknown one
    case = {"label": label, "values": np.array([1]), "boxes": object_boxes(label), "spacing_kji": np.ones(3)}

    def edges(options):
        views = [draw_target_and_roi(np.random.default_rng(seed), case, manifest, options)["roi"] for seed in range(120)]
        return np.array([roi.step[0] * roi.shape[0] for roi in views])

    before = edges({"soft_target": True})
    np.testing.assert_array_equal(before, edges({"soft_target": True, "zoomed_out": 0.0}))
    assert before.max() <= policy["initial_roi_mm"] * 1.3 + 1e-6
    wide = edges({"soft_target": True, "zoomed_out": 1.0})
    assert wide.max() <= policy["max_roi_mm"] + 1e-6
    unknown = wide > policy["initial_roi_mm"] * 1.3 + 1e-6  # 0.8-1.3 x the first view, one step wider
    assert 0.35 < unknown.mean() < 0.65  # half the views are unknown-extent ones, all of them widened
    assert wide[unknown].min() >= policy["initial_roi_mm"] * 0.8 * ZOOM_STEP - 1e-6


# --- the fast trainer end to end ------------------------------------------------------------------------------------
def test_torch_training_with_every_prompt_and_target_kind_trains_checkpoints_and_resumes(synth, tmp_path):
    from training.pseudo_objects import main as supervoxel_main
    from training.torch_bridge import main

    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(_prompt_manifest()), encoding="utf-8")
    assert supervoxel_main(["--cache", str(synth["cache"])]) == 0
    config = json.loads(_config(synth, "torch_smoke").read_text(encoding="utf-8"))
    config.update(steps=6, batch_size=2, max_click_passes=2, band_weight=3.0, sampling=SAMPLING, snapshot_minutes=1e-6,
                  manifest=str(manifest_path), network={**config["network"], "click_channels": 4})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    run_dir = tmp_path / "run"
    assert main(["--config", str(path), "--run-dir", str(run_dir), "--steps", "3"]) == 0
    assert (run_dir / "step.txt").read_text() == "3"
    assert main(["--config", str(path), "--run-dir", str(run_dir)]) == 0
    assert (run_dir / "step.txt").read_text() == "6"
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(6))
    assert all(np.isfinite(line["loss"]) for line in lines)
    # one training clock across the resume (the last-minutes weight average reads it): it goes on, never back
    assert all(b["t"] >= a["t"] for a, b in zip(lines, lines[1:])) and lines[3]["t"] >= lines[2]["t"] > 0
    assert sorted(p.name for p in (run_dir / "snapshots").iterdir())[:1] == ["step_0000001.npz"]
    with np.load(run_dir / "paddle_weights.npz") as weights:
        assert weights["stem.conv.weight"].shape[1] == 5 and "stem.norm.scale" in weights.files


# --- weights read back out of a package ---------------------------------------------------------------------------
def test_the_bundled_packages_weights_read_back_match_its_onnx_graph(tmp_path):
    from training.package_weights import extract

    assert extract(REPO / "EISegMed3D" / "Resources" / "Models" / "eiseg-vnet-universal", tmp_path / "w.npz") < 1e-4
    with np.load(tmp_path / "w.npz") as weights:
        assert weights["stem.conv.weight"].shape == (8, 5, 3, 3, 3)  # image + previous, positive, negative, region


def test_weights_read_back_from_a_package_exported_after_other_layers_were_built(tmp_path):
    """paddle2onnx names parameters by Paddle's per-process layer counters: a package exported by a process that
    had built other layers first numbers its layers from above 0, and must still read back exactly."""
    import paddle

    from training.export import export_model
    from training.network import build_network
    from training.package_weights import check_against_onnx, package_weights

    paddle.nn.Conv3D(1, 2, 3), paddle.nn.InstanceNorm3D(2), paddle.nn.Conv3DTranspose(2, 2, 2)  # bump the counters
    config = {"network": {"base": 4, "levels": 2, "depths": [1, 1, 1]}}
    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    manifest["network"] = config["network"]
    net = build_network(config)
    export_model(net, tmp_path / "pkg", manifest, manifest["patch_shape"])
    fresh = build_network(config)
    weights = package_weights(tmp_path / "pkg", fresh)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(weights[name], np.array(value), err_msg=name)
    fresh.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    assert check_against_onnx(tmp_path / "pkg", fresh, manifest) < 1e-4
    stem = weights["stem.conv.weight"]  # one layer off by noise of 5 % of its spread (a scale would be normed away)
    noise = np.random.default_rng(0).normal(size=stem.shape).astype(np.float32) * 0.05 * stem.std()
    wrong = dict(weights, **{"stem.conv.weight": stem + noise})
    fresh.set_state_dict({k: paddle.to_tensor(v) for k, v in wrong.items()})
    with pytest.raises(ValueError, match="differ from the package's ONNX output"):
        check_against_onnx(tmp_path / "pkg", fresh, manifest)


def test_fp16_weights_as_committed_load_into_the_network(tmp_path):
    """The repository keeps checkpoints in fp16 (training/checkpoints); package_model loads them as float32."""
    import paddle

    from training.network import build_network, load_weights
    from training.torch_bridge import TorchTrainer, paddle_state

    network = {"base": 4, "levels": 2, "depths": [1, 1, 1], "click_channels": 4}
    twin = TorchTrainer({"seed": 0, "lr": 1e-3, "precision": "fp32", "network": network})
    half = {name: value.astype(np.float16) for name, value in paddle_state(twin.net).items()}
    np.savez(tmp_path / "w16.npz", **half)
    net = build_network({"network": network})
    load_weights(net, tmp_path / "w16.npz")
    for name, value in net.state_dict().items():
        assert value.dtype == paddle.float32
        np.testing.assert_array_equal(value.numpy(), half[name].astype(np.float32))
