"""Clicks that correct, measured on real validation objects: after the simulated user's first click, how much of
the largest missed region one positive click there adds, and how much of the largest false region one negative
click there removes (fractions of that region). Used by EISegMed3D/Testing/test_corrective_clicks.py and by the
adoption rules of training runs (`python -m training.evaluation.corrections --model PACKAGE [--objects spine-val]`).

OBJECTS are the 8 the test and the adoption tool use; `--objects spine-val` takes every labelled object of the
split's spine validation cases (34): the 8-object median ranked models' removing clicks against the 34-object mean
(benchmarks/results/experiments/corrections_all_spine.md)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .robot import deepest_voxel, largest_component, mm_sampling, next_click

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
# validation split (training/split.json): never trained on
OBJECTS = [("spine_mri_vertebral_bodies_t2", "case_008", v) for v in (3, 4)] + \
          [("spine_mri_vertebral_bodies_t2", "case_009", 2)] + \
          [("spine_mri_vertebral_bodies_waterfat", "case_013", v) for v in (1, 3)] + \
          [("spine_mri_vertebral_bodies_waterfat", "case_015", 2)] + \
          [("spine_mri_intervertebral_discs", "case_001", v) for v in (2, 3)]
MIN_REGION = 150  # voxels: a region a user would click on
SPLIT = Path(__file__).resolve().parents[1] / "split.json"


def spine_validation_objects(data_root: Path = DATA, split: Path = SPLIT) -> list[tuple[str, str, int]]:
    """(folder, case, label value) of every object the evaluation lists in the split's spine MRI validation cases."""
    from .run import list_objects

    cases = [c for c in json.loads(Path(split).read_text(encoding="utf-8"))["val"] if c.startswith("spine_mri")]
    folders = sorted({Path(data_root) / c.split("/")[0] for c in cases})
    return [(o.dataset, o.case, o.value) for o in list_objects(folders, cases=cases)]


def largest_region(region: np.ndarray) -> np.ndarray | None:
    """The largest 26-connected part of `region` when it is one a user would click on, else None."""
    component = largest_component(region)
    return component if component is not None and component.sum() >= MIN_REGION else None


def correction_fractions(model, data_root: Path = DATA, objects=OBJECTS) -> dict[str, list[float]]:
    """{"positive": [...], "negative": [...]}: per object, the fraction of the largest missed (false) region after
    the first click that a positive (negative) click at its deepest voxel fixed. Objects without such a region
    are left out of that list."""
    from inference import InteractiveSession, Volume

    out = {"positive": [], "negative": []}
    for folder, case, value in objects:
        volume = Volume.from_file(Path(data_root) / folder / f"{case}.nii.gz")
        target = Volume.from_file(Path(data_root) / folder / f"{case}_label.nii.gz").array == value
        session = InteractiveSession(model)
        session.set_volume(volume)
        ijk, positive = next_click(target, np.zeros_like(target), volume.spacing)
        first = session.add_click(ijk=ijk, positive=positive).mask > 0
        sampling = mm_sampling(volume.spacing)
        for sign, region in (("positive", target & ~first), ("negative", first & ~target)):
            component = largest_region(region)
            if component is None:
                continue
            k, j, i = deepest_voxel(component, sampling)
            after = session.add_click(ijk=(float(i), float(j), float(k)), positive=sign == "positive").mask > 0
            still = (component & ~after) if sign == "positive" else (component & after)
            out[sign].append(float(1.0 - still.sum() / component.sum()))
            session.undo()
    return out


def summary(fractions: dict[str, list[float]]) -> dict:
    """Median, mean, minimum, count and values of each sign's fractions (what the rules and the command report)."""
    return {sign: {"median": float(np.median(v)) if v else None, "mean": float(np.mean(v)) if v else None,
                   "min": min(v) if v else None, "n": len(v), "values": [round(x, 4) for x in v]}
            for sign, v in fractions.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model package folder (default: the bundled model)")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--objects", choices=("adoption", "spine-val"), default="adoption",
                        help="the adoption tool's 8 objects, or every object of the spine validation cases")
    args = parser.parse_args(argv)
    from inference import load_model

    model = load_model(args.model, backend=args.backend, threads=args.threads)
    objects = OBJECTS if args.objects == "adoption" else spine_validation_objects(args.data)
    print(json.dumps(summary(correction_fractions(model, args.data, objects))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
