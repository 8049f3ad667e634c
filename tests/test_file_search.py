"""emolens.file_search: folders and glob patterns on real disks (hidden files, symlink loops)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import emolens
from emolens import file_search
from emolens.batch.inputs import expand_inputs as batch_inputs
from emolens.predict import expand_inputs as predict_inputs

EXAMPLE = Path(emolens.__file__).parent / "examples" / "astronaut.jpg"


@pytest.fixture
def tree(tmp_path):
    """photos/ with a picture, a subfolder, hidden files and folders, and two links back up."""
    root = tmp_path / "photos"
    (root / "trip" / ".thumbnails").mkdir(parents=True)
    (root / ".git").mkdir()
    shutil.copy(EXAMPLE, root / "a.jpg")
    shutil.copy(EXAMPLE, root / "trip" / "b.JPG")
    (root / "._a.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")   # what a Mac leaves on a USB stick
    shutil.copy(EXAMPLE, root / "trip" / ".thumbnails" / "b.png")
    shutil.copy(EXAMPLE, root / ".git" / "c.jpg")
    os.symlink("..", root / "trip" / "up")       # two links to a parent: 2**depth paths to walk
    os.symlink("..", root / "trip" / "up2")
    os.symlink(root / "a.jpg", root / "trip" / "linked.jpg")   # a linked file is found
    os.symlink(tmp_path / "nowhere.jpg", root / "gone.jpg")     # a dangling link is not a file
    return root


EXPECTED = ["a.jpg", "trip/b.JPG", "trip/linked.jpg"]


def relative(paths, root):
    return [os.path.relpath(p, root) for p in paths]


@pytest.mark.timeout(20)
def test_folder_search_skips_hidden_names_and_symlinked_folders(tree):
    assert relative(file_search.folder_files(tree, {".jpg", ".png"}), tree) == EXPECTED
    everything = relative(file_search.folder_files(tree, {".jpg"}, regular_only=False), tree)
    assert everything == ["a.jpg", "gone.jpg", "trip/b.JPG", "trip/linked.jpg"]   # for callers that report it


@pytest.mark.timeout(20)
def test_a_double_star_pattern_does_not_loop_through_links_to_a_parent(tree):
    # glob.glob(recursive=True) walks photos/trip/up/trip/up2/... until the kernel's 40 links:
    # one picture 2**40 times (it hung); file_search lists each file once
    assert relative(file_search.glob_files(f"{tree}/**/*.[jJ][pP][gG]"), tree) == EXPECTED
    assert relative(file_search.glob_files(f"{tree}/*/*.JPG"), tree) == ["trip/b.JPG"]


def test_patterns_follow_globs_rules_for_dots_home_and_plain_names(tree, monkeypatch):
    assert relative(file_search.glob_files(f"{tree}/trip/.thumbnails/*.png"), tree) == ["trip/.thumbnails/b.png"]
    assert relative(file_search.glob_files(f"{tree}/.*.jpg"), tree) == ["._a.jpg"]
    monkeypatch.chdir(tree)
    assert file_search.glob_files("*.jpg") == ["a.jpg"]            # relative in, relative out
    assert file_search.glob_files("trip/*.JPG") == ["trip/b.JPG"]
    assert file_search.glob_files("a**.jpg") == ["a.jpg"]          # "**" inside a name is a "*"
    assert file_search.glob_files("missing/*.jpg") == []
    monkeypatch.setenv("HOME", str(tree.parent))
    assert file_search.glob_files("~/photos/*.jpg") == [str(tree / "a.jpg")]


@pytest.mark.timeout(20)
def test_predict_and_batch_find_the_same_files(tree):
    for given in ([str(tree)], [f"{tree}/**/*.*"]):
        assert relative([p for p, err in predict_inputs(given) if err is None], tree) == EXPECTED
        found = batch_inputs(given)
        assert relative([i.path for i in found if i.error is None], tree) == EXPECTED
        assert not [i for i in found if i.error]


@pytest.mark.timeout(120)
def test_cli_predict_reports_no_hidden_file_as_bad(tree, tiny_model):
    from emolens.cli import app

    result = CliRunner().invoke(app, ["predict", str(tree), "--json", "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert relative([line["file"] for line in lines], tree) == EXPECTED
    assert all(line["error"] is None for line in lines)
