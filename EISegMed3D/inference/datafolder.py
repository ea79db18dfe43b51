"""A data folder of scans: which files are scans, where each scan's label lives, saving and loading labels.

Rules (the original's, made exact):
  * Scan files: .nii, .nii.gz, .nrrd, .mha, .mhd (any case). Not scans: ``*_label.*`` (our labels),
    backups ``*.bak.*`` (see inference.atomic.backup_path), ``*.seg.nrrd`` (Slicer segmentations),
    hidden/temporary files (names starting with '.'), the .raw/.zraw data files of .mhd headers.
  * DICOM: a folder holding DICOM files is ONE scan (read as a series by Volume.from_file).
      - list_scans(folder): scan files in `folder` plus its direct sub-folders that hold DICOM files.
      - list_scans(folder, recursive=True): scan files at any depth plus every sub-folder that holds DICOM files.
        Hidden folders (names starting with '.') are not entered.
      - When `folder` itself holds DICOM files and no other scan is found, `folder` is returned as the only
        scan (its key is "." and its label goes next to it, outside it). Loose DICOM files in a folder that
        also holds other scans are not a scan: put each series in its own folder.
  * Label of a scan: ``<scan stem>_label.nii.gz`` next to the scan; for a DICOM folder next to the folder,
    ``<folder name>_label.nii.gz``. The stem drops only the scan suffix, so dots elsewhere are kept
    (``a.b/case.v2.nii.gz`` -> ``a.b/case.v2_label.nii.gz``).
  * Saving: save_label writes a whole label map; save_object puts one object into the existing map, changing
    only its own label value (other labels keep their voxels, also where the object overlaps them, unless
    overwrite_other_labels). Both are atomic and keep the whole previous file as the backup.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from .errors import VolumeError
from .volume import Volume

SCAN_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")  # longest first: .nii.gz before .nii
LABEL_SUFFIX = "_label.nii.gz"
GRID_TOL = 1e-4


def _scan_suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in SCAN_SUFFIXES if lower.endswith(s) and len(name) > len(s)), None)


def is_scan_file(path: str | os.PathLike) -> bool:
    """True for a file name that is a scan (not a label, backup, segmentation or temporary file)."""
    name = Path(path).name
    suffix = _scan_suffix(name)
    if suffix is None or name.startswith("."):
        return False
    stem = name[: -len(suffix)]
    lower = stem.lower()
    return not (lower.endswith("_label") or lower.endswith(".bak") or lower.endswith(".seg"))


def scan_stem(path: str | os.PathLike) -> str:
    """Name without the scan suffix (`case.v2.nii.gz` -> `case.v2`); a DICOM folder's stem is its name."""
    path = Path(path)
    suffix = _scan_suffix(path.name)
    if path.is_dir() or suffix is None:
        return path.name
    return path.name[: -len(suffix)]


def label_path(scan: str | os.PathLike) -> Path:
    """`<scan stem>_label.nii.gz` next to the scan file or DICOM folder."""
    scan = Path(scan)
    return scan.parent / (scan_stem(scan) + LABEL_SUFFIX)


def relative_key(scan: str | os.PathLike, folder: str | os.PathLike) -> str:
    """The scan's path relative to the data folder, with '/' separators: its key in the progress file."""
    return Path(os.path.relpath(Path(scan).absolute(), Path(folder).absolute())).as_posix()


def _looks_like_dicom(path: Path) -> bool:
    """Cheap pre-check before asking GDCM: a .dcm name or the 'DICM' magic after the 128-byte preamble."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_folder(folder: str | os.PathLike) -> bool:
    """True when the folder directly holds files of at least one DICOM series (GDCM finds a series ID)."""
    folder = Path(folder)
    try:
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError:
        return False
    if not any(_looks_like_dicom(p) for p in files if not is_scan_file(p)):
        return False
    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _scans_in(folder: Path) -> tuple[list[Path], list[Path]]:
    """Scan files and visible sub-folders directly in `folder`."""
    files, dirs = [], []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            dirs.append(entry)
        elif entry.is_file() and is_scan_file(entry):
            files.append(entry)
    return files, dirs


def list_scans(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Scans in a data folder, sorted by their relative key (see the module docstring for the rules)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeError(f"{folder}: not a folder")
    files, dirs = _scans_in(folder)
    scans = list(files)
    pending = list(dirs)
    seen = {folder.resolve()}  # symlinked folders must not make the walk loop
    while pending:
        sub = pending.pop()
        if sub.resolve() in seen:
            continue
        seen.add(sub.resolve())
        if is_dicom_folder(sub):
            scans.append(sub)
        if recursive:
            sub_files, sub_dirs = _scans_in(sub)
            scans.extend(sub_files)
            pending.extend(sub_dirs)
    if not scans and is_dicom_folder(folder):
        return [folder]
    return sorted(scans, key=lambda p: relative_key(p, folder))


def save_label(volume: Volume, label_kji: np.ndarray, path: str | os.PathLike | None = None) -> Path:
    """Write a whole label map on the scan's exact grid (atomic, previous version kept as backup).

    `label_kji` replaces the file, every label value in it: pass the full map (as the Slicer module does from all
    its segments). To put one object into an existing map without touching other labels, use save_object.
    Default path: label_path(scan).
    """
    return volume.write_label(_label_target(volume, path), label_kji)


def _label_target(volume: Volume, path) -> Path:
    if path is not None:
        return Path(path)
    if volume.path is None:
        raise VolumeError("volume has no file path: give the label path explicitly")
    return label_path(volume.path)


class ObjectMerge(NamedTuple):
    """The label map after putting one object in, and what happened to the other labels."""
    label: np.ndarray
    kept_voxels: int  # object voxels that kept another label's value (overwrite_other_labels=False)
    overwritten_voxels: int  # voxels of other labels the object took (overwrite_other_labels=True)


def merge_object(previous: np.ndarray | None, mask: np.ndarray, value: int,
                 overwrite_other_labels: bool = False) -> ObjectMerge:
    """Put one object (mask > 0) into a label map as `value`, replacing only that value's previous voxels.

    Voxels of other label values stay as they are; where the object overlaps them they keep their label, unless
    `overwrite_other_labels` gives them to the object. Voxels that had `value` and are outside the mask become 0.
    """
    if not 1 <= int(value) <= 65535:
        raise VolumeError(f"label value {value}: must be 1..65535")
    mask = np.asarray(mask) > 0
    if previous is None:
        previous = np.zeros(mask.shape, np.uint8)
    if previous.shape != mask.shape:
        raise VolumeError(f"object shape {mask.shape} does not match the label map {previous.shape}")
    dtype = np.uint16 if value > 255 or previous.dtype.itemsize > 1 else np.uint8
    label = previous.astype(dtype, copy=True)
    other = (label != 0) & (label != value)
    label[label == value] = 0
    overlap = mask & other
    target = mask if overwrite_other_labels else mask & ~other
    label[target] = value
    count = int(np.count_nonzero(overlap))
    return ObjectMerge(label, 0 if overwrite_other_labels else count, count if overwrite_other_labels else 0)


def save_object(volume: Volume, mask_kji: np.ndarray, value: int, path: str | os.PathLike | None = None,
                overwrite_other_labels: bool = False) -> tuple[Path, ObjectMerge]:
    """Put one object into the scan's label file (see merge_object); the backup is the whole previous map.

    The existing file is read just before writing, so the object lands in its latest version; a file on another
    grid or with bad values is refused (VolumeError naming it) and left untouched.
    """
    path = _label_target(volume, path)
    previous = load_label(volume, path) if path.exists() else None
    merged = merge_object(previous, mask_kji, value, overwrite_other_labels)
    return save_label(volume, merged.label, path), merged


def _grid_problem(scan: Volume, label: Volume) -> str | None:
    """What differs between the two grids (None when they match within GRID_TOL)."""
    if scan.shape != label.shape:
        return f"size (k,j,i) {label.shape} != scan {scan.shape}"
    checks = (("spacing", scan.spacing, label.spacing), ("origin", scan.ijk_to_ras[:3, 3], label.ijk_to_ras[:3, 3]),
              ("direction", scan.direction, label.direction))
    for name, want, got in checks:
        if not np.allclose(want, got, rtol=1e-6, atol=GRID_TOL):
            return f"{name} {np.round(got, 6).tolist()} != scan {np.round(want, 6).tolist()}"
    return None


def load_label(volume: Volume, path: str | os.PathLike | None = None) -> np.ndarray:
    """Read a label map [k, j, i] as uint8 (or uint16 for values > 255), checked to lie on the scan's grid."""
    path = Path(path) if path is not None else label_path(volume.path)
    label = Volume.from_file(path)
    problem = _grid_problem(volume, label)
    if problem:
        raise VolumeError(f"{path}: label is not on the grid of scan {volume.path or 'volume'}: {problem}")
    values = label.array
    if values.size and (values.min() < 0 or values.max() > 65535 or not np.array_equal(values, np.round(values))):
        raise VolumeError(f"{path}: label values must be whole numbers 0..65535, found {values.min()}..{values.max()}")
    dtype = np.uint8 if values.size == 0 or values.max() < 256 else np.uint16
    return values.astype(dtype, copy=False)
