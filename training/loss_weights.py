"""The loss settings both training back ends read the same way (training/torch_bridge.py, training/paddle_trainer.py)."""
from __future__ import annotations


def error_weights(setting) -> tuple[float, float]:
    """`error_weight` of a config as (missed, extra): the weights on voxels the previous mask missed and on voxels it
    added wrongly. A number weights both alike (cpu-universal-v4, whose positives then added less: the bundled
    model's error is mostly extra voxels, so a symmetric weight mostly taught shrinking); {"missed": a, "extra": b}
    weights them apart; a (missed, extra) pair passes as it is."""
    if isinstance(setting, (tuple, list)):
        missed, extra = setting
        return float(missed), float(extra)
    if isinstance(setting, dict):
        unknown = set(setting) - {"missed", "extra"}
        if unknown:
            raise ValueError(f"error_weight: unknown keys {sorted(unknown)} (expected 'missed' and 'extra')")
        return float(setting.get("missed", 0.0)), float(setting.get("extra", 0.0))
    return float(setting or 0.0), float(setting or 0.0)
