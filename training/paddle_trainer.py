"""The Paddle back end of the training loop: network, Dice + BCE loss, AdamW, exact checkpoints."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.base.unique_name import UniqueNameGenerator
from paddle.utils import unique_name

from .boundary_loss import signed_distance
from .loss_weights import error_weights
from .network import build_network
from .train import seed_for_rank


def boundary_band(targets, width: int):
    """Voxels within `width` voxels of the reference edge (dilation minus erosion, by max pooling)."""
    size = 2 * width + 1
    return F.max_pool3d(targets, size, stride=1, padding=width) + F.max_pool3d(-targets, size, stride=1, padding=width)


def previous_error(previous, targets):
    """Where the previous mask is wrong (+1 added wrongly, -1 missed), in examples that start from one (the PyTorch
    twin's rule)."""
    wrong = (previous > 0.5).astype("float32") - targets
    return wrong * (previous.amax(axis=[1, 2, 3, 4], keepdim=True) > 0).astype("float32")


def focal_scale(logits, targets, gamma: float):
    """The twin's normalised focal weight: (1 - p_t)^gamma at mean 1 per example, outside the gradient."""
    with paddle.no_grad():
        p = F.sigmoid(logits)
        beta = (1 - paddle.where(targets > 0.5, p, 1 - p)) ** gamma
        return beta / beta.mean(axis=[1, 2, 3, 4], keepdim=True).clip(min=1e-8)


def dice_bce_loss(logits, targets, band_weight: float = 0.0, band_width: int = 2, previous=None,
                  error_weight=0.0, focal_gamma: float = 0.0, boundary_weight: float = 0.0):
    """BCE (weighted up by `band_weight` around the reference edge, by `error_weight` where the previous mask
    was wrong and by the normalised focal weight when `focal_gamma` > 0) plus soft Dice per example (the Dice term
    keeps small objects from vanishing in the average), plus `boundary_weight` times the boundary loss
    (training.boundary_loss); the same loss as the PyTorch twin's."""
    mask = (targets > 0.5).astype("float32")  # soft targets: the band and the errors are the mask's
    weights = 1.0 + band_weight * boundary_band(mask, band_width) if band_weight else paddle.ones_like(targets)
    missed, extra = error_weights(error_weight)
    if (missed or extra) and previous is not None:
        error = previous_error(previous, mask)
        weights = weights + extra * error.clip(min=0) + missed * (-error).clip(min=0)
    if focal_gamma:
        weights = weights * focal_scale(logits, mask, focal_gamma)
    bce = _sum(F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights) / _sum(weights)
    prob = F.sigmoid(logits)
    axes = [1, 2, 3, 4]
    dice = 1 - (2 * _sum(prob * targets, axes) + 1) / (_sum(prob, axes) + _sum(targets, axes) + 1)
    loss = bce + dice.mean()
    if boundary_weight:
        distance = paddle.to_tensor(signed_distance(mask.numpy()))
        loss = loss + boundary_weight * _sum(prob * distance) / prob.numel().astype("float32")
    return loss


def _sum(values, axis=None):
    """A float32 sum accumulated in float64: Paddle's CPU reduction over a patch drifts (the Dice term of a 32^3 ball
    off by 3e-4 against numpy's and PyTorch's, 2,623.28 vs 2,622.51), which parted the twins' losses."""
    return values.astype("float64").sum(axis=axis).astype("float32")


class PaddleTrainer:
    def __init__(self, config: dict):
        if config.get("deep_supervision"):
            raise ValueError("deep_supervision is an option of the PyTorch twin only (python -m training.torch_bridge); "
                             "remove it from the config to train with Paddle")
        self.world = paddle.distributed.get_world_size()
        self.rank = paddle.distributed.get_rank()
        use_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        self.device = paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().dev_id}" if use_gpu else "cpu")
        if self.world > 1:
            paddle.distributed.init_parallel_env()
            seed_for_rank(config, self.rank)
        paddle.seed(config["seed"])
        self.band_weight = float(config.get("band_weight", 0.0))
        self.error_weight = error_weights(config.get("error_weight", 0.0))
        self.focal_gamma = float(config.get("focal_gamma", 0.0))
        self.boundary_weight = float(config.get("boundary_loss", 0.0))
        # Own name space: the optimiser checkpoint is keyed by parameter names ("conv3d_0.w_0_moment1_0"), which
        # would otherwise depend on how many layers this process built before (a second trainer could not resume).
        self._names = UniqueNameGenerator()
        with unique_name.guard(self._names):
            self.net = build_network(config)
            self.model = paddle.DataParallel(self.net) if self.world > 1 else self.net
            self.optimizer = paddle.optimizer.AdamW(learning_rate=config["lr"], parameters=self.net.parameters(),
                                                    weight_decay=config.get("weight_decay", 1e-4),
                                                    grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0))

    def predict(self, images: np.ndarray, clicks: np.ndarray) -> np.ndarray:
        self.net.eval()
        with paddle.no_grad():
            logits = self.net(paddle.to_tensor(images), paddle.to_tensor(clicks))
        return (F.sigmoid(logits).numpy()[:, 0])

    def train_step(self, images, clicks, targets, lr: float) -> float:
        return self._step(images, clicks, targets, lr)[0]

    def train_step_predicting(self, images, clicks, targets, lr: float):
        """train_step, also returning the probabilities its forward pass made (training.round_slots' next clicks)."""
        loss, logits = self._step(images, clicks, targets, lr)
        return loss, F.sigmoid(logits.detach()).numpy()[:, 0]

    def _step(self, images, clicks, targets, lr: float):
        self.model.train()
        self.optimizer.set_lr(lr)
        clicks = paddle.to_tensor(clicks)
        logits = self.model(paddle.to_tensor(images), clicks)
        loss = dice_bce_loss(logits, paddle.to_tensor(targets), self.band_weight,
                             previous=clicks[:, :1], error_weight=self.error_weight, focal_gamma=self.focal_gamma,
                             boundary_weight=self.boundary_weight)
        loss.backward()
        with unique_name.guard(self._names):  # the first step names the optimiser's accumulators
            self.optimizer.step()
        self.optimizer.clear_grad()
        return float(loss), logits

    def agreed_max(self, value: float) -> float:
        """The largest `value` over all processes (the same number on every rank)."""
        if self.world == 1:
            return value
        tensor = paddle.to_tensor([value], dtype="float64")
        paddle.distributed.all_reduce(tensor, op=paddle.distributed.ReduceOp.MAX)
        return float(tensor.numpy()[0])

    def replica_spread(self) -> float:
        """How far the processes' weights differ (0 when gradients were averaged, as they must be)."""
        if self.world == 1:
            return 0.0
        checksum = float(sum(float(paddle.abs(p).sum()) for p in self.net.parameters()))
        spread = checksum - (-self.agreed_max(-checksum))  # this rank minus the smallest
        return self.agreed_max(abs(spread))

    def save(self, run_dir: Path, step: int) -> None:
        if self.rank != 0:
            return
        for name, state in (("model.pdparams", self.net.state_dict()), ("optimizer.pdopt", self.optimizer.state_dict())):
            tmp = run_dir / (name + ".tmp")
            paddle.save(state, str(tmp))
            os.replace(tmp, run_dir / name)
        tmp = run_dir / "step.txt.tmp"
        tmp.write_text(str(step))
        os.replace(tmp, run_dir / "step.txt")

    def resume(self, run_dir: Path) -> int:
        """Load the last checkpoint of `run_dir` if there is one; returns the step to continue from."""
        if not (run_dir / "step.txt").exists():
            return 0
        self.net.set_state_dict(paddle.load(str(run_dir / "model.pdparams")))
        self.optimizer.set_state_dict(paddle.load(str(run_dir / "optimizer.pdopt")))
        return int((run_dir / "step.txt").read_text(encoding="utf-8"))
