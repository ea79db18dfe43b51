"""Hard objects drawn more often (training.hard_objects): the table from a real evaluation, the draws it causes in
both example streams' loaders, and nothing changed without it."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from test_training import KEYS, MANIFEST_SMOKE, REPO, synth  # noqa: F401  (synth is a fixture)

EVALUATION = REPO / "benchmarks" / "results" / "spine_val_first_prompt_s18" / "box_v19" / "evaluation.json"


def test_the_table_weights_each_evaluated_object_by_its_error_after_three_clicks(tmp_path):
    from training import hard_objects

    out = tmp_path / "table.json"
    hard_objects.main([str(EVALUATION), "--out", str(out)])
    table = json.loads(out.read_text())
    objects = json.loads(EVALUATION.read_text())["runs"]["model"]["objects"]
    assert sum(len(case) for case in table.values()) == len(objects) == 34
    for obj in objects:
        weight = table[f"{obj['dataset']}/{obj['case']}"][str(obj["label"])]
        assert weight == pytest.approx(max((1 - obj["summary"]["iou@3"]) ** 1.25, hard_objects.LEAST))
    worst = min(objects, key=lambda o: o["summary"]["iou@3"])
    best = max(objects, key=lambda o: o["summary"]["iou@3"])
    ratio = table[f"{worst['dataset']}/{worst['case']}"][str(worst["label"])] / \
        table[f"{best['dataset']}/{best['case']}"][str(best["label"])]
    assert ratio > 3  # the worst answered object is drawn several times as often


def test_an_evaluation_without_the_asked_click_count_is_refused_by_name():
    from training.hard_objects import table_from_evaluation

    evaluation = json.loads(EVALUATION.read_text())
    with pytest.raises(ValueError, match="no iou@20"):
        table_from_evaluation(evaluation, at=20)


def _draws(cases, n=600):
    from training.sampler import _label_target

    rng = np.random.default_rng(5)
    return Counter(_label_target(rng, cases[0])["values"][0] for _ in range(n))


@pytest.mark.parametrize("loader", ["example_stream", "planner"])
def test_the_loaders_draw_a_cases_labels_as_the_table_weights_them(synth, tmp_path, loader):
    from training import batches, stream_plans

    table = tmp_path / "table.json"
    table.write_text(json.dumps({KEYS[0]: {"1": 0.9, "2": 0.1}}))
    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    options = {"hard_objects": str(table)}
    if loader == "example_stream":
        batches._init_worker(str(synth["cache"]), KEYS[:2], manifest, "case", options)
        cases = batches._STATE["cases"]
    else:
        stream_plans.init_planner(("cache", str(synth["cache"]), KEYS[:2], False), manifest, "case", options)
        cases = stream_plans._PLANNER["cases"]
    assert list(cases[0]["values"]) == [1, 2]
    assert "object_p" not in cases[1]  # not in the table: drawn uniformly as before
    counts = _draws(cases)
    assert 0.85 < counts[1] / 600 < 0.95
    batches._init_worker(str(synth["cache"]), KEYS[:2], manifest, "case", {})
    uniform = _draws(batches._STATE["cases"])
    assert 0.42 < uniform[1] / 600 < 0.58


def test_a_label_the_table_lacks_takes_the_cases_median_weight():
    from training.hard_objects import object_probabilities

    p = object_probabilities(np.array([1, 2, 3, 4]), {"1": 0.1, "2": 0.3, "3": 0.5})
    np.testing.assert_allclose(p, np.array([0.1, 0.3, 0.5, 0.3]) / 1.2)


def test_a_missing_table_is_named_in_the_error(synth, tmp_path):
    from training import batches

    manifest = json.loads(MANIFEST_SMOKE.read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match="missing.json"):
        batches._init_worker(str(synth["cache"]), KEYS[:2], manifest, "case", {"hard_objects": str(tmp_path / "missing.json")})
