"""The obvious-object test: a bright ellipsoid on dark noise, one click at its centre, Dice against the ellipsoid.

    python benchmarks/ellipsoid.py --model EISegMed3D/Resources/Models/eiseg-vnet-universal [--model OTHER ...]

Contrast 200 on a background of 0, Gaussian noise sd 15, four sizes (semi-axes in mm along R, A, S) on three
grids: 1 mm isotropic, 0.9 x 1.1 x 3.5 mm rotated 20 degrees about two axes (oblique thick-slice), and
3.5 x 1.1 x 0.9 mm. A model that has learned "the object under the click" gets Dice >= 0.9 on all twelve; one
that has learned "a vertebra-sized blob near the click" covers part of the large ones. Writes the table into its
section of BENCHMARKS.md (with --write) and prints it.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "EISegMed3D"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES_MM = [(6, 6, 6), (14, 11, 16), (25, 20, 20), (35, 12, 12)]
MARK_START, MARK_END = "<!-- ellipsoid:start -->", "<!-- ellipsoid:end -->"


def rotation(degrees_x: float, degrees_y: float) -> np.ndarray:
    ax, ay = np.radians([degrees_x, degrees_y])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    return rx @ ry


GRIDS = {
    "1 mm": (np.array([1.0, 1.0, 1.0]), np.eye(3)),
    "0.9x1.1x3.5 mm oblique": (np.array([0.9, 1.1, 3.5]), rotation(20, 20)),
    "3.5x1.1x0.9 mm": (np.array([3.5, 1.1, 0.9]), np.eye(3)),
}


def ellipsoid_scan(semi_mm, spacing_ijk, direction, seed: int = 0, field_mm: float = 130.0):
    """(Volume, reference mask [k, j, i], centre ijk): the ellipsoid centred in a field of `field_mm` on a side."""
    from inference.volume import Volume

    shape_ijk = np.ceil(field_mm / spacing_ijk).astype(int)
    matrix = np.eye(4)
    matrix[:3, :3] = direction * spacing_ijk
    centre_ijk = (shape_ijk - 1) / 2.0
    matrix[:3, 3] = -matrix[:3, :3] @ centre_ijk  # the ellipsoid's centre at RAS (0, 0, 0)
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape_ijk[::-1]], indexing="ij")
    ijk = np.stack([i, j, k], -1).reshape(-1, 3).astype(np.float64)
    ras = ijk @ matrix[:3, :3].T + matrix[:3, 3]
    inside = (((ras / np.asarray(semi_mm, dtype=np.float64)) ** 2).sum(1) <= 1.0).reshape(k.shape)
    rng = np.random.default_rng(seed)
    image = (200.0 * inside + rng.normal(0.0, 15.0, inside.shape)).astype(np.float32)
    return Volume(image, matrix), inside, centre_ijk


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def run(model_path) -> list[dict]:
    from inference import InteractiveSession, load_model

    model = load_model(model_path, backend="onnx")
    rows = []
    for grid, (spacing, direction) in GRIDS.items():
        for semi in SIZES_MM:
            volume, truth, centre = ellipsoid_scan(semi, spacing, direction)
            session = InteractiveSession(model)
            session.set_volume(volume)
            result = session.add_click(ijk=tuple(centre), positive=True)
            rows.append({"grid": grid, "semi_axes_mm": list(semi), "dice": round(dice(result.mask > 0, truth), 3),
                         "mask_over_truth": round(float(result.mask.sum() / truth.sum()), 2)})
    return rows


def render(results: dict, command: str) -> str:
    names = list(results)
    lines = [MARK_START, "## The obvious object: a bright ellipsoid, one click at its centre", "",
             "Contrast 200 on 0, noise sd 15; semi-axes along R, A, S; Dice against the ellipsoid (voxel centres "
             "inside it); in brackets the mask's volume over the ellipsoid's. Deterministic (noise seed 0).", "",
             f"`{command}`", "",
             "| grid | semi-axes (mm) | " + " | ".join(f"{n} Dice (vol. ratio)" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for index, row in enumerate(results[names[0]]):
        cells = [f"{results[n][index]['dice']:.3f} ({results[n][index]['mask_over_truth']:.2f})" for n in names]
        lines.append(f"| {row['grid']} | {'x'.join(str(v) for v in row['semi_axes_mm'])} | " + " | ".join(cells) + " |")
    means = [f"**{np.mean([r['dice'] for r in results[n]]):.3f}**, min {min(r['dice'] for r in results[n]):.3f}" for n in names]
    lines += ["| mean, min | | " + " | ".join(means) + " |", MARK_END]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from sections import update_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", type=Path, help="model folder (repeat to compare); default: bundled")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--write", action="store_true", help="rewrite this benchmark's section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    results = {(path.name if path else "bundled"): run(path) for path in (args.model or [None])}
    text = render(results, "python benchmarks/ellipsoid.py " + shlex.join(sys.argv[1:] if argv is None else argv))
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if args.write:
        update_section(ROOT / "BENCHMARKS.md", text, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
