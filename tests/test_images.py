"""Bad and unusual inputs: each gives a correct answer or a clear error naming the file."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emolens.images import ImageError, read_image, read_image_scaled, to_bgr8, to_grey


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.jpg: file not found"):
        read_image(tmp_path / "nope.jpg")


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: empty file \(0 bytes\)"):
        read_image(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, not a picture\n")
    with pytest.raises(ImageError, match=r"notes\.txt: not a picture"):
        read_image(p)
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(ImageError, match=r"fake\.jpg: not a readable picture"):
        read_image(fake)


def test_truncated_jpeg(tmp_path, photo):
    data = photo.read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg: truncated JPEG.*re-download"):
        read_image(p)


def test_folder_is_not_a_picture(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def test_16_bit_png(tmp_path):
    a = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), a)
    img = read_image(p)
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
    assert img[-1, -1, 0] > 250 and img[0, 0, 0] < 5


def test_rgba_png(tmp_path):
    a = np.zeros((30, 40, 4), np.uint8)
    a[..., 2] = 200  # red in BGRA
    a[..., 3] = 128
    p = tmp_path / "alpha.png"
    cv2.imwrite(str(p), a)
    img = read_image(p)
    assert img.shape == (30, 40, 3) and img[0, 0, 2] == 200


def test_one_pixel(tmp_path):
    p = tmp_path / "dot.png"
    cv2.imwrite(str(p), np.full((1, 1, 3), 77, np.uint8))
    assert read_image(p).shape == (1, 1, 3)


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    a = np.zeros((100, 200, 3), np.uint8)
    a[:, :100] = 255  # landscape as stored: white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "phone.jpg"
    Image.fromarray(a).save(p, "JPEG", exif=exif.tobytes())
    img = read_image(p)
    assert img.shape[:2] == (200, 100)  # displayed upright: portrait
    assert img[5, 50].mean() > 200 and img[-5, 50].mean() < 50


@pytest.mark.slow
def test_huge_jpeg_is_decoded_reduced_within_memory(tmp_path):
    from PIL import Image

    p = tmp_path / "huge.jpg"
    Image.new("L", (20000, 20000), 128).save(p, quality=50)
    code = (
        # Peak RSS from VmHWM: it starts afresh at exec, unlike ru_maxrss, which Linux carries
        # over from the (large) pytest process across fork + exec.
        "import json, re; from emolens.images import read_image_scaled; "
        f"a, f = read_image_scaled({str(p)!r}); "
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
        "print(json.dumps([list(a.shape), f, hwm]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    shape, factor, maxrss_kb = json.loads(out.stdout)
    assert max(shape) == 4096 and factor == pytest.approx(20000 / 4096)
    assert maxrss_kb < 600 * 1024, f"peak memory {maxrss_kb / 1024:.0f} MB"  # full size would be 1.2 GB


def test_read_image_scaled_factor_is_one_for_normal_pictures(photo):
    img, factor = read_image_scaled(photo)
    assert factor == 1.0 and img.shape == (350, 350, 3)


@pytest.mark.parametrize("make", [
    lambda: np.full((20, 30), 100, np.uint8),
    lambda: np.full((20, 30, 1), 100, np.uint8),
    lambda: np.full((20, 30, 3), 100, np.uint8),
    lambda: np.full((20, 30, 4), 100, np.uint8),
    lambda: np.full((20, 30, 3), 100 * 257, np.uint16),
    lambda: np.full((20, 30), 100 / 255, np.float32),
])
def test_array_layouts(make):
    assert to_bgr8(make()).shape == (20, 30, 3)
    grey = to_grey(make())
    assert grey.shape == (20, 30) and grey.dtype == np.uint8 and abs(int(grey[0, 0]) - 100) <= 1


def test_rgb_and_bgr_orders():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # red in RGB
    assert to_bgr8(rgb, "rgb")[0, 0].tolist() == [0, 0, 255]
    assert to_grey(rgb, "rgb")[0, 0] == to_grey(rgb[..., ::-1].copy(), "bgr")[0, 0]
    with pytest.raises(ImageError):
        to_bgr8(np.zeros((4, 4, 5), np.uint8))
