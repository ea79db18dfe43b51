"""Click rounds carried across training steps (training.round_slots, config `rounds_per_example`) on the synthetic
data folder: each slot keeps its object for N steps and gains one error click a step; fresh examples are the
stream's own for (seed, step, slot); both training back ends train with it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_training import KEYS, _config, synth  # noqa: F401  (synth is a fixture)


def _clicks(example) -> list:
    return [(tuple(np.round(point, 3)), positive) for point, positive in example["clicks"]]


def test_each_slot_keeps_its_object_for_n_steps_and_gains_a_click_a_step(synth):
    from training.batches import ExampleStream
    from training.round_slots import RoundSlots

    stream = ExampleStream(synth["cache"], KEYS[:2], synth["manifest"], 2, 3, workers=1)  # prefetch by slot
    reference = ExampleStream(synth["cache"], KEYS[:2], synth["manifest"], 2, 3)
    slots = RoundSlots(batch_size=2, rounds=3)
    assert slots.offsets == [0, 1]
    seen = []
    try:
        for step in range(7):
            batch = slots.batch(step, stream)
            seen.append([(slots.round[s], dict(batch[s])) for s in range(2)])  # error clicks update in place
            empty = np.zeros((2,) + batch[0]["gt"].shape, dtype=bool)  # nothing found: the next click is positive
            slots.advance(step, stream, empty)
    finally:
        stream.close()
    # rounds staggered: slot 0 fresh at steps 0, 3, 6; slot 1 at 0 (a run's first step fills every slot), 2, 5
    assert [[r for r, _ in step] for step in seen] == [[0, 0], [1, 1], [2, 0], [0, 1], [1, 2], [2, 0], [0, 1]]
    for step, pairs in enumerate(seen):
        for slot, (round_, example) in enumerate(pairs):
            if round_ == 0:  # a fresh example is the stream's own for (seed, step, slot)
                (own,) = reference.batch(step, [slot])
                np.testing.assert_array_equal(example["image"], own["image"])
                assert _clicks(example) == _clicks(own)
            else:  # a kept one: the same object, one positive click more, the prediction fed back
                before = seen[step - 1][slot][1]
                np.testing.assert_array_equal(example["gt"], before["gt"])
                assert len(example["clicks"]) == len(before["clicks"]) + 1 and example["clicks"][-1][1]
                assert not example["previous"].any()


@pytest.mark.parametrize("back_end", ["torch", "paddle"])
def test_a_run_with_carried_rounds_trains_every_round_without_passes(synth, back_end):
    if back_end == "torch":
        pytest.importorskip("torch", reason="PyTorch (the fast training back end) is not installed")
        from training.torch_bridge import main
    else:
        from training.train import main

    path = _config(synth, f"rounds_{back_end}")
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(steps=6, batch_size=2, rounds_per_example=3, max_click_passes=5, precision="fp32")
    path.write_text(json.dumps(config), encoding="utf-8")
    run_dir = synth["root"] / f"run_rounds_{back_end}"
    assert main(["--config", str(path), "--run-dir", str(run_dir)]) == 0
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["passes"] for line in lines] == [0] * 6  # no no-grad pass: the train step's prediction clicks
    assert [line["rounds"] for line in lines] == [[0, 0], [1, 1], [2, 0], [0, 1], [1, 2], [2, 0]]
    assert [line["fresh"] for line in lines] == [2, 0, 1, 1, 0, 1]
    assert all(np.isfinite(line["loss"]) for line in lines)


def test_carried_rounds_refuse_the_torch_stream_and_a_zero_count():
    from training.round_slots import RoundSlots
    from training.train import round_slots

    with pytest.raises(ValueError, match="CPU example stream"):
        round_slots({"rounds_per_example": 3, "stream": "torch", "batch_size": 2})
    with pytest.raises(ValueError, match="rounds_per_example 0"):
        RoundSlots(2, 0)
    assert round_slots({"batch_size": 2}) is None
