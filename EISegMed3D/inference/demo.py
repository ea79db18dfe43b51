"""`eiseg-med3d demo`: segment vertebra L3 of the bundled spine CT with the simulated user's clicks.

The output folder becomes a small data folder: a copy of the scan, its label, the progress file and a PNG of
three orthogonal slices through the object (mask filled, reference outlined).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .errors import SaveError, VolumeError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "Resources" / "Sample"
SAMPLE_SCAN = SAMPLE_DIR / "spine_ct_L2-L4.nii.gz"
SAMPLE_REFERENCE = SAMPLE_DIR / "reference" / "spine_ct_L2-L4_label.nii.gz"
TARGET = {"name": "L3", "labelValue": 22}  # VerSe numbering, as in the reference
CLICKS = 3
_PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}  # by the RAS axis a slice's normal is closest to


def _prepare_folder(out: Path) -> Path:
    """Create the output folder and copy the sample scan into it, so the folder is a data folder of its own."""
    for path in (SAMPLE_SCAN, SAMPLE_REFERENCE):
        if not path.is_file():
            raise VolumeError(f"{path}: bundled sample missing (reinstall EISeg-Med3D)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        scan = out / SAMPLE_SCAN.name
        if not scan.exists() or scan.stat().st_size != SAMPLE_SCAN.stat().st_size:
            shutil.copyfile(SAMPLE_SCAN, scan)
    except OSError as exc:
        raise SaveError(f"{out}: cannot write the demo output ({exc.strerror or exc})") from exc
    return scan


def run_demo(out: Path, model) -> dict:
    """Run the demo; returns the written paths and the Dice after each click."""
    from .datafolder import load_label, relative_key, save_object
    from .mask_ops import dice
    from .progress import ProgressFile
    from .robot import next_click
    from .session import InteractiveSession
    from .volume import Volume

    out = Path(out)
    volume = Volume.from_file(_prepare_folder(out))
    truth = load_label(volume, SAMPLE_REFERENCE) == TARGET["labelValue"]
    print(f"model: {model.describe()}")
    print(f"scan: {volume.path} {volume.shape[::-1]} voxels (i, j, k), spacing {np.round(volume.spacing, 3).tolist()} mm")
    session = InteractiveSession(model)
    session.set_volume(volume)
    dices, seconds = [], 0.0
    for number in range(1, CLICKS + 1):
        click = next_click(truth, session.mask, volume.spacing, "mm")
        if click is None:
            break
        ijk, positive = click
        result = session.add_click(ijk=ijk, positive=positive)
        seconds += result.latency_s
        dices.append(dice(truth, result.mask))
        print(f"click {number} ({'+' if positive else '-'}) at voxel (i, j, k) {tuple(ijk)}: "
              f"{result.latency_s * 1000:.0f} ms (model {result.model_s * 1000:.0f} ms), Dice {dices[-1]:.3f}")
    label, _ = save_object(volume, session.mask, TARGET["labelValue"])  # other labels in the folder stay
    progress = ProgressFile(out)
    rel = relative_key(volume.path, out)
    progress.set_labels([dict(TARGET)])
    progress.record_scan(rel, clicks=len(dices), seconds=seconds, status="in_progress")
    progress.set_left_off(rel)
    figure = save_figure(out / f"{Path(rel).name.split('.')[0]}_{TARGET['name']}.png", volume, session.mask, truth)
    final = dices[-1] if dices else float("nan")
    print(f"Dice vs reference ({TARGET['name']}) after {len(dices)} clicks: {final:.3f}")
    for kind, path in (("label", label), ("progress", progress.path), ("figure", figure)):
        print(f"wrote {kind}: {path}")
    return {"label": label, "progress": progress.path, "figure": figure, "dice": dices}


def _centre(mask: np.ndarray, fallback: np.ndarray) -> tuple[int, int, int]:
    """(k, j, i) of the object's centre of mass (the reference's when the mask is empty)."""
    source = mask if mask.any() else fallback
    if not source.any():
        return tuple(int(n) // 2 for n in mask.shape)
    return tuple(int(round(c)) for c in np.argwhere(source).mean(axis=0))


def save_figure(path: Path, volume, mask: np.ndarray, truth: np.ndarray) -> Path:
    """Three orthogonal slices through the object: scan in grey, mask in red, reference outlined in green."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    centre = _centre(mask, truth)
    spacing_kji = volume.spacing[::-1]
    low, high = np.percentile(volume.array, [1, 99])
    figure = Figure(figsize=(12, 4.4), dpi=100)
    FigureCanvasAgg(figure)
    for panel, axis in enumerate((0, 1, 2)):  # the slice through the centre across array axis k, j, i
        take = lambda a: np.take(a, centre[axis], axis=axis)  # noqa: E731 - three arrays, same cut
        rows, cols = [a for a in range(3) if a != axis]
        ax = figure.add_subplot(1, 3, panel + 1)
        ax.imshow(take(volume.array), cmap="gray", vmin=low, vmax=high, interpolation="nearest",
                  aspect=spacing_kji[rows] / spacing_kji[cols])
        ax.imshow(np.ma.masked_equal(take(mask), 0), cmap=ListedColormap(["red"]), alpha=0.45, vmin=0, vmax=1,
                  interpolation="nearest", aspect=spacing_kji[rows] / spacing_kji[cols])
        if take(truth).any():
            ax.contour(take(truth).astype(np.uint8), levels=[0.5], colors="lime", linewidths=1.0)
        normal = int(np.argmax(np.abs(volume.direction[:, 2 - axis])))  # direction columns are i, j, k
        ax.set_title(f"{_PLANES[normal]}: {'kji'[axis]} = {centre[axis]}")
        ax.set_axis_off()
    figure.suptitle("mask (red) and reference outline (green)")
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as exc:
        raise SaveError(f"{path}: cannot save the figure ({exc.strerror or exc})") from exc
    return Path(path)
