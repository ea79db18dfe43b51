"""Shared pytest fixtures: real model packages exported from random-weight networks (session-scoped, seconds)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parent
REPO = TESTING.parent.parent
# `inference` is importable with EISegMed3D/ on sys.path (as in Slicer); `training` from the repository root.
for entry in (TESTING, TESTING.parent, REPO):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))


@pytest.fixture(scope="session")
def tiny_network():
    """The dynamic-graph network behind `tiny_model_dir` (same seed, same weights)."""
    from tiny_nets import make_tiny_net

    return make_tiny_net()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_network) -> Path:
    """A full model package (model.json, inference.json/.pdmodel/.pdiparams, model.onnx), patch 32^3, kji."""
    from tiny_nets import TINY_PATCH, tiny_manifest
    from training.export import export_model

    out = tmp_path_factory.mktemp("tiny_model")
    export_model(tiny_network, out, tiny_manifest(), TINY_PATCH)
    return out


@pytest.fixture(scope="session")
def legacy_model_files(tmp_path_factory) -> tuple[Path, Path]:
    """(.pdmodel, .pdiparams) with the original's I/O: image (1,1,X,Y,Z), clicks (1,3,X,Y,Z), spatial axes dynamic.

    Load it with load_model(pdmodel, params_path=pdiparams, legacy_grid=(64, 64, 12)) to keep tests small.
    """
    from tiny_nets import make_tiny_net
    from training.export import export_legacy_pair

    out = tmp_path_factory.mktemp("legacy_model")
    shapes = [("image", [1, 1, None, None, None]), ("clicks", [1, 3, None, None, None])]
    return export_legacy_pair(make_tiny_net(seed=1), out / "eiseg_med3d_legacy", shapes)


@pytest.fixture(scope="session")
def region_model_dir(tmp_path_factory) -> Path:
    """A model package whose click input has the 4th "region" channel (boxes, lassos), patch 32^3, ONNX only."""
    from tiny_nets import TINY_PATCH
    from tiny_prompt_nets import make_region_net, region_manifest
    from training.export import export_model

    out = tmp_path_factory.mktemp("tiny_region_model")
    export_model(make_region_net(), out, region_manifest(), TINY_PATCH, formats=("onnx",))
    return out


@pytest.fixture(scope="session")
def bright_model_dir(tmp_path_factory) -> Path:
    """A package of tiny_nets.BrightNet (answers with the bright voxels in view), patch 32^3, ONNX only."""
    from tiny_nets import TINY_PATCH, BrightNet, tiny_manifest
    from training.export import export_model

    out = tmp_path_factory.mktemp("bright_model")
    export_model(BrightNet(), out, tiny_manifest(name="bright-test"), TINY_PATCH, formats=("onnx",))
    return out


@pytest.fixture(scope="session")
def v6_model_dir(tmp_path_factory) -> Path:
    """The model bundled from 2026-12-06 (cpu-universal-v6's weight average, rebuilt from its committed fp16 weights
    with its own config and manifest), ONNX only: engine tests whose numbers were read on that model keep it whatever
    the default becomes."""
    from training.package_model import package
    from training.train import load_config

    out = tmp_path_factory.mktemp("v6_model")
    package(load_config(REPO / "training" / "configs" / "cpu_universal_v6.json"),
            REPO / "training" / "checkpoints" / "cpu-universal-v6_swa2772-4214_fp16.npz", out,
            "cpu-universal-v6-average", "the model bundled 2026-12-06 to 2026-12-07", {}, formats=("onnx",))
    return out
