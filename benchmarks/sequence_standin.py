"""A stand-in for scans of a sequence the base model never saw, for the adaptation benchmark (issue 11).

Every source in ../shared/data was in the bundled model's training, so no real unseen source is at hand. This
takes a source's cases the base model did NOT train on (other subjects, by the split) and passes their images
through one fixed, non-monotone intensity curve that keeps air dark but turns the brightest tissue (CSF on the
water-fat images) dark again, as a T1-weighted image shows it:

    f(x) = x * exp(-x^2 / (2 s^2)),  s = the median of the scan's non-air voxels, rescaled to 0-255

Labels are linked, not copied; images are written beside them, with the source's geometry. The result is a data
folder with its own dataset.json (derived data: it lives under runs/, never in the repository).

    python benchmarks/sequence_standin.py ../shared/data/spine_mri_vertebral_bodies_waterfat \\
        --split runs/adapt_bench/bundled_split.json --out runs/adapt_bench/waterfat_t1like

(bundled_split.json: `git show b3c13f7:training/split.json`, the split the bundled model trained with)

    python benchmarks/sequence_standin.py ../shared/data/spine_mri_vertebral_bodies_t2 \\
        --split training/split.json --air-percentile 5 --out runs/adapt_bench/t2_t1like
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def t1_like(image: np.ndarray, air_percentile: float | None = None) -> np.ndarray:
    """The fixed curve above, on one scan's intensities; returns 0-255 float32.

    Air is taken as the scan's minimum (the water-fat images of issue 11: air at 0), or with `air_percentile` as
    that percentile, for scans whose air lies above a zero padding (the T2 folder: air at ~35, 80 % of the
    voxels); air is then most of the scan, so the median is its noise level and tissue is what lies above three
    times that."""
    x = image.astype(np.float32)
    if air_percentile is None:
        x = x - x.min()
        tissue = x[x > np.percentile(x, 20)]
    else:
        x = np.maximum(x - np.percentile(x, air_percentile), 0.0)
        tissue = x[x > 3.0 * max(float(np.median(x)), 1.0)]
    s = float(np.percentile(tissue, 50)) if tissue.size else float(x.max() or 1.0)
    y = x * np.exp(-(x ** 2) / (2.0 * s ** 2))
    return (255.0 * y / max(float(y.max()), 1e-6)).astype(np.float32)


def unseen_cases(meta: dict, source_name: str, split: Path | None) -> list[dict]:
    """The source's cases outside the base model's training split (all of them without a split)."""
    train = set(json.loads(split.read_text(encoding="utf-8"))["train"]) if split else set()
    return [c for c in sorted(meta["cases"], key=lambda c: c["case"]) if f"{source_name}/{c['case']}" not in train]


def make(source: Path, out: Path, split: Path | None, air_percentile: float | None = None) -> Path:
    meta = json.loads((source / "dataset.json").read_text(encoding="utf-8"))
    cases = unseen_cases(meta, source.name, split)
    if not cases:
        raise SystemExit(f"{source}: every case is in the base model's training split")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for case in cases:
        image = sitk.ReadImage(str(source / case["image"]))
        mapped = sitk.GetImageFromArray(t1_like(sitk.GetArrayFromImage(image), air_percentile))
        mapped.CopyInformation(image)
        sitk.WriteImage(mapped, str(out / case["image"]), useCompression=True)
        os.symlink((source / case["label"]).resolve(), out / case["label"])
    return write_derived(meta, source, out, cases, "t1like",
                         "images through a fixed non-monotone curve (benchmarks/sequence_standin.py); labels linked")


def derive_pairs(source: Path, out: Path, split: Path | None, transform, suffix: str, note: str) -> Path:
    """A derived folder of the source's unseen cases, each (image, label) pair as `transform(image, label, case)`
    gives it back (new SimpleITK images, written with compression)."""
    meta = json.loads((source / "dataset.json").read_text(encoding="utf-8"))
    cases = unseen_cases(meta, source.name, split)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for case in cases:
        image, label = sitk.ReadImage(str(source / case["image"])), sitk.ReadImage(str(source / case["label"]))
        new_image, new_label = transform(image, label, case)
        sitk.WriteImage(new_image, str(out / case["image"]), useCompression=True)
        sitk.WriteImage(new_label, str(out / case["label"]), useCompression=True)
    return write_derived(meta, source, out, cases, suffix, note)


def write_derived(meta: dict, source: Path, out: Path, cases: list[dict], suffix: str, note: str) -> Path:
    """The derived folder's dataset.json: the source's, with its cases, new name and where it came from."""
    derived = dict(meta, name=f"{source.name}_{suffix}", cases=cases, derived_from=str(source.resolve()), note=note)
    (out / "dataset.json").write_text(json.dumps(derived, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--split", type=Path, help="the split the base model trained with: its train cases are left out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--air-percentile", type=float, help="air level as this percentile, not the minimum (air "
                        "above a zero padding, e.g. 5 for the T2 folder)")
    args = parser.parse_args(argv)
    folder = make(args.source, args.out, args.split, args.air_percentile)
    print(f"{folder}: {len(json.loads((folder / 'dataset.json').read_text())['cases'])} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
