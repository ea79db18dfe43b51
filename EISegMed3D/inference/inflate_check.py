"""Stream compressed image data once through zlib, which verifies the checksums the image readers ignore.

ITK's NIfTI reader never checks the gzip CRC-32 and its MetaImage reader never checks the zlib Adler-32, so a
scan with a few flipped bytes is read as garbage voxels without complaint. zlib raises on a bad checksum.
Cost: one decompression pass (about 1 s per 200 MB of voxels), memory a few MB: the file is read in pieces
and output is produced in bounded pieces (a label map compresses 1000:1).
"""
from __future__ import annotations

import zlib

GZIP = 16 + zlib.MAX_WBITS  # gzip members (.nii.gz)
ZLIB = zlib.MAX_WBITS  # one zlib stream (MetaImage CompressedData)
_CHUNK = 1 << 20


class Damaged(Exception):
    """The compressed stream fails its own checks; the message says which ("damaged (CRC)" for a checksum)."""


def _feed(decoder, block: bytes) -> int:
    """Inflate `block` in bounded output pieces; returns the bytes produced."""
    total = 0
    while True:
        out = decoder.decompress(block, _CHUNK)
        total += len(out)
        block = decoder.unconsumed_tail
        if decoder.eof or (not block and len(out) < _CHUNK):
            return total


def _inflate(handle, wbits: int) -> tuple[int, bool]:
    decoder, total, ended = zlib.decompressobj(wbits), 0, False
    while block := handle.read(_CHUNK):
        while block:
            if ended and not block.strip(b"\0"):
                break  # zero padding after the last member
            total += _feed(decoder, block)
            ended, block = decoder.eof, b""
            if ended:  # several gzip members (bgzip, concatenation) are valid; after a zlib stream, only padding
                block, decoder = decoder.unused_data, zlib.decompressobj(wbits)
    return total, ended


def inflated_length(handle, wbits: int = GZIP) -> tuple[int, bool]:
    """(uncompressed length, whether the stream ended with its checksum) of the rest of an open binary file.

    Raises Damaged when a checksum or length does not match or the compressed data are not valid.
    """
    try:
        return _inflate(handle, wbits)
    except zlib.error as exc:
        text = str(exc)
        if "incorrect data check" in text or "incorrect length check" in text:
            raise Damaged("damaged (CRC): the decompressed data do not match the checksum stored in the file, "
                          "so some voxels are wrong") from exc
        raise Damaged(f"damaged (corrupt compressed data: {text.split(':')[-1].strip()})") from exc
