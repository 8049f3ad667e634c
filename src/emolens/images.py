"""Reading pictures and normalising arrays to 8-bit BGR, with errors people can act on.

Every picture, from a file (``read_image``) or from memory (``decode_image_scaled``: an
upload, a stream frame), goes the same way:

1. Its header is read by Pillow, which knows each format's header, without decoding a
   pixel: the format and the size. A file Pillow cannot identify is refused (OpenCV also
   reads Radiance HDR, PAM and OpenEXR, but their size cannot be checked before decoding,
   so emolens does not read them), and so are PostScript (Pillow would run Ghostscript)
   and WMF.
2. **One pixel limit**, ``MAX_PIXELS`` (50 M), for every decode path and every caller
   (``emolens predict``, ``Recognizer.analyze``, ``emolens serve``): a picture whose
   decoding would hold more pixels is refused with ``PictureTooLarge``, which names the
   file, its size and the limit, before any pixel is decoded. JPEGs larger than
   ``max_side`` decode reduced (at 1/2, 1/4 or 1/8 straight from the compressed data,
   so a 20000 x 20000 photo holds 2500 x 2500 pixels and passes); every other format
   (PNG, GIF, TIFF, ...) decodes at full size, so its full size counts (measured: OpenCV's
   reduced modes decode a PNG at full size, then shrink it).
3. OpenCV decodes JPEG, PNG, BMP, TIFF, WebP, PNM, JPEG 2000 and AVIF (applying the EXIF
   orientation of phone photos); Pillow decodes the other formats it knows (GIF, ...) and
   what OpenCV fails on. The result is 8-bit BGR with the longest side at most ``max_side``.

Files are opened without following them into devices: a FIFO, ``/dev/zero`` or a socket
is refused before anything is read. Every failure is an ``ImageError`` that names the file
and what to do.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif",
                  ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".jfif"}
MAX_SIDE = 4096             # pictures are analysed at most this large (longest side)
MAX_PIXELS = 50_000_000     # the one decode limit: pixels a picture may hold once decoded (CLI, API, server)

# Pillow's format names that OpenCV decodes, with the same magic bytes (so both read the same header).
OPENCV_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "TIFF", "WEBP", "PPM", "JPEG2000", "AVIF"}
# decoded at 1/2, 1/4, 1/8 from the compressed data (others: at full size, then shrunk); MPO: a camera JPEG
REDUCIBLE_FORMATS = {"JPEG", "MPO"}
REFUSED_FORMATS = {"EPS": "PostScript: Pillow would run Ghostscript on it", "WMF": "a Windows metafile"}
# Formats OpenCV reads whose header Pillow cannot: named in the error instead of "not a picture".
UNCHECKED_MAGIC = {b"#?RADIANCE": "Radiance HDR", b"#?RGBE": "Radiance HDR", b"v/1\x01": "OpenEXR", b"P7": "PAM"}
FIX_FORMAT = "convert it to PNG or JPEG"
READABLE = "emolens reads JPEG, PNG, BMP, TIFF, WebP and GIF files"


class ImageError(ValueError):
    """A picture cannot be used; the message names the file and the fix."""


class PictureTooLarge(ImageError):
    """A picture holds more pixels than emolens decodes (``MAX_PIXELS``); HTTP 413 on the server."""


def _open_header(data: bytes, name: str, max_pixels: int = MAX_PIXELS):
    """The picture opened lazily by Pillow (format and size known, no pixel decoded), or None.

    Each plugin is tried the way ``PIL.Image.open`` does, but without its decompression-bomb
    check, which would refuse a 20000 x 20000 JPEG that decodes reduced: the caller applies
    ``MAX_PIXELS`` to what will actually be decoded. Nothing global is changed.
    """
    from PIL import Image

    Image.init()
    prefix = data[:16]
    fp = io.BytesIO(data)
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        try:
            ok = accept(prefix) if accept else True
            if not ok or isinstance(ok, str):
                continue
            fp.seek(0)
            return factory(fp, None)
        except Image.DecompressionBombError as exc:   # raised while opening (a GIF frame past its screen)
            found = re.search(r"\((\d+) pixels\)", str(exc))
            pixels = f"{_pixels(int(found.group(1)))} pixels" if found else "too many pixels"
            raise PictureTooLarge(f"{name}: a {fmt} frame of {pixels} is more than emolens decodes "
                                  f"({_pixels(max_pixels)} pixels); downscale it first") from None
        except Exception:  # noqa: BLE001 - a hostile header can make any plugin raise anything
            continue
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a picture's header announces, without decoding it (None: not a format emolens reads)."""
    try:
        im = _open_header(data, "picture")
    except ImageError:
        return None
    return None if im is None else tuple(im.size)


def _jpeg_truncated(data: bytes) -> bool:
    """A JPEG whose last end-of-image marker is missing after its last scan."""
    if not data.startswith(b"\xff\xd8"):
        return False
    last_scan = data.rfind(b"\xff\xda")
    return data.rfind(b"\xff\xd9") < last_scan


def _reduction(width: int, height: int, max_side: int) -> int:
    """1, 2, 4 or 8: the smallest factor bringing the longest side to at most ``2 * max_side``."""
    for factor in (1, 2, 4):
        if max(width, height) / factor <= max_side * 2:
            return factor
    return 8


REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}


def read_image(path: str | Path, max_side: int = MAX_SIDE) -> np.ndarray:
    """An 8-bit BGR picture from a file, EXIF orientation applied, longest side at most ``max_side``."""
    return read_image_scaled(path, max_side)[0]


def read_file(path: str | Path) -> bytes:
    """A regular file's bytes. Folders, FIFOs, devices (``/dev/zero``) and sockets are refused before
    any byte is read (a FIFO is opened without waiting for a writer, and checked once open)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found; check the path") from None
    except ValueError:   # a NUL byte in the name
        raise ImageError(f"{path!r}: not a valid file name") from None
    except OSError as exc:
        try:
            _refuse_non_file(path, os.stat(path).st_mode)   # a socket cannot even be opened
        except OSError:
            pass
        raise ImageError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        _refuse_non_file(path, os.fstat(fd).st_mode)
    except ImageError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read()
        except OSError as exc:
            raise ImageError(f"{path}: cannot be read ({exc.strerror}); check the file") from None


def _refuse_non_file(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise ImageError(f"{path}: is a folder; pass the pictures in it or the folder to `emolens predict`")
    kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    raise ImageError(f"{path}: is {kind}, not a file; save the picture to a file and pass that")


def read_image_scaled(path: str | Path, max_side: int = MAX_SIDE,
                      max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """``read_image`` and the factor from its pixels to the file's (1.0 unless it was downscaled)."""
    path = Path(path)
    data = read_file(path)
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-export the picture")
    return decode_image_scaled(data, str(path), max_side, suffix=path.suffix, max_pixels=max_pixels)


def decode_image_scaled(data: bytes, name: str = "upload", max_side: int = MAX_SIDE,
                        suffix: str = "", max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """``read_image_scaled`` for a picture already in memory (an upload): nothing touches the disk.

    ``name`` is used in error messages; ``suffix`` (``.jpg``, ...) only refines them.
    Raises ``PictureTooLarge`` (over ``max_pixels`` once decoded) or ``ImageError``, never another error.
    """
    path = name
    if not data:
        raise ImageError(f"{path}: empty picture (0 bytes)")
    if _jpeg_truncated(data):
        raise ImageError(f"{path}: truncated JPEG (the file ends before the picture does); "
                         "re-download or re-export it")
    im = _open_header(data, path, max_pixels)
    if im is None:
        unchecked = next((kind for magic, kind in UNCHECKED_MAGIC.items() if data.startswith(magic)), None)
        if unchecked:
            raise ImageError(f"{path}: {unchecked} pictures are not read by emolens (their size cannot be "
                             f"checked before decoding); {FIX_FORMAT}")
        kind = "not a picture" if suffix.lower() not in IMAGE_SUFFIXES else "not a readable picture (corrupt?)"
        raise ImageError(f"{path}: {kind}; {READABLE}")
    fmt, (width, height) = im.format, im.size
    if fmt in REFUSED_FORMATS:
        raise ImageError(f"{path}: {fmt} ({REFUSED_FORMATS[fmt]}) is not read by emolens; {FIX_FORMAT}")
    if width < 1 or height < 1:
        raise ImageError(f"{path}: the header announces {width} x {height} pixels; re-export the picture")
    factor = _reduction(width, height, max_side)
    native = factor if fmt in REDUCIBLE_FORMATS else 1
    decoded = math.ceil(width / native) * math.ceil(height / native)
    if decoded > max_pixels:
        raise PictureTooLarge(too_many_pixels(path, fmt, width, height, native, max_pixels))
    image = _decode_with_opencv(data, factor) if fmt in OPENCV_FORMATS else None
    if image is None:
        image = _decode_with_pillow(im, native)
    if image is None:
        raise ImageError(f"{path}: not a readable picture (corrupt?); {READABLE}")
    if image.shape[0] * image.shape[1] > max_pixels:   # a header that lied about the size
        raise PictureTooLarge(too_many_pixels(path, fmt, image.shape[1], image.shape[0], 1, max_pixels))
    try:
        image = fit_within(to_bgr8(image), max_side)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None
    original = max(width, height)
    return image, max(1.0, original / max(image.shape[:2]))


def too_many_pixels(name: str, fmt: str, width: int, height: int, factor: int, limit: int) -> str:
    """The one-line refusal: the picture, its size, the limit and the fix."""
    size = f"{width} x {height} pixels"
    if factor > 1:
        size += f" ({math.ceil(width / factor)} x {math.ceil(height / factor)} decoded at 1/{factor})"
    how = "" if fmt in REDUCIBLE_FORMATS else f"; {fmt} decodes at full size"
    return (f"{name}: {size} is more than emolens decodes ({_pixels(limit)} pixels{how}); "
            "downscale it first, e.g. to 4096 pixels on the longer side")


def _pixels(n: int) -> str:
    return f"{n / 1e6:.4g} M" if n >= 1_000_000 else str(n)


def _decode_with_opencv(data: bytes, factor: int) -> np.ndarray | None:
    buffer = np.frombuffer(data, dtype=np.uint8)
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(buffer, REDUCED_FLAGS[factor])
    except cv2.error:
        return None
    finally:
        cv2.utils.logging.setLogLevel(previous)


def _decode_with_pillow(im, factor: int) -> np.ndarray | None:
    """The first frame of a lazily opened Pillow picture as BGR (JPEG: decoded reduced by ``factor``).

    The caller checks the result's size too: a plugin may grow a picture while loading it
    (an icon whose embedded PNG is larger than its directory says), within Pillow's own limit.
    """
    try:
        from PIL import ImageOps

        if factor > 1 and im.format in REDUCIBLE_FORMATS:
            im.draft("RGB", (math.ceil(im.size[0] / factor), math.ceil(im.size[1] / factor)))
        im = ImageOps.exif_transpose(im).convert("RGB")
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
    except Exception:  # noqa: BLE001 - Pillow raises many error types for corrupt data
        return None


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Any integer, bool or float (0..1) array as uint8, keeping its shape (NaN: 0).

    ``None`` (what ``cv2.imread`` returns for an unreadable file), ragged lists and arrays
    without a pixel (0 x 0, 0 x N) raise ``ImageError``.
    """
    if image is None:
        raise ImageError("the image is None (cv2.imread returns None for a file it cannot read); "
                         "pass a picture's path or a numpy array")
    try:
        a = np.asarray(image)
    except (ValueError, TypeError) as exc:
        raise ImageError(f"not an image array ({exc})") from None
    if a.size == 0:
        raise ImageError(f"an empty image (shape {a.shape}): no pixel to analyse; check where the array comes from")
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
