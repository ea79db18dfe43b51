"""The same validation scans with another field of view: the model's input scale as another hospital's scans set it.

The engine z-scores a scan with its own clipped mean and spread, so the field of view moves every tissue's input
value: more air around the anatomy (a wider field, a whole-spine survey) lowers the mean and stretches the
tissue's z-scores; a tight field (a crop to the anatomy) compresses them. Geometry and labels stay exact.

    python benchmarks/fov_standin.py ../shared/data/spine_mri_vertebral_bodies_t2 --split training/split.json \\
        --mode pad --factor 1.5 --out runs/post/t2_fov_pad
    python benchmarks/fov_standin.py ../shared/data/spine_mri_vertebral_bodies_t2 --split training/split.json \\
        --mode crop --margin-mm 15 --out runs/post/t2_fov_crop

`pad`: every axis longer than 1.5 times the shortest (the image plane) grows by `factor`, the new voxels at the
scan's 1st-percentile intensity plus Gaussian noise of the scan's own air spread. `crop`: the scan cut to its
labels' bounding box plus `margin_mm`. Prints each case's median label z-score before and after (the number the
model sees). Derived data: it lives under runs/, never in the repository.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "EISegMed3D"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference.normalize import intensity_stats  # noqa: E402
from sequence_standin import derive_pairs  # noqa: E402


def padded(image: sitk.Image, factor: float, seed: int = 0) -> tuple[sitk.Image, list[int]]:
    """(The scan with air around its long axes, the voxels added before and after along each axis i, j, k)."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    air = array[array <= np.percentile(array, 5)]
    level, spread = float(np.percentile(array, 1)), float(air.std())
    size = np.array(image.GetSize())  # i, j, k
    grow = np.where(size >= 1.5 * size.min(), np.ceil(size * (factor - 1) / 2), 0).astype(int)
    out = sitk.ConstantPad(sitk.Cast(image, sitk.sitkFloat32), grow.tolist(), grow.tolist(), level)
    values = sitk.GetArrayFromImage(out)
    inside = np.zeros(values.shape, bool)
    inside[tuple(slice(g, g + n) for g, n in zip(grow[::-1], size[::-1]))] = True
    rng = np.random.default_rng(seed)
    values[~inside] += rng.normal(0.0, spread, int((~inside).sum())).astype(np.float32)
    result = sitk.GetImageFromArray(values)
    result.CopyInformation(out)
    return result, [int(g) for g in grow]


def cropped_box(label: sitk.Image, margin_mm: float) -> tuple[list[int], list[int]]:
    """(lower, upper) crop sizes per axis (i, j, k) keeping the labels' bounding box plus the margin."""
    array = sitk.GetArrayFromImage(label)
    where = np.argwhere(array > 0)
    margin = np.ceil(margin_mm / np.array(label.GetSpacing())[::-1]).astype(int)
    lo = np.maximum(where.min(0) - margin, 0)
    hi = np.minimum(where.max(0) + 1 + margin, array.shape)
    return [int(v) for v in lo[::-1]], [int(v) for v in (np.array(array.shape) - hi)[::-1]]


def median_label_z(image: sitk.Image, label: sitk.Image) -> float:
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    stats = intensity_stats(array, {"type": "percentile_zscore", "lower": 0.5, "upper": 99.5})
    inside = np.clip(array[sitk.GetArrayFromImage(label) > 0], stats["lo"], stats["hi"])
    return float((np.median(inside) - stats["mean"]) / stats["std"])


def make(source: Path, out: Path, split: Path | None, mode: str, factor: float, margin_mm: float) -> Path:
    def transform(image, label, case):
        if mode == "pad":
            new_image, grow = padded(image, factor)
            new_label = sitk.ConstantPad(label, grow, grow, 0)
        else:
            lower, upper = cropped_box(label, margin_mm)
            new_image, new_label = sitk.Crop(image, lower, upper), sitk.Crop(label, lower, upper)
        before, after = median_label_z(image, label), median_label_z(new_image, new_label)
        print(f"{case['case']}: label median z {before:.2f} -> {after:.2f}")
        return new_image, new_label

    return derive_pairs(source, out, split, transform, f"fov_{mode}",
                        f"field of view changed ({mode}; benchmarks/fov_standin.py)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--split", type=Path, help="leave out the cases of this split's train list")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", choices=("pad", "crop"), required=True)
    parser.add_argument("--factor", type=float, default=1.5, help="pad: the image plane's growth per axis")
    parser.add_argument("--margin-mm", type=float, default=15.0, help="crop: margin around the labels")
    args = parser.parse_args(argv)
    folder = make(args.source, args.out, args.split, args.mode, args.factor, args.margin_mm)
    print(f"{folder}: {len(json.loads((folder / 'dataset.json').read_text())['cases'])} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
