"""Time to draw a box or lasso into the model's region channel, one voxel slice against a prism across the patch.

    python benchmarks/region_drawing.py [--repeats 15] [--machine TEXT] [--write]

A 64^3 patch (the bundled model's), isotropic voxels; a 40 x 40 rectangle and a 200-point ellipse (30 x 40 across)
through the patch centre, on a grid axis plane and on an oblique one (normal (0.5, -0.3, 0.8)); each drawn with
`inference.prompts.region_channel` as a slice (`prism=0`) and as a prism (`prism=0.5`, a model whose manifest sets
`region_prism`). Median and max of the repeats, side by side in one run. Writes its section of BENCHMARKS.md with
--write.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "EISegMed3D"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MARK_START, MARK_END = "<!-- region-drawing:start -->", "<!-- region-drawing:end -->"
PATCH = (64, 64, 64)


def shapes() -> dict:
    """{name: polygon (N, 3) in patch coordinates (k, j, i)}."""
    centre = np.array([32.2, 31.7, 32.4])
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    axis_u, axis_v = np.array([0.0, 1, 0]), np.array([0.0, 0, 1])
    normal = np.array([0.5, -0.3, 0.8]) / np.linalg.norm([0.5, -0.3, 0.8])
    oblique_u = np.cross(normal, [1.0, 0, 0]) / np.linalg.norm(np.cross(normal, [1.0, 0, 0]))
    oblique_v = np.cross(normal, oblique_u)
    out = {}
    for plane, (u, v) in (("axis plane", (axis_u, axis_v)), ("oblique plane", (oblique_u, oblique_v))):
        out[f"box, {plane}"] = np.array([centre + a * u + b * v for a, b in ((-20, -20), (20, -20), (20, 20), (-20, 20))])
        out[f"lasso (200 points), {plane}"] = np.array([centre + 15 * np.sin(t) * u + 20 * np.cos(t) * v for t in angles])
    return out


def measure(repeats: int) -> list[dict]:
    from inference.prompts import region_channel

    rows = []
    region_channel(PATCH, shapes()["box, axis plane"], prism=0.5)  # warm-up: the polygon test's imports
    for name, polygon in shapes().items():
        row = {"shape": name}
        for label, prism in (("slice", 0.0), ("prism", 0.5)):
            times, region = [], None
            for _ in range(repeats):
                tick = time.perf_counter()
                region = region_channel(PATCH, polygon, prism=prism)
                times.append(time.perf_counter() - tick)
            row[label] = {"median_ms": 1000 * float(np.median(times)), "max_ms": 1000 * float(np.max(times)),
                          "voxels": int((region > 0).sum())}
        rows.append(row)
    return rows


def render(rows: list[dict], command: str, machine: str) -> str:
    lines = [MARK_START, "## Drawing a box or lasso: one voxel slice against a prism across the patch", "",
             f"`{command}`, {machine}; a 64^3 patch, `inference.prompts.region_channel`, median (max) of the repeats.", "",
             "| shape | slice | prism | prism voxels |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['shape']} | {row['slice']['median_ms']:.1f} ({row['slice']['max_ms']:.1f}) ms "
                     f"| {row['prism']['median_ms']:.1f} ({row['prism']['max_ms']:.1f}) ms | {row['prism']['voxels']:,} |")
    lines += ["", "On a grid axis plane the prism is one footprint repeated; on an oblique one the polygon test runs per "
              "column of the patch (crossing parity along the column, points near the outline tested one by one: "
              "`inference/polygon2d.py`). Either is small beside one model run (about 90-120 ms).", MARK_END]
    return "\n".join(lines)


def main(argv=None) -> int:
    from sections import publish

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--machine", default="the shared 2-core machine", help="the machine and its load, for the write-up")
    parser.add_argument("--write", action="store_true", help="rewrite this benchmark's section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    publish(render(measure(args.repeats), "python benchmarks/region_drawing.py " + shlex.join(argv), args.machine),
            args.write, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
