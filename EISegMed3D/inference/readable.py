"""Nested JSON values (a model manifest's training and validation records) as short, aligned, wrapped lines.

    training        total_steps 1199, total_examples 19184
      data          ../shared/data, training split of ...
      runs          2 entries
        1           config training/configs/gpu.json, steps 695, batch 16, ...

A dict's plain values go on its key's line as "key value, key value"; nested dicts and lists of dicts get one
indented line each; long text wraps under its value column.
"""
from __future__ import annotations

import textwrap

WIDTH = 110
INDENT = "  "
_KEEP = "\u00a0"  # joins a key to its value: textwrap breaks only at ASCII whitespace


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return "-" if value is None else str(value)


def _is_plain(value) -> bool:
    return not isinstance(value, (dict, list)) or (isinstance(value, list) and not any(
        isinstance(v, (dict, list)) for v in value))


def _inline(value) -> bool:
    """Goes on its parent's line: a number, a flag, a short text or a short list of such."""
    return _is_plain(value) and len(_plain(value)) <= 40


def _entries(key: str, value, depth: int) -> list[tuple[str, str]]:
    """(indented key, value text) pairs for one key, its nested parts on lines of their own."""
    head = INDENT * depth + key
    if _is_plain(value):
        return [(head, _plain(value))]
    if isinstance(value, list):
        rows = [(head, f"{len(value)} entries")]
        for number, item in enumerate(value, start=1):
            rows += _entries(str(number), item, depth + 1)
        return rows
    rows = [(head, ", ".join(f"{k}{_KEEP}{_plain(v)}" for k, v in value.items() if _inline(v)))]
    for k, v in value.items():
        if not _inline(v):
            rows += _entries(k, v, depth + 1)
    return rows


def readable_lines(items: list[tuple[str, object]], width: int = WIDTH, column: int = 18) -> list[str]:
    """Aligned "key  value" lines for (key, value) pairs whose values may be nested dicts and lists.

    Values start at `column` (after a longer key: two spaces after it) and wrap back to `column`.
    """
    lines = []
    for key, text in (row for key, value in items for row in _entries(key, value, 0)):
        first = key.ljust(column) if len(key) + 2 <= column else key + "  "
        wrapped = textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=" " * column,
                                break_on_hyphens=False)
        lines += [line.rstrip().replace(_KEEP, " ") for line in wrapped] or [key]
    return lines
