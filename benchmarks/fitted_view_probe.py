"""Probe: would a first click gain from a second look in a view fitted to what the first run found?

    python benchmarks/fitted_view_probe.py [--model PACKAGE]
    python benchmarks/fitted_view_probe.py --evaluate plain|second-look <python -m training.evaluate arguments>

For each bright ellipsoid of benchmarks/ellipsoid.py: one click at its centre through the engine as it is, then the
same click run once more (no previous mask) in the isotropic view the engine would choose once the object is known
(the find's bounding box times the margin, at least `min_roi_mm`, at most `max_roi_mm`); the second answer replaces
the first inside that view. With `--evaluate`, the protocol's evaluation (training.evaluate) with the engine's
first-prompt prediction followed by the same second look where the fitted view is under 0.8 of the first one
("second-look"), or as it is ("plain"). A probe of the idea (engine internals patched, not the engine), recorded
in benchmarks/results/experiments/fitted_view_probe.md.
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

import ellipsoid  # noqa: E402
sys.path.insert(0, str(ROOT))


def fitted_view(manifest: dict, scan_shape, spacing_kji, found_box: tuple):
    """The view the engine picks once an object is known (inference.model_input.choose_roi with the find's box as the
    mask box): the box times the margin, at least `min_roi_mm`, at most `max_roi_mm`."""
    from inference.model_input import choose_roi

    corners = np.array([[s.start for s in found_box], [s.stop - 1 for s in found_box]], dtype=np.float64)
    return choose_roi(manifest, scan_shape, spacing_kji, corners, found_box)


def view_mm(roi, spacing_kji) -> float:
    """Edge of an isotropic view in mm."""
    return float(roi.step[0] * spacing_kji[0] * min(roi.shape))


def fitted_second_look(session, model, volume, first_mask: np.ndarray):
    """(The first answer with the second look's inside the fitted view, that view)."""
    from inference import InteractiveSession
    from inference.roi import to_scan

    roi = fitted_view(session.manifest, volume.shape, volume.spacing[::-1], ndimage.find_objects(first_mask.astype(np.uint8))[0])
    fresh = InteractiveSession(model)
    fresh.set_volume(volume)
    prob, _ = fresh._run_model(session.prompts, roi)
    where, values = to_scan(prob, roi, volume.shape)
    mask = first_mask.copy()
    mask[where] = values > session.manifest.get("threshold", 0.5)
    return mask, roi


def patch_first_prompt_second_look() -> None:
    """InteractiveSession._predict followed, for a first prompt, by a run in the view fitted to the find."""
    import inference.session as session_module
    from inference.roi import to_scan

    original = session_module.InteractiveSession._predict

    def predict(self, prompts):
        box, values, model_s, runs, soft = original(self, prompts)
        found = values > self.manifest.get("threshold", 0.5)
        if self._mask_box is not None or len(prompts) != 1 or not found.any():
            return box, values, model_s, runs, soft
        spacing = self.volume.spacing[::-1]
        where = ndimage.find_objects(found.astype(np.uint8))[0]
        found_box = tuple(slice(w.start + b.start, w.stop + b.start) for w, b in zip(where, box))
        roi = fitted_view(self.manifest, self.volume.shape, spacing, found_box)
        if view_mm(roi, spacing) > 0.8 * view_mm(self.last_roi, spacing):
            return box, values, model_s, runs, soft
        prob, seconds = self._run_model(prompts, roi)
        box2, values2 = to_scan(prob, roi, self.volume.shape)
        union = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(box, box2))
        merged = np.zeros(tuple(u.stop - u.start for u in union), np.float32)
        for part, part_values in ((box, values), (box2, values2)):  # the second look wins inside its view
            merged[tuple(slice(a.start - u.start, a.stop - u.start) for a, u in zip(part, union))] = part_values
        self.last_roi = roi
        return union, merged, model_s + seconds, runs + 1, soft

    session_module.InteractiveSession._predict = predict


def main(argv=None) -> int:
    from inference import InteractiveSession, load_model

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--evaluate"]:
        if argv[1] == "second-look":
            patch_first_prompt_second_look()
        from training import evaluate

        return evaluate.main(argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "EISegMed3D/Resources/Models/eiseg-vnet-universal"))
    args = parser.parse_args(argv)
    model = load_model(args.model, backend="onnx")
    print("| grid | semi-axes mm | Dice, engine | Dice, second look | first view mm | fitted view mm |")
    print("|---|---|---|---|---|---|")
    pairs = []
    for grid, (spacing, direction) in ellipsoid.GRIDS.items():
        for semi in ellipsoid.SIZES_MM:
            volume, truth, centre = ellipsoid.ellipsoid_scan(semi, spacing, direction)
            session = InteractiveSession(model)
            session.set_volume(volume)
            first = session.add_click(ijk=tuple(centre), positive=True).mask > 0
            first_view = view_mm(session.last_roi, volume.spacing[::-1])
            second, roi = fitted_second_look(session, model, volume, first)
            pairs.append((ellipsoid.dice(first, truth), ellipsoid.dice(second, truth)))
            print(f"| {grid} | {' x '.join(map(str, semi))} | {pairs[-1][0]:.3f} | {pairs[-1][1]:.3f} | "
                  f"{first_view:.0f} | {view_mm(roi, volume.spacing[::-1]):.0f} |", flush=True)
    first, second = np.array(pairs).T
    print(f"\nmean {first.mean():.3f} -> {second.mean():.3f}, min {first.min():.3f} -> {second.min():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
