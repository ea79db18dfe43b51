"""Network settings both back ends read the same way (training/network.py needs Paddle, training/torch_bridge.py
PyTorch; a GPU machine has only the latter)."""
from __future__ import annotations


def extra_stage_counts(extra_stages, levels: int) -> list[int]:
    """`network.extra_stages`: how many zero-initialised residual stages follow each encoder level's own."""
    if extra_stages is None:
        return [0] * (levels + 1)
    extra = [int(n) for n in extra_stages]
    if len(extra) != levels + 1 or min(extra) < 0:
        raise ValueError(f"network extra_stages {list(extra_stages)}: give {levels + 1} counts >= 0, one per level")
    return extra


def extra_stage_scale(net: dict) -> float:
    """`network.extra_stage_scale`: where the extra stages' last normalisation starts (0, the default: the identity, so a
    trained network deepened answers exactly as before; a small value such as 0.1 lets the new stages learn from the
    first step, because their inner convolutions' gradients are scaled by it)."""
    scale = float(net.get("extra_stage_scale", 0.0))
    if not 0.0 <= scale <= 1.0:
        raise ValueError(f"network extra_stage_scale {scale}: give a value in [0, 1]")
    return scale
