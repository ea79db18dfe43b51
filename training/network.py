"""Interactive VNet for CPU inference: a small 3D residual encoder-decoder.

Inputs: image (N, 1, D, H, W) and click channels (N, C, D, H, W) = [previous mask, positive balls, negative
balls] and, with `network.click_channels` 4, a "region" channel (a box or lasso drawn on one slice plane). Output: foreground logits (N, 1, D, H, W). Full-resolution layers are kept narrow because they dominate
the cost of a click on a CPU.

Click fusion (`network.fusion`): "concat" stacks clicks with the image at the input; "branch" is the original
EISeg-Med3D / RITM way: the image alone goes through the stem, the clicks through a small conv branch whose
output, scaled by a learnable scalar (starting at 0.05), is added after the stem.
"""
from __future__ import annotations

import paddle
from paddle import nn

from .network_config import extra_stage_counts, extra_stage_scale


class ConvNormAct(nn.Layer):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv3D(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 0)
        self.norm = nn.InstanceNorm3D(cout)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class ResidualStage(nn.Layer):
    """`depth` 3x3x3 convolutions with a skip around them (the VNet stage)."""

    def __init__(self, channels: int, depth: int):
        super().__init__()
        self.convs = nn.LayerList([ConvNormAct(channels, channels) for _ in range(depth)])

    def forward(self, x):
        y = x
        for conv in self.convs:
            y = conv(y)
        return x + y


class ZeroResidualStage(ResidualStage):
    """A residual stage whose last normalisation starts at shift 0 and scale `init_scale`. At scale 0 it adds
    LeakyReLU(0) = 0: the identity, so added to a trained network (`network.extra_stages`) it deepens it without
    changing one answer (zero-initialised residuals, Goyal et al. 2017). A small scale (LayerScale's idea) trades that
    for inner convolutions that learn from the first step: at scale 0 their gradient is 0 too."""

    def __init__(self, channels: int, depth: int = 2, init_scale: float = 0.0):
        super().__init__(channels, depth)
        last = self.convs[-1].norm
        last.scale.set_value(paddle.full_like(last.scale, init_scale))
        last.bias.set_value(paddle.zeros_like(last.bias))


FUSIONS = ("concat", "branch")
BRANCH_SCALE_INIT = 0.05


class InteractiveVNet(nn.Layer):
    def __init__(self, base: int = 8, levels: int = 4, depths=(1, 2, 2, 2, 2), fusion: str = "concat", click_channels: int = 3,
                 extra_stages=None, extra_stage_scale: float = 0.0):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"network fusion {fusion!r}: use one of {FUSIONS}")
        extra = extra_stage_counts(extra_stages, levels)
        self.fusion = fusion
        widths = [base * 2 ** i for i in range(levels + 1)]
        self.stem = ConvNormAct(1 + click_channels if fusion == "concat" else 1, widths[0])
        if fusion == "branch":
            self.click_branch = nn.Sequential(ConvNormAct(click_channels, widths[0]), nn.Conv3D(widths[0], widths[0], 3, padding=1))
            self.click_scale = self.create_parameter(
                [1], default_initializer=nn.initializer.Constant(BRANCH_SCALE_INIT))
        self.encoders = nn.LayerList([ResidualStage(widths[i], depths[i]) for i in range(levels + 1)])
        # empty lists hold no parameters: without extra stages every earlier package's names stay as they were
        self.extras = nn.LayerList([nn.LayerList([ZeroResidualStage(widths[i], init_scale=extra_stage_scale)
                                                  for _ in range(extra[i])]) for i in range(levels + 1)])
        self.downs = nn.LayerList([ConvNormAct(widths[i], widths[i + 1], kernel=2, stride=2) for i in range(levels)])
        self.ups = nn.LayerList([nn.Conv3DTranspose(widths[i + 1], widths[i], 2, stride=2) for i in range(levels)])
        self.merges = nn.LayerList([ConvNormAct(2 * widths[i], widths[i]) for i in range(levels)])
        self.decoders = nn.LayerList([ResidualStage(widths[i], 1) for i in range(levels)])
        self.head = nn.Conv3D(widths[0], 1, 1)

    def forward(self, image, clicks):
        if self.fusion == "concat":
            x = self.stem(paddle.concat([image, clicks], axis=1))
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
        for level in reversed(range(len(self.ups))):
            x = self.ups[level](x)
            x = self.merges[level](paddle.concat([x, skips[level]], axis=1))
            x = self.decoders[level](x)
        return self.head(x)


def build_network(config: dict) -> InteractiveVNet:
    net = config.get("network", {})
    return InteractiveVNet(base=net.get("base", 8), levels=net.get("levels", 4), depths=tuple(net.get("depths", (1, 2, 2, 2, 2))),
                           fusion=net.get("fusion", "concat"), click_channels=net.get("click_channels", 3),
                           extra_stages=net.get("extra_stages"), extra_stage_scale=extra_stage_scale(net))


def parameter_count(layer: nn.Layer) -> int:
    return int(sum(p.numel() for p in layer.parameters()))


def _float32_if_half(array):
    return array.astype("float32") if array.dtype == "float16" else array  # one read of each npz member


def load_weights(net: nn.Layer, path) -> None:
    """Load a Paddle checkpoint (.pdparams) or weights trained by the PyTorch twin (.npz, Paddle names)."""
    import numpy as np

    path = str(path)
    if path.endswith(".npz"):
        with np.load(path) as arrays:
            # fp16 files (the repository's checkpoints, half the size) load as the float32 the network holds
            state = {name: paddle.to_tensor(_float32_if_half(arrays[name])) for name in arrays.files}
    else:
        state = paddle.load(path)
    expected = set(net.state_dict())
    if set(state) != expected:
        raise ValueError(f"{path}: weights do not match the network (missing {sorted(expected - set(state))[:5]}, "
                         f"unexpected {sorted(set(state) - expected)[:5]})")
    net.set_state_dict(state)
