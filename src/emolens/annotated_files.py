"""Annotated pictures that say emolens wrote them, so a rerun may replace them and nothing else.

``predict --annotate OUT_DIR`` names its copies after the inputs (``IMG_0001.jpg``); OUT_DIR
may already hold a different picture of that name (the user's own import of the same camera
card). ``marked`` puts a note in the encoded picture (a JPEG comment, a PNG ``tEXt`` chunk:
invisible, kept by viewers, no pixels changed); ``written_by_emolens`` finds it, so a file
without it is never overwritten.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

NOTE = b"emolens annotated copy"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def marked(data: bytes) -> bytes:
    """An encoded JPEG or PNG with the note inserted (after JPEG's SOI and JFIF header; after PNG's IHDR)."""
    if data[:2] == b"\xff\xd8":
        at = 2
        if data[2:4] == b"\xff\xe0":        # JFIF's APP0 must come first
            at = 4 + struct.unpack(">H", data[4:6])[0]
        return data[:at] + b"\xff\xfe" + struct.pack(">H", len(NOTE) + 2) + NOTE + data[at:]
    if data[:8] == PNG_SIGNATURE:
        body = b"Software\x00" + NOTE
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        after_ihdr = 8 + 8 + 13 + 4          # signature, IHDR length+type, IHDR data, CRC
        return data[:after_ihdr] + chunk + data[after_ihdr:]
    raise ValueError("not a JPEG or PNG stream")


def written_by_emolens(path: str | Path) -> bool:
    """The file at ``path`` is a picture ``marked`` wrote (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError:
        return False
    return NOTE in head
