"""Hostile and careless input to `emolens predict` and the CLI's printing (issue 25 items 1, 6b, 12).

Every file is made in tmp_path from the bundled example photo; the tiny stand-in model does the
classifying. Cases that crashed the process (OpenCV on names that are not UTF-8) or depend on
file descriptors run the command in a subprocess, as a user would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import emolens
from emolens.cli import app

EXAMPLE = Path(emolens.__file__).parent / "examples" / "astronaut.jpg"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) if isinstance(a, Path) else a for a in args])


def command(*args, **kwargs) -> subprocess.CompletedProcess:
    """`emolens ...` in a fresh process with a UTF-8 locale (file names as bytes via os.fsencode)."""
    env = dict(os.environ, LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "emolens.cli", *map(str, args)], capture_output=True, env=env,
                          timeout=120, **kwargs)


def digest(folder: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def one_line_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture
def photos(tmp_path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(EXAMPLE, d / "a.jpg")
    shutil.copy(EXAMPLE, d / "b.jpg")
    return d


# ---------------------------------------------------------------------------------------
# item 1: annotated copies never land on an input picture


@pytest.mark.parametrize("spelling", ["same", "dot-slash", "trailing-slash", "symlink"])
def test_annotate_into_the_input_folder_is_refused(photos, tiny_model, spelling, monkeypatch):
    monkeypatch.chdir(photos.parent)
    before = digest(photos)
    out = {"same": "photos", "dot-slash": "./photos", "trailing-slash": "photos/", "symlink": "link"}[spelling]
    if spelling == "symlink":
        os.symlink("photos", "link")
    result = run("predict", "photos", "--annotate", out, "--model", tiny_model)
    assert result.exit_code == 2, result.output
    line = one_line_error(result.stderr)
    assert "would overwrite the input picture photos/a.jpg" in line and "a.jpg" in line.split(":")[1]
    assert digest(photos) == before


def test_annotate_folder_inside_the_input_folder_is_refused_once_it_holds_copies(photos, tiny_model):
    out = photos / "annotated"
    first = run("predict", photos, "--annotate", out, "--model", tiny_model)
    assert first.exit_code == 0, first.output                  # first run: no name collides
    copies = digest(out)
    assert set(copies) == {"a.jpg", "b.jpg"}
    second = run("predict", photos, "--annotate", out, "--model", tiny_model)   # finds its own copies as inputs
    assert second.exit_code == 2
    assert f"would overwrite the input picture {out / 'a.jpg'}" in one_line_error(second.stderr)
    assert digest(out) == copies


def test_annotated_copy_onto_a_link_to_an_input_is_refused(photos, tmp_path, tiny_model):
    out = tmp_path / "out"
    out.mkdir()
    os.link(photos / "a.jpg", out / "a.jpg")                   # a hard link: same file, other path
    os.symlink(photos / "b.jpg", out / "b.jpg")
    before = digest(photos)
    for name in ("a.jpg", "b.jpg"):
        result = run("predict", photos / name, "--annotate", out, "--model", tiny_model)
        assert result.exit_code == 2, result.output
        assert f"would overwrite the input picture {photos / name}" in one_line_error(result.stderr)
    assert digest(photos) == before


def test_one_input_would_overwrite_another(photos, tmp_path, tiny_model):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(EXAMPLE, out / "a.jpg")
    result = run("predict", photos / "a.jpg", out / "a.jpg", "--annotate", out, "--model", tiny_model)
    assert result.exit_code == 2
    assert f"annotated copy of {photos / 'a.jpg'} would overwrite the input picture {out / 'a.jpg'}" in \
        one_line_error(result.stderr)


def test_annotate_elsewhere_still_works(photos, tmp_path, tiny_model):
    result = run("predict", photos, "--annotate", tmp_path / "new" / "deeper", "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert set(digest(tmp_path / "new" / "deeper")) == {"a.jpg", "b.jpg"}


@pytest.mark.parametrize("kind", ["own-picture", "link-to-own-picture"])
def test_a_file_emolens_did_not_write_is_never_replaced_by_an_annotated_copy(photos, tmp_path, tiny_model, kind):
    """~/Pictures holds the user's import of the camera card; the card's IMG_0001.jpg, annotated into
    ~/Pictures, replaced it (a different file of the same name is no input, so no rule stopped it)."""
    out, mine = tmp_path / "Pictures", tmp_path / "mine.jpg"
    out.mkdir()
    shutil.copy(EXAMPLE, mine)
    with open(mine, "ab") as f:
        f.write(b"the user's own edit")
    if kind == "own-picture":
        shutil.copy(mine, out / "b.jpg")
    else:
        os.symlink(mine, out / "b.jpg")
    before, own = digest(out), digest(tmp_path)
    result = run("predict", photos, "--annotate", out, "--model", tiny_model)
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert f"{out / 'b.jpg'}: the annotated copy of {photos / 'b.jpg'} would overwrite this file" in line
    assert "new or empty folder" in line
    assert digest(out) == before and digest(tmp_path) == own      # nothing written, a.jpg's copy neither


def test_a_rerun_replaces_its_own_annotated_copies(photos, tmp_path, tiny_model):
    from emolens.annotated_files import written_by_emolens

    out = tmp_path / "out"
    for _ in range(2):
        result = run("predict", photos, "--annotate", out, "--model", tiny_model)
        assert result.exit_code == 0, result.output
    assert set(digest(out)) == {"a.jpg", "b.jpg"}
    assert all(written_by_emolens(out / name) for name in ("a.jpg", "b.jpg"))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_the_mark_changes_no_pixel_and_readers_keep_reading(suffix):
    import cv2
    import numpy as np
    from PIL import Image

    from emolens.annotated_files import marked, written_by_emolens

    picture = cv2.imread(str(EXAMPLE))
    data = cv2.imencode(suffix, picture)[1].tobytes()
    plain = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    again = cv2.imdecode(np.frombuffer(marked(data), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(plain, again)
    with Image.open(io.BytesIO(marked(data))) as im:
        im.load()                                    # Pillow checks PNG chunk CRCs
        assert b"emolens annotated copy" in (im.info.get("comment", b"") + im.info.get("Software", "").encode())
    assert not written_by_emolens(EXAMPLE)


# ---------------------------------------------------------------------------------------
# item 12: --annotate into a place that cannot be a folder, reported before the models load


@pytest.mark.parametrize("where, expected", [
    ("onto-file", "is a file, not a folder"),
    ("under-file", "photos/a.jpg is a file"),
    ("proc", "cannot create the folder"),
])
def test_unusable_annotate_folder_is_one_line_before_loading(photos, tmp_path, where, expected):
    out = {"onto-file": photos / "a.jpg", "under-file": photos / "a.jpg" / "sub",
           "proc": Path("/proc/emolens-test")}[where]
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    # A missing model would be reported when the models load: the folder is checked first.
    result = run("predict", photos / "b.jpg", "--annotate", out, "--model", tmp_path / "missing.onnx")
    assert result.exit_code == 2
    assert expected in one_line_error(result.stderr)


# ---------------------------------------------------------------------------------------
# item 6b: empty paths, names that are not UTF-8, markup in names, closed and broken stdout


def test_empty_path_is_refused(photos, tiny_model, monkeypatch):
    monkeypatch.chdir(photos)
    before = digest(photos)
    result = run("predict", "", "--model", tiny_model)
    assert result.exit_code == 2 and "empty string" in one_line_error(result.stderr)
    result = run("predict", ".", "--annotate", "", "--model", tiny_model)
    assert result.exit_code == 2 and "--annotate is an empty string" in one_line_error(result.stderr)
    assert digest(photos) == before


def test_empty_path_in_the_library_is_an_error_not_the_current_folder():
    from emolens.predict import expand_inputs

    assert expand_inputs([""]) == [("", "empty path (an unset shell variable?); pass pictures or folders")]


def test_names_that_are_not_utf8_are_read_annotated_and_printed(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    bad = os.fsencode(src) + b"/caf\xe9.jpg"
    shutil.copy(EXAMPLE, bad)
    out = os.fsencode(tmp_path) + b"/ann\xe9"
    result = command("predict", os.fsdecode(bad), "--annotate", os.fsdecode(out), "--model", tiny_model)
    assert result.returncode == 0, result.stderr.decode()
    assert os.listdir(out) == [b"caf\xe9.jpg"]
    assert open(out + b"/caf\xe9.jpg", "rb").read(3) == b"\xff\xd8\xff"     # a JPEG, written
    text = result.stdout.decode("utf-8")                                      # valid UTF-8 on stdout
    assert "caf\\xe9.jpg: 1 face(s)" in text and "ann\\xe9/caf\\xe9.jpg" in text
    result = command("predict", os.fsdecode(bad), "--json", "--model", tiny_model)
    assert result.returncode == 0
    record = json.loads(result.stdout)
    assert os.fsencode(record["file"]) == bad and len(record["faces"]) == 1


@pytest.mark.parametrize("name", ["x[bold]y.jpg", "[red]z].jpg", "a\\[b].jpg", "esc\x1b[31mred.jpg"])
def test_names_with_markup_or_control_characters_print_as_they_are(tmp_path, tiny_model, name):
    folder = tmp_path / "d["                    # with the name: "d[/[red]z].jpg" raised MarkupError
    folder.mkdir()
    good, bad = folder / name, folder / ("broken " + name)
    shutil.copy(EXAMPLE, good)
    bad.write_bytes(b"not a picture")
    result = run("predict", good, bad, "--model", tiny_model, "--annotate", tmp_path / "ann")
    assert result.exit_code == 1, result.output
    shown_good, shown_bad = (str(p).replace("\x1b", "\\x1b") for p in (good, bad))
    assert f"{shown_good}: 1 face(s)" in result.stdout
    assert f"error: {shown_bad}: " in result.stderr.replace("\n", "")
    assert "\x1b" not in result.output           # no terminal escape from a file name reaches the terminal


def test_closed_stdout_is_refused_up_front(tiny_model, tmp_path):
    for extra in ([], ["--json"]):
        result = command("predict", EXAMPLE, "--model", tiny_model, *extra, "--annotate", tmp_path / "ann",
                         preexec_fn=lambda: os.close(1))
        assert result.returncode == 2, result.stderr
        assert "standard output is closed" in one_line_error(result.stderr.decode())
    assert not (tmp_path / "ann").exists()
    result = command("detectors", preexec_fn=lambda: os.close(1))
    assert result.returncode == 2 and b"Traceback" not in result.stderr


def test_broken_pipe_ends_quietly(tmp_path, tiny_model):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        shutil.copy(EXAMPLE, folder / f"{i:02d}.jpg")
    env = dict(os.environ, LC_ALL="C.UTF-8")
    for extra in ([], ["--json"]):       # `emolens predict many | head -1`
        proc = subprocess.Popen([sys.executable, "-m", "emolens.cli", "predict", str(folder), "--model",
                                 str(tiny_model), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) != 0
        assert "Traceback" not in err and "Exception ignored" not in err, err


def test_printable_names():
    from emolens.file_names import printable

    assert printable(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert printable("a\x1b[31mb\rc\x07") == "a\\x1b[31mb\\x0dc\\x07"
    assert printable("tab\tline\nbreak é ✓") == "tab\tline\nbreak é ✓"
    assert printable("\ud800") == "\\ud800"                 # a lone surrogate that is no escaped byte
