"""Which model a data folder uses: the user's answer to "switch to the adapted model?", kept in its progress file.

    "model": {"package": "EISegMed3D-models/adapted-20261201-210000", "use": true, "updated": "<ISO time>"}

`package` is relative to the data folder (the folder can move); `use` false means the user declined it, so the
same package is not offered again. inference.progress validates the entry; this module reads and writes it.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from .progress import ProgressFile

MODEL_KEY = "model"
MODELS_FOLDER = "EISegMed3D-models"  # inside the data folder: adapted-<time>/ packages, .adapted-<time>/ work
STATE_NAME = "adapt_state.json"


def read_choice(data_dir) -> dict | None:
    """The folder's recorded choice, or None when the user was never asked."""
    return ProgressFile(data_dir).read().get(MODEL_KEY)


def remember_choice(data_dir, package, use: bool) -> dict:
    """Record that the user chose (use=True) or declined (use=False) `package` for this folder."""
    folder = Path(data_dir)
    rel = Path(os.path.relpath(Path(package).absolute(), folder.absolute())).as_posix()
    entry = {"package": rel, "use": bool(use), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    ProgressFile(folder).update(lambda data: data.__setitem__(MODEL_KEY, entry))
    return entry


def chosen_model(data_dir) -> Path | None:
    """The package the user chose for this folder, when it is still there (else None: the bundled model)."""
    choice = read_choice(data_dir)
    if choice and choice["use"]:
        package = Path(data_dir) / choice["package"]
        if (package / "model.json").is_file():
            return package
    return None


def stopped_runs(data_dir) -> list[Path]:
    """Work folders of adaptations that were stopped before their package was written (resumable), oldest first."""
    runs = []
    for state in sorted((Path(data_dir) / MODELS_FOLDER).glob(f".adapted-*/{STATE_NAME}")):
        try:
            if json.loads(state.read_text(encoding="utf-8")).get("status") != "done":
                runs.append(state.parent)
        except (OSError, ValueError):
            continue  # a half-written state: not resumable
    return runs
