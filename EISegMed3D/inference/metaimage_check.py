"""Detects damaged compressed MetaImage data (.mha, or .mhd with its .zraw), which ITK reads as garbage voxels.

ITK inflates `CompressedData = True` without checking the zlib Adler-32, so flipped bytes pass unnoticed (NRRD's
gzip reader does check). Read the text header up to `ElementDataFile`, then stream the data once through zlib.
"""
from __future__ import annotations

from pathlib import Path

from .inflate_check import ZLIB, Damaged, inflated_length

_MAX_HEADER = 64 * 1024


def _header(handle) -> tuple[dict, int] | None:
    """({key: value}, offset of the data) from a MetaImage header; None when it does not look like one."""
    fields, offset = {}, 0
    while offset < _MAX_HEADER:
        line = handle.readline(4096)
        if not line:
            return None
        offset += len(line)
        key, equals, value = line.decode("latin-1").partition("=")
        if not equals:
            return None
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            return fields, offset
    return None


def _data_file(path: Path, fields: dict, offset: int) -> tuple[Path, int] | None:
    """Where the compressed data are: (file, start); None for file lists and patterns (not checked)."""
    name = fields["elementdatafile"]
    if name.upper() == "LOCAL":
        return path, offset
    if name.upper().startswith("LIST") or "%" in name or " " in name:
        return None
    return path.parent / name, 0


def metaimage_problem(path: Path) -> str | None:
    """What is wrong with a compressed .mha / .mhd file's data (None when they inflate with a good checksum)."""
    path = Path(path)
    if path.suffix.lower() not in (".mha", ".mhd"):
        return None
    try:
        with open(path, "rb") as handle:
            header = _header(handle)
    except OSError:
        return None  # the image reader says what is wrong with the file
    if header is None or header[0].get("compresseddata", "").lower() != "true":
        return None
    where = _data_file(path, *header)
    if where is None:
        return None
    data, start = where
    named = "" if data == path else f"{data.name}: "  # a .mhd's problem lies in its data file
    try:
        with open(data, "rb") as handle:
            handle.seek(start)
            _, ended = inflated_length(handle, ZLIB)
    except FileNotFoundError:
        return None  # ITK names the missing data file
    except Damaged as exc:
        return f"{named}{exc}"
    except OSError as exc:
        return f"{named}cannot read ({exc.strerror or exc})"
    if not ended:
        return f"{named}truncated: the compressed data stop before their checksum (the file was cut short)"
    return None
