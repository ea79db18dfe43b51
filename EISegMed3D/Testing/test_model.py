"""Model packages and runtimes: real exports (Paddle PIR, legacy .pdmodel, ONNX) loaded by both backends."""
from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import paddle
import pytest

from inference import model as model_mod
from inference.errors import ModelError
from inference.model import load_model
from inference.runtimes import onnx_gpu_available, paddle_gpu_available
from tiny_nets import TINY_PATCH, TinyClickNet, make_tiny_net, tiny_manifest
from training.export import export_legacy_pair, export_model, parity_inputs


def reference(net, image, clicks):
    with paddle.no_grad():
        return net(paddle.to_tensor(image), paddle.to_tensor(clicks)).numpy()


def copy_package(src, tmp_path):
    dst = tmp_path / "package"
    shutil.copytree(src, dst)
    return dst


def edit_manifest(folder, **changes):
    path = folder / "model.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def click_ball(patch, center, radius=2):
    grid = np.indices(patch)
    return (sum((g - c) ** 2 for g, c in zip(grid, center)) <= radius ** 2).astype(np.float32)


# --- export ----------------------------------------------------------------------------------------------------

def test_export_writes_every_format_with_hashes_and_parity(tiny_model_dir):
    import onnx

    manifest = json.loads((tiny_model_dir / "model.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 1 and manifest["patch_shape"] == [32, 32, 32]
    assert manifest["files"]["paddle"] == {"graph": "inference.json", "params": "inference.pdiparams"}
    assert manifest["files"]["paddle_legacy"]["graph"] == "inference.pdmodel"
    weight_files = {"inference.json", "inference.pdiparams", "inference.pdmodel", "model.onnx"}
    weight_files.add(manifest["files"]["paddle_legacy"]["params"])
    assert set(manifest["sha256"]) == weight_files
    for name in weight_files:
        assert (tiny_model_dir / name).is_file()
    diffs = manifest["export"]["parity_max_abs_diff"]
    assert set(diffs) == {"paddle", "paddle_legacy", "onnx"} and max(diffs.values()) <= 1e-4
    opset = max(o.version for o in onnx.load(str(tiny_model_dir / "model.onnx")).opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 13


# --- both backends ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["paddle", "onnx"])
def test_backend_matches_dynamic_graph(tiny_model_dir, tiny_network, backend):
    model = load_model(tiny_model_dir, backend=backend, device="cpu", threads=1)
    image, clicks = parity_inputs(model.manifest, seed=3)
    logits = model.predict(image, clicks)
    assert logits.shape == (1, 1, *TINY_PATCH) and logits.dtype == np.float32
    assert np.abs(logits - reference(tiny_network, image, clicks)).max() <= 1e-4


def test_backends_agree_and_follow_clicks(tiny_model_dir):
    paddle_model = load_model(tiny_model_dir, backend="paddle", device="cpu")
    onnx_model = load_model(tiny_model_dir, backend="onnx", device="cpu")
    rng = np.random.default_rng(5)
    image = rng.standard_normal((1, 1, *TINY_PATCH)).astype(np.float32)
    clicks = np.zeros((1, 3, *TINY_PATCH), np.float32)
    clicks[0, 1] = click_ball(TINY_PATCH, (16, 16, 16))
    clicks[0, 2] = click_ball(TINY_PATCH, (5, 5, 5))
    a, b = paddle_model.predict(image, clicks), onnx_model.predict(image, clicks)
    assert np.abs(a - b).max() <= 1e-4
    assert a[0, 0, 16, 16, 16] > 0 and a[0, 0, 5, 5, 5] < 0 and a[0, 0, 28, 28, 28] < 0


def test_backend_and_device_reported(tiny_model_dir):
    for backend in ("paddle", "onnx"):
        model = load_model(tiny_model_dir, backend=backend, threads=1)
        gpu = onnx_gpu_available() if backend == "onnx" else paddle_gpu_available()
        assert model.backend == backend and model.device == ("gpu" if gpu else "cpu") and model.threads == 1
        assert model.describe() == f"tiny-test ({backend}, {model.device}, 1 threads)"
    # auto prefers Paddle Inference when paddle is installed (faster on CPU), unless only ONNX Runtime has a GPU
    expected = "onnx" if onnx_gpu_available() and not paddle_gpu_available() else "paddle"
    assert load_model(tiny_model_dir).backend == expected


def test_auto_takes_onnx_when_the_package_has_no_paddle_graph(tiny_model_dir, tmp_path):
    folder = copy_package(tiny_model_dir, tmp_path)
    for name in ("inference.json", "inference.pdmodel", "inference.pdiparams"):
        (folder / name).unlink(missing_ok=True)
    assert load_model(folder, backend="auto").backend == "onnx"


def test_auto_falls_back_to_paddle_without_onnx(tiny_model_dir, tmp_path):
    folder = copy_package(tiny_model_dir, tmp_path)
    (folder / "model.onnx").unlink()
    assert load_model(folder, backend="auto").backend == "paddle"


def test_explicit_onnx_without_onnx_file_is_clear(tiny_model_dir, tmp_path):
    folder = copy_package(tiny_model_dir, tmp_path)
    (folder / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"model\.onnx: missing.*backend='onnx'"):
        load_model(folder, backend="onnx")


@pytest.mark.skipif(paddle_gpu_available(), reason="a GPU is visible to Paddle here")
def test_gpu_asked_without_gpu_is_clear(tiny_model_dir):
    with pytest.raises(ModelError, match="device='gpu'"):
        load_model(tiny_model_dir, backend="paddle", device="gpu")


def test_predict_from_a_worker_thread(tiny_model_dir):
    model = load_model(tiny_model_dir, backend="paddle", device="cpu")
    image, clicks = parity_inputs(model.manifest, seed=4)
    expected = model.predict(image, clicks)
    found = {}
    worker = threading.Thread(target=lambda: found.setdefault("logits", model.predict(image, clicks)))
    worker.start()
    worker.join()
    assert np.array_equal(found["logits"], expected)


def test_bundled_default_is_loaded_without_a_path(tiny_model_dir, tmp_path, monkeypatch):
    models = tmp_path / "Models"
    shutil.copytree(tiny_model_dir, models / "tiny")
    monkeypatch.setattr(model_mod, "MODELS_DIR", models)
    assert load_model().path == models / "tiny"
    shutil.copytree(tiny_model_dir, models / "other")
    with pytest.raises(ModelError, match="no single bundled model"):
        load_model()
    (models / "DEFAULT").write_text("other\n")
    assert load_model().path == models / "other"


# --- validation ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("victim", ["inference.pdiparams", "model.onnx", "inference.json"])
def test_tampered_weight_file_is_named(tiny_model_dir, tmp_path, victim):
    folder = copy_package(tiny_model_dir, tmp_path)
    data = bytearray((folder / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / victim).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=rf"{victim}: sha256 does not match"):
        load_model(folder, backend="paddle")


def test_missing_weight_file_is_named(tiny_model_dir, tmp_path):
    folder = copy_package(tiny_model_dir, tmp_path)
    (folder / "inference.pdiparams").unlink()
    with pytest.raises(ModelError, match=r"inference\.pdiparams: missing"):
        load_model(folder, backend="paddle")


def test_missing_or_corrupt_manifest(tiny_model_dir, tmp_path):
    folder = copy_package(tiny_model_dir, tmp_path)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"model\.json: not readable JSON"):
        load_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(ModelError, match=r"model\.json: missing"):
        load_model(folder)
    with pytest.raises(ModelError, match="not a model package"):
        load_model(tmp_path / "nowhere")


def test_unknown_format_version(tiny_model_dir, tmp_path):
    folder = copy_package(tiny_model_dir, tmp_path)
    edit_manifest(folder, format_version=7)
    with pytest.raises(ModelError, match=r"model\.json: unknown format_version 7"):
        load_model(folder)


@pytest.mark.parametrize("keeps", [1.5, -0.1, "0.75", True])
def test_wider_view_keeps_must_be_a_share(tiny_model_dir, tmp_path, keeps):
    folder = copy_package(tiny_model_dir, tmp_path)
    policy = json.loads((folder / "model.json").read_text(encoding="utf-8"))["spacing_policy"]
    edit_manifest(folder, spacing_policy={**policy, "wider_view_keeps": keeps})
    with pytest.raises(ModelError, match=r"model\.json: spacing_policy wider_view_keeps .* must be a share in \[0, 1\]"):
        load_model(folder)


@pytest.mark.parametrize("key", ["region_prism", "region_prism_with_clicks"])
@pytest.mark.parametrize("prism", [1.0, -0.5, "0.5", True, 0.5])
def test_region_prism_out_of_range_or_without_a_region_channel(tiny_model_dir, tmp_path, key, prism):
    # the tiny model has no region channel, so even a good value (0.5) is refused: it would never be drawn
    folder = copy_package(tiny_model_dir, tmp_path)
    edit_manifest(folder, **{key: prism})
    with pytest.raises(ModelError, match=rf"model\.json: {key} .* must be a number in \[0, 1\)"):
        load_model(folder)


@pytest.mark.parametrize("channels", [["positive_clicks", "negative_clicks", "distance_map"],
                                      ["positive_clicks", "positive_clicks", "negative_clicks"],
                                      ["previous_mask", "positive_clicks", "region"]])
def test_click_channels_the_engine_cannot_feed(tiny_model_dir, tmp_path, channels):
    # The engine draws channels by name (any order); unknown or repeated names, or no negative clicks, are refused.
    folder = copy_package(tiny_model_dir, tmp_path)
    inputs = tiny_manifest()["inputs"]
    inputs[1]["channels"] = channels
    edit_manifest(folder, inputs=inputs)
    with pytest.raises(ModelError, match="the engine feeds distinct names"):
        load_model(folder)


@pytest.mark.parametrize("backend", ["paddle", "onnx"])
def test_graph_with_wrong_channel_count(tmp_path, backend):
    manifest = tiny_manifest()
    manifest["inputs"][1]["channels"] = ["positive_clicks", "negative_clicks"]
    export_model(make_tiny_net(click_channels=2), tmp_path, manifest, TINY_PATCH, formats=("paddle", "onnx"))
    edit_manifest(tmp_path, inputs=tiny_manifest()["inputs"])  # the manifest now claims 3 click channels
    graph = "model.onnx" if backend == "onnx" else "inference.json"
    with pytest.raises(ModelError, match=rf"{graph}: input 'clicks' has 2 channels, the manifest says 3"):
        load_model(tmp_path, backend=backend)


@pytest.mark.parametrize("backend", ["paddle", "onnx"])
def test_patch_shape_the_graph_cannot_take(tiny_model_dir, tmp_path, backend):
    folder = copy_package(tiny_model_dir, tmp_path)
    edit_manifest(folder, patch_shape=[48, 48, 48])
    with pytest.raises(ModelError, match="cannot take the patch"):
        load_model(folder, backend=backend)


@pytest.mark.parametrize("backend", ["paddle", "onnx"])
def test_predict_rejects_wrong_input_size(tiny_model_dir, backend):
    model = load_model(tiny_model_dir, backend=backend)
    with pytest.raises(ModelError, match=r"image input must have shape \(1, 1, 32, 32, 32\)"):
        model.predict(np.zeros((1, 1, 16, 16, 16), np.float32), np.zeros((1, 3, 16, 16, 16), np.float32))
    with pytest.raises(ModelError, match=r"clicks input must have shape \(1, 3, 32, 32, 32\)"):
        model.predict(np.zeros((1, 1, 32, 32, 32), np.float32), np.zeros((1, 2, 32, 32, 32), np.float32))


class TwoChannelOutput(TinyClickNet):
    def forward(self, image, clicks):
        logits = super().forward(image, clicks)
        return paddle.concat([logits, logits], axis=1)


def test_bad_output_fails_at_load_thanks_to_warm_up(tmp_path):
    paddle.seed(0)
    export_model(TwoChannelOutput(), tmp_path, tiny_manifest(), TINY_PATCH, formats=("paddle",))
    with pytest.raises(ModelError, match=r"output has shape \(1, 2, 32, 32, 32\)"):
        load_model(tmp_path, backend="paddle")


# --- legacy profile (the original's two files, no manifest) ----------------------------------------------------

def test_legacy_pdmodel_loads_and_runs(legacy_model_files):
    graph, params = legacy_model_files
    model = load_model(graph, params_path=params, legacy_grid=(64, 64, 12), device="cpu")
    assert model.backend == "paddle" and model.device == "cpu" and model.patch_shape == (64, 64, 12)
    m = model.manifest
    assert m["axis_order"] == "ijk" and m["threshold"] == 0.49 and m["click_radius_voxels"] == 2
    assert m["spacing_policy"] == {"type": "whole_volume_grid", "grid_ijk": [64, 64, 12]}
    assert m["normalization"]["window"] == [0.0, 2650.0] and m["normalization"]["mean"] == pytest.approx(4.0428873e-4)
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 1, 64, 64, 12)).astype(np.float32)
    clicks = np.zeros((1, 3, 64, 64, 12), np.float32)
    clicks[0, 1] = click_ball((64, 64, 12), (30, 20, 6))
    logits = model.predict(image, clicks)
    assert np.abs(logits - reference(make_tiny_net(seed=1), image, clicks)).max() <= 1e-4
    assert logits[0, 0, 30, 20, 6] > 0 and logits[0, 0, 5, 50, 2] < 0


def test_legacy_params_found_next_to_pdmodel_and_full_size_grid(legacy_model_files):
    graph, _ = legacy_model_files  # params default to the .pdiparams beside the .pdmodel
    model = load_model(graph)  # the original's true grid, 512 x 512 x 12
    assert model.patch_shape == (512, 512, 12)
    assert model.manifest["spacing_policy"]["grid_ijk"] == [512, 512, 12]
    logits = model.predict(np.zeros((1, 1, 512, 512, 12), np.float32), np.zeros((1, 3, 512, 512, 12), np.float32))
    assert logits.shape == (1, 1, 512, 512, 12) and np.isfinite(logits).all()


def test_legacy_errors_name_the_file(legacy_model_files, tmp_path):
    graph, params = legacy_model_files
    with pytest.raises(ModelError, match=r"nothing\.pdiparams: missing"):
        load_model(graph, params_path=tmp_path / "nothing.pdiparams")
    with pytest.raises(ModelError, match="Paddle Inference only"):
        load_model(graph, backend="onnx")
    damaged = tmp_path / "damaged.pdiparams"
    damaged.write_bytes(params.read_bytes()[:300])
    with pytest.raises(ModelError, match=r"\.pdmodel: Paddle Inference cannot load it with damaged\.pdiparams"):
        load_model(graph, params_path=damaged, legacy_grid=(64, 64, 12))
    with pytest.raises(ModelError, match=r"\.pdmodel: legacy grid \(60, 64, 12\) cannot be taken"):
        load_model(graph, legacy_grid=(60, 64, 12))


def test_legacy_graph_with_fixed_other_size(tmp_path):
    shapes = [("image", [1, 1, 32, 32, 16]), ("clicks", [1, 3, 32, 32, 16])]
    graph, params = export_legacy_pair(make_tiny_net(seed=2), tmp_path / "fixed", shapes)
    with pytest.raises(ModelError, match=r"fixed\.pdmodel: input 'image' takes shape \[1, 1, 32, 32, 16\]"):
        load_model(graph, legacy_grid=(64, 64, 12))
    assert load_model(graph, params_path=params, legacy_grid=(32, 32, 16)).patch_shape == (32, 32, 16)


class LeakyNet(TinyClickNet):
    """LeakyReLU's slope is a float64 attribute in Paddle 3.3 that paddle2onnx 2.1 garbles; export must fix it."""

    def __init__(self):
        super().__init__()
        self.act = paddle.nn.LeakyReLU(0.2)

    def forward(self, image, clicks):
        return self.conv2(self.act(self.conv1(paddle.concat([image, clicks], axis=1)))) * 4.0


def test_onnx_export_keeps_leaky_relu_slope(tmp_path):
    import onnx

    paddle.seed(0)
    manifest = export_model(LeakyNet(), tmp_path, tiny_manifest(), TINY_PATCH, formats=("paddle", "onnx"))
    assert manifest["export"]["parity_max_abs_diff"]["onnx"] <= 1e-4
    alphas = [n.attribute[0].f for n in onnx.load(str(tmp_path / "model.onnx")).graph.node if n.op_type == "LeakyRelu"]
    assert alphas == [pytest.approx(0.2)]
