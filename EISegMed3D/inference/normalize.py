"""Intensity normalisation as a model's manifest names it; statistics come from the whole scan, once per scan."""
from __future__ import annotations

import numpy as np

from .errors import VolumeError

_MAX_SAMPLES = 2_000_000  # percentiles from a strided subsample: same answer to ~0.1 %, a fraction of the time


def _finite_sample(array: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil((array.size / _MAX_SAMPLES) ** (1 / 3))))
    sample = np.asarray(array[::step, ::step, ::step], dtype=np.float64).ravel()
    return sample[np.isfinite(sample)]


def intensity_stats(array: np.ndarray, spec: dict, name: str = "image") -> dict:
    """Per-scan numbers the normalisation needs (computed at set_volume, never per click)."""
    sample = _finite_sample(array)
    if sample.size == 0:
        raise VolumeError(f"{name}: image has no finite intensities (all NaN or infinite)")
    kind = spec.get("type")
    if kind == "percentile_zscore":
        lo, hi = np.percentile(sample, [spec.get("lower", 0.5), spec.get("upper", 99.5)])
        clipped = np.clip(sample, lo, hi)
        std = float(clipped.std())
        return {"lo": float(lo), "hi": float(hi), "mean": float(clipped.mean()), "std": std if std > 1e-6 else 1.0}
    if kind == "legacy_window":
        lo, hi = spec.get("window", (0.0, 2650.0))
        peak = float(np.clip(sample, lo, hi).max()) - lo
        return {"lo": float(lo), "hi": float(hi), "peak": peak if peak > 0 else 1.0}
    raise VolumeError(f"model manifest: unknown normalization type {kind!r}")


def normalize(values: np.ndarray, spec: dict, stats: dict) -> np.ndarray:
    """Map raw intensities to the model's input range (NaN becomes the lowest intensity)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=stats["lo"], posinf=stats["hi"], neginf=stats["lo"])
    values = np.clip(values, stats["lo"], stats["hi"])
    if spec["type"] == "percentile_zscore":
        return ((values - stats["mean"]) / stats["std"]).astype(np.float32)
    # The original: window to [0, 255], divide by the scan's maximum, by 255, then a fixed z-score.
    scaled = (values - stats["lo"]) / stats["peak"] / 255.0
    return ((scaled - spec["mean"]) / spec["std"]).astype(np.float32)
