"""What kind of error is left on the spine validation objects after 3 protocol clicks (issue 9's IoU@3 plateau)?

    python benchmarks/boundary_error.py [--model PKG]

1. The references against themselves: IoU of each object with its own one-voxel dilation and erosion (an answer off
   by one voxel everywhere) and with a Gaussian-smoothed copy (sigma 1, 2, 3 mm, threshold 0.5: how blocky labels
   drawn on thick slices are for a smooth answer).
2. The model after 3 protocol clicks (ONNX Runtime, 1 thread): IoU, mask/reference volume, centroid offset in voxels
   and the mean signed distance of the mask's surface voxels to the reference boundary (0 for an exact mask,
   negative inside): is the boundary off in one direction (a geometry bias) or at random?
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "EISegMed3D"))
sys.path.insert(0, str(ROOT))

from inference import InteractiveSession, Volume, load_model  # noqa: E402
from inference.robot import next_click  # noqa: E402
from training.data import DEFAULT_DATA  # noqa: E402

MIN_VOXELS = 500


def spine_cases(data: Path):
    """(folder, image path, {label value: reference mask}, spacing kji) of every spine validation case."""
    keys = [k for k in json.loads((ROOT / "training" / "split.json").read_text())["val"] if k.startswith("spine_mri")]
    for key in keys:
        label = sitk.ReadImage(str(data / f"{key}_label.nii.gz"))
        array = sitk.GetArrayFromImage(label)
        masks = {int(v): array == v for v in np.unique(array[array > 0])}
        yield (key.split("/")[0], data / f"{key}.nii.gz", {v: m for v, m in masks.items() if m.sum() >= MIN_VOXELS},
               np.array(label.GetSpacing()[::-1]))


def reference_limits(mask: np.ndarray, spacing_kji) -> list[float]:
    box = tuple(slice(max(s.start - 8, 0), s.stop + 8) for s in ndimage.find_objects(mask.astype(np.uint8))[0])
    ref = mask[box]
    scores = [ref.sum() / ndimage.binary_dilation(ref).sum(), ndimage.binary_erosion(ref).sum() / ref.sum()]
    for sigma_mm in (1.0, 2.0, 3.0):
        smooth = ndimage.gaussian_filter(ref.astype(np.float32), sigma_mm / spacing_kji) > 0.5
        scores.append((smooth & ref).sum() / (smooth | ref).sum())
    return scores


def signed_surface_distance(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the mask's surface voxels of how far the mask's boundary (half a voxel beyond their centres) lies
    outside the reference's (half way to the nearest voxel of the other kind): 0 for an exact mask, +1 for one a
    voxel too large everywhere, about -1 for one a voxel too small."""
    surface = pred & ~ndimage.binary_erosion(pred)
    inside = 1.0 - ndimage.distance_transform_edt(gt)[surface]
    outside = ndimage.distance_transform_edt(~gt)[surface]
    return float(np.mean(np.where(gt[surface], inside, outside)))


def model_errors(session, volume, gt: np.ndarray, clicks: int = 3) -> dict:
    session.reset()
    pred = None
    for _ in range(clicks):
        click = next_click(gt, pred, volume.spacing)
        if click is None:
            break
        pred = session.add_click(ijk=click[0], positive=click[1]).mask > 0
    offset = np.array(ndimage.center_of_mass(pred)) - np.array(ndimage.center_of_mass(gt))
    return {"iou": (pred & gt).sum() / (pred | gt).sum(), "volume": pred.sum() / gt.sum(), "offset_kji": offset,
            "signed": signed_surface_distance(gt, pred)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model package (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    model = load_model(args.model, backend="onnx", device="cpu", threads=1)
    limits, errors = defaultdict(list), defaultdict(list)
    for folder, image, masks, spacing in spine_cases(args.data):
        volume = Volume.from_file(image)  # once a case: its session serves every object
        session = InteractiveSession(model)
        session.set_volume(volume)
        for mask in masks.values():
            limits[folder].append(reference_limits(mask, spacing))
            errors[folder].append(model_errors(session, volume, mask))
    print("| folder | objects | reference vs its one-voxel dilation / erosion | vs itself smoothed, sigma 1 / 2 / 3 mm |"
          " model IoU@3 | volume / reference | centroid offset k, j, i (voxels) | signed surface distance (voxels) |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in limits:
        ref = np.mean(limits[folder], 0)
        rows = errors[folder]
        offset = np.mean([r["offset_kji"] for r in rows], 0)
        print(f"| {folder} | {len(rows)} | {ref[0]:.3f} / {ref[1]:.3f} | {ref[2]:.3f} / {ref[3]:.3f} / {ref[4]:.3f} | "
              f"{np.mean([r['iou'] for r in rows]):.3f} | {np.mean([r['volume'] for r in rows]):.3f} | "
              f"{', '.join(f'{v:+.2f}' for v in offset)} | {np.mean([r['signed'] for r in rows]):+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
