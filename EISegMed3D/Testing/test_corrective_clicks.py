"""Clicks that correct, on real validation objects (skipped where ../shared/data is absent): after the first click,
a positive click in the largest missed region adds (most of) it, and a negative click in the largest false region
removes (most of) it, with the bundled default model through the engine."""
import numpy as np
import pytest

from inference import load_model
from training.evaluation.corrections import DATA, OBJECTS, correction_fractions

pytestmark = pytest.mark.skipif(not (DATA / OBJECTS[0][0]).exists(),
                                reason=f"real data not found at {DATA} (../shared/data beside the checkout)")


@pytest.fixture(scope="module")
def corrections():
    """For every object: how much of the largest missed (after a positive click) and false (after a negative
    click) region the correcting click removed, as fractions of that region."""
    return correction_fractions(load_model())


@pytest.mark.xfail(strict=True, reason="issue 9 target not met by the bundled model: on these 8 objects a positive click "
                   "adds a median 43 % of the largest missed region (cpu-universal-v6's weight average, bundled "
                   "2026-12-06; the model before it 39 %), deterministic; strict, so it reports when a model fixes it")
def test_a_positive_click_in_a_missed_region_adds_it(corrections):
    fixed = corrections["positive"]
    assert len(fixed) >= 4, "too few objects with a missed region to judge"
    assert np.median(fixed) >= 0.5 and min(fixed) > 0.0


def test_a_negative_click_in_a_false_region_removes_it(corrections):
    """cpu-universal-v6's weight average: a median 52 % (the model bundled before it: 43 %, a strict xfail)."""
    fixed = corrections["negative"]
    assert len(fixed) >= 4, "too few objects with a false region to judge"
    assert np.median(fixed) >= 0.5 and min(fixed) > 0.0
