"""Model package manifests (model.json): reading, checking files against it, and the legacy profile's manifest."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import ModelError

FORMAT_VERSION = 1
MANIFEST_NAME = "model.json"
IMAGE_CHANNELS = ["image"]
CLICK_CHANNELS = ["previous_mask", "positive_clicks", "negative_clicks"]  # what every model since the original takes
PROMPT_CHANNELS = (*CLICK_CHANNELS, "region")  # names the engine can draw; a model lists those it takes, in its order
REQUIRED_KEYS = ("name", "inputs", "output", "axis_order", "patch_shape", "spacing_policy", "normalization",
                 "threshold", "files", "sha256")
# The original EISeg-Med3D release (../shared/docs/original_eiseg_med3d.md, "The released model's I/O contract").
LEGACY_GRID = (512, 512, 12)
LEGACY_NORMALIZATION = {"type": "legacy_window", "window": [0.0, 2650.0], "mean": 4.0428873e-4, "std": 5.9983705e-4}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict:
    """Parse and check folder/model.json; every problem is a ModelError naming the file."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"{path}: missing (a model package is a folder with model.json and its weight files)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise ModelError(f"{path}: expected a JSON object")
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: dict, path: Path) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{path}: unknown format_version {version!r} (this engine reads {FORMAT_VERSION})")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ModelError(f"{path}: missing keys {missing}")
    if manifest["axis_order"] not in ("kji", "ijk"):
        raise ModelError(f"{path}: axis_order {manifest['axis_order']!r} is neither 'kji' nor 'ijk'")
    patch = manifest["patch_shape"]
    if not (isinstance(patch, list) and len(patch) == 3 and all(isinstance(s, int) and s > 0 for s in patch)):
        raise ModelError(f"{path}: patch_shape {patch!r} must be three positive integers")
    check_inputs(manifest["inputs"], path)
    keeps = manifest["spacing_policy"].get("wider_view_keeps", 0.0)
    if isinstance(keeps, bool) or not isinstance(keeps, (int, float)) or not 0.0 <= keeps <= 1.0:
        raise ModelError(f"{path}: spacing_policy wider_view_keeps {keeps!r} must be a share in [0, 1]")
    for key in ("region_prism", "region_prism_with_clicks"):
        prism = manifest.get(key, 0.0)
        if isinstance(prism, bool) or not isinstance(prism, (int, float)) or not 0.0 <= prism < 1.0 or \
                (prism and "region" not in manifest["inputs"][1]["channels"]):
            raise ModelError(f"{path}: {key} {prism!r} must be a number in [0, 1) (below the plane's 1.0) and "
                             f"needs a 'region' input channel")


def check_inputs(inputs, path: Path) -> None:
    """Two inputs in the order the engine feeds them: image (1 channel), clicks (channels named from PROMPT_CHANNELS,
    each at most once, with the positive and negative click channels among them)."""
    if not isinstance(inputs, list) or len(inputs) != 2:
        count = len(inputs) if isinstance(inputs, list) else inputs
        raise ModelError(f"{path}: inputs must list 2 entries (image, clicks), found {count}")
    image, clicks = (spec.get("channels") if isinstance(spec, dict) else None for spec in inputs)
    if image != IMAGE_CHANNELS:
        raise ModelError(f"{path}: input {_input_name(inputs[0])} has channels {image}, the engine feeds {IMAGE_CHANNELS}")
    if not (isinstance(clicks, list) and len(set(clicks)) == len(clicks) and set(clicks) <= set(PROMPT_CHANNELS)
            and {"positive_clicks", "negative_clicks"} <= set(clicks)):
        raise ModelError(f"{path}: input {_input_name(inputs[1])} has channels {clicks}; the engine feeds distinct "
                         f"names from {list(PROMPT_CHANNELS)} including positive_clicks and negative_clicks")


def _input_name(spec) -> str:
    return repr(spec.get("name")) if isinstance(spec, dict) else repr(spec)


def verify_files(folder: Path, manifest: dict, needed: list[str]) -> None:
    """`needed` files must exist; every listed weight file that exists must match its sha256."""
    manifest_path = folder / MANIFEST_NAME
    hashes = manifest["sha256"]
    for name in needed:
        if not (folder / name).is_file():
            raise ModelError(f"{folder / name}: missing (listed in {manifest_path})")
        if name not in hashes:
            raise ModelError(f"{folder / name}: no sha256 for it in {manifest_path}")
    for name, expected in hashes.items():
        path = folder / name
        if path.is_file() and sha256_file(path) != str(expected).lower():
            raise ModelError(f"{path}: sha256 does not match {manifest_path} (file changed or damaged; re-export it)")


def legacy_manifest(graph: Path, params: Path, grid=LEGACY_GRID) -> dict:
    """The original model's contract as a manifest; the patch is (1, C, X, Y, Z) in i, j, k order."""
    grid = [int(s) for s in grid]
    return {
        "format_version": FORMAT_VERSION,
        "name": f"legacy {graph.stem}",
        "description": "original EISeg-Med3D static graph (.pdmodel + .pdiparams), no manifest; legacy profile",
        "profile": "legacy",
        "inputs": [{"name": "image", "channels": list(IMAGE_CHANNELS)},
                   {"name": "clicks", "channels": list(CLICK_CHANNELS)}],
        "output": {"name": "logits", "meaning": "foreground logit per voxel; sigmoid then threshold"},
        "axis_order": "ijk",
        "patch_shape": grid,
        "spacing_policy": {"type": "whole_volume_grid", "grid_ijk": grid},
        "normalization": dict(LEGACY_NORMALIZATION),
        "click_radius_voxels": 2,
        "threshold": 0.49,
        "previous_mask": "soft",  # sigmoid of the last logits, not a thresholded mask
        "files": {"paddle_legacy": {"graph": graph.name, "params": params.name}},
        "sha256": {},
    }


def check_legacy_grid(grid, graph: Path) -> None:
    """The original VNet takes X, Y divisible by 16 and Z a multiple of 4 from 8."""
    x, y, z = grid
    if x % 16 or y % 16 or z < 8 or z % 4:
        raise ModelError(f"{graph}: legacy grid {tuple(grid)} cannot be taken by the original network "
                         "(X and Y must be multiples of 16, Z one of 8, 12, 16, ...)")
