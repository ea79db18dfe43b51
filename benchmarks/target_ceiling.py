"""What a perfect network could reach through the engine's view: the reference mask resampled onto the view an object
gets once it is known (inference.model_input.choose_roi with its box), then back to the scan the engine's way
(inference.roi.to_scan, linear, threshold 0.5), compared with the reference.

    python benchmarks/target_ceiling.py ../shared/data/spine_mri_vertebral_bodies_t2/case_008 ...

Two training targets are compared: "hard", the mask sampled by nearest neighbour (what the recipe trains on), and
"soft", the fraction of each view voxel the object covers (the mask averaged over the view voxel's extent, then
sampled linearly). The IoU each reaches is the ceiling of a network trained to reproduce it exactly.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "EISegMed3D"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fitted_view_probe import fitted_view  # noqa: E402
from inference.roi import sample, to_scan  # noqa: E402
from training.evaluation.metrics import iou  # noqa: E402
from training.soft_target import coverage  # noqa: E402


def object_ceiling(manifest: dict, mask: np.ndarray, spacing_kji) -> dict:
    roi = fitted_view(manifest, mask.shape, spacing_kji, ndimage.find_objects(mask.astype(np.uint8))[0])
    row = {}
    for name, patch in (("hard", sample(mask.astype(np.float32), roi, order=0, mode="constant")),
                        ("soft", coverage(mask, roi))):
        where, values = to_scan(patch, roi, mask.shape)
        back = np.zeros(mask.shape, bool)
        back[where] = values > 0.5
        row[name] = iou(back, mask)
    row["view_voxel_mm"] = float(roi.step[0] * spacing_kji[0])
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", help="case paths without .nii.gz (the label is <case>_label.nii.gz)")
    parser.add_argument("--model", default=str(ROOT / "EISegMed3D/Resources/Models/eiseg-vnet-universal"))
    args = parser.parse_args(argv)
    manifest = json.loads((Path(args.model) / "model.json").read_text())
    rows = []
    for case in args.cases:
        label = sitk.ReadImage(f"{case}_label.nii.gz")
        labels = sitk.GetArrayFromImage(label)
        spacing_kji = np.array(label.GetSpacing()[::-1])
        for value in np.unique(labels[labels > 0]):
            row = object_ceiling(manifest, labels == value, spacing_kji)
            rows.append(row)
            print(f"{Path(case).parent.name}/{Path(case).name} label {value}: hard {row['hard']:.3f} soft {row['soft']:.3f}"
                  f" (view voxel {row['view_voxel_mm']:.2f} mm, scan {np.round(spacing_kji, 2).tolist()})", flush=True)
    for name in ("hard", "soft"):
        values = np.array([r[name] for r in rows])
        print(f"{name}: mean IoU {values.mean():.4f}, min {values.min():.4f} over {len(values)} objects")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
