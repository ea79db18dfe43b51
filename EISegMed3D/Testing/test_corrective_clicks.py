"""Clicks that correct, on real validation objects (skipped where ../shared/data is absent): after the first click,
a positive click in the largest missed region adds (most of) it, and a negative click in the largest false region
removes (most of) it, with the bundled default model through the engine. Every object of the split's spine MRI
validation cases (34; `training.evaluation.corrections --objects spine-val`): the 8-object median these tests first
used ranked models' removing clicks against the 34-object mean (benchmarks/results/experiments/corrections_all_spine.md)."""
import numpy as np
import pytest

from inference import load_model
from training.evaluation.corrections import DATA, correction_fractions, spine_validation_objects

pytestmark = pytest.mark.skipif(not (DATA / "spine_mri_vertebral_bodies_t2").exists(),
                                reason=f"real data not found at {DATA} (../shared/data beside the checkout)")


@pytest.fixture(scope="module")
def corrections():
    """For every object: how much of the largest missed (after a positive click) and false (after a negative
    click) region the correcting click removed, as fractions of that region."""
    objects = spine_validation_objects(DATA)
    assert len(objects) == 34
    return correction_fractions(load_model(backend="onnx", threads=1), DATA, objects)


def test_a_positive_click_in_a_missed_region_adds_a_good_part_of_it(corrections):
    """cpu-universal-v19's average (bundled 2026-12-07): a mean 44 % over 34 objects (v6's average: 42 %)."""
    fixed = corrections["positive"]
    assert len(fixed) >= 20, "too few objects with a missed region to judge"
    assert np.mean(fixed) >= 0.40 and np.median(fixed) > 0.3


@pytest.mark.xfail(strict=True, reason="issue 9 target not met by the bundled model: a positive click adds a mean 44 % "
                   "of the largest missed region over the 34 objects (cpu-universal-v19's average), deterministic; "
                   "strict, so it reports when a model fixes it")
def test_a_positive_click_in_a_missed_region_adds_most_of_it(corrections):
    assert np.mean(corrections["positive"]) >= 0.5


def test_a_negative_click_in_a_false_region_removes_most_of_it(corrections):
    """cpu-universal-v19's average: a mean 54 % over 33 objects (one has no false region worth a click; v6's: 51 %)."""
    fixed = corrections["negative"]
    assert len(fixed) >= 20, "too few objects with a false region to judge"
    assert np.mean(fixed) >= 0.5 and np.median(fixed) > 0.4
