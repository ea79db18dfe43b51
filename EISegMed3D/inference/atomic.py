"""Crash-safe file replacement: write beside the target, keep the previous version, then rename."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


class SaveError(OSError):
    """A file could not be written; the message names the file and the reason."""


def backup_path(path: Path) -> Path:
    """Where the previous version of `path` is kept (e.g. case_label.nii.gz -> case_label.bak.nii.gz)."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".seg.nrrd", ".json", ".nrrd", ".nii", ".mha", ".mhd"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".bak" + suffix)
    return path.with_name(name + ".bak")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], keep_backup: bool = True) -> Path:
    """Call `write(tmp_path)` for a temporary file in the target folder, then rename it over `path`.

    The temporary name keeps the target's suffix so writers that choose a format by extension work.
    A previous file is copied to `backup_path(path)` first, so one bad save never loses the last good one.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise SaveError(f"{path}: cannot save, folder {folder} does not exist")
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        fd, tmp_name = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp" + suffix, dir=folder)
    except OSError as exc:
        raise SaveError(f"{path}: cannot save, folder is not writable ({exc.strerror})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if keep_backup and path.exists():
            shutil.copy2(path, backup_path(path))
        os.replace(tmp, path)
    except OSError as exc:
        raise SaveError(f"{path}: cannot save ({exc.strerror or exc})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
