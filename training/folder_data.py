"""Training data from a user's data folder: its finished scans and their `<scan>_label.nii.gz`.

The same cache entries as training.data.build_case (so the same sampler, clicks and loss train on them), read
from an image path and a label path instead of a ../shared/data dataset.json record. Every label value with at
least MIN_OBJECT_VOXELS voxels is one object, as in training.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.errors import EISegError

from .data import MIN_OBJECT_VOXELS, _crop_box


class AdaptError(EISegError):
    """The data folder cannot be used to adapt the model (the message says which file and what to do)."""


@dataclass(frozen=True)
class FinishedScan:
    rel: str  # key in the progress file
    image: Path
    label: Path
    key: str  # cache key: a file-name-safe, unique form of `rel`


def cache_key(index: int, rel: str) -> str:
    return f"{index:03d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", rel).strip("._")[:80]


def finished_scans(data_dir) -> list[FinishedScan]:
    """The folder's finished scans (in the order they were finished), each with its label file present."""
    from inference.datafolder import label_path
    from inference.progress import ProgressFile

    folder = Path(data_dir)
    progress = ProgressFile(folder)
    finished = progress.read().get("finished", [])
    if not finished:
        raise AdaptError(f"{folder}: no finished scans in {progress.path.name} - finish (Save and mark done) at "
                         "least one scan with its label before adapting the model")
    scans, problems = [], []
    for index, rel in enumerate(finished):
        image = folder / rel
        if not image.exists():
            problems.append(f"{image}: listed as finished but the scan is not there")
            continue
        label = label_path(image)
        if not label.is_file():
            problems.append(f"{label}: label of finished scan {rel} is missing")
            continue
        scans.append(FinishedScan(rel, image, label, cache_key(index, rel)))
    if problems:
        raise AdaptError("cannot adapt: " + "; ".join(problems) + " (fix these or mark the scans not finished)")
    return scans


def read_scan(scan: FinishedScan):
    """(Volume, label array [k, j, i]) with the label checked to lie on the scan's grid and hold an object."""
    from inference.datafolder import load_label
    from inference.volume import Volume

    volume = Volume.from_file(scan.image)
    try:
        label = load_label(volume, scan.label)
    except EISegError as exc:
        raise AdaptError(f"cannot adapt: {exc}") from exc
    if not label.any():
        raise AdaptError(f"{scan.label}: the label of finished scan {scan.rel} is empty (all 0) - segment it or "
                         "mark the scan not finished")
    return volume, label


def object_values(label: np.ndarray) -> dict[int, int]:
    """{label value: voxel count} of every value large enough to be a training object."""
    values, counts = np.unique(label[label > 0], return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts) if n >= MIN_OBJECT_VOXELS}


def build_scan_entry(scan: FinishedScan, manifest: dict) -> dict:
    """The training cache entry of one finished scan (see training.data.build_case)."""
    from inference.normalize import intensity_stats

    volume, label = read_scan(scan)
    objects = object_values(label)
    if not objects:
        raise AdaptError(f"{scan.label}: every object in the label of {scan.rel} is under {MIN_OBJECT_VOXELS} "
                         "voxels, too small to train on")
    stats = intensity_stats(volume.array, manifest["normalization"], str(scan.image))
    spacing_kji = volume.spacing[::-1]
    box = _crop_box(label > 0, spacing_kji)
    crop = np.clip(np.nan_to_num(volume.array[box].astype(np.float32), nan=stats["lo"]), stats["lo"], stats["hi"])
    quantised = np.round((crop - stats["lo"]) / max(stats["hi"] - stats["lo"], 1e-6) * 255).astype(np.uint8)
    return {"key": scan.key, "image_u8": quantised, "label": label[box].astype(np.uint16 if label.max() > 255 else np.uint8),
            "spacing_kji": spacing_kji, "stats": json.dumps(stats), "values": np.array(sorted(objects), dtype=np.int32)}


def write_cache(scans: list[FinishedScan], manifest: dict, cache_dir: Path, report=None) -> None:
    """Cache every scan not cached yet (atomically, so a stopped run leaves no half-written entry)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for number, scan in enumerate(scans, start=1):
        target = cache_dir / (scan.key + ".npz")
        if not target.exists():
            tmp = cache_dir / (scan.key + ".tmp.npz")
            np.savez_compressed(tmp, **build_scan_entry(scan, manifest))
            os.replace(tmp, target)
        if report:
            report(number / len(scans), f"read {scan.rel}")
