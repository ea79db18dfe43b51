"""Per-click cost of the Slicer-side logic (real MRML via slicer-core) next to the engine's own latency.

    python benchmarks/slicer_logic.py [--size 512,512,300] [--clicks 6] [--out BENCHMARKS.md]

Builds a volume and a segmentation in a headless vtkMRMLScene, places points one at a time through
InteractiveSegmentationLogic.segment (world RAS -> session -> changed box written into the segment) and reports,
per click, the whole call and the engine's part of it. Updates the section between the markers in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "EISegMed3D"), str(ROOT)]

import sections  # noqa: E402  (benchmarks/, the script's folder)
START, END = "<!-- slicer-logic:start -->", "<!-- slicer-logic:end -->"


def build_scene(size_ijk):
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    scene = slicer.vtkMRMLScene()
    scene.RegisterNodeClass(slicer.vtkMRMLSegmentEditorNode())
    shape = tuple(size_ijk[::-1])
    array = np.random.default_rng(0).normal(100, 10, shape).astype(np.int16)
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = np.array(shape) // 2
    array[((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) < 20 ** 2] += 300
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    slicer.util.updateVolumeFromArray(volume, array)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segment_id = segmentation.GetSegmentation().AddEmptySegment("", "object")
    return scene, volume, segmentation, segment_id, centre[::-1]


def measure(size_ijk, clicks: int) -> dict:
    from EISegMed3DLib import InteractiveSegmentationLogic, geometry

    scene, volume, segmentation, segment_id, centre = build_scene(size_ijk)
    logic = InteractiveSegmentationLogic(scene)
    logic.loadModel(backend="onnx")
    rng = np.random.default_rng(1)
    points, totals, engine = [], [], []
    for _ in range(clicks):
        points.append(tuple(geometry.ijk_to_world(volume, centre + rng.integers(-6, 7, 3))))
        started = time.perf_counter()
        result = logic.segment(volume, segmentation, segment_id, positive=points)
        totals.append(time.perf_counter() - started)
        engine.append(result.latency_s)
    return {"total": totals, "engine": engine, "model": logic.modelDescription()}


def report(size_ijk, data: dict) -> str:
    later = slice(1, None)  # the first call also computes the scan's statistics (once per scan)
    total = statistics.median(data["total"][later]) * 1000
    engine = statistics.median(data["engine"][later]) * 1000
    return "\n".join([
        START,
        "## Slicer logic overhead per click (headless MRML, slicer-core)",
        "",
        f"- Command: `python benchmarks/slicer_logic.py --size {','.join(map(str, size_ijk))}`",
        f"- Date: {datetime.now():%Y-%m-%d %H:%M}; machine: {platform.processor() or platform.machine()}, 2 cores; model: {data['model']}",
        f"- Volume {size_ijk[0]} x {size_ijk[1]} x {size_ijk[2]} int16, one segment, points added one at a time "
        "through `InteractiveSegmentationLogic.segment` (world RAS -> engine -> changed box written into the segment).",
        "",
        "| clicks | `logic.segment` p50 (clicks 2..n) | engine latency p50 | MRML-side overhead | first call (incl. scan statistics) |",
        "|---|---|---|---|---|",
        f"| {len(data['total'])} | {total:.0f} ms | {engine:.0f} ms | {total - engine:.0f} ms | {data['total'][0] * 1000:.0f} ms |",
        "",
        "Outside edits are detected by the segment labelmap's modified time, so a click never reads the whole "
        "segment; before that change this script took 650-900 ms per click (on a busier machine, engine 210 ms then), most of it reading the segment twice.",
        END,
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512,512,300", help="volume size i,j,k")
    parser.add_argument("--clicks", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    size_ijk = tuple(int(v) for v in args.size.split(","))
    section = report(size_ijk, measure(size_ijk, args.clicks))
    print(section)
    sections.update_section(args.out, section, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
