"""Per-segment click state and the jobs that run clicks on the worker thread (engine only, no MRML inside run)."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Target:
    """One segment being edited by clicks on one volume."""

    key: tuple  # (volume node ID, segmentation node ID, segment ID)
    seed: np.ndarray  # segment content [k, j, i] before the clicks of this round
    applied: list = field(default_factory=list)  # WorldClick, in the order they were applied
    base: int = 0  # applied[:base] are already part of `seed` (restored or from before an outside edit)
    redo: list = field(default_factory=list)
    digest: str = ""  # of the segment content when last read: tells outside edits apart
    mtime: int = -1  # modified time of the segment's labelmap after our last write or read: unchanged = no edit


@dataclass
class ClickJob:
    target: Target
    ordered: list  # the full click list once the job is done
    run: Callable  # () -> JobResult, runs on the worker thread
    mtime: int = -1  # modified time of the segment's labelmap when planned: a different one at apply = edited meanwhile


@dataclass
class JobResult:
    box: tuple  # scan-grid slices (k, j, i) that may have changed
    latency_s: float
    model_s: float
    clicks: int


def digest(mask: np.ndarray) -> str:
    return hashlib.sha1(np.packbits(mask.astype(bool)).tobytes()).hexdigest()


def union_box(boxes: list, shape) -> tuple:
    boxes = [b for b in boxes if all(s.stop > s.start for s in b)]
    if not boxes:
        return tuple(slice(0, 0) for _ in shape)
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


def diff_box(before: np.ndarray, after: np.ndarray) -> tuple:
    changed = np.nonzero(before != after)
    if not changed[0].size:
        return tuple(slice(0, 0) for _ in before.shape)
    return tuple(slice(int(c.min()), int(c.max()) + 1) for c in changed)


def click_runner(session, todo: list, seed: np.ndarray | None) -> Callable:
    """A job body: replay from `seed` when given (points moved or deleted), else append; returns JobResult."""

    def run() -> JobResult:
        started = time.perf_counter()
        before = session.mask.copy()
        boxes, model_s = [], 0.0
        try:
            if seed is not None:
                session.set_mask(seed)
            for item in todo:  # (ijk, positive) for a click, else a prompt call taking the session (prompts.py)
                result = item(session) if callable(item) else session.add_click(ijk=item[0], positive=item[1])
                boxes.append(result.changed_box)
                model_s += result.model_s
        except BaseException:
            if seed is not None or boxes:  # leave the session as the segment still is (its undo history is lost)
                session.set_mask(before)
            raise
        box = diff_box(before, session.mask) if seed is not None else union_box(boxes, session.mask.shape)
        return JobResult(box, time.perf_counter() - started, model_s, len(todo))

    return run
