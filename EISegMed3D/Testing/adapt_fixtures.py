"""A synthetic data folder with finished scans and an untrained tiny model package, for the adapt tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
SHAPE_KJI = (28, 40, 40)
SPACING_IJK = (1.2, 1.2, 2.0)
TINY_NETWORK = {"base": 4, "levels": 2, "depths": [1, 1, 1]}


def _ball(centre_kji, radius_mm) -> np.ndarray:
    grid = np.indices(SHAPE_KJI, dtype=np.float64)
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre_kji, SPACING_IJK[::-1])) <= radius_mm ** 2


def write_scan(folder: Path, name: str, seed: int, label: bool = True) -> Path:
    """A noisy scan with two bright blobs (values 1 and 2) at random places; its label beside it."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(SHAPE_KJI, np.uint8)
    for value, radius in ((1, 9.0), (2, 7.0)):
        centre = rng.uniform((9, 12, 12), (19, 28, 28))
        labels[_ball(centre, radius) & (labels == 0)] = value
    image = rng.normal(100, 25, SHAPE_KJI).astype(np.float32) + np.where(labels > 0, 120, 0).astype(np.float32)
    paths = [(image, folder / f"{name}.nii.gz")] + ([(labels, folder / f"{name}_label.nii.gz")] if label else [])
    for array, path in paths:
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing(SPACING_IJK)
        sitk.WriteImage(itk, str(path))
    return folder / f"{name}.nii.gz"


def synthetic_folder(folder: Path, finished: int = 4, unfinished: int = 1) -> Path:
    """`finished` labelled scans marked finished in EISegMed3D.json, plus `unfinished` ones without labels."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"case_{n:02d}" for n in range(finished + unfinished)]
    for n, name in enumerate(names):
        write_scan(folder, name, seed=100 + n, label=n < finished)
    progress = {"version": 1, "labels": [{"name": "blob", "labelValue": 1}, {"name": "small blob", "labelValue": 2}],
                "finished": [f"{name}.nii.gz" for name in names[:finished]]}
    (folder / "EISegMed3D.json").write_text(json.dumps(progress, indent=1), encoding="utf-8")
    return folder


def untrained_package(out: Path, seed: int = 0) -> Path:
    """A real model package (Paddle graph, legacy pair, ONNX) of an untrained tiny InteractiveVNet, 32^3 patch."""
    import paddle
    from paddle.utils import unique_name

    from training.network import build_network
    from training.package_model import package

    paddle.seed(seed)
    config = {"network": dict(TINY_NETWORK), "manifest": str(REPO / "training" / "configs" / "manifest_smoke.json")}
    weights = out.parent / f"{out.name}_init.pdparams"
    paddle.save(build_network(config).state_dict(), str(weights))
    with unique_name.guard():  # parameter names from 0, as a package written by its own process has them
        package(config, weights, out, "tiny-untrained", "untrained tiny model for the adapt tests", {"steps": 0})
    return out
