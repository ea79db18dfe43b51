"""The PyTorch trainer on several processes (torchrun; gloo on CPUs): one per core, gradients averaged."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from test_training import REPO, _config, synth  # noqa: F401  (synth is a fixture)

pytest.importorskip("torch")

TINY = {"seed": 0, "lr": 1e-3, "precision": "fp32", "threads": 1, "network": {"base": 4, "levels": 2, "depths": [1, 1, 1]}}

# One train step on this rank's half of a fixed batch of 4; rank 0 writes the gradients the step applied.
STEP_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from training.torch_bridge import TorchTrainer, close_process_group
    from test_torch_data_parallel import gradients
    config, batch, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
    trainer = TorchTrainer(config)
    half = slice(2 * trainer.rank, 2 * trainer.rank + 2)
    trainer.train_step(batch["images"][half], batch["clicks"][half], batch["targets"][half], config["lr"])
    spread = trainer.replica_spread()
    if trainer.rank == 0:
        np.savez(out, spread=spread, world=trainer.world, **gradients(trainer))
    close_process_group()
""")


def gradients(trainer) -> dict:
    """The gradients of the last train step (after clipping), by parameter name (deep supervision's heads too)."""
    return {name: p.grad.detach().numpy().copy() for name, p in trainer.trained.named_parameters()}



def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return dict(env, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "EISegMed3D"),
                                                                str(REPO / "EISegMed3D" / "Testing")]))


def _torchrun(args, cwd, timeout=300):
    # --standalone: a free port of torchrun's own choosing (a fixed one can still be held by the previous run)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] + args,
                          cwd=cwd, env=_env(), capture_output=True, encoding="utf-8", errors="replace", timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _single_step(config: dict, batch: dict, which: slice) -> dict:
    from training.torch_bridge import TorchTrainer

    trainer = TorchTrainer(dict(config))
    assert trainer.world == 1
    trainer.train_step(batch["images"][which], batch["clicks"][which], batch["targets"][which], config["lr"])
    return gradients(trainer)


@pytest.mark.parametrize("config", [TINY, {**TINY, "deep_supervision": [0.5]}], ids=["plain", "deep_supervision"])
def test_two_processes_each_on_half_a_batch_step_as_one_process_on_the_whole(tmp_path, config):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(4, 1, 16, 16, 16)).astype(np.float32)
    targets = (rng.random((4, 1, 16, 16, 16)) < 0.3).astype(np.float32)
    clicks = np.concatenate([targets * 0.5, rng.random((4, 2, 16, 16, 16)) < 0.05], axis=1).astype(np.float32)
    batch = {"images": images, "clicks": clicks, "targets": targets}
    np.savez(tmp_path / "batch.npz", **batch)
    (tmp_path / "step.py").write_text(STEP_SCRIPT, encoding="utf-8")
    _torchrun([str(tmp_path / "step.py"), json.dumps(config), str(tmp_path / "batch.npz"), str(tmp_path / "dp.npz")],
              cwd=REPO)

    with np.load(tmp_path / "dp.npz") as saved:
        parallel = {name: saved[name] for name in saved.files}
    assert int(parallel.pop("world")) == 2 and float(parallel.pop("spread")) == 0.0
    whole, first_half = _single_step(config, batch, slice(0, 4)), _single_step(config, batch, slice(0, 2))
    assert set(whole) == set(parallel)
    scale = max(float(np.abs(g).max()) for g in whole.values())
    for name in whole:
        np.testing.assert_allclose(parallel[name], whole[name], rtol=0, atol=1e-5 * scale, err_msg=name)
    # rank 1's half counted: without it the gradient is another one
    assert max(float(np.abs(first_half[n] - whole[n]).max()) for n in whole) > 0.05 * scale


def test_a_two_process_run_logs_once_saves_once_and_ends_with_equal_replicas(synth, tmp_path):
    config = json.loads(_config(synth, "torch_dp").read_text(encoding="utf-8"))
    config.update(threads=1, precision="fp32")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    run_dir = tmp_path / "run"
    output = _torchrun(["-m", "training.torch_bridge", "--config", str(path), "--run-dir", str(run_dir)], cwd=REPO)
    assert "x 2 processes; replicas differ by 0" in output
    assert (run_dir / "step.txt").read_text(encoding="utf-8") == "4"
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3]  # logged by rank 0 only
    assert all(line["examples"] == 2 * config["batch_size"] and np.isfinite(line["loss"]) for line in lines)
    with np.load(run_dir / "paddle_weights.npz") as weights:
        assert "stem.conv.weight" in weights.files
