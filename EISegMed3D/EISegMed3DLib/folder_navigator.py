"""Which scan of a data folder is open, which comes next (optionally skipping finished ones), and progress."""
from __future__ import annotations

from pathlib import Path

from inference.datafolder import label_path, list_scans, relative_key
from inference.errors import VolumeError
from inference.progress import ProgressFile


class FolderNavigator:
    def __init__(self, folder, recursive: bool = False):
        self.folder = Path(folder)
        self.scans = list_scans(self.folder, recursive=recursive)
        if not self.scans:
            raise VolumeError(f"{self.folder}: no scans found (.nii, .nii.gz, .nrrd, .mha, .mhd or DICOM folders)")
        self.keys = [relative_key(s, self.folder) for s in self.scans]
        self.progress = ProgressFile(self.folder)
        self.index = None

    def finished(self) -> set:
        return set(self.progress.read().get("finished", []))

    def is_finished(self, index: int) -> bool:
        return self.keys[index] in self.finished()

    def start_index(self, skip_finished: bool = True) -> int:
        """Where the user left off; else the first unfinished scan (the first scan when all are finished)."""
        left_off = self.progress.read().get("leftOff")
        if left_off in self.keys:
            return self.keys.index(left_off)
        done = self.finished() if skip_finished else set()
        return next((n for n, key in enumerate(self.keys) if key not in done), 0)

    def neighbour(self, step: int, skip_finished: bool) -> int | None:
        """Index of the next (step=+1) or previous (step=-1) scan, or None at the end of the list."""
        done = self.finished() if skip_finished else set()
        index = (self.index if self.index is not None else -1 if step > 0 else len(self.keys)) + step
        while 0 <= index < len(self.keys):
            if self.keys[index] not in done:
                return index
            index += step
        return None

    def key(self, index: int | None = None) -> str:
        return self.keys[self.index if index is None else index]

    def scan(self, index: int | None = None) -> Path:
        return self.scans[self.index if index is None else index]

    def label(self, index: int | None = None) -> Path:
        return label_path(self.scan(index))

    def summary(self) -> tuple:
        """(finished, total)."""
        return self.progress.summary(self.keys)

    def rows(self) -> list:
        return self.progress.table(self.keys)
