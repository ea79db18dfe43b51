"""Weight averaging over a run's tail (training/average_weights.py): which snapshots, what mean, what errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training.average_weights import average, main, tail_snapshots
from training.train import keep_snapshot


def _fake_run(run_dir, steps_and_times, last_step):
    """A run folder as training.train leaves it: log.jsonl, snapshots copied from the checkpoint, the checkpoint."""
    run_dir.mkdir()
    with open(run_dir / "log.jsonl", "w") as log:
        for step in range(last_step):
            # the training clock ("t"): 1 s a step
            log.write(json.dumps({"step": step, "loss": 0.1, "t": float(step)}) + "\n")
    for step in steps_and_times:
        np.savez(run_dir / "paddle_weights.npz", w=np.full((2, 3), float(step), np.float32),
                 b=np.array([step], np.float16))
        keep_snapshot(run_dir, step)
    np.savez(run_dir / "paddle_weights.npz", w=np.full((2, 3), float(last_step), np.float32),
             b=np.array([last_step], np.float16))
    (run_dir / "step.txt").write_text(str(last_step))


def test_the_tail_is_the_snapshots_of_the_last_minutes_and_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, [1200, 3600, 4800, 6000], last_step=7200)
    chosen = tail_snapshots(run, minutes=60)
    assert [step for step, _ in chosen] == [3600, 4800, 6000, 7200]
    out = tmp_path / "mean.npz"
    assert main([str(run), "--last-minutes", "60", "--out", str(out)]) == 0
    with np.load(out) as mean:
        np.testing.assert_allclose(mean["w"], np.full((2, 3), (3600 + 4800 + 6000 + 7200) / 4))
        assert mean["b"].dtype == np.float32 and mean["b"][0] == pytest.approx(5400.0)
    assert not list(tmp_path.glob("*.tmp.npz"))


def test_weights_of_another_network_are_refused_with_the_file_named(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, w=np.zeros((2, 3), np.float32))
    np.savez(b, w=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"b\.npz: w has shape \(3, 3\)"):
        average([a, b])
    np.savez(b, v=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"b\.npz: its weight names differ"):
        average([a, b])
