"""A PyTorch twin of the training back end, for GPU machines that have PyTorch but cannot install Paddle.

The lent GPU machine of this project has no Paddle and no network, and a CUDA Paddle wheel is far over what
can be carried to it. This twin trains the SAME network (identical layer names and tensor layouts) with the
SAME data stream and loop (training.train.run); `to_paddle` then writes a Paddle checkpoint, so export,
evaluation and deployment stay Paddle. Users with paddlepaddle-gpu train with `python -m training.train`.

    python -m training.torch_bridge --config training/configs/gpu.json --time-limit 420
    python -m training.torch_bridge --to-paddle runs/gpu/torch_model.pt --config ... --run-dir runs/gpu

One process per core (or per GPU), gradients averaged (gloo on CPUs, NCCL on GPUs), launched by torchrun:

    OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nproc_per_node 2 -m training.torch_bridge --config ...

(`batch_size` is per process; `"threads": 1` on a CPU.)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .loss_weights import error_weights
from .network_config import extra_stage_counts, extra_stage_scale


class ConvNormAct(nn.Module):
    def __init__(self, cin, cout, kernel=3, stride=1):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 0)
        self.norm = nn.InstanceNorm3d(cout, affine=True, eps=1e-5)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x):
        y = self.conv(x)
        # InstanceNorm answers in NCDHW order whatever it is given; back to the conv's layout (channels-last on CPUs),
        # or the activation's backward meets two layouts: 3-8 times slower there, 18 % of a train step on the CPU
        # (BENCHMARKS.md, "One memory layout through the norm").
        return self.act(self.norm(y).contiguous(memory_format=_layout(y)))


def _layout(tensor: torch.Tensor) -> torch.memory_format:
    """channels_last_3d for a 5-D tensor laid out that way, else the default order."""
    if tensor.dim() == 5 and not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


class ResidualStage(nn.Module):
    def __init__(self, channels, depth):
        super().__init__()
        self.convs = nn.ModuleList([ConvNormAct(channels, channels) for _ in range(depth)])

    def forward(self, x):
        y = x
        for conv in self.convs:
            y = conv(y)
        return x + y


class ZeroResidualStage(ResidualStage):
    """training.network.ZeroResidualStage: last norm at shift 0 and scale `init_scale` (0: the identity)."""

    def __init__(self, channels, depth=2, init_scale=0.0):
        super().__init__(channels, depth)
        nn.init.constant_(self.convs[-1].norm.weight, init_scale)
        nn.init.zeros_(self.convs[-1].norm.bias)


class InteractiveVNet(nn.Module):
    """Mirror of training.network.InteractiveVNet (same parameter names; InstanceNorm weight = Paddle scale)."""

    def __init__(self, base=8, levels=4, depths=(1, 2, 2, 2, 2), fusion="concat", click_channels=3, extra_stages=None,
                 extra_stage_scale=0.0):
        super().__init__()
        self.fusion = fusion
        extra = extra_stage_counts(extra_stages, levels)
        widths = [base * 2 ** i for i in range(levels + 1)]
        self.stem = ConvNormAct(1 + click_channels if fusion == "concat" else 1, widths[0])
        if fusion == "branch":
            self.click_branch = nn.Sequential(ConvNormAct(click_channels, widths[0]), nn.Conv3d(widths[0], widths[0], 3, padding=1))
            self.click_scale = nn.Parameter(torch.full((1,), 0.05))  # = network.BRANCH_SCALE_INIT (that module needs Paddle)
        self.encoders = nn.ModuleList([ResidualStage(widths[i], depths[i]) for i in range(levels + 1)])
        self.extras = nn.ModuleList([nn.ModuleList([ZeroResidualStage(widths[i], init_scale=extra_stage_scale)
                                                    for _ in range(extra[i])])
                                     for i in range(levels + 1)])  # empty lists: no parameters, names unchanged
        self.downs = nn.ModuleList([ConvNormAct(widths[i], widths[i + 1], kernel=2, stride=2) for i in range(levels)])
        self.ups = nn.ModuleList([nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2) for i in range(levels)])
        self.merges = nn.ModuleList([ConvNormAct(2 * widths[i], widths[i]) for i in range(levels)])
        self.decoders = nn.ModuleList([ResidualStage(widths[i], 1) for i in range(levels)])
        self.head = nn.Conv3d(widths[0], 1, 1)

    def forward(self, image, clicks, features: bool = False):
        """Logits; with `features`, also the decoder's output at each level (index = level, 0 = full resolution)."""
        if self.fusion == "concat":
            x = self.stem(torch.cat([image, clicks], dim=1))
        else:
            x = self.stem(image) + self.click_scale * self.click_branch(clicks)
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            for stage in self.extras[level]:
                x = stage(x)
            if level < len(self.downs):
                skips.append(x)
                x = self.downs[level](x)
        decoded = [None] * len(self.ups)
        for level in reversed(range(len(self.ups))):
            x = self.ups[level](x)
            x = self.merges[level](torch.cat([x, skips[level]], dim=1))
            x = decoded[level] = self.decoders[level](x)
        return (self.head(x), decoded) if features else self.head(x)


class DeepSupervision(nn.Module):
    """The network plus a 1x1x1 logit head on the decoder's output at levels 1..len(weights) (1/2, 1/4, ...
    resolution), for a loss on each (nnU-Net's deep supervision). Training only: the heads are not part of the
    network that is exported, and the network's own answer is unchanged by them."""

    def __init__(self, net: InteractiveVNet, weights):
        super().__init__()
        self.net, self.weights = net, [float(w) for w in weights]
        widths = [conv.conv.out_channels for conv in net.merges]  # merges[level] answers with widths[level]
        if not 0 < len(self.weights) < len(widths):
            raise ValueError(f"deep_supervision {self.weights}: give one weight for each of 1..{len(widths) - 1} levels")
        self.heads = nn.ModuleList([nn.Conv3d(widths[level], 1, 1) for level in range(1, len(self.weights) + 1)])
        for head in self.heads:  # zero: no gradient into a trained network until the heads have learnt something
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, image, clicks):
        logits, decoded = self.net(image, clicks, features=True)
        return logits, [head(decoded[level]) for level, head in enumerate(self.heads, start=1)]


def deep_supervision_loss(coarse: list, targets: torch.Tensor, weights) -> torch.Tensor:
    """Sum of weight x (BCE + soft Dice) of each coarse head against the target averaged down to its grid (the
    covered fraction of each coarse voxel)."""
    loss = 0.0
    for level, (logits, weight) in enumerate(zip(coarse, weights), start=1):
        loss = loss + weight * interactive_loss(logits, F.avg_pool3d(targets.float(), 2 ** level))
    return loss


def paddle_state(net: nn.Module) -> dict:
    """Torch state dict -> numpy arrays under Paddle's parameter names."""
    out = {}
    for name, value in net.state_dict().items():
        if ".norm.weight" in name:
            name = name.replace(".norm.weight", ".norm.scale")
        out[name] = value.detach().cpu().numpy()
    return out


def boundary_band(targets: torch.Tensor, width: int) -> torch.Tensor:
    """Voxels within `width` voxels of the reference edge (dilation minus erosion over a cube, by max pooling)."""
    return _cube_max(targets, width) + _cube_max(-targets, width)


def _cube_max(values: torch.Tensor, width: int) -> torch.Tensor:
    """Maximum over the (2 width + 1)^3 cube around each voxel (voxels beyond the edge ignored), one axis at a time,
    each as the maximum of shifted views: the same numbers as `F.max_pool3d`, whose CPU kernel took 71 ms where
    this takes 6 (dilation and erosion, batch 2, 64^3, one thread; BENCHMARKS.md "One memory layout through the norm")."""
    for axis in (2, 3, 4):
        out, size = values.clone(), values.shape[axis]
        for shift in range(1, min(width, size - 1) + 1):
            ahead, behind = out.narrow(axis, shift, size - shift), out.narrow(axis, 0, size - shift)
            torch.maximum(ahead, values.narrow(axis, 0, size - shift), out=ahead)
            torch.maximum(behind, values.narrow(axis, shift, size - shift), out=behind)
        values = out
    return values


def previous_error(previous: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Where the previous mask (the model's own last answer) is wrong: +1 where it added a voxel wrongly, -1 where it
    missed one, 0 elsewhere and in examples that start from no mask (an empty previous mask is no answer, and
    weighting its "misses" would only favour bigger masks, the bundled model's error already)."""
    wrong = (previous > 0.5).float() - targets
    return wrong * (previous.amax(dim=(1, 2, 3, 4), keepdim=True) > 0).float()


def focal_scale(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """RITM's normalised focal weight: (1 - p_t)^gamma, rescaled to mean 1 in each example and kept out of the
    gradient, so the voxels the network still gets wrong (mostly the edge band) carry the loss, on either side."""
    with torch.no_grad():
        p = torch.sigmoid(logits)
        beta = (1 - torch.where(targets > 0.5, p, 1 - p)) ** gamma
        return beta / beta.mean(dim=(1, 2, 3, 4), keepdim=True).clamp(min=1e-8)


def interactive_loss(logits: torch.Tensor, targets: torch.Tensor, band_weight: float = 0.0, band_width: int = 2,
                     previous: torch.Tensor | None = None, error_weight=0.0, focal_gamma: float = 0.0,
                     boundary_weight: float = 0.0):
    """BCE (weighted up by `band_weight` in the band around the reference edge, where the spine error lies, by
    `error_weight` where the previous mask was wrong, which is what a correcting click asks to change: a number, or
    (missed, extra) as training.loss_weights.error_weights reads a config, and by the normalised focal weight when
    `focal_gamma` > 0) plus soft Dice per example (keeps small objects from vanishing in the average), plus
    `boundary_weight` times the boundary loss (training.boundary_loss) when > 0. In fp32.
    `targets` may be soft (the covered fraction of each voxel): BCE and Dice take them as they are."""
    logits = logits.float()
    mask = (targets > 0.5).float()  # soft targets (training.soft_target): the band and the errors are the mask's
    weights = 1.0 + band_weight * boundary_band(mask, band_width) if band_weight else torch.ones_like(targets)
    missed, extra = error_weights(error_weight)
    if (missed or extra) and previous is not None:
        error = previous_error(previous.float(), mask)
        weights = weights + extra * error.clamp(min=0) + missed * (-error).clamp(min=0)
    if focal_gamma:
        weights = weights * focal_scale(logits, mask, focal_gamma)
    bce = F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="sum") / weights.sum()
    prob = torch.sigmoid(logits)
    dims = (1, 2, 3, 4)
    dice = 1 - (2 * (prob * targets).sum(dims) + 1) / (prob.sum(dims) + targets.sum(dims) + 1)
    loss = bce + dice.mean()
    if boundary_weight:
        from .boundary_loss import signed_distance  # here: SimpleITK is not on the lent GPU machine (gpu_train.sh)

        distance = torch.from_numpy(signed_distance(mask.detach().cpu().numpy())).to(prob.device)
        loss = loss + boundary_weight * (prob * distance).mean()
    return loss


def network_settings(config: dict) -> dict:
    net = config.get("network", {})
    return {"base": net.get("base", 8), "levels": net.get("levels", 4), "depths": tuple(net.get("depths", (1, 2, 2, 2, 2))),
            "fusion": net.get("fusion", "concat"), "click_channels": net.get("click_channels", 3),
            "extra_stages": net.get("extra_stages"), "extra_stage_scale": extra_stage_scale(net)}


class TorchTrainer:
    """PyTorch back end of training.train.run. On a CPU with bf16 support it trains in bf16 autocast with
    channels-last 3D tensors (0.26 s vs 0.53 s per fp32 step on the project's 2-core machine); `"precision":
    "fp32"` in the config turns that off. Weights, optimiser state and the loss stay fp32."""

    def __init__(self, config: dict):
        # torchrun's environment: one process per core or GPU (world 1 without it)
        self.world, self.rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
        cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.device.type == "cpu" and config.get("threads"):
            torch.set_num_threads(int(config["threads"]))
        torch.manual_seed(config["seed"])  # the same initial weights on every rank
        if self.world > 1:
            import torch.distributed as dist

            dist.init_process_group("nccl" if cuda else "gloo")
            from .train import seed_for_rank

            seed_for_rank(config, self.rank)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.bf16 = config.get("precision", "bf16") == "bf16" and (self.device.type == "cuda" or _cpu_has_bf16())
        self.memory_format = torch.channels_last_3d if self.device.type == "cpu" else torch.contiguous_format
        self.band_weight = float(config.get("band_weight", 0.0))
        self.error_weight = error_weights(config.get("error_weight", 0.0))
        self.focal_gamma = float(config.get("focal_gamma", 0.0))
        self.boundary_weight = float(config.get("boundary_loss", 0.0))
        self.net = InteractiveVNet(**network_settings(config)).to(self.device, memory_format=self.memory_format)
        # what trains: the network, or the network with deep supervision's coarse heads (not exported)
        self.supervised = (DeepSupervision(self.net, config["deep_supervision"]).to(self.device, memory_format=self.memory_format)
                           if config.get("deep_supervision") else None)
        self.trained = self.supervised or self.net
        groups = [{"params": list(self.net.parameters()), "lr_scale": 1.0}]
        if self.supervised:
            # new heads on a trained network: at the network's fine-tuning rate they would hardly move in a run
            groups.append({"params": list(self.supervised.heads.parameters()),
                           "lr_scale": float(config.get("deep_supervision_lr_scale", 1.0))})
        self.optimizer = torch.optim.AdamW(groups, lr=config["lr"], weight_decay=config.get("weight_decay", 1e-4))
        # the train step's forward goes through DDP (gradients averaged in backward); click passes use the bare net
        self.model = (torch.nn.parallel.DistributedDataParallel(self.trained) if self.world > 1 else self.trained)

    def _tensor(self, array) -> torch.Tensor:
        """numpy arrays (training.batches) or tensors already on the device (training.torch_stream: no round trip)."""
        tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
        return tensor.to(self.device).contiguous(memory_format=self.memory_format)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def predict(self, images, clicks):
        self.net.eval()
        with torch.no_grad(), self._autocast():
            logits = self.net(self._tensor(images), self._tensor(clicks))
        return self._probabilities(logits, images)

    @staticmethod
    def _probabilities(logits, images):
        """Channel 0's probabilities, as tensors for tensor input (training.torch_stream), else numpy."""
        probabilities = torch.sigmoid(logits.detach().float())[:, 0]
        return probabilities if isinstance(images, torch.Tensor) else probabilities.cpu().numpy()

    def train_step(self, images, clicks, targets, lr):
        return self._step(images, clicks, targets, lr)[0]

    def train_step_predicting(self, images, clicks, targets, lr):
        """train_step, also returning the probabilities its forward pass made (training.round_slots' next clicks)."""
        loss, logits = self._step(images, clicks, targets, lr)
        return loss, self._probabilities(logits, images)

    def _step(self, images, clicks, targets, lr):
        self.net.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # checkpoints from before the key have none
        clicks = self._tensor(clicks)
        targets = self._tensor(targets)
        with self._autocast():
            out = self.model(self._tensor(images), clicks)
        logits, coarse = out if self.supervised else (out, None)
        # click channel 0 is the previous mask in every manifest (training/export.py, manifest_*.json)
        loss = interactive_loss(logits, targets, self.band_weight, previous=clicks[:, :1],
                                error_weight=self.error_weight, focal_gamma=self.focal_gamma,
                                boundary_weight=self.boundary_weight)
        if coarse:
            loss = loss + deep_supervision_loss(coarse, targets, self.supervised.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trained.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach()), logits  # detached: no autograd warning in every user's adapt output

    def agreed_max(self, value: float) -> float:
        """The largest `value` over all processes (the same number on every rank)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor[0])

    def replica_spread(self) -> float:
        """How far the processes' weights differ (0 when gradients were averaged, as they must be)."""
        if self.world == 1:
            return 0.0
        checksum = float(sum(float(p.detach().abs().double().sum()) for p in self.net.parameters()))
        spread = checksum - (-self.agreed_max(-checksum))  # this rank minus the smallest
        return self.agreed_max(abs(spread))

    def save(self, run_dir: Path, step: int) -> None:
        if self.rank != 0:
            return
        tmp = run_dir / "torch_checkpoint.pt.tmp"
        state = {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "step": int(step)}
        if self.supervised:
            state["heads"] = self.supervised.heads.state_dict()
        torch.save(state, tmp)
        os.replace(tmp, run_dir / "torch_checkpoint.pt")
        tmp = run_dir / "paddle_weights.tmp.npz"
        np.savez(tmp, **paddle_state(self.net))
        os.replace(tmp, run_dir / "paddle_weights.npz")
        (run_dir / "step.txt").write_text(str(step))

    def resume(self, run_dir: Path) -> int:
        path = run_dir / "torch_checkpoint.pt"
        if not path.exists():
            return 0
        state = torch.load(path, map_location=self.device, weights_only=False)  # our own checkpoint
        self.net.load_state_dict(state["model"])
        if self.supervised and "heads" in state:
            self.supervised.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])


def _cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX-512 BF16 / AMX); elsewhere bf16 autocast is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load_paddle_named(trainer: "TorchTrainer", path) -> None:
    """Start from weights saved under Paddle's names (.npz, e.g. a previous run's or a model package's). A network
    with more click channels than the weights (a new prompt channel) gets zero weights for the new channels, and one
    with extra stages the weights lack keeps them as built (at `network.extra_stage_scale` 0, the identity: it starts
    out answering exactly as the old network did)."""
    with np.load(path) as arrays:
        state = {name.replace(".norm.scale", ".norm.weight"): torch.from_numpy(arrays[name]) for name in arrays.files}
    own = trainer.net.state_dict()
    for name in ("stem.conv.weight", "click_branch.0.conv.weight"):
        if name in state and name in own and state[name].shape[1] < own[name].shape[1]:
            grown = torch.zeros(own[name].shape, dtype=state[name].dtype)
            grown[:, :state[name].shape[1]] = state[name]
            state[name] = grown
    for name in own:
        if name.startswith("extras.") and name not in state:
            state[name] = own[name]
    trainer.net.load_state_dict(state)


def main(argv=None) -> int:
    from .train import launch

    code = launch(argv, "Train with the PyTorch twin (GPU machines without Paddle).", TorchTrainer, load_paddle_named)
    close_process_group()
    return code


def close_process_group() -> None:
    """End a several-process run cleanly: left to interpreter exit, gloo's threads were seen to abort a rank
    ("terminate called without an active exception") after all its work was done."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # no rank closes its connections while another still finishes its last step
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
