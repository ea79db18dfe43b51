"""The data folder's progress file `EISegMed3D.json`: label table, finished scans, where the user left off.

Format (the original's keys are read and kept, so the original can still open the folder):
    {"labels": [{"name": "L1", "labelValue": 6}, ...],      # original
     "finished": ["rel/path.nii.gz", ...],                  # original: the authority on "finished"
     "leftOff": "rel/path.nii.gz",                          # original
     "version": 1,                                          # ours
     "scans": {"rel/path.nii.gz": {"status": "new|in_progress|finished|skipped",
                                   "updated": "<ISO time>", "clicks": 3, "seconds": 41.5}}}   # ours
Keys this module does not know are kept on rewrite.

Safety:
  * Writes are atomic (inference.atomic.atomic_write), the previous version is kept as EISegMed3D.bak.json.
  * Every change is a read-modify-write under a file lock (EISegMed3D.json.lock), so two processes
    (e.g. Slicer and the CLI) writing at once lose no update. Reads need no lock: the file is only ever renamed
    into place whole.
  * An unparseable file is moved aside to EISegMed3D.corrupt-<time>.json and ProgressError is raised; while
    such a copy exists and no new progress file does, every read raises too, so a retry never silently starts
    from nothing. After the user has been told, `start_fresh()` (optionally from the backup) begins anew.
    A file that parses but has wrong types (e.g. "finished" not a list) is left in place and reported.
  * A file of a newer format `version` is refused and left as it is (rewriting it could drop what is new).
  * `start_fresh()` replaces a file that reads fine only when forced, so a repair never silently rolls back.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from filelock import FileLock, Timeout

from .atomic import SaveError, atomic_write, backup_path
from .datafolder import label_path, relative_key
from .errors import ProgressError

PROGRESS_NAME = "EISegMed3D.json"
LOCK_NAME = PROGRESS_NAME + ".lock"
FORMAT_VERSION = 1
STATUSES = ("new", "in_progress", "finished", "skipped")
_FRESH_HINT = "call ProgressFile.start_fresh() to begin a new progress file (from_backup=True to restore the backup)"


class ScanRow(NamedTuple):
    """One row of the CLI's `progress` table."""
    rel: str
    status: str
    clicks: int
    seconds: float
    has_label: bool


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _empty() -> dict:
    return {"version": FORMAT_VERSION, "labels": [], "finished": []}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_labels(labels, where: str) -> None:
    """A label table is a list of {"name": str, "labelValue": 1..65535}."""
    if not isinstance(labels, list):
        raise ProgressError(f"{where}: 'labels' must be a list of {{name, labelValue}}, found {type(labels).__name__}")
    for n, label in enumerate(labels):
        ok = (isinstance(label, dict) and isinstance(label.get("name"), str) and _is_int(label.get("labelValue"))
              and 1 <= label["labelValue"] <= 65535)
        if not ok:
            raise ProgressError(f"{where}: labels[{n}] must be {{\"name\": text, \"labelValue\": 1..65535}}, found {label!r}")


def _validate_scan(rel, entry, where: str) -> None:
    bad = None
    if not isinstance(entry, dict):
        bad = f"must be an object, found {type(entry).__name__}"
    elif "status" in entry and entry["status"] not in STATUSES:
        bad = f"status must be one of {', '.join(STATUSES)}, found {entry['status']!r}"
    elif "clicks" in entry and not (_is_int(entry["clicks"]) and entry["clicks"] >= 0):
        bad = f"clicks must be a whole number >= 0, found {entry['clicks']!r}"
    elif "seconds" in entry and not (_is_number(entry["seconds"]) and entry["seconds"] >= 0):
        bad = f"seconds must be a number >= 0, found {entry['seconds']!r}"
    if bad:
        raise ProgressError(f"{where}: scans[{rel!r}] {bad}")


class NewerVersionError(ProgressError):
    """The progress file was written by a newer EISeg-Med3D: reading on could drop what it added."""


class HealthyFileError(ProgressError):
    """start_fresh() was asked to replace a progress file that is fine."""


def validate(data, where: str) -> None:
    """Raise ProgressError naming `where` and the first key with a wrong type (NewerVersionError for a newer format)."""
    if not isinstance(data, dict):
        raise ProgressError(f"{where}: expected a JSON object at the top level, found {type(data).__name__}")
    version = data.get("version", FORMAT_VERSION)
    if _is_int(version) and version > FORMAT_VERSION:  # its other keys may mean something else: check nothing more
        raise NewerVersionError(f"{where}: written by a newer EISeg-Med3D (format version {version}, this one reads "
                                f"up to {FORMAT_VERSION}); update EISeg-Med3D to use this folder. The file was not "
                                "changed")
    validate_labels(data.get("labels", []), where)
    finished = data.get("finished", [])
    if not isinstance(finished, list) or not all(isinstance(f, str) for f in finished):
        raise ProgressError(f"{where}: 'finished' must be a list of relative paths, found {finished!r:.80}")
    if not isinstance(data.get("leftOff", ""), (str, type(None))):
        raise ProgressError(f"{where}: 'leftOff' must be a relative path, found {data['leftOff']!r:.80}")
    if not _is_int(data.get("version", FORMAT_VERSION)):
        raise ProgressError(f"{where}: 'version' must be a whole number, found {data['version']!r:.80}")
    choice = data.get("model")  # the adapted model the user chose or declined (inference.model_choice)
    if choice is not None and not (isinstance(choice, dict) and isinstance(choice.get("package"), str)
                                   and isinstance(choice.get("use"), bool)):
        raise ProgressError(f"{where}: 'model' must be {{\"package\": relative path, \"use\": true or false}}, "
                            f"found {choice!r:.80}")
    scans = data.get("scans", {})
    if not isinstance(scans, dict):
        raise ProgressError(f"{where}: 'scans' must be an object keyed by relative path, found {type(scans).__name__}")
    for rel, entry in scans.items():
        _validate_scan(rel, entry, where)


def scan_status(data: dict, rel: str) -> str:
    """Status of a scan; the original's `finished` list decides finished-or-not (the original may have edited it)."""
    if rel in data.get("finished", []):
        return "finished"
    status = data.get("scans", {}).get(rel, {}).get("status", "new")
    return "in_progress" if status == "finished" else status


class ProgressFile:
    """`EISegMed3D.json` of one data folder. Every change method is an atomic, locked read-modify-write."""

    def __init__(self, folder: str | os.PathLike, lock_timeout: float = 30.0):
        self.folder = Path(folder)
        self.path = self.folder / PROGRESS_NAME
        self.lock_path = self.folder / LOCK_NAME
        self.lock_timeout = lock_timeout
        self._lock, self._lock_pid = None, None

    # --- reading ------------------------------------------------------------------------------------------
    def read(self) -> dict:
        """The validated contents; an empty table when there is no file yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._empty_or_raise()
        except OSError as exc:
            raise ProgressError(f"{self.path}: cannot read ({exc.strerror or exc})") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._corrupt(f"not valid JSON ({exc})") from exc
        validate(data, str(self.path))
        return data

    def corrupt_copies(self) -> list[Path]:
        """Files moved aside because they could not be parsed, oldest first."""
        return sorted(self.folder.glob("EISegMed3D.corrupt-*.json"))

    def _empty_or_raise(self) -> dict:
        copies = self.corrupt_copies()
        if copies:
            raise ProgressError(f"{self.path}: missing, and the last progress file was corrupt "
                                f"(moved aside to {copies[-1].name}); {_FRESH_HINT}")
        return _empty()

    def _aside_name(self, kind: str) -> Path:
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        target, n = self.folder / f"EISegMed3D.{kind}-{stamp}.json", 1
        while target.exists():
            n += 1
            target = self.folder / f"EISegMed3D.{kind}-{stamp}-{n}.json"
        return target

    def _corrupt(self, problem: str) -> ProgressError:
        """Move the unparseable file aside (never delete it) and describe what happened."""
        target = self._aside_name("corrupt")
        try:
            os.replace(self.path, target)
        except FileNotFoundError:
            return ProgressError(f"{self.path}: {problem}; another program already moved it aside; {_FRESH_HINT}")
        except OSError as exc:
            return ProgressError(f"{self.path}: {problem}; left in place, could not move it aside ({exc.strerror})")
        return ProgressError(f"{self.path}: {problem}; moved aside to {target.name}, nothing was reset; {_FRESH_HINT}")

    # --- writing ------------------------------------------------------------------------------------------
    def _process_lock(self) -> FileLock:
        # filelock refuses a lock object inherited across fork: each process makes its own.
        if self._lock_pid != os.getpid():
            self._lock, self._lock_pid = FileLock(str(self.lock_path), timeout=self.lock_timeout), os.getpid()
        return self._lock

    @contextmanager
    def _locked(self):
        lock = self._process_lock()
        try:
            lock.acquire()
        except Timeout as exc:
            raise ProgressError(f"{self.path}: another program has held {self.lock_path.name} for over "
                                f"{self.lock_timeout:g} s; try again") from exc
        except OSError as exc:
            raise ProgressError(f"{self.path}: cannot save progress, folder {self.folder} is not writable "
                                f"({exc.strerror or exc})") from exc
        try:
            yield
        finally:
            lock.release()

    def _write(self, data: dict) -> None:
        data["version"] = FORMAT_VERSION  # validate() let nothing newer through
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        try:
            atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except SaveError as exc:
            raise ProgressError(f"{self.path}: cannot save progress ({exc}); the file on disk is unchanged") from exc

    def update(self, change: Callable[[dict], None]) -> dict:
        """Apply `change(data)` in place under the lock and save; returns the saved contents."""
        with self._locked():
            data = self.read()
            change(data)
            validate(data, str(self.path))
            self._write(data)
            return data

    def start_fresh(self, from_backup: bool = False, force: bool = False) -> dict:
        """Begin a new progress file after the user was told the old one is unusable.

        A present file (valid or not) is moved aside first, so nothing is ever deleted. With `from_backup`,
        the backup (EISegMed3D.bak.json, one change behind) is the starting point when it is valid.
        A file that reads fine (or one of a newer format) is only replaced with `force`: otherwise a repair
        command run out of habit would silently undo work (HealthyFileError / NewerVersionError).
        """
        with self._locked():
            if not force:
                self._refuse_usable_file()
            data = self._read_backup() if from_backup else _empty()
            if self.path.exists():
                os.replace(self.path, self._aside_name("replaced"))
            self._write(data)
            return data

    def _refuse_usable_file(self) -> None:
        try:
            self.read()
        except NewerVersionError:
            raise
        except ProgressError:
            return  # unreadable or missing after a corruption: starting over is the repair
        if self.path.exists():
            raise HealthyFileError(f"{self.path}: the progress file is fine, there is nothing to repair (starting "
                                   "over or restoring the backup would undo work); force=True replaces it anyway, "
                                   "keeping it aside as EISegMed3D.replaced-<time>.json")

    def _read_backup(self) -> dict:
        backup = backup_path(self.path)
        try:
            data = json.loads(backup.read_text(encoding="utf-8"))
            validate(data, str(backup))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ProgressError) as exc:
            raise ProgressError(f"{backup}: backup cannot be used ({exc}); call start_fresh() without it") from exc
        return data

    # --- changes ------------------------------------------------------------------------------------------
    def mark_finished(self, rel: str, finished: bool = True) -> dict:
        return self.record_scan(rel, status="finished" if finished else "in_progress")

    def set_left_off(self, rel: str) -> dict:
        return self.update(lambda data: data.__setitem__("leftOff", rel))

    def set_labels(self, labels: list[dict]) -> dict:
        validate_labels(labels, "label table")
        return self.update(lambda data: data.__setitem__("labels", [dict(label) for label in labels]))

    def record_scan(self, rel: str, clicks: int = 0, seconds: float = 0.0, status: str | None = None) -> dict:
        """Add clicks and time spent to a scan's totals; set its status when given (keeps `finished` in step)."""
        if status is not None and status not in STATUSES:
            raise ProgressError(f"{self.path}: status must be one of {', '.join(STATUSES)}, got {status!r}")

        def change(data: dict) -> None:
            entry = data.setdefault("scans", {}).setdefault(rel, {})
            entry["clicks"] = entry.get("clicks", 0) + int(clicks)
            entry["seconds"] = round(entry.get("seconds", 0.0) + float(seconds), 3)
            new_status = status or scan_status(data, rel)
            if status is None and new_status == "new" and (clicks or seconds):
                new_status = "in_progress"
            entry["status"] = new_status
            entry["updated"] = _now()
            finished = data.setdefault("finished", [])
            if new_status == "finished" and rel not in finished:
                finished.append(rel)
            elif new_status != "finished":
                finished[:] = [f for f in finished if f != rel]

        return self.update(change)

    # --- views --------------------------------------------------------------------------------------------
    def label_table(self) -> list[dict]:
        return self.read().get("labels", [])

    def _key(self, scan) -> str:
        path = Path(scan)
        return relative_key(path, self.folder) if path.is_absolute() else path.as_posix()

    def summary(self, scans: Iterable) -> tuple[int, int]:
        """(finished, total) over the given scans (paths or relative keys)."""
        keys = [self._key(s) for s in scans]
        finished = set(self.read().get("finished", []))
        return sum(k in finished for k in keys), len(keys)

    def table(self, scans: Iterable) -> list[ScanRow]:
        """One row per scan: relative path, status, clicks, seconds, whether its label file exists."""
        data = self.read()
        rows = []
        for scan in scans:
            rel = self._key(scan)
            entry = data.get("scans", {}).get(rel, {})
            rows.append(ScanRow(rel, scan_status(data, rel), entry.get("clicks", 0), entry.get("seconds", 0.0),
                                label_path(self.folder / rel).exists()))
        return rows
