"""Training data: every label value of every case is one target; cases cached as compact arrays.

The cache keeps, per case, the scan cropped around its labels (quantised to uint8 between the engine's
normalisation clip values), the label map, spacing, and the normalisation statistics of the WHOLE scan, so
training normalises patches exactly as the engine does at a click.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MIN_OBJECT_VOXELS = 60  # smaller targets (a single slice of a rib tip) teach noise, not shape
CROP_MARGIN_MM = 48.0


def case_keys(data_root: Path) -> list[str]:
    """'folder/case_XXX' for every case listed in a dataset.json under `data_root`."""
    keys = []
    for meta_path in sorted(Path(data_root).glob("*/dataset.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        keys += [f"{meta_path.parent.name}/{c['case']}" for c in meta["cases"]]
    return keys


def case_record(data_root: Path, key: str) -> dict:
    folder, case = key.split("/")
    meta = json.loads((Path(data_root) / folder / "dataset.json").read_text(encoding="utf-8"))
    record = next(c for c in meta["cases"] if c["case"] == case)
    return {**record, "image": str(Path(data_root) / folder / record["image"]),
            "label": str(Path(data_root) / folder / record["label"])}


def build_case(data_root: Path, key: str, manifest: dict) -> dict:
    """Read one case with the engine and return its cache entry."""
    from inference.normalize import intensity_stats
    from inference.volume import Volume

    record = case_record(data_root, key)
    image = Volume.from_file(record["image"])
    label = Volume.from_file(record["label"]).array
    stats = intensity_stats(image.array, manifest["normalization"], record["image"])
    spacing_kji = image.spacing[::-1]
    values = [int(v) for v, n in record["label_voxels"].items() if n >= MIN_OBJECT_VOXELS]
    box = _crop_box(label > 0, spacing_kji)
    crop = np.clip(np.nan_to_num(image.array[box].astype(np.float32), nan=stats["lo"]), stats["lo"], stats["hi"])
    quantised = np.round((crop - stats["lo"]) / max(stats["hi"] - stats["lo"], 1e-6) * 255).astype(np.uint8)
    return {"key": key, "image_u8": quantised, "label": label[box].astype(np.uint16 if label.max() > 255 else np.uint8),
            "spacing_kji": spacing_kji, "stats": json.dumps(stats), "values": np.array(values, dtype=np.int32)}


def _crop_box(foreground: np.ndarray, spacing_kji) -> tuple:
    index = np.argwhere(foreground)
    margin = np.ceil(CROP_MARGIN_MM / np.asarray(spacing_kji)).astype(int)
    lo = np.maximum(index.min(axis=0) - margin, 0)
    hi = np.minimum(index.max(axis=0) + margin + 1, foreground.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def load_cache(cache_dir: Path, keys: list[str]) -> list[dict]:
    cases = []
    for key in keys:
        with np.load(Path(cache_dir) / (key.replace("/", "__") + ".npz")) as npz:
            entry = {name: npz[name] for name in npz.files}
        stats = json.loads(str(entry["stats"]))
        # Dequantise back to raw intensities; the sampler then normalises like the engine does.
        entry["image"] = (stats["lo"] + entry.pop("image_u8").astype(np.float32) * ((stats["hi"] - stats["lo"]) / 255)).astype(np.float32)
        entry["stats"] = stats
        entry["key"] = key
        cases.append(entry)
    return cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Cache the cases of a split for training (reads ../shared/data).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", type=Path, default=Path(__file__).with_name("split.json"))
    parser.add_argument("--manifest", type=Path, default=Path(__file__).with_name("configs") / "manifest_base.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
    split = json.loads(args.split.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    for key in split["train"] + split["val"]:
        target = args.out / (key.replace("/", "__") + ".npz")
        if not target.exists():
            np.savez_compressed(target, **build_case(args.data, key, manifest))
            print(f"cached {key} -> {target.name} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
