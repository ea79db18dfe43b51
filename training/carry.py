"""The carry pack: training cases and starting weights in one file small enough to take to a lent GPU machine.

    python -m training.carry pack --cache runs/cache --init runs/init/bundled_v1.npz --out runs/gpu_pack.npz
    python -m training.carry weights runs/gpu_pack.npz --out /tmp/init.npz     # (on the device) the weights

A lent machine takes at most 64 MiB: the repository's working tree (~17 MiB now) and the carried files together,
and the training cache is 128 MB of zlib npz. The default budget is what the tree leaves (less 1.5 MiB for its
growth); rebuild the pack when the tree has grown. Each case
(image_u8, label, supervoxels, spacing, stats, values: what training.torch_stream needs) is stored as an
xz-compressed npz. Over the budget, cases are dropped by a fixed rule: one at a time from the data folder that has
the most cases left, spread evenly over that folder (every other case first), so every folder stays, the largest
(water-fat spine) shrinks first, and what is left of it still spans its subjects.
The pack's "meta" lists the cases kept and dropped. Only numpy and the standard library are needed to read it.
"""
from __future__ import annotations

import argparse
import io
import json
import lzma
import os
from pathlib import Path

import numpy as np

DEVICE_LIMIT_MIB = 64.0
ROOT = Path(__file__).resolve().parents[1]
CASE_ARRAYS = ("image_u8", "label", "spacing_kji", "values")


def _xz_npz(arrays: dict) -> np.ndarray:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return np.frombuffer(lzma.compress(buffer.getvalue(), preset=6), dtype=np.uint8)


def _read_xz_npz(blob: np.ndarray) -> dict:
    with np.load(io.BytesIO(lzma.decompress(blob.tobytes()))) as npz:
        return {name: npz[name] for name in npz.files}


def case_blob(cache_dir: Path, key: str) -> np.ndarray:
    """One cached case (and its supervoxels when computed) as xz-compressed npz bytes."""
    from .pseudo_objects import supervoxel_path

    with np.load(Path(cache_dir) / (key.replace("/", "__") + ".npz")) as npz:
        arrays = {name: npz[name] for name in CASE_ARRAYS}
        arrays["stats"] = np.array(str(npz["stats"]))
    path = supervoxel_path(cache_dir, key)
    if path.exists():
        with np.load(path) as npz:
            arrays["supervoxels"] = npz["supervoxels"]
    return _xz_npz(arrays)


def _spread_rank(index: int) -> float:
    """Van der Corput value of `index` (0, .5, .25, .75, ...): dropping a folder's cases by descending rank removes
    every other case first, so what is left still spans the folder (the water-fat cases added last, 016-044, are
    not the ones to go)."""
    value, weight = 0.0, 0.5
    while index:
        value += weight * (index & 1)
        index >>= 1
        weight /= 2
    return value


def choose_cases(sizes: dict, budget_bytes: float) -> tuple[list, list]:
    """(kept, dropped) keys: from the folder with the most cases left, drop cases spread evenly over the folder
    (by key order) until the sizes fit."""
    kept = sorted(sizes)
    rank = {}
    for folder in {k.split("/")[0] for k in kept}:
        members = [k for k in kept if k.split("/")[0] == folder]
        rank.update({k: _spread_rank(i) for i, k in enumerate(members)})
    dropped = []
    while kept and sum(sizes[k] for k in kept) > budget_bytes:
        folders = [k.split("/")[0] for k in kept]
        largest = max(set(folders), key=lambda f: (folders.count(f), f))
        victim = max((k for k in kept if k.split("/")[0] == largest), key=lambda k: rank[k])
        kept.remove(victim)
        dropped.append(victim)
    return kept, dropped


def tree_mib(root: Path = ROOT) -> float:
    """Size of what travels to the device besides the carried files: tracked and untracked-not-ignored files."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((root / name.decode()).stat().st_size for name in listed if name and (root / name.decode()).is_file()) / 2 ** 20


def default_budget_mib() -> float:
    return DEVICE_LIMIT_MIB - tree_mib() - 1.5


def build_pack(cache_dir: Path, keys: list, init: Path, out: Path, budget_mib: float) -> dict:
    """Write the pack (atomically: a temporary name, then rename) and return its meta."""
    blobs = {key: case_blob(cache_dir, key) for key in keys}
    weights = np.frombuffer(lzma.compress(Path(init).read_bytes(), preset=6), dtype=np.uint8)
    room = budget_mib * 2 ** 20 - weights.nbytes - 64 * 1024  # the outer npz's headers: well under 64 KiB
    kept, dropped = choose_cases({k: b.nbytes for k, b in blobs.items()}, room)
    if not kept:
        raise ValueError(f"{out}: not one case fits in {budget_mib} MiB beside the weights")
    meta = {"format": 1, "kept": kept, "dropped": dropped, "init": Path(init).name, "budget_mib": budget_mib}
    arrays = {f"case_{i:03d}": blobs[k] for i, k in enumerate(kept)}
    arrays.update(meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), init=weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    meta["mib"] = out.stat().st_size / 2 ** 20
    return meta


def pack_meta(path: Path) -> dict:
    with np.load(path) as npz:
        return json.loads(npz["meta"].tobytes().decode())


def load_pack_cases(path: Path) -> list[dict]:
    """The pack's cases as training.torch_stream takes them (image_u8, label, supervoxels, spacing, stats, key)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no carry pack (make one with `python -m training.carry pack ...`)")
    cases = []
    with np.load(path) as npz:
        meta = json.loads(npz["meta"].tobytes().decode())
        for i, key in enumerate(meta["kept"]):
            case = _read_xz_npz(npz[f"case_{i:03d}"])
            case["stats"], case["key"] = json.loads(str(case["stats"])), key
            cases.append(case)
    return cases


def extract_weights(path: Path, out: Path) -> Path:
    with np.load(path) as npz:
        data = lzma.decompress(npz["init"].tobytes())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Training cases and starting weights packed for a GPU machine.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    pack = verbs.add_parser("pack", help="write the pack")
    pack.add_argument("--cache", type=Path, default=Path("runs/cache"))
    pack.add_argument("--split", type=Path, default=Path(__file__).with_name("split.json"))
    pack.add_argument("--init", type=Path, required=True, help="starting weights (.npz of Paddle names)")
    pack.add_argument("--out", type=Path, required=True)
    pack.add_argument("--budget-mib", type=float, help="default: 64 MiB less the working tree, less 1.5 MiB")
    weights = verbs.add_parser("weights", help="write the pack's starting weights to --out")
    weights.add_argument("pack", type=Path)
    weights.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.verb == "weights":
        print(extract_weights(args.pack, args.out))
        return 0
    keys = json.loads(args.split.read_text(encoding="utf-8"))["train"]
    budget = args.budget_mib if args.budget_mib is not None else default_budget_mib()
    print(f"budget {budget:.1f} MiB (the device takes 64 MiB with the working tree)")
    meta = build_pack(args.cache, keys, args.init, args.out, budget)
    print(f"{args.out}: {meta['mib']:.1f} MiB, {len(meta['kept'])} cases kept, {len(meta['dropped'])} dropped"
          + (f" ({', '.join(meta['dropped'])})" if meta["dropped"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
