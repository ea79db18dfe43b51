"""BENCHMARKS.md is shared by several scripts: each rewrites only its own marked section."""
from __future__ import annotations

from pathlib import Path


def update_section(path: Path, section: str, start: str, end: str) -> None:
    """Replace the text from `start` to `end` (both markers inside `section`); append it if absent."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section.strip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
    path.write_text(text, encoding="utf-8")


def publish(section: str, write: bool, start: str, end: str) -> None:
    """Print a benchmark's section; with `write`, also put it in BENCHMARKS.md in place of its previous version."""
    print(section)
    if write:
        update_section(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", section, start, end)
