"""Detects truncated NIfTI files, which ITK reads without complaint (the missing voxels come back as zeros).

NRRD and MetaImage readers already fail on short data; the NIfTI reader does not, so a half-copied scan
would be segmented as if it were whole. The header says how many bytes the file must hold; check that.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

_CHUNK = 1 << 20


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


def _gzip_length(path: Path, expected: int) -> int:
    """Uncompressed length of a gzip file; the 4-byte size trailer answers at once when it matches."""
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        if struct.unpack("<I", handle.read(4))[0] == expected % (1 << 32):
            return expected
        handle.seek(0)
        total, decoder = 0, zlib.decompressobj(16 + zlib.MAX_WBITS)
        while block := handle.read(_CHUNK):
            while block:
                total += len(decoder.decompress(block))
                block = b""
                if decoder.eof:  # a multi-member gzip file (bgzip, concatenation): go on with the next member
                    block, decoder = decoder.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
        return total


def nifti_problem(path: Path) -> str | None:
    """A description of what is wrong when a .nii / .nii.gz file holds less data than its header promises."""
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
        actual = _gzip_length(path, expected) if name.endswith(".gz") else path.stat().st_size
    except (OSError, EOFError, zlib.error) as exc:
        return f"truncated or corrupt compressed data ({exc})"
    if actual < expected:
        return f"truncated: header and voxels need {expected} bytes, the file holds {actual}"
    return None
