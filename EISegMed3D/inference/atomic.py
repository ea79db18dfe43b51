"""Crash-safe file replacement: write beside the target, keep the previous version, then rename.

Temporary files are named ``.<target name>.<host>.<pid>.<8 hex>.tmp<suffix>`` so that a later save can tell its
own leftovers (a save killed mid-way) from anything else and remove them safely, see `remove_stale_temps`.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import stat
import time
from pathlib import Path
from typing import Callable

STALE_AFTER_S = 3600.0  # no save takes an hour: an older temp file of ours is a leftover, whoever wrote it


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


def _suffix(path: Path) -> str:
    """The suffix a temporary file keeps, so writers that choose a format by extension work."""
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


def _host() -> str:
    """This machine's name as it may appear in a file name (a shared folder can be written from several)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _temp_pattern(path: Path) -> re.Pattern:
    """Our temporary names for `path`; group 1 host, group 2 pid. Also the older mkstemp names (no host/pid)."""
    name, suffix = re.escape(path.name), re.escape(_suffix(path))
    return re.compile(rf"\.{name}\.(?:([A-Za-z0-9-]+)\.(\d+)\.[0-9a-f]{{8}}|[a-z0-9_]{{8}})\.tmp{suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists, it belongs to someone else
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files that earlier saves of `path` left behind (killed mid-way); returns what was removed.

    Only names of our own pattern for this very target are candidates, and of those only the ones whose writer
    is known to be dead (this host, pid gone) or that were last written more than STALE_AFTER_S ago.
    """
    path = Path(path)
    pattern, host, removed = _temp_pattern(path), _host(), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = time.time() - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        writer_dead = match.group(1) == host and not _pid_alive(int(match.group(2)))
        if writer_dead or age > STALE_AFTER_S:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # someone else removed it, or we may not: it does no harm where it is
    return removed


def _create_temp(path: Path) -> Path:
    """Create an empty temporary file beside `path`, mode 0666 minus the umask (as any new file would get)."""
    stem = f".{path.name}.{_host()}.{os.getpid()}"
    while True:
        tmp = path.with_name(f"{stem}.{secrets.token_hex(4)}.tmp{_suffix(path)}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


def _copy_owner_and_mode(source: os.stat_result, tmp: Path) -> None:
    """Give the new version the previous version's permissions (and group, when we may)."""
    try:
        os.chown(tmp, -1, source.st_gid)
    except OSError:
        pass  # not a member of that group: keep ours, the mode still applies
    os.chmod(tmp, stat.S_IMODE(source.st_mode))


def _keep_backup(path: Path) -> None:
    """Copy `path` to its backup name through a temporary file too: a read-only old backup is no obstacle, and a
    crash mid-copy never leaves a torn backup."""
    backup = backup_path(path)
    remove_stale_temps(backup)
    tmp = _create_temp(backup)
    try:
        shutil.copy2(path, tmp)
        os.replace(tmp, backup)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], keep_backup: bool = True) -> Path:
    """Call `write(tmp_path)` for a temporary file in the target folder, then rename it over `path`.

    The temporary name keeps the target's suffix so writers that choose a format by extension work.
    A previous file is copied to `backup_path(path)` first, so one bad save never loses the last good one.
    The new file keeps the previous file's mode (a new file gets the umask's default, like any other program's).
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise SaveError(f"{path}: cannot save, folder {folder} does not exist")
    remove_stale_temps(path)
    try:
        tmp = _create_temp(path)
    except OSError as exc:
        raise SaveError(f"{path}: cannot save, folder is not writable ({exc.strerror})") from exc
    new_mode = stat.S_IMODE(os.stat(tmp).st_mode)  # what the umask gave; writers below may recreate the file
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        try:
            previous = os.stat(path)
        except FileNotFoundError:
            os.chmod(tmp, new_mode)
        else:
            _copy_owner_and_mode(previous, tmp)
            if keep_backup:
                _keep_backup(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise SaveError(f"{path}: cannot save ({exc.strerror or exc})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Raise SaveError unless a file can be saved as `path` (tried for real: permissions alone do not tell)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise SaveError(f"{path}: cannot save, folder {path.parent} does not exist")
    try:
        _create_temp(path).unlink()
    except OSError as exc:
        raise SaveError(f"{path}: cannot save, folder {path.parent} is not writable ({exc.strerror})") from exc
