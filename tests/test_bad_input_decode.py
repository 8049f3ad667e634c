"""Hostile and careless input to the decoders, the detector and the Python API (issue 25, items 4, 5, 10, 12).

Every bomb is built here in a few bytes: a 29-byte GIF announcing a 65535 x 65535 screen,
a 194 KB 1-bit 40000 x 40000 PNG, a Radiance HDR file announcing 12000 x 12000, pictures of
10000 x 20 and 2000 x 9 pixels. Decoding runs under an address-space cap (``memory_cap``)
so that a regression fails the test with an allocation error instead of swapping the machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from emolens import options
from emolens.images import MAX_PIXELS, ImageError, PictureTooLarge, decode_image_scaled, read_image_scaled

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "astronaut.jpg"
MB = 1 << 20


# -- fixtures made here -----------------------------------------------------------------------


def png_bytes(width: int, height: int, depth: int = 8, rows: int | None = None) -> bytes:
    """A grey PNG of zero pixels, compressed row by row (``rows``: how many rows the data holds)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + bytes((width * depth + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height if rows is None else rows)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def gif_bytes(screen: tuple[int, int], frame: tuple[int, int]) -> bytes:
    """A one-frame GIF: logical screen and frame sizes as given, 2x2 worth of LZW data."""
    return (b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0) + b"," + struct.pack("<HHHHB", 0, 0, *frame, 0)
            + b"\x02\x02\x44\x01\x00;")


def hdr_bytes(width: int, height: int) -> bytes:
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {height} +X {width}\n".encode() + b"\x80" * 64


def encoded(ext: str, shape=(24, 32, 3)) -> bytes:
    rng = np.random.default_rng(1)
    return cv2.imencode(ext, rng.integers(0, 255, shape, dtype=np.uint8))[1].tobytes()


def gif_small() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("P", (32, 24), 3).save(buf, "GIF")
    return buf.getvalue()


@contextlib.contextmanager
def memory_cap(extra: int = 1536 * MB):
    """At most ``extra`` more bytes of address space while inside: a runaway allocation fails instead of
    swapping the machine (and a regression shows as cv2.error / MemoryError, not an OOM kill)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = int(re.search(r"VmSize:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
    cap = size + extra if hard == resource.RLIM_INFINITY else min(hard, size + extra)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def peak_rss_growth_mb(fn) -> float:
    """Peak resident memory ``fn()`` adds, in MB (Linux: the high-water mark is reset first)."""
    status = Path("/proc/self/status")
    Path("/proc/self/clear_refs").write_text("5")          # VmHWM := VmRSS
    before = int(re.search(r"VmRSS:\s+(\d+)", status.read_text()).group(1))
    fn()
    return (int(re.search(r"VmHWM:\s+(\d+)", status.read_text()).group(1)) - before) / 1024


@pytest.fixture(scope="module")
def png_40k() -> bytes:
    data = png_bytes(40000, 40000, depth=1)                # the red team's 194 KB picture, rebuilt
    assert 150_000 < len(data) < 250_000
    return data


# -- item 5: decompression bombs, one limit, formats whose size cannot be read -----------------


@pytest.mark.parametrize("name, make, size", [
    ("screen.gif", lambda: gif_bytes((65535, 65535), (1, 1)), "65535 x 65535"),
    ("frame.gif", lambda: gif_bytes((10, 10), (65535, 65535)), "GIF frame"),    # a frame past its screen
    ("mid.gif", lambda: gif_bytes((9000, 9000), (1, 1)), "9000 x 9000"),
    ("deep.png", lambda: png_bytes(9000, 9000, rows=1), "9000 x 9000"),
])
def test_bombs_are_refused_before_decoding(name, make, size):
    data = make()
    with memory_cap():
        growth = peak_rss_growth_mb(lambda: pytest.raises(PictureTooLarge, decode_image_scaled, data, name))
        with pytest.raises(PictureTooLarge) as info:
            decode_image_scaled(data, name)
    message = str(info.value)
    assert message.startswith(f"{name}: ") and size in message
    assert "50 M pixels" in message and "downscale it first" in message
    assert growth < 20, f"{growth:.0f} MB"


def test_194_kb_png_of_40000_squared_pixels(png_40k, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_40k)
    with memory_cap():
        with pytest.raises(PictureTooLarge, match=r"bomb\.png: 40000 x 40000 pixels is more than emolens "
                                                  r"decodes \(50 M pixels; PNG decodes at full size\)"):
            read_image_scaled(path)


def test_one_limit_for_the_cli_and_the_api(png_40k, tmp_path):
    from emolens.cli import app

    path = tmp_path / "bomb.png"
    path.write_bytes(png_40k)
    with memory_cap():
        result = CliRunner().invoke(app, ["predict", str(path), "--json"])
    assert result.exit_code == 1
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["faces"] == [] and "40000 x 40000 pixels is more than emolens decodes" in line["error"]


def test_pixel_limit_counts_what_is_decoded():
    """A JPEG decodes at 1/8 (its pixels after that count); a PNG decodes at full size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (9000, 7000), 128).save(buf, "JPEG", quality=30)  # 63 M pixels, 9 M at 1/2 ... fine
    image, factor = decode_image_scaled(buf.getvalue(), "big.jpg")
    assert max(image.shape[:2]) == 4096 and factor == pytest.approx(9000 / 4096)
    with pytest.raises(PictureTooLarge, match=r"2000 x 2000 pixels is more than emolens decodes \(1 M pixels"):
        decode_image_scaled(png_bytes(2000, 2000), "small-limit.png", max_pixels=1_000_000)
    assert decode_image_scaled(png_bytes(1000, 1000), "ok.png", max_pixels=1_000_000)[0].shape == (1000, 1000, 3)
    assert MAX_PIXELS == 50_000_000


@pytest.mark.parametrize("data, kind", [(hdr_bytes(12000, 12000), "Radiance HDR"),
                                        (b"P7\nWIDTH 12000\nHEIGHT 12000\nDEPTH 3\nMAXVAL 255\nENDHDR\n", "PAM")])
def test_formats_whose_size_cannot_be_checked_are_refused(data, kind):
    with memory_cap():
        with pytest.raises(ImageError, match=f"x.hdr: {kind} pictures are not read by emolens .* convert it"):
            decode_image_scaled(data, "x.hdr")


def test_postscript_is_never_handed_to_ghostscript():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(ImageError, match=r"EPS \(PostScript.*\) is not read by emolens"):
        decode_image_scaled(eps, "x.eps")


@pytest.mark.timeout(20)
def test_fifos_devices_and_sockets_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)                                   # no writer: opening it the usual way would hang
    with pytest.raises(ImageError, match=r"pipe\.jpg: is a FIFO \(named pipe\), not a file"):
        read_image_scaled(fifo)
    with pytest.raises(ImageError, match=r"/dev/zero: is a device, not a file"):
        read_image_scaled("/dev/zero")
    link = tmp_path / "zero.png"
    link.symlink_to("/dev/zero")
    with pytest.raises(ImageError, match=r"zero\.png: is a device"):
        read_image_scaled(link)
    sock_path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(ImageError, match=r"s\.png: is a socket"):
            read_image_scaled(sock_path)


@pytest.mark.timeout(60)
def test_cli_refuses_dev_zero_and_a_fifo(tmp_path):
    from emolens.cli import app

    fifo = tmp_path / "cam.png"
    os.mkfifo(fifo)
    result = CliRunner().invoke(app, ["predict", "/dev/zero", str(fifo), "--json"])
    assert result.exit_code == 1
    errors = [json.loads(line)["error"] for line in result.stdout.strip().splitlines()]
    assert any("is a device" in e for e in errors) and any("is a FIFO" in e for e in errors)


# -- item 5: property test of the decoders -----------------------------------------------------

SEEDS = {"png": encoded(".png"), "jpeg": encoded(".jpg"), "gif": gif_small(), "bmp": encoded(".bmp")}
SIZE_FIELDS = {"png": [(16, ">I"), (20, ">I")], "gif": [(6, "<H"), (8, "<H")], "bmp": [(18, "<i"), (22, "<i")]}
LIMIT = 1 << 20      # 1 M pixels for the property test: a decode may hold at most this many


def _jpeg_size_offset(data: bytes) -> int:
    return data.index(b"\xff\xc0") + 5


@st.composite
def hostile_pictures(draw) -> bytes:
    kind = draw(st.sampled_from(["random"] + sorted(SEEDS)))
    if kind == "random":
        return draw(st.binary(max_size=512))
    data = bytearray(SEEDS[kind])
    fields = SIZE_FIELDS.get(kind) or [(_jpeg_size_offset(bytes(data)), ">H"), (_jpeg_size_offset(bytes(data)) + 2, ">H")]
    for offset, fmt in fields:                        # the announced size, anything the field can hold
        if draw(st.booleans()):
            bits = struct.calcsize(fmt) * 8
            low = -(1 << (bits - 1)) if fmt.endswith("i") else 0
            high = (1 << (bits - 1)) - 1 if fmt.endswith("i") else (1 << bits) - 1
            data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, draw(st.integers(low, high)))
    for _ in range(draw(st.integers(0, 4))):          # and a few flipped bytes anywhere
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=hostile_pictures())
def _decode_property(data):
    try:
        image, factor = decode_image_scaled(data, "fuzz", max_pixels=LIMIT)
    except ImageError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= LIMIT and factor >= 1.0


def test_decoders_return_a_picture_or_an_image_error_within_the_limit():
    """Arbitrary bytes and real PNG/JPEG/GIF/BMP with mutated sizes and bytes: an image within the
    limit or ``ImageError``, nothing else; no allocation past the limit (tracemalloc sees OpenCV's
    and numpy's buffers; the address-space cap catches the rest)."""
    tracemalloc.start()
    try:
        with memory_cap(1024 * MB):
            growth = peak_rss_growth_mb(_decode_property)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 1 M pixels: 3 MB as BGR; a few copies of it and the codecs' buffers stay far below 64 MB
    assert peak < 64 * MB, f"traced peak {peak / MB:.0f} MB"
    assert growth < 128, f"peak RSS growth {growth:.0f} MB"


# -- item 4: very wide and tall pictures through the detector ------------------------------------


@pytest.mark.parametrize("width, height", [(10000, 20), (20, 10000), (2000, 9), (4000, 12), (640, 8)])
@pytest.mark.parametrize("name", ["blazeface", "haar", "dlib"])
def test_detector_work_is_bounded_by_the_picture(width, height, name):
    from emolens.faces.detect import get_detector

    detector = get_detector(name)
    seen = []
    for attr in ("_detect", "_run"):                  # every picture a backend looks at (blazeface: _run)
        if hasattr(detector, attr):
            original = getattr(detector, attr)
            setattr(detector, attr, lambda grey, *a, _o=original, **k: (seen.append(grey.shape), _o(grey, *a, **k))[1])
    grey = np.full((height, width), 128, np.uint8)
    with memory_cap():
        assert detector(grey) == []
    side = (1 + 2 * detector.retry_pad) * max(detector.max_side, detector.retry_min_side)
    assert all(h * w <= side * side for h, w in seen), f"looked at {max(seen)} for a {width}x{height} picture"


def test_predict_and_analyze_on_strips_in_bounded_memory(tmp_path):
    """The issue's pictures (10000 x 20, 20 x 10000, 2000 x 9) through `emolens predict` and
    `Recognizer.analyze` in a subprocess capped at 2.5 GB of address space (the retry once
    asked for 22 GB): no face, exit code 0, peak RSS well under a gigabyte."""
    paths = []
    for w, h in [(10000, 20), (20, 10000), (2000, 9)]:
        paths.append(tmp_path / f"strip_{w}x{h}.png")
        paths[-1].write_bytes(png_bytes(w, h))
    code = (
        "import json, re, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2500 << 20, resource.RLIM_INFINITY))\n"
        "import cv2, numpy as np\n"
        "from emolens import Recognizer\n"
        "rec = Recognizer()\n"
        "out = [len(rec.analyze(p)) for p in sys.argv[1:]]\n"
        "out += [len(rec.analyze(cv2.imread(p))) for p in sys.argv[1:]]\n"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(json.dumps([out, hwm]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    faces, hwm_kb = json.loads(run.stdout)
    assert faces == [0] * 6 and hwm_kb < 1024 * 1024, hwm_kb
    cli = subprocess.run(["bash", "-c", 'ulimit -v 2560000; exec "$0" predict --json "$@"',
                          str(Path(sys.executable).with_name("emolens")), *map(str, paths)],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert [json.loads(line)["faces"] for line in cli.stdout.splitlines()] == [[], [], []]


# -- item 12: degenerate arrays and frames in the Python API -------------------------------------


@pytest.fixture(scope="module")
def recognizer():
    from emolens import Recognizer

    return Recognizer()


@pytest.mark.parametrize("array, message", [
    (np.zeros((0, 0, 3), np.uint8), r"an empty image \(shape \(0, 0, 3\)\)"),
    (np.zeros((0, 0), np.uint8), r"an empty image \(shape \(0, 0\)\)"),
    (np.zeros((0, 640, 3), np.uint8), r"an empty image"),
    (np.array([]), r"an empty image"),
    (None, r"the image is None \(cv2.imread returns None"),
    (np.zeros((10, 10, 5), np.uint8), r"H x W x 3/4"),
    (np.zeros((10, 10), complex), r"unsupported image array type complex128"),
    ([[1, 2], [3]], r"not an image array"),
])
def test_analyze_refuses_degenerate_arrays_with_an_image_error(recognizer, array, message):
    with pytest.raises(ImageError, match=message):
        recognizer.analyze(array)


@pytest.mark.parametrize("array", [
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((7, 7), np.uint8),
    np.full((120, 160, 3), np.nan, np.float32),
    np.full((60, 80), np.inf),
    np.where(np.eye(64, dtype=bool), np.nan, 0.5),
    np.full((40, 40), 10 ** 12, np.int64),
])
def test_analyze_of_tiny_or_nan_arrays_finds_no_face(recognizer, array):
    assert recognizer.analyze(array) == []


def test_stream_names_an_empty_frame(recognizer):
    frames = [np.zeros((48, 64, 3), np.uint8), np.zeros((0, 0, 3), np.uint8)]
    with pytest.raises(ImageError, match=r"frame 1: an empty frame \(shape \(0, 0, 3\)\)"):
        list(recognizer.stream(frames))
    with pytest.raises(ImageError, match=r"frame 0: an empty frame \(None\)"):
        list(recognizer.stream([None]))


# -- item 10: option ranges, one table for CLI, API and server ------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"max_faces": -1}, "max_faces must be an integer from 1 to 10000"),
    ({"max_faces": 0}, "max_faces must be an integer from 1"),
    ({"max_faces": True}, "max_faces must be an integer"),
    ({"detect_side": 10 ** 6}, "detect_side must be an integer from 64 to 4096"),
    ({"min_face": -3}, "min_face must be an integer from 1 to 4096"),
    ({"threads": 0}, "threads must be an integer from 1 to 256"),
    ({"color": "xyz"}, "color must be 'bgr' or 'rgb'"),
])
def test_recognizer_arguments_are_checked(kwargs, message):
    from emolens import Recognizer

    with pytest.raises(ValueError, match=re.escape(message)):
        Recognizer(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"half_life": float("inf")}, "half_life must be a finite number from 0 to 60 (seconds; 0: no smoothing), got inf"),
    ({"half_life": float("nan")}, "half_life must be a finite number from 0 to 60"),
    ({"half_life": -1}, "half_life must be a finite number from 0 to 60"),
    ({"every": 0}, "every must be an integer from 1 to 1000000 (frames), got 0"),
    ({"detect_every": 0}, "detect_every must be an integer from 1 to 1000"),
    ({"max_missed": -1}, "max_missed must be an integer from 0 to 100000"),
    ({"same_person": 1.5}, "same_person must be a finite number from 0.2 to 1 (face-descriptor distance"),
])
def test_stream_options_are_checked(recognizer, kwargs, message):
    with pytest.raises(options.OptionError, match=re.escape(message)):
        recognizer.stream([np.zeros((48, 64, 3), np.uint8)], **kwargs)


@pytest.mark.parametrize("argv, flag", [
    (["predict", "x.jpg", "--max-faces", "-1"], "--max-faces"),
    (["predict", "x.jpg", "--max-faces", "0"], "--max-faces"),
    (["video", "x.mp4", "--half-life", "inf"], "--half-life"),
    (["video", "x.mp4", "--half-life", "nan"], "--half-life"),
    (["video", "x.mp4", "--every", "0"], "--every"),
    (["video", "x.mp4", "--detect-every", "0"], "--detect-every"),
    (["video", "x.mp4", "--max-missed", "-5"], "--max-missed"),
    (["video", "x.mp4", "--detect-side", "8"], "--detect-side"),
    (["video", "x.mp4", "--max-faces", "-1"], "--max-faces"),
    (["video", "x.mp4", "--same-person", "nan"], "--same-person"),
    (["batch", "x.mp4", "--out", "o", "--same-person", "0"], "--same-person"),
    (["serve", "--port", "0"], "--port"),
    (["serve", "--max-upload-mb", "inf"], "--max-upload-mb"),
    (["serve", "--ws-max-mb", "-1"], "--ws-max-mb"),
    (["serve", "--max-pending", "0"], "--max-pending"),
    (["serve", "--workers-threads", "0"], "--workers-threads"),
    (["serve", "--ws-idle-seconds", "nan"], "--ws-idle-seconds"),
    (["serve", "--max-streams", "0"], "--max-streams"),
])
def test_cli_options_out_of_range_are_usage_errors(argv, flag):
    from emolens.cli import app

    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert f"Invalid value for '{flag}" in text and "must be" in text and "got" in text


def test_one_table_says_the_same_everywhere():
    with pytest.raises(options.OptionError) as info:
        options.parse("half_life", "inf")
    assert str(info.value) == "half_life must be a finite number from 0 to 60 (seconds; 0: no smoothing), got 'inf'"
    assert options.parse("max_faces", "none") is None and options.parse("detect_every", None, 5) == 5
    assert options.check("max_faces", np.int64(3)) == 3 and options.check("half_life", np.float32(0.5)) == 0.5
    with pytest.raises(options.OptionError):
        options.check("max_missed", "3")            # numbers only, not text
