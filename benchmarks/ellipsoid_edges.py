"""How the answer to the bright ellipsoid depends on its edge: step edges vs edges blurred by a fraction of a voxel.

    python benchmarks/ellipsoid_edges.py --model EISegMed3D/Resources/Models/eiseg-vnet-universal [--model OTHER ...]

The ellipsoid test (benchmarks/ellipsoid.py) paints a step edge on a 1 mm grid and clicks the centre, which lies
halfway between voxels, so the engine's 64 mm view sits on the scan's voxels and the network sees the step as it
is. Here the same scans (1 mm grid, noise seed 0) are blurred by a Gaussian of `sigma` voxels before the click, and
the click is also moved half a voxel (the view then falls between voxels and its linear sampling averages the edge).
Prints Dice and the mask's volume over the ellipsoid's; a model that reads edges alike stays flat along a row.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "EISegMed3D"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES_MM = [(6, 6, 6), (9, 9, 9), (14, 11, 16)]
SIGMAS = [0.0, 0.4, 0.6, 0.8]


def run(model_path) -> list[dict]:
    from ellipsoid import GRIDS, dice, ellipsoid_scan
    from inference import InteractiveSession, load_model
    from inference.volume import Volume

    model = load_model(model_path, backend="onnx")
    rows = []
    for semi in SIZES_MM:
        volume, truth, centre = ellipsoid_scan(semi, *GRIDS["1 mm"])
        for shift in (0.0, 0.5):
            cells = []
            for sigma in SIGMAS:
                image = ndimage.gaussian_filter(volume.array, sigma) if sigma else volume.array
                session = InteractiveSession(model)
                session.set_volume(Volume(image.astype(np.float32), volume.ijk_to_ras))
                mask = session.add_click(ijk=tuple(np.asarray(centre) + shift), positive=True).mask > 0
                cells.append((dice(mask, truth), float(mask.sum() / truth.sum())))
            rows.append({"semi_axes_mm": semi, "click_shift": shift, "cells": cells})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", type=Path, required=True, help="model folder (repeat to compare)")
    args = parser.parse_args(argv)
    for path in args.model:
        print(f"\n{path}\n")
        print("| semi-axes (mm) | click shift (voxel) | " + " | ".join(f"blur {s} Dice (vol.)" for s in SIGMAS) + " |")
        print("|---|---|" + "---|" * len(SIGMAS))
        for row in run(path):
            cells = " | ".join(f"{d:.3f} ({r:.2f})" for d, r in row["cells"])
            print(f"| {'x'.join(map(str, row['semi_axes_mm']))} | {row['click_shift']} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
