"""Per-click cost of the Slicer-side logic (real MRML via slicer-core) next to the engine's own latency, and the
cost of an autosave.

    python benchmarks/slicer_logic.py [--size 512,512,300] [--clicks 6] [--autosave-size 512,512,400]
                                      [--segments 5] [--out BENCHMARKS.md]
    python benchmarks/slicer_logic.py --autosave-only --json out.json   # e.g. from an older checkout

Builds a volume and a segmentation in a headless vtkMRMLScene, places points one at a time through
InteractiveSegmentationLogic.segment (world RAS -> session -> changed box written into the segment) and reports,
per click, the whole call and the engine's part of it. Then opens a data folder holding one scan of
--autosave-size, adds --segments segments and times the autosave (label built from the segments, then written)
with the peak of numpy temporaries (tracemalloc; VTK's own buffers are not counted). Updates the section between
the markers in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
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

    load = os.getloadavg()[0]
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
    return {"total": totals, "engine": engine, "model": logic.modelDescription(), "load": load}


def measure_autosave(size_ijk, segments: int) -> dict:
    """Seconds and numpy peak of building the label from the segments, and of the whole autosave."""
    import SimpleITK as sitk

    import slicer
    from EISegMed3DLib import InteractiveSegmentationLogic, geometry
    from EISegMed3DLib.labels import label_from_segments
    from EISegMed3DLib.segment_writer import write_segment

    build_scene((8, 8, 8))  # registers the converter rules
    shape = tuple(size_ijk[::-1])
    with tempfile.TemporaryDirectory(prefix="eiseg-autosave-") as folder:
        array = np.random.default_rng(0).normal(100, 10, shape).astype(np.int16)
        sitk.WriteImage(sitk.GetImageFromArray(array), str(Path(folder) / "scan.nii.gz"))
        del array
        scene = slicer.vtkMRMLScene()
        logic = InteractiveSegmentationLogic(scene)
        volume, seg = logic.openFolder(folder)
        to_seg = geometry.scan_to_segmentation(volume, seg)
        k, j, i = np.ogrid[-40:40, -40:40, -40:40]
        ball = (k ** 2 + j ** 2 + i ** 2) < 40 ** 2  # an organ-sized object (80 voxels across)
        for n in range(segments):
            segment_id = seg.GetSegmentation().AddEmptySegment("", f"organ {n + 1}")
            centre = [int(c * (n + 1) / (segments + 1)) for c in shape]
            box = tuple(slice(c - 40, c + 40) for c in centre)
            write_segment(seg, segment_id, to_seg, box, ball)
        table = logic.navigator.progress.label_table()
        tracemalloc.start()
        started = time.perf_counter()
        label_from_segments(seg, volume, table)
        build_s = time.perf_counter() - started
        build_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        started = time.perf_counter()
        saved = logic.autosave()
        autosave_s = time.perf_counter() - started
        autosave_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert saved is not None, "the autosave must write the label"
    return {"size": list(size_ijk), "segments": segments, "build_s": build_s, "build_peak_mb": build_peak / 2 ** 20,
            "autosave_s": autosave_s, "autosave_peak_mb": autosave_peak / 2 ** 20}


def autosave_rows(rows: list) -> list:
    lines = ["| code | label from segments | its numpy peak | whole autosave (label + .nii.gz write) | its numpy peak |",
             "|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['build_s']:.2f} s | {r['build_peak_mb']:.0f} MB | {r['autosave_s']:.2f} s | "
                     f"{r['autosave_peak_mb']:.0f} MB |")
    return lines


def report(size_ijk, data: dict, autosave: list) -> str:
    later = slice(1, None)  # the first call also computes the scan's statistics (once per scan)
    total = statistics.median(data["total"][later]) * 1000
    engine = statistics.median(data["engine"][later]) * 1000
    return "\n".join([
        START,
        "## Slicer logic overhead per click (headless MRML, slicer-core)",
        "",
        f"- Command: `python benchmarks/slicer_logic.py --size {','.join(map(str, size_ijk))}`",
        f"- Date: {datetime.now():%Y-%m-%d %H:%M}; machine: {platform.processor() or platform.machine()}, 2 cores "
        f"(load average {data['load']:.1f} at the start: other jobs slow the engine); model: {data['model']}",
        f"- Volume {size_ijk[0]} x {size_ijk[1]} x {size_ijk[2]} int16, one segment, points added one at a time "
        "through `InteractiveSegmentationLogic.segment` (world RAS -> engine -> changed box written into the segment).",
        "",
        "| clicks | `logic.segment` p50 (clicks 2..n) | engine latency p50 | MRML-side overhead | first call (incl. scan statistics) |",
        "|---|---|---|---|---|",
        f"| {len(data['total'])} | {total:.0f} ms | {engine:.0f} ms | {total - engine:.0f} ms | {data['total'][0] * 1000:.0f} ms |",
        "",
        "Outside edits are detected by the segment labelmap's modified time, so a click never reads the whole "
        "segment; before that change this script took 650-900 ms per click (on a busier machine, engine 210 ms then), most of it reading the segment twice.",
        "",
        f"### Autosave: {autosave[-1][1]['size'][0]} x {autosave[-1][1]['size'][1]} x {autosave[-1][1]['size'][2]} scan, "
        f"{autosave[-1][1]['segments']} segments (balls 80 voxels across)",
        "",
        "The label is built from the segments on every autosave, scan switch and Finish Scan (GUI thread). Before "
        "issue 10 each segment was read over the whole volume through a float64 array; now only the box its "
        "labelmap covers is read, in uint8. Peaks are numpy's temporaries (tracemalloc); VTK's own buffers are "
        "not counted. The \"before\" row is `--autosave-only --json` run on the checkout before the change "
        "(b200391), passed in with `--before`; both under the same background load.",
        "",
        *autosave_rows(autosave),
        END,
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512,512,300", help="volume size i,j,k")
    parser.add_argument("--clicks", type=int, default=6)
    parser.add_argument("--autosave-size", default="512,512,400", help="scan size i,j,k for the autosave")
    parser.add_argument("--segments", type=int, default=5)
    parser.add_argument("--before", type=Path, help="JSON of --autosave-only from the code before, for the table")
    parser.add_argument("--autosave-only", action="store_true", help="measure the autosave only, print JSON")
    parser.add_argument("--json", type=Path, help="with --autosave-only: write the JSON here")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    size_ijk = tuple(int(v) for v in args.size.split(","))
    autosave_size = tuple(int(v) for v in args.autosave_size.split(","))
    if args.autosave_only:
        result = measure_autosave(autosave_size, args.segments)
        print(json.dumps(result))
        if args.json:
            args.json.write_text(json.dumps(result), encoding="utf-8")
        return 0
    autosave = [("before (whole volume, float64)", json.loads(args.before.read_text()))] if args.before else []
    autosave.append(("now (segment box, uint8)", measure_autosave(autosave_size, args.segments)))
    section = report(size_ijk, measure(size_ijk, args.clicks), autosave)
    print(section)
    sections.update_section(args.out, section, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
