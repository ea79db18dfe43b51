"""Clicks that correct, on real validation objects (skipped where ../shared/data is absent): after the first click,
a positive click in the largest missed region adds (most of) it, and a negative click in the largest false region
removes (most of) it, with the bundled default model through the engine."""
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from inference import InteractiveSession, Volume, load_model
from training.evaluation.robot import next_click

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
# validation split (training/split.json): never trained on
OBJECTS = [("spine_mri_vertebral_bodies_t2", "case_008", v) for v in (3, 4)] + \
          [("spine_mri_vertebral_bodies_t2", "case_009", 2)] + \
          [("spine_mri_vertebral_bodies_waterfat", "case_013", v) for v in (1, 3)] + \
          [("spine_mri_vertebral_bodies_waterfat", "case_015", 2)] + \
          [("spine_mri_intervertebral_discs", "case_001", v) for v in (2, 3)]
MIN_REGION = 150  # voxels: a region a user would click on

pytestmark = pytest.mark.skipif(not (DATA / OBJECTS[0][0]).exists(),
                                reason=f"real data not found at {DATA} (../shared/data beside the checkout)")


def _largest(region: np.ndarray):
    labels, count = ndimage.label(region, structure=np.ones((3, 3, 3)))
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    component = labels == (1 + int(np.argmax(sizes)))
    return component if component.sum() >= MIN_REGION else None


def _deepest_ijk(component: np.ndarray, spacing_ijk) -> tuple:
    depth = ndimage.distance_transform_edt(np.pad(component, 1), sampling=np.asarray(spacing_ijk)[::-1])[1:-1, 1:-1, 1:-1]
    k, j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return (float(i), float(j), float(k))


@pytest.fixture(scope="module")
def corrections():
    """For every object: how much of the largest missed (after a positive click) and false (after a negative
    click) region the correcting click removed, as fractions of that region."""
    model = load_model()
    out = {"positive": [], "negative": []}
    for folder, case, value in OBJECTS:
        volume = Volume.from_file(DATA / folder / f"{case}.nii.gz")
        target = Volume.from_file(DATA / folder / f"{case}_label.nii.gz").array == value
        session = InteractiveSession(model)
        session.set_volume(volume)
        ijk, positive = next_click(target, np.zeros_like(target), volume.spacing)
        first = session.add_click(ijk=ijk, positive=positive).mask > 0
        for sign, region in (("positive", target & ~first), ("negative", first & ~target)):
            component = _largest(region)
            if component is None:
                continue
            after = session.add_click(ijk=_deepest_ijk(component, volume.spacing), positive=sign == "positive").mask > 0
            still = (component & ~after) if sign == "positive" else (component & after)
            out[sign].append(1.0 - still.sum() / component.sum())
            session.undo()
    return out


@pytest.mark.xfail(strict=True, reason="issue 9 target not met by the bundled model: on these 8 objects a positive click "
                   "adds a median 39 % of the largest missed region (cpu-universal-v3 step 4,863, 2026-12-02, with the "
                   "first prompt's view centred on the find; 35 % before that change; the previous model 36 %), deterministic; strict, so it reports when a model fixes it")
def test_a_positive_click_in_a_missed_region_adds_it(corrections):
    fixed = corrections["positive"]
    assert len(fixed) >= 4, "too few objects with a missed region to judge"
    assert np.median(fixed) >= 0.5 and min(fixed) > 0.0


@pytest.mark.xfail(strict=True, reason="a regression of the bundled model adopted 2026-12-02 (cpu-universal-v3 step "
                   "4,863): on these 8 objects a negative click removes a median 43 % of the largest false region, the "
                   "previous model 64 % (deterministic; its aggregate spine NoC@85 and IoU@10 are better, BENCHMARKS.md); "
                   "strict, so it reports when a model fixes it")
def test_a_negative_click_in_a_false_region_removes_it(corrections):
    fixed = corrections["negative"]
    assert len(fixed) >= 4, "too few objects with a false region to judge"
    assert np.median(fixed) >= 0.5 and min(fixed) > 0.0
