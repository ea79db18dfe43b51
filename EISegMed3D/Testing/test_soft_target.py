"""Soft training targets (training.soft_target, the config's sampling "soft_target"): the fraction of each view voxel
an object covers, so a network can put its 0.5 level between view voxels where the object's edge is, and the engine's
linear resampling back to the scan then draws the edge instead of the view grid's staircase."""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_training import MANIFEST_SMOKE, _cases, synth  # noqa: F401  (synth is a fixture)


def _ball(shape=(60, 60, 60), centre=(29.3, 30.1, 28.7), radius=13.4) -> np.ndarray:
    k, j, i = np.indices(shape)
    return (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= radius ** 2


def _view(step: float, shape=(32, 32, 32)):
    from inference.roi import Roi

    return Roi(np.array([2.3, 1.9, 2.6]), np.full(3, step), shape)


def _back(patch: np.ndarray, roi, shape) -> np.ndarray:
    from inference.roi import to_scan

    where, values = to_scan(patch, roi, shape)
    mask = np.zeros(shape, bool)
    mask[where] = values > 0.5
    return mask


def _iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_the_covered_fraction_across_a_flat_edge_and_at_the_scan_border():
    """A half-space ending midway between scan voxels 9 and 10, seen by view voxels 2 scan voxels wide: the one
    across the edge holds its inside share, and an object cut by the scan's border stays whole up to it (as the
    nearest-neighbour mask has it), not faded by the unknown beyond."""
    from inference.roi import Roi
    from training.soft_target import coverage

    mask = np.zeros((8, 8, 40), bool)
    mask[..., :10] = True  # the edge at i = 9.5; the object also runs into the scan's border at i = -0.5
    roi = Roi(np.array([3.0, 3.0, 0.0]), np.array([1.0, 1.0, 2.0]), (2, 2, 16))  # view voxel n covers [2n - 1, 2n + 1]
    row = coverage(mask, roi)[0, 0]
    np.testing.assert_allclose(row[:5], 1.0, atol=1e-6)
    assert row[5] == pytest.approx(0.25, abs=1e-5)  # [9, 11]: a quarter inside
    np.testing.assert_allclose(row[6:], 0.0, atol=1e-6)
    crossing = np.interp(0.5, row[::-1], (roi.start[2] + roi.step[2] * np.arange(16))[::-1])
    assert crossing == pytest.approx(9.5, abs=0.35)  # the 0.5 level lies near the edge, between view voxel centres


@pytest.mark.parametrize("step", [1.37, 1.9])
def test_a_soft_target_brought_back_to_the_scan_is_the_object_a_hard_one_is_its_staircase(step):
    from inference.roi import sample
    from training.soft_target import coverage

    ball = _ball()
    roi = _view(step)
    soft = coverage(ball, roi)
    hard = sample(ball.astype(np.float32), roi, order=0, mode="constant")
    assert np.array_equal(soft > 0.5, hard > 0.5) is False  # they differ at the edge...
    assert np.mean((soft > 0.5) == (hard > 0.5)) > 0.97  # ...and only there
    soft_iou, hard_iou = _iou(_back(soft, roi, ball.shape), ball), _iou(_back(hard, roi, ball.shape), ball)
    assert soft_iou > 0.98 and soft_iou > hard_iou + 0.02
    # the covered fractions add up to the object's volume (in view voxels)
    assert soft.sum() * step ** 3 == pytest.approx(ball.sum(), rel=0.01)


def test_label_values_pick_the_object_from_a_label_map():
    from training.soft_target import coverage

    labels = np.zeros((60, 60, 60), np.int16)
    labels[_ball()] = 4
    labels[_ball(centre=(10, 10, 10), radius=6)] = 2
    roi = _view(1.5)
    np.testing.assert_allclose(coverage(labels, roi, [4]), coverage(labels == 4, roi), atol=1e-6)
    both = coverage(labels, roi, [2, 4])
    assert both.sum() > coverage(labels, roi, [4]).sum()


def test_examples_carry_a_soft_target_matching_their_mask_and_draw_as_before(synth):
    from training.sampler import make_example

    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    case = _cases(synth)[0]
    options = {"contrast": "random"}
    seen = 0
    for seed in range(6):
        plain = make_example(np.random.default_rng(seed), case, manifest, options)
        soft = make_example(np.random.default_rng(seed), case, manifest, {**options, "soft_target": True})
        if plain is None:
            assert soft is None
            continue
        seen += 1
        assert "soft" not in plain
        # the option adds no random draw: the same image, mask and clicks
        np.testing.assert_array_equal(plain["image"], soft["image"])
        np.testing.assert_array_equal(plain["gt"], soft["gt"])
        assert [tuple(np.ravel(c[0])) + (c[1],) for c in plain["clicks"]] == \
               [tuple(np.ravel(c[0])) + (c[1],) for c in soft["clicks"]]
        target = soft["soft"]
        assert target.shape == soft["gt"].shape and 0.0 <= target.min() and target.max() <= 1.0
        assert np.mean((target > 0.5) == soft["gt"]) > 0.97  # flipped and transposed with the mask
        assert np.any((target > 0.05) & (target < 0.95))  # soft at the edge
    assert seen >= 3


def test_the_loss_takes_soft_targets_but_weights_the_masks_band_in_both_frameworks():
    import paddle
    import torch

    from training.paddle_trainer import dice_bce_loss
    from training.torch_bridge import interactive_loss

    mask = np.zeros((1, 1, 16, 16, 16), np.float32)
    mask[0, 0, 4:12, 4:12, 4:12] = 1
    soft = mask.copy()
    soft[0, 0, 4, 4:12, 4:12] = 0.6  # a face only partly covered: still in the mask
    soft[0, 0, 3, 4:12, 4:12] = 0.3  # the next layer partly covered: not in it
    logits = np.random.default_rng(2).normal(size=mask.shape).astype(np.float32)
    ours = float(interactive_loss(torch.from_numpy(logits), torch.from_numpy(soft), band_weight=3.0))
    theirs = float(dice_bce_loss(paddle.to_tensor(logits), paddle.to_tensor(soft), band_weight=3.0))
    assert ours == pytest.approx(theirs, rel=1e-5)
    # the optimum of the soft loss is the covered fraction itself, not the mask
    free = torch.zeros(mask.shape, requires_grad=True)
    optimiser = torch.optim.Adam([free], lr=0.1)
    for _ in range(300):
        optimiser.zero_grad()
        interactive_loss(free, torch.from_numpy(soft), band_weight=3.0).backward()
        optimiser.step()
    p = torch.sigmoid(free).detach().numpy()[0, 0]
    assert 0.45 < p[4, 8, 8] < 0.85 and 0.15 < p[3, 8, 8] < 0.5


def _supersampled(labels: np.ndarray, values, roi, per_axis: int = 12) -> np.ndarray:
    """The covered fraction by brute force: many points spread evenly over each view voxel's box, each reading the
    scan voxel it falls in; only points inside the scan count, and a view voxel centred outside the scan is 0."""
    offsets = (np.arange(per_axis) + 0.5) / per_axis - 0.5
    out = np.zeros(roi.shape)
    shape = np.array(labels.shape)
    for n in np.ndindex(*roi.shape):
        centre = roi.start + np.array(n) * roi.step
        if np.any(centre < -0.5) or np.any(centre > shape - 0.5):
            continue
        grid = np.stack(np.meshgrid(*[centre[a] + offsets * roi.step[a] for a in range(3)], indexing="ij"), -1).reshape(-1, 3)
        voxel = np.floor(grid + 0.5).astype(int)
        inside = np.all((voxel >= 0) & (voxel < shape), axis=1)
        hits = np.isin(labels[tuple(voxel[inside].T)], values)
        out[n] = hits.mean()
    return out


def test_the_covered_fraction_matches_brute_force_and_the_objects_box_changes_nothing():
    from inference.roi import Roi
    from training.soft_target import coverage

    labels = np.zeros((30, 26, 22), np.int16)
    labels[5:20, 8:21, 3:15] = 2
    labels[12:25, 2:9, 10:20] = 5
    for step, start in ((np.array([1.7, 1.3, 2.1]), np.array([-1.2, 0.4, -0.8])),  # coarser than the scan, past its edge
                        (np.array([0.45, 0.8, 1.0]), np.array([4.3, 3.1, 2.0]))):  # finer along k (thick slices)
        roi = Roi(start, step, (12, 14, 10))
        fast = coverage(labels, roi, [2])
        np.testing.assert_allclose(fast, _supersampled(labels, [2], roi), atol=1 / 24 + 1e-6)  # 12 points an axis
        box = (slice(5, 20), slice(8, 21), slice(3, 15))
        np.testing.assert_allclose(coverage(labels, roi, [2], box), fast, atol=1e-6)
        assert 0 < np.mean((fast > 0) & (fast < 1)) < 0.5  # soft at the edges only
