"""Detects truncated or damaged NIfTI files, which ITK reads without complaint.

ITK's NIfTI reader returns zeros for missing voxels and never checks the gzip CRC, so a half-copied scan, or
one with a few flipped bytes (30 % garbage voxels), would be segmented as if it were whole. NRRD and
MetaImage readers already fail on short data. The header says how many bytes the file must hold; check that,
and stream a .nii.gz once through zlib (inference.inflate_check), which verifies each member's CRC-32 and length
(the size trailer alone proves nothing).
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from .inflate_check import GZIP, Damaged, inflated_length


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _expected_bytes(header: bytes) -> int | None:
    """vox_offset + data size from a NIfTI-1 or NIfTI-2 header (either byte order); None if not NIfTI."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack_from(order + "i", header, 0)[0] == 348:
            dims = struct.unpack_from(order + "8h", header, 40)
            bitpix = struct.unpack_from(order + "h", header, 72)[0]
            offset = int(struct.unpack_from(order + "f", header, 108)[0])
            break
        if len(header) >= 540 and struct.unpack_from(order + "i", header, 0)[0] == 540:
            bitpix = struct.unpack_from(order + "h", header, 14)[0]
            dims = struct.unpack_from(order + "8q", header, 16)
            offset = struct.unpack_from(order + "q", header, 168)[0]
            break
    else:
        return None
    count = 1
    for n in dims[1:1 + max(0, min(int(dims[0]), 7))]:
        count *= max(int(n), 1)
    return max(offset, 348) + count * max(int(bitpix), 8) // 8


def _gzip_length(path: Path) -> tuple[int, bool]:
    """(uncompressed length, ended with its trailer) of a .gz file, streamed once; Damaged on a bad stream."""
    with open(path, "rb") as handle:
        return inflated_length(handle, GZIP)


def nifti_problem(path: Path) -> str | None:
    """What is wrong with a .nii / .nii.gz file: less data than its header promises, or a .gz that fails its CRC."""
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return None
    try:
        with _open(path) as handle:
            expected = _expected_bytes(handle.read(540))
    except (OSError, EOFError, zlib.error):
        return None  # no readable header: the image reader reports what the file is
    if expected is None:
        return None
    try:
        actual, ended = _gzip_length(path) if name.endswith(".gz") else (path.stat().st_size, True)
    except Damaged as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if actual < expected:
        return f"truncated: header and voxels need {expected} bytes, the file holds {actual}"
    if not ended:
        return "truncated: the compressed data stop before their checksum (the file was cut short)"
    return None
