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


def fitted_second_look(session, model, volume, first_mask: np.ndarray) -> np.ndarray:
    from inference import InteractiveSession
    from inference.roi import isotropic_roi, roi_size_mm, to_scan

    policy = session.manifest["spacing_policy"]
    spacing = volume.spacing[::-1]
    box = ndimage.find_objects(first_mask.astype(np.uint8))[0]
    lo, hi = np.array([b.start for b in box]), np.array([b.stop - 1 for b in box])
    size = min(roi_size_mm(lo, hi, spacing, policy, True), policy.get("max_roi_mm", np.inf))
    roi = isotropic_roi(lo, hi, spacing, tuple(session.manifest["patch_shape"]), size)
    fresh = InteractiveSession(model)
    fresh.set_volume(volume)
    prob, _ = fresh._run_model(session.prompts, roi)
    where, values = to_scan(prob, roi, volume.shape)
    mask = first_mask.copy()
    mask[where] = values > session.manifest.get("threshold", 0.5)
    return mask


def patch_first_prompt_second_look() -> None:
    """InteractiveSession._predict followed, for a first prompt, by a run in the view fitted to the find."""
    import inference.session as session_module
    from inference.roi import isotropic_roi, roi_size_mm, to_scan

    original = session_module.InteractiveSession._predict

    def predict(self, prompts):
        box, values, model_s, runs, soft = original(self, prompts)
        found = values > self.manifest.get("threshold", 0.5)
        if self._mask_box is not None or len(prompts) != 1 or not found.any():
            return box, values, model_s, runs, soft
        policy, spacing = self.manifest["spacing_policy"], self.volume.spacing[::-1]
        where = ndimage.find_objects(found.astype(np.uint8))[0]
        lo = np.array([w.start + b.start for w, b in zip(where, box)])
        hi = np.array([w.stop - 1 + b.start for w, b in zip(where, box)])
        size = min(roi_size_mm(lo, hi, spacing, policy, True), policy.get("max_roi_mm", np.inf))
        if size > 0.8 * float(self.last_roi.step[0] * spacing[0] * min(self.last_roi.shape)):
            return box, values, model_s, runs, soft
        roi = isotropic_roi(lo, hi, spacing, tuple(self.manifest["patch_shape"]), size)
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
            first_view = float(session.last_roi.step[0] * volume.spacing[::-1][0] * min(session.last_roi.shape))
            second = fitted_second_look(session, model, volume, first)
            pairs.append((ellipsoid.dice(first, truth), ellipsoid.dice(second, truth)))
            box = ndimage.find_objects(first.astype(np.uint8))[0]
            extent = max((b.stop - b.start) * s for b, s in zip(box, volume.spacing[::-1]))
            fitted = min(max(extent * session.manifest["spacing_policy"].get("margin", 1.4), 24.0), 96.0)
            print(f"| {grid} | {' x '.join(map(str, semi))} | {pairs[-1][0]:.3f} | {pairs[-1][1]:.3f} | "
                  f"{first_view:.0f} | {fitted:.0f} |", flush=True)
    first, second = np.array(pairs).T
    print(f"\nmean {first.mean():.3f} -> {second.mean():.3f}, min {first.min():.3f} -> {second.min():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
