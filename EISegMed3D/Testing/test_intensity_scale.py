"""The sampling option "intensity_scale" (training.augment.wide_scale): half the training images multiplied by a
factor drawn log-uniformly from [low, high], in the CPU recipe and the GPU stream alike, so the network sees the
same tissue at the very different z-scores that whole-scan normalisation gives different scans."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from test_training import MANIFEST_SMOKE, _cases, synth  # noqa: F401  (synth is a fixture)


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (ndimage.gaussian_filter(rng.normal(size=(24, 24, 24)), 2) * 8).astype(np.float32)


def _cpu(seed: int, image: np.ndarray, scale_range):
    from training.augment import augment_intensity

    return augment_intensity(np.random.default_rng(seed), image, "gamma", scale_range)


def _torch(seed: int, image: np.ndarray, scale_range):
    torch = pytest.importorskip("torch", reason="PyTorch (the GPU stream's back end) is not installed")
    from training.torch_stream import _intensity

    g = torch.Generator().manual_seed(seed)
    return _intensity(np.random.default_rng(seed), torch.from_numpy(image), "gamma", g, scale_range).numpy()


@pytest.mark.parametrize("augment", [_cpu, _torch], ids=["cpu recipe", "torch stream"])
def test_a_wide_scale_spreads_the_images_spread_and_keeps_half_as_they_were(augment):
    image = _image()
    reference = float(image.std())
    plain = np.array([augment(seed, image, None).std() / reference for seed in range(60)])
    wide = np.array([augment(seed, image, [0.25, 4.0]).std() / reference for seed in range(60)])
    # Without the option the scale stays within the recipe's own +-15 % (and a gamma's change of spread).
    assert plain.min() > 0.45 and plain.max() < 1.6
    assert (wide < 0.4).sum() >= 5 and (wide > 2.0).sum() >= 5
    assert 0.3 <= np.mean((wide > 0.6) & (wide < 1.5)) <= 0.8  # about half untouched (and some factors near 1)
    assert all(np.isfinite(augment(seed, image, [0.25, 4.0])).all() for seed in range(5))


def test_factors_are_log_uniform_within_the_range_or_one():
    from training.augment import wide_scale

    rng = np.random.default_rng(3)
    draws = np.array([wide_scale(rng, (0.4, 2.5)) for _ in range(4000)])
    scaled = draws[draws != 1.0]
    assert 0.45 < scaled.size / draws.size < 0.55
    assert scaled.min() >= 0.4 and scaled.max() <= 2.5
    # log-uniform: as many factors below 1 as the log range below 1 holds (ln 2.5 / ln 6.25 = 0.5 above 1)
    assert abs(np.mean(scaled < 1.0) - np.log(1 / 0.4) / np.log(2.5 / 0.4)) < 0.04


@pytest.mark.parametrize("bad", [[0.0, 2.0], [2.0, 1.0], [1.0], "wide", [1.0, float("inf")]])
def test_a_bad_range_in_a_config_is_refused_naming_the_file(tmp_path, bad):
    from training.train import load_config

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"name": "x", "sampling": {"intensity_scale": bad}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"run\.json.*intensity_scale"):
        load_config(path)


def test_without_the_option_examples_are_drawn_as_before(synth):
    """Earlier recipes reproduce draw for draw: the option adds no draw unless it is set."""
    from training.sampler import make_example

    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    case = _cases(synth)[0]
    options = {"contrast": "random", "synthetic": 0.3}
    a = make_example(np.random.default_rng(5), case, manifest, options)
    b = make_example(np.random.default_rng(5), case, manifest, {**options, "intensity_scale": None})
    c = make_example(np.random.default_rng(5), case, manifest, {**options, "intensity_scale": [0.2, 0.2]})
    np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])
