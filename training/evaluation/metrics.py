"""Overlap and click-count metrics of the evaluation protocol.

NoC uses IoU thresholds (the 2D convention, stated in every report). A click list shorter than the cap counts
as a failure when the threshold was never reached.
"""
from __future__ import annotations

import numpy as np
from inference.mask_ops import dice
from scipy import ndimage

K_VALUES = (1, 3, 5, 10, 20)
NOC_THRESHOLDS = (0.85, 0.90)
NOC_CAP = 20
AUC_CLICKS = 5
ERROR_K = (3, 20)  # where the residual error is described: after the target's 3 clicks and at the cap
_FULL = np.ones((3, 3, 3), dtype=bool)


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """|A∩B| / |A∪B|; 1.0 when both are empty."""
    gt, pred = np.asarray(gt) > 0, np.asarray(pred) > 0
    union = int(np.logical_or(gt, pred).sum())
    return 1.0 if union == 0 else int(np.logical_and(gt, pred).sum()) / union


def error_profile(gt: np.ndarray, pred: np.ndarray) -> dict:
    """Where the error lies: false positive and false negative voxel counts, and the share of all error voxels
    within one voxel (26-neighbourhood) of the reference boundary, i.e. a disagreement about the edge rather
    than a missed or leaked region. 0 error voxels give a share of None."""
    gt, pred = np.asarray(gt) > 0, np.asarray(pred) > 0
    fp, fn = int((pred & ~gt).sum()), int((gt & ~pred).sum())
    found = ndimage.find_objects((gt | pred).astype(np.uint8))
    if not found or fp + fn == 0:
        return {"fp": fp, "fn": fn, "near_boundary": None}
    # Only the box around both masks (padded by 2 so the band is whole) is looked at: scans are large.
    box = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in found[0])
    ref, out = gt[box], pred[box]
    band = ndimage.binary_dilation(ref, _FULL) & ~ndimage.binary_erosion(ref, _FULL, border_value=1)
    near = int(((ref ^ out) & band).sum())
    return {"fp": fp, "fn": fn, "near_boundary": near / (fp + fn)}


def error_summary(records: list[dict], ks=ERROR_K) -> dict:
    """Per object, after k clicks: the false-positive share of the error and its near-boundary share."""
    out = {}
    for k in ks:
        record = at_k(records, k)
        error = None if record is None else record["fp"] + record["fn"]
        out[f"fp_share@{k}"] = None if not error else record["fp"] / error
        out[f"near_boundary@{k}"] = None if record is None else record["near_boundary"]
    return out


def noc(ious, threshold: float, cap: int = NOC_CAP) -> tuple[int, bool]:
    """(number of clicks to reach IoU >= threshold, failed); a failure counts `cap`. ious[0] is after click 1."""
    for index, value in enumerate(list(ious)[:cap]):
        if value >= threshold:
            return index + 1, False
    return cap, True


def auc(dices, clicks: int = AUC_CLICKS) -> float:
    """Trapezoid area under Dice over clicks 1..`clicks` (unit spacing, maximum clicks-1 = 4.0)."""
    values = list(dices)[:clicks]
    if not values:
        return 0.0
    values += [values[-1]] * (clicks - len(values))  # a run stopped early keeps its last mask
    return float(sum((a + b) / 2.0 for a, b in zip(values[:-1], values[1:])))


def at_k(values, k: int):
    """The value after k clicks, or None when fewer than k clicks were simulated."""
    values = list(values)
    return values[k - 1] if 1 <= k <= len(values) else None


def object_summary(dices, ious, cap: int = NOC_CAP) -> dict:
    """All per-object numbers from its per-click Dice and IoU curves."""
    summary = {f"dice@{k}": at_k(dices, k) for k in K_VALUES}
    summary.update({f"iou@{k}": at_k(ious, k) for k in K_VALUES})
    for threshold in NOC_THRESHOLDS:
        count, failed = noc(ious, threshold, cap)
        name = f"{round(threshold * 100)}"
        summary[f"noc@{name}"] = count
        summary[f"failed@{name}"] = failed
    summary["auc"] = auc(dices)
    return summary


def percentile(values, q: float):
    values = [v for v in values if v is not None]
    return float(np.percentile(values, q)) if values else None


def mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def aggregate(summaries: list[dict], latencies: dict | None = None) -> dict:
    """Means over objects (NoC, Dice@k, IoU@k, AUC), failure counts, latency percentiles.

    latencies: {"first": [(latency_s, model_s), ...], "later": [...]} pooled over the objects.
    """
    out = {"objects": len(summaries)}
    for k in K_VALUES:
        out[f"dice@{k}"] = mean(s[f"dice@{k}"] for s in summaries)
        out[f"iou@{k}"] = mean(s[f"iou@{k}"] for s in summaries)
    for threshold in NOC_THRESHOLDS:
        name = f"{round(threshold * 100)}"
        out[f"noc@{name}"] = mean(s[f"noc@{name}"] for s in summaries)
        out[f"nof@{name}"] = int(sum(bool(s[f"failed@{name}"]) for s in summaries))
    out["auc"] = mean(s["auc"] for s in summaries)
    for k in ERROR_K:
        for name in (f"fp_share@{k}", f"near_boundary@{k}"):
            out[name] = mean(s.get(name) for s in summaries)
    for which, pairs in (latencies or {}).items():
        total = [p[0] for p in pairs]
        model = [p[1] for p in pairs]
        rest = [p[0] - p[1] for p in pairs]
        out[f"latency_{which}"] = {"n": len(pairs), "p50_s": percentile(total, 50), "p95_s": percentile(total, 95),
                                   "model_p50_s": percentile(model, 50), "rest_p50_s": percentile(rest, 50)}
    return out
