"""Reading pictures and normalising arrays to 8-bit BGR, with errors people can act on.

``read_image(path)`` decodes with OpenCV, which applies the EXIF orientation of phone
photos. Pictures larger than ``max_side`` are decoded reduced (JPEG decodes at 1/2,
1/4 or 1/8 scale straight from the compressed data, so a 20000 x 20000 photo never
exists in memory at full size) and then resized. Formats OpenCV cannot read (GIF, ...)
are decoded by Pillow. Every failure is an ``ImageError`` that names the file and what to do.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif",
                  ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".jfif"}
MAX_SIDE = 4096           # pictures are analysed at most this large (longest side)
MAX_PIXELS = 1 << 30      # OpenCV's own decoding limit: refuse above it rather than fail obscurely


class ImageError(ValueError):
    """A picture cannot be used; the message names the file and the fix."""


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding pixels (Pillow reads headers lazily)."""
    try:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None


def _jpeg_truncated(data: bytes) -> bool:
    """A JPEG whose last end-of-image marker is missing after its last scan."""
    if not data.startswith(b"\xff\xd8"):
        return False
    last_scan = data.rfind(b"\xff\xda")
    return data.rfind(b"\xff\xd9") < last_scan


def _reduced_flag(width: int, height: int, max_side: int) -> tuple[int, int]:
    """OpenCV imread flag decoding at 1, 1/2, 1/4 or 1/8 scale, and that factor."""
    for factor, flag in ((1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4)):
        if max(width, height) / factor <= max_side * 2:
            return flag, factor
    return cv2.IMREAD_REDUCED_COLOR_8, 8


def read_image(path: str | Path, max_side: int = MAX_SIDE) -> np.ndarray:
    """An 8-bit BGR picture from a file, EXIF orientation applied, longest side at most ``max_side``."""
    return read_image_scaled(path, max_side)[0]


def read_image_scaled(path: str | Path, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """``read_image`` and the factor from its pixels to the file's (1.0 unless it was downscaled)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; pass the pictures in it or the folder to `emolens predict`")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-export the picture")
    return decode_image_scaled(data, str(path), max_side, suffix=path.suffix)


def decode_image_scaled(data: bytes, name: str = "upload", max_side: int = MAX_SIDE,
                        suffix: str = "") -> tuple[np.ndarray, float]:
    """``read_image_scaled`` for a picture already in memory (an upload): nothing touches the disk.

    ``name`` is used in error messages; ``suffix`` (``.jpg``, ...) only refines them.
    """
    path = name
    if not data:
        raise ImageError(f"{path}: empty picture (0 bytes)")
    if _jpeg_truncated(data):
        raise ImageError(f"{path}: truncated JPEG (the file ends before the picture does); "
                         "re-download or re-export it")
    size = _header_size(data)
    flag, _ = (cv2.IMREAD_COLOR, 1) if size is None else _reduced_flag(*size, max_side)
    if size is not None and size[0] * size[1] > MAX_PIXELS and flag == cv2.IMREAD_COLOR:
        raise ImageError(f"{path}: {size[0]}x{size[1]} pixels is too large to decode; downscale it first")
    buffer = np.frombuffer(data, dtype=np.uint8)
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        image = cv2.imdecode(buffer, flag)
    except cv2.error:
        image = None
    finally:
        cv2.utils.logging.setLogLevel(previous)
    if image is None:
        image = _decode_with_pillow(data)
    if image is None:
        kind = "not a picture" if suffix.lower() not in IMAGE_SUFFIXES else "not a readable picture (corrupt?)"
        raise ImageError(f"{path}: {kind}; emolens reads JPEG, PNG, BMP, TIFF, WebP and GIF files")
    image = fit_within(to_bgr8(image), max_side)
    original = max(size) if size is not None else max(image.shape[:2])
    return image, max(1.0, original / max(image.shape[:2]))


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a picture's header announces, without decoding it (None: unknown format)."""
    return _header_size(data)


def _decode_with_pillow(data: bytes) -> np.ndarray | None:
    try:
        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
    except Exception:
        return None


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Any integer, bool or float (0..1) array as uint8, keeping its shape."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a)
        top = 1.0 if a.size == 0 or a.max() <= 1.0 else 255.0
        return np.clip(a * (255.0 / top), 0, 255).round().astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported image array type {a.dtype}")


def to_bgr8(image: np.ndarray, color: str = "bgr") -> np.ndarray:
    """An array (grey 2-D, 1/3/4 channels, uint8/uint16/float; BGR or RGB order) as uint8 BGR."""
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    a = to_uint8(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageError(f"an image must be H x W (grey) or H x W x 3/4 (colour), got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if color == "rgb":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def to_grey(image: np.ndarray, color: str = "bgr") -> np.ndarray:
    """An array in any accepted layout as a 2-D uint8 grey image (no copy through BGR when grey)."""
    a = to_uint8(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return np.ascontiguousarray(a)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageError(f"an image must be H x W (grey) or H x W x 3/4 (colour), got shape {a.shape}")
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    code = {("bgr", 3): cv2.COLOR_BGR2GRAY, ("bgr", 4): cv2.COLOR_BGRA2GRAY,
            ("rgb", 3): cv2.COLOR_RGB2GRAY, ("rgb", 4): cv2.COLOR_RGBA2GRAY}[(color, a.shape[2])]
    return cv2.cvtColor(np.ascontiguousarray(a), code)
