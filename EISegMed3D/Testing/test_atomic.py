"""Saves keep the file's mode (issue 10, item 4) and clean up only their own stale temporary files (item 5)."""
from __future__ import annotations

import multiprocessing
import os
import stat
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from inference import Volume
from inference.atomic import atomic_write, backup_path
from inference.progress import PROGRESS_NAME, ProgressFile

ENGINE_DIR = str(Path(__file__).resolve().parents[1])


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _volume(folder: Path) -> Volume:
    return Volume(np.zeros((3, 4, 5), np.int16), np.diag([0.8, 0.8, 2.0, 1.0]), folder / "case.nii.gz")


# --- item 4: modes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, default", [(0o002, 0o664), (0o022, 0o644)])
def test_new_label_and_progress_files_get_the_umask_default(tmp_path, umask, default):
    volume = _volume(tmp_path)
    with _umask(umask):
        label = volume.write_label(tmp_path / "case_label.nii.gz", np.ones(volume.shape, np.uint8))
        ProgressFile(tmp_path).record_scan("case.nii.gz", clicks=1)
    assert _mode(label) == default
    assert _mode(tmp_path / PROGRESS_NAME) == default


def test_saves_keep_the_previous_files_mode(tmp_path):
    volume = _volume(tmp_path)
    label = volume.write_label(tmp_path / "case_label.nii.gz", np.ones(volume.shape, np.uint8))
    progress = ProgressFile(tmp_path)
    progress.record_scan("case.nii.gz", clicks=1)
    for path, mode in ((label, 0o664), (progress.path, 0o640)):
        os.chmod(path, mode)
    with _umask(0o077):  # the umask only decides for new files
        volume.write_label(label, np.full(volume.shape, 2, np.uint8))
        progress.record_scan("case.nii.gz", clicks=1)
    assert _mode(label) == 0o664 and _mode(backup_path(label)) == 0o664
    assert _mode(progress.path) == 0o640
    assert ProgressFile(tmp_path).read()["scans"]["case.nii.gz"]["clicks"] == 2


def _save_twice_as_nobody(folder: str, queue) -> None:
    try:
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        volume = _volume(Path(folder))
        label = volume.write_label(Path(folder) / "case_label.nii.gz", np.ones(volume.shape, np.uint8))
        volume.write_label(label, np.full(volume.shape, 2, np.uint8))  # the backup now exists ...
        for path in (label, backup_path(label)):
            os.chmod(path, 0o444)  # ... and both are read-only, as copies from a read-only share are
        volume.write_label(label, np.full(volume.shape, 3, np.uint8))
        queue.put(("ok", _mode(label)))
    except Exception as exc:  # noqa: BLE001 - the parent asserts on it
        queue.put((type(exc).__name__, str(exc)))


def test_a_read_only_backup_does_not_block_the_next_save():
    top = Path(tempfile.mkdtemp(prefix="eiseg-mode-"))  # pytest's tmp_path lies under a root-only 0700 folder
    os.chmod(top, 0o755)
    folder = top / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    try:
        _run_save_twice_as_nobody(folder)
    finally:
        shutil.rmtree(top)


def _run_save_twice_as_nobody(folder: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_save_twice_as_nobody, args=(str(folder), queue))
    child.start()
    child.join(timeout=60)
    kind, detail = queue.get(timeout=5)
    if kind == "PermissionError" and "Operation not permitted" in detail and os.geteuid() == 0:
        pytest.skip(f"cannot switch to an unprivileged user: {detail}")
    assert (kind, detail) == ("ok", 0o444)
    from inference.datafolder import load_label

    volume = _volume(folder)
    assert load_label(volume, folder / "case_label.nii.gz").max() == 3
    assert load_label(volume, backup_path(folder / "case_label.nii.gz")).max() == 2


# --- item 5: stale temporary files ------------------------------------------------------------------------------

KILLED_SAVE = """
import os, signal, sys
from pathlib import Path
from inference.atomic import atomic_write

def write(tmp):
    Path(tmp).write_bytes(b"half a label")
    os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of the save

atomic_write(Path(sys.argv[1]), write)
"""


def _killed_save(target: Path) -> None:
    env = dict(os.environ, PYTHONPATH=ENGINE_DIR)
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(target)], env=env, timeout=60)
    assert done.returncode == -9


def _hidden(folder: Path) -> set:
    return {p.name for p in folder.iterdir() if p.name.startswith(".")}


def test_a_save_killed_mid_way_leaves_a_temp_file_the_next_save_removes(tmp_path):
    from inference.atomic import _host

    target = tmp_path / "case_label.nii.gz"
    target.write_bytes(b"the user's label")
    _killed_save(target)
    leftovers = _hidden(tmp_path)
    assert len(leftovers) == 1 and next(iter(leftovers)).startswith(".case_label.nii.gz.")
    assert target.read_bytes() == b"the user's label"  # the kill lost nothing

    host, hour = _host(), 3600 + 60
    decoys = {  # name: seconds old; none may be removed
        ".case_label.nii.gz.notes": hour,  # not our pattern
        "case_label.nii.gz.tmp": hour,  # not hidden
        f".other_label.nii.gz.{host}.999999.0123abcd.tmp.nii.gz": hour,  # another target's
        f".case_label.nii.gz.{host}.{os.getpid()}.0123abcd.tmp.nii.gz": 0,  # its writer is alive (this test)
        ".case_label.nii.gz.otherhost.12345.0123abcd.tmp.nii.gz": 60,  # another machine's, recent: maybe in use
        ".case_label.nii.gz.abcd_123.tmp.nii.gz": 60,  # an older version's temp name, recent
    }
    stale = {  # name: seconds old; these are ours and dead
        ".case_label.nii.gz.otherhost.12345.89abcdef.tmp.nii.gz": hour,
        ".case_label.nii.gz.x1y2_z3w.tmp.nii.gz": hour,
    }
    for name, age in {**decoys, **stale}.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (time.time() - age, time.time() - age))
    old_dir = tmp_path / ".case_label.nii.gz.zzzz_zzz.tmp.nii.gz"  # a folder of that name is not a temp file
    old_dir.mkdir()
    os.utime(old_dir, (time.time() - hour, time.time() - hour))

    atomic_write(target, lambda tmp: tmp.write_bytes(b"new label"))
    assert target.read_bytes() == b"new label"
    assert _hidden(tmp_path) == {name for name in decoys if name.startswith(".")} | {old_dir.name}
    assert (tmp_path / "case_label.nii.gz.tmp").exists()
