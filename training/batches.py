"""The training data stream: examples made in worker processes, deterministic per (seed, step, slot).

A step's examples depend only on the seed and the step number, so a resumed run sees exactly the data an
uninterrupted one would have seen.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

from .clicks import error_click
from .data import load_cache
from .hard_objects import attach as attach_hard_objects
from .heap import keep_freed_memory
from .pseudo_objects import supervoxel_path
from .sampler import make_example, object_boxes, to_arrays

_STATE: dict = {}


def _init_worker(cache_dir: str, keys: list, manifest: dict, sampling: str = "case", options: dict | None = None) -> None:
    cases = load_cache(Path(cache_dir), keys)
    for case in cases:
        case["boxes"] = object_boxes(case["label"])
        if (options or {}).get("supervoxel"):
            add_supervoxels(case, Path(cache_dir))
    attach_hard_objects(cases, options)
    _STATE.update(cases=cases, manifest=manifest, weights=case_weights(keys, sampling), options=options or {})


def _init_pool_worker(nice: int, keep_heap: bool, *args) -> None:
    if nice:
        os.nice(nice)  # yields the cores to the train step's threads, runs in their single-threaded gaps
    if keep_heap:
        keep_freed_memory()
    _init_worker(*args)


def add_supervoxels(case: dict, cache_dir: Path) -> None:
    """Attach the case's supervoxels (training.pseudo_objects) when they have been computed."""
    path = supervoxel_path(cache_dir, case["key"])
    if not path.exists():
        return
    with np.load(path) as npz:
        case["supervoxels"] = npz["supervoxels"]
    case["sv_boxes"] = object_boxes(case["supervoxels"])
    case["sv_values"] = np.array(sorted(case["sv_boxes"]), dtype=np.int32)


def case_weights(keys: list, sampling) -> np.ndarray:
    """Probability of drawing each case: "case" = every case alike; "dataset" = every data folder alike (so a
    folder with many cases, e.g. 42 water-fat scans of 62, does not dominate), cases alike within a folder;
    "sqrt" = a folder's share grows with the square root of its case count (between the two).

    Or {"by": one of those, "folders": {folder: factor}}: the named folders' shares times their factor (a source
    with few cases that matters, e.g. the 8 T2 spine scans), then normalised."""
    factors = {}
    if isinstance(sampling, dict):
        factors, sampling = dict(sampling.get("folders", {})), sampling.get("by", "case")
    if sampling not in ("case", "dataset", "sqrt"):
        raise ValueError(f"case sampling {sampling!r}: use 'case', 'dataset' or 'sqrt'")
    folders = [key.split("/")[0] for key in keys]
    unknown = sorted(set(factors) - set(folders))
    if unknown:
        raise ValueError(f"case sampling: folder factors for {unknown}, which have no training case")
    if sampling == "case" and not factors:
        return np.full(len(keys), 1.0 / len(keys))
    sizes = {folder: folders.count(folder) for folder in folders}
    base = {"case": lambda n: float(n), "dataset": lambda n: 1.0, "sqrt": np.sqrt}[sampling]
    share = {folder: base(n) * float(factors.get(folder, 1.0)) for folder, n in sizes.items()}
    total = sum(share.values())
    return np.array([share[folder] / total / sizes[folder] for folder in folders])


def _example(seed_tuple) -> dict:
    rng = np.random.default_rng(seed_tuple)
    cases, weights = _STATE["cases"], _STATE["weights"]
    while True:
        # Uniform case sampling keeps its original draw (rng.integers), so earlier runs reproduce exactly.
        index = rng.integers(len(cases)) if np.ptp(weights) == 0 else rng.choice(len(cases), p=weights)
        example = make_example(rng, cases[int(index)], _STATE["manifest"], _STATE["options"])
        if example is not None:
            example["rng"] = rng.bit_generator.state
            return example


def _next_click(args) -> dict:
    """Feed the model's prediction back as the previous mask and add one corrective click."""
    example, prediction = args
    rng = np.random.default_rng()
    rng.bit_generator.state = example["rng"]
    click = error_click(rng, example["gt"], prediction, example["voxel_mm"])
    example["previous"] = prediction.astype(np.float32)
    if click is not None and click[0] is not None:
        example["clicks"] = example["clicks"] + [click]
    example["rng"] = rng.bit_generator.state
    return example


class ExampleStream:
    """Batches of examples, with `workers` processes (0: in this process) at niceness `worker_nice`; `keep_heap`:
    the worker processes keep freed memory for reuse (training.heap; the training process sets its own in
    training.train.run)."""

    def __init__(self, cache_dir, keys, manifest: dict, batch_size: int, seed: int, workers: int = 0,
                 sampling: str = "case", options: dict | None = None, keep_heap: bool = False, worker_nice: int = 0):
        self.batch_size, self.seed, self.manifest = batch_size, seed, manifest
        case_weights(list(keys), sampling)  # a bad setting fails here, not inside a worker
        args = (str(cache_dir), list(keys), manifest, sampling, options)
        self._pending = None
        if workers > 0:
            self.pool = mp.get_context("spawn").Pool(workers, initializer=_init_pool_worker,
                                                     initargs=(worker_nice, keep_heap) + args)
            self._map = lambda fn, items: self.pool.map(fn, items, chunksize=1)
        else:
            self.pool = None
            _init_worker(*args)
            self._map = lambda fn, items: [fn(item) for item in items]

    def _seeds(self, step: int, slots) -> list:
        return [(self.seed, step, slot) for slot in slots]

    def batch(self, step: int, slots=None, slots_of=None) -> list[dict]:
        """The examples of `step` (of its `slots` only, when given: training.round_slots); with worker processes the
        next step's (its `slots_of(step + 1)`) are prepared meanwhile."""
        every = range(self.batch_size)
        slots = tuple(every if slots is None else slots)
        if self.pool is None:
            return self._map(_example, self._seeds(step, slots))
        pending, self._pending = self._pending, None
        wanted = (step, slots)
        if pending and pending[0] == wanted:
            examples = pending[1].get()
        else:
            examples = self._map(_example, self._seeds(step, slots))
        following = (step + 1, tuple(every if slots_of is None else slots_of(step + 1)))
        self._pending = (following, self.pool.map_async(_example, self._seeds(*following), chunksize=1))
        return examples

    def add_error_clicks(self, examples: list[dict], predictions: np.ndarray) -> list[dict]:
        # In this process, not the pool: an error click costs ~10 ms, and the pool's worker is busy preparing the
        # next step's examples, so waiting for it would serialise the two (same result either way: the click
        # depends only on the example's own random state).
        return [_next_click(pair) for pair in zip(examples, predictions)]

    def arrays(self, examples: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = [to_arrays(e, self.manifest) for e in examples]
        images = np.stack([p[0] for p in pairs])
        clicks = np.stack([p[1] for p in pairs])
        targets = np.stack([e.get("soft", e["gt"])[None] for e in examples]).astype(np.float32)  # soft: training.soft_target
        return images, clicks, targets

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()


def read_json(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
