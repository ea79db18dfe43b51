"""Progress file EISegMed3D.json: original format kept, corrupt files never silently reset, no lost updates
between two real processes, read-only folders reported with nothing lost."""
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # EISegMed3D/ holds the `inference` package

from inference.atomic import SaveError  # noqa: E402
from inference.datafolder import label_path, list_scans, save_label  # noqa: E402
from inference.errors import ProgressError  # noqa: E402
from inference.progress import PROGRESS_NAME, ProgressFile, ScanRow  # noqa: E402
from inference.volume import Volume  # noqa: E402

ORIGINAL = {"labels": [{"name": "L1", "labelValue": 6}, {"name": "L2", "labelValue": 7}],
            "finished": ["a.nii.gz"], "leftOff": "b.nii.gz"}


def write_json(folder, data) -> Path:
    path = Path(folder) / PROGRESS_NAME
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


# --- format -------------------------------------------------------------------------------------------------
def test_original_file_is_read_and_its_keys_and_unknown_keys_are_kept(tmp_path):
    original = dict(ORIGINAL, somethingElse={"kept": [1, 2]})
    path = write_json(tmp_path, original)
    before = path.read_bytes()
    progress = ProgressFile(tmp_path)
    assert progress.label_table() == ORIGINAL["labels"]
    progress.record_scan("b.nii.gz", clicks=3, seconds=12.5)

    saved = json.loads(path.read_text(encoding="utf-8"))
    for key in ("labels", "finished", "leftOff", "somethingElse"):
        assert saved[key] == original[key]
    assert saved["version"] == 1
    entry = saved["scans"]["b.nii.gz"]
    assert (entry["status"], entry["clicks"], entry["seconds"]) == ("in_progress", 3, 12.5)
    assert "T" in entry["updated"]
    assert (tmp_path / "EISegMed3D.bak.json").read_bytes() == before  # previous version kept


def test_changes_accumulate_and_keep_finished_in_step(tmp_path):
    progress = ProgressFile(tmp_path)
    assert progress.read()["finished"] == []  # no file yet: empty, nothing written
    assert not progress.path.exists()
    progress.record_scan("s/x.nii", clicks=2, seconds=1.0)
    progress.record_scan("s/x.nii", clicks=1, seconds=0.5)
    progress.mark_finished("s/x.nii")
    progress.mark_finished("s/x.nii")  # twice: listed once
    progress.set_left_off("s/y.nii")
    data = progress.read()
    assert data["finished"] == ["s/x.nii"] and data["leftOff"] == "s/y.nii"
    assert data["scans"]["s/x.nii"]["clicks"] == 3 and data["scans"]["s/x.nii"]["seconds"] == 1.5
    progress.mark_finished("s/x.nii", finished=False)
    data = progress.read()
    assert data["finished"] == [] and data["scans"]["s/x.nii"]["status"] == "in_progress"
    progress.record_scan("s/z.nii", status="skipped")
    assert progress.read()["scans"]["s/z.nii"]["status"] == "skipped"
    with pytest.raises(ProgressError, match="status"):
        progress.record_scan("s/z.nii", status="done")


def test_labels_are_validated_before_anything_is_written(tmp_path):
    progress = ProgressFile(tmp_path)
    progress.set_labels([{"name": "disc", "labelValue": 3}])
    before = progress.path.read_bytes()
    for bad in ([{"name": "x", "labelValue": 0}], [{"name": "x", "labelValue": "3"}], [{"labelValue": 3}], {"x": 1}):
        with pytest.raises(ProgressError, match="label"):
            progress.set_labels(bad)
    assert progress.path.read_bytes() == before
    assert progress.label_table() == [{"name": "disc", "labelValue": 3}]


def test_summary_and_table_for_the_cli(tmp_path):
    for name in ("a.nii.gz", "b.nii.gz", "sub.dir/c.v2.nii.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(tmp_path / name))
    write_json(tmp_path, ORIGINAL)
    progress = ProgressFile(tmp_path)
    progress.record_scan("sub.dir/c.v2.nii.gz", clicks=4, seconds=9.0)
    label_path(tmp_path / "sub.dir/c.v2.nii.gz").write_bytes(b"x")
    scans = list_scans(tmp_path, recursive=True)
    assert progress.summary(scans) == (1, 3)
    assert progress.table(scans) == [
        ScanRow("a.nii.gz", "finished", 0, 0.0, False),
        ScanRow("b.nii.gz", "new", 0, 0.0, False),
        ScanRow("sub.dir/c.v2.nii.gz", "in_progress", 4, 9.0, True),
    ]
    assert progress.summary(["a.nii.gz", "b.nii.gz"]) == (1, 2)  # relative keys work too


# --- corrupt and wrong files --------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["{not json", json.dumps(ORIGINAL)[:25], "", "\xff\xfe garbage"])
def test_corrupt_or_truncated_file_is_moved_aside_and_never_silently_reset(tmp_path, content):
    path = tmp_path / PROGRESS_NAME
    path.write_bytes(content.encode("latin-1"))
    progress = ProgressFile(tmp_path)
    with pytest.raises(ProgressError) as info:
        progress.read()
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message
    aside = progress.corrupt_copies()
    assert len(aside) == 1 and aside[0].name in message
    assert aside[0].read_bytes() == content.encode("latin-1")  # the bad file is kept byte for byte

    # Retrying must not quietly start from nothing, neither reading nor writing.
    with pytest.raises(ProgressError, match="corrupt"):
        progress.read()
    with pytest.raises(ProgressError, match="corrupt"):
        progress.mark_finished("a.nii.gz")
    assert not path.exists()

    assert progress.start_fresh() == {"version": 1, "labels": [], "finished": []}
    progress.mark_finished("a.nii.gz")
    assert progress.read()["finished"] == ["a.nii.gz"]
    assert aside[0].exists()


def test_start_fresh_from_backup_restores_the_previous_version(tmp_path):
    progress = ProgressFile(tmp_path)
    progress.set_labels(ORIGINAL["labels"])
    progress.mark_finished("a.nii.gz")
    progress.path.write_text('{"labels": [', encoding="utf-8")  # damaged by something outside
    with pytest.raises(ProgressError):
        progress.read()
    restored = progress.start_fresh(from_backup=True)
    assert restored["labels"] == ORIGINAL["labels"] and progress.read()["labels"] == ORIGINAL["labels"]


@pytest.mark.parametrize("data, key", [
    ([1, 2], "top level"),
    (dict(ORIGINAL, finished="a.nii.gz"), "'finished'"),
    (dict(ORIGINAL, finished=[1, 2]), "'finished'"),
    (dict(ORIGINAL, leftOff=3), "'leftOff'"),
    (dict(ORIGINAL, labels={"L1": 6}), "'labels'"),
    (dict(ORIGINAL, labels=[{"name": "L1", "labelValue": 6.5}]), "labels\\[0\\]"),
    (dict(ORIGINAL, scans=[]), "'scans'"),
    (dict(ORIGINAL, scans={"a.nii.gz": {"status": "done"}}), "status"),
    (dict(ORIGINAL, scans={"a.nii.gz": {"clicks": -1}}), "clicks"),
    (dict(ORIGINAL, version="1"), "'version'"),
])
def test_wrong_types_are_reported_by_key_and_the_file_is_left_untouched(tmp_path, data, key):
    path = write_json(tmp_path, data)
    before = path.read_bytes()
    progress = ProgressFile(tmp_path)
    for action in (progress.read, lambda: progress.mark_finished("b.nii.gz")):
        with pytest.raises(ProgressError, match=key) as info:
            action()
        assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_a_progress_file_of_a_newer_version_is_refused_and_left_unchanged(tmp_path):
    from inference.progress import NewerVersionError

    path = write_json(tmp_path, dict(ORIGINAL, version=2, scans={"a.nii.gz": {"status": "reviewed", "by": "x"}}))
    before = path.read_bytes()
    progress = ProgressFile(tmp_path)
    for action in (progress.read, lambda: progress.record_scan("b.nii.gz", clicks=1), progress.start_fresh,
                   lambda: progress.start_fresh(from_backup=True)):
        with pytest.raises(NewerVersionError, match="newer EISeg-Med3D.*format version 2.*up to 1") as info:
            action()
        assert str(path) in str(info.value)
    assert path.read_bytes() == before and not progress.corrupt_copies()
    progress.start_fresh(force=True)  # asked for explicitly: the newer file is kept aside, not lost
    assert progress.read()["finished"] == []
    assert [p.read_bytes() for p in tmp_path.glob("EISegMed3D.replaced-*.json")] == [before]


def test_start_fresh_refuses_a_healthy_file_unless_forced(tmp_path):
    from inference.progress import HealthyFileError

    progress = ProgressFile(tmp_path)
    progress.record_scan("a.nii.gz", clicks=3)
    progress.record_scan("a.nii.gz", clicks=2)  # the backup holds clicks 3
    before = progress.path.read_bytes()
    for from_backup in (True, False):
        with pytest.raises(HealthyFileError, match="nothing to repair"):
            progress.start_fresh(from_backup=from_backup)
    assert progress.path.read_bytes() == before
    assert progress.start_fresh(from_backup=True, force=True)["scans"]["a.nii.gz"]["clicks"] == 3
    assert [p.read_bytes() for p in tmp_path.glob("EISegMed3D.replaced-*.json")] == [before]


# --- two processes ------------------------------------------------------------------------------------------
def _hammer(folder: str, worker: int, count: int) -> None:
    progress = ProgressFile(folder)
    for n in range(count):
        progress.record_scan(f"w{worker}/scan{n}.nii.gz", clicks=n, seconds=0.25)
        progress.record_scan("shared.nii.gz", clicks=1, seconds=0.5)
        if n % 5 == 0:
            progress.mark_finished(f"w{worker}/scan{n}.nii.gz")


def test_two_processes_writing_at_once_lose_no_update(tmp_path):
    count = 40
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_hammer, args=(str(tmp_path), w, count)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0
    data = ProgressFile(tmp_path).read()
    for w in range(2):
        for n in range(count):
            assert data["scans"][f"w{w}/scan{n}.nii.gz"]["clicks"] == n
    assert data["scans"]["shared.nii.gz"]["clicks"] == 2 * count
    assert data["scans"]["shared.nii.gz"]["seconds"] == pytest.approx(count)
    assert len(data["finished"]) == 2 * len(range(0, count, 5))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


# --- read-only folder ---------------------------------------------------------------------------------------
def _as_unprivileged(queue, action) -> None:
    """Child process: drop root (chmod does not stop root), run `action`, report the exception it raised."""
    try:
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        action()
        queue.put(("no error", ""))
    except PermissionError as exc:  # dropping privileges itself failed
        queue.put(("cannot drop root", str(exc)))
    except Exception as exc:  # noqa: BLE001 - the parent asserts on the type and message
        queue.put((type(exc).__name__, str(exc) or traceback.format_exc()))


def run_in_read_only_folder(folder: Path, action):
    """Make `folder` read-only and run `action` as a user it is really read-only for; (error type, message)."""
    os.chmod(folder, 0o555)
    try:
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_as_unprivileged, args=(queue, action))
        child.start()
        child.join(timeout=60)
        kind, message = queue.get(timeout=5)
    finally:
        os.chmod(folder, 0o755)
    if kind == "cannot drop root":
        pytest.skip(f"running as root and cannot switch to an unprivileged user, so chmod cannot make a folder read-only: {message}")
    return kind, message


@pytest.fixture
def shared_folder():
    """A folder an unprivileged user can reach (pytest's tmp_path lies under a root-only 0700 folder)."""
    top = Path(tempfile.mkdtemp(prefix="eiseg-ro-"))
    os.chmod(top, 0o755)
    data = top / "data.v1"
    data.mkdir(mode=0o755)
    yield data
    shutil.rmtree(top)


def test_read_only_folder_progress_write_fails_clearly_and_loses_nothing(shared_folder):
    path = write_json(shared_folder, ORIGINAL)
    os.chmod(path, 0o644)
    before = path.read_bytes()
    progress = ProgressFile(shared_folder)
    kind, message = run_in_read_only_folder(shared_folder, lambda: progress.mark_finished("b.nii.gz"))
    assert kind == "ProgressError" and str(path) in message and "writable" in message, (kind, message)
    assert path.read_bytes() == before
    assert ProgressFile(shared_folder).read()["finished"] == ["a.nii.gz"]
    kind, _ = run_in_read_only_folder(shared_folder, lambda: ProgressFile(shared_folder).read())
    assert kind == "no error"  # reading a read-only folder's progress works


def test_read_only_folder_label_save_fails_clearly_and_keeps_the_old_label(shared_folder):
    scan = shared_folder / "case.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16)), str(scan))
    volume = Volume.from_file(scan)
    old = np.ones(volume.shape, np.uint8)
    target = save_label(volume, old)
    before = target.read_bytes()
    kind, message = run_in_read_only_folder(shared_folder, lambda: save_label(volume, old * 2))
    assert kind == SaveError.__name__ and str(target) in message
    assert target.read_bytes() == before
    assert not [p for p in shared_folder.iterdir() if p.name.startswith(".")]
