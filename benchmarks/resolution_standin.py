"""The same validation scans on a finer grid: the in-plane resolution of another hospital's scans.

Every scan here was trained and validated at about 1 mm; clinical sagittal spine MRI is often 0.5-0.7 mm in the
slice plane. This resamples each unseen case's two largest axes (the slice plane of these sagittal scans) `factor`
times finer, the image linearly and the labels by nearest neighbour (the same object, its voxels split), with the
physical extent kept (the new voxels tile the old ones). `--noise` adds white noise so that each new voxel is as
noisy as a scan acquired at that size would be: a voxel `factor`**2 times smaller has `factor` times the noise sd;
the scan's own noise is read inside its labelled objects (the spread of neighbour differences, over sqrt 2), since
these 8-bit scans have a flat, noiseless background.

    python benchmarks/resolution_standin.py ../shared/data/spine_mri_vertebral_bodies_t2 --split training/split.json \\
        --factor 2 --out runs/post/t2_fine [--noise]

Derived data: it lives under runs/, never in the repository.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sequence_standin import derive_pairs  # noqa: E402


def finer_grid(image: sitk.Image, factor: float) -> sitk.Image:
    """A reference image over the same extent with the two largest axes `factor` times finer."""
    size = np.array(image.GetSize())
    fine = np.argsort(size)[-2:]
    scale = np.ones(3)
    scale[fine] = factor
    spacing = np.array(image.GetSpacing()) / scale
    direction = np.array(image.GetDirection()).reshape(3, 3)
    # the first new voxel centre lies half a new voxel from the old voxel's edge, along each axis's own direction
    origin = np.array(image.GetOrigin()) + direction @ ((spacing - np.array(image.GetSpacing())) / 2)
    reference = sitk.Image([int(n) for n in np.round(size * scale)], sitk.sitkUInt8)
    reference.SetSpacing(spacing.tolist())
    reference.SetOrigin(origin.tolist())
    reference.SetDirection(image.GetDirection())
    return reference


def object_noise(image: np.ndarray, label: np.ndarray) -> float:
    """The noise sd inside the labelled objects: neighbour differences along each axis, both voxels inside."""
    inside = label > 0
    differences = []
    for axis in range(3):
        ahead = tuple(slice(1, None) if a == axis else slice(None) for a in range(3))
        behind = tuple(slice(0, -1) if a == axis else slice(None) for a in range(3))
        differences.append((image[ahead] - image[behind])[inside[ahead] & inside[behind]])
    return float(np.concatenate(differences).std() / np.sqrt(2))


def resampled(image: sitk.Image, label: sitk.Image, factor: float, noise: bool, seed: int = 0):
    reference = finer_grid(image, factor)
    fine_image = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), reference, sitk.Transform(), sitk.sitkLinear)
    fine_label = sitk.Resample(label, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label.GetPixelID())
    if noise:
        values = sitk.GetArrayFromImage(fine_image)
        own = object_noise(sitk.GetArrayFromImage(image).astype(np.float32), sitk.GetArrayFromImage(label))
        sd = own * np.sqrt(factor ** 2 - 1)  # the interpolated image keeps about the old noise; this adds the rest
        values += np.random.default_rng(seed).normal(0.0, sd, values.shape).astype(np.float32)
        noisy = sitk.GetImageFromArray(values)
        noisy.CopyInformation(fine_image)
        fine_image = noisy
    return fine_image, fine_label


def make(source: Path, out: Path, split: Path | None, factor: float, noise: bool) -> Path:
    def transform(image, label, case):
        fine_image, fine_label = resampled(image, label, factor, noise)
        print(f"{case['case']}: {image.GetSize()} at {np.round(image.GetSpacing(), 2).tolist()} mm -> "
              f"{fine_image.GetSize()} at {np.round(fine_image.GetSpacing(), 2).tolist()} mm")
        return fine_image, fine_label

    return derive_pairs(source, out, split, transform, "fine",
                        f"slice plane {factor}x finer{', noise of the smaller voxels' if noise else ''} "
                        "(benchmarks/resolution_standin.py)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--split", type=Path, help="leave out the cases of this split's train list")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--noise", action="store_true", help="add the noise of the smaller voxels")
    args = parser.parse_args(argv)
    folder = make(args.source, args.out, args.split, args.factor, args.noise)
    print(f"{folder}: {len(json.loads((folder / 'dataset.json').read_text())['cases'])} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
