"""End to end: persons, shots and pose through `emolens predict` and `emolens video`, on real faces
that ship (examples/astronaut.jpg, public domain; matplotlib's sample grace_hopper.jpg, public domain)
and, where ../shared/datasets is present, the 24 labelled faces of faces-multi/bald_guys.jpg."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from emolens.cli import app
from emolens.testing.clips import Actor, Shot, write_edited_clip

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"
BALD = ROOT.parent / "shared" / "datasets" / "faces-multi" / "images" / "bald_guys.jpg"
GROUP = BALD.with_name("2008_001009.jpg")       # two women, one behind the other
LABELS = ROOT / "benchmarks" / "data" / "bald_guys_persons.csv"


def hopper_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def test_predict_group_people_names_the_same_person_across_pictures(tmp_path):
    small = tmp_path / "astronaut-small.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(ASTRONAUT)), None, fx=0.6, fy=0.6))
    result = run("predict", ASTRONAUT, hopper_path(), small, "--group-people", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [[f["person"] for f in line["faces"]] for line in lines] == [[1], [2], [1]]
    face = lines[0]["faces"][0]
    assert face["frontal"] is True and set(face["pose"]) == {"yaw", "pitch", "roll"}
    plain = json.loads(run("predict", ASTRONAUT, "--json").stdout)
    assert "person" not in plain["faces"][0]          # only asked for with --group-people
    # The astronaut and Grace Hopper lie 0.69 apart: one person when the user allows 0.75.
    loose = run("predict", ASTRONAUT, hopper_path(), small, "--group-people", "--same-person", "0.75", "--json")
    assert loose.exit_code == 0, loose.output
    assert [[f["person"] for f in json.loads(line)["faces"]] for line in loose.stdout.splitlines()] == [[1], [1], [1]]


def test_faces_of_one_picture_are_different_people_unless_collages(tmp_path):
    face = cv2.imread(str(ASTRONAUT))[0:300, 80:380]
    twins = tmp_path / "twins.jpg"
    cv2.imwrite(str(twins), cv2.hconcat([face, face]))           # one person twice, as a montage would show
    apart = run("predict", twins, ASTRONAUT, "--group-people", "--json")
    assert apart.exit_code == 0, apart.output
    lines = [[f["person"] for f in json.loads(line)["faces"]] for line in apart.stdout.splitlines()]
    assert sorted(lines[0]) == [1, 2] and lines[1][0] in (1, 2), "two faces in a picture: two people"
    together = run("predict", twins, ASTRONAUT, "--group-people", "--collages", "--json")
    assert [[f["person"] for f in json.loads(line)["faces"]] for line in together.stdout.splitlines()] == [[1, 1], [1]]
    assert "add --group-people" in run("predict", ASTRONAUT, "--collages").output


@pytest.mark.skipif(not GROUP.is_file(), reason="../shared/datasets/faces-multi is not here")
def test_a_real_group_photo_holds_two_people():
    result = run("predict", GROUP, "--group-people", "--json")      # the two were one person before
    assert result.exit_code == 0, result.output
    assert sorted(f["person"] for f in json.loads(result.stdout)["faces"]) == [1, 2]


def test_same_person_is_checked_and_needs_grouping(cut_clip):
    from emolens.cli import SAME_PERSON_HELP
    from emolens.people.persons import SAME_PERSON

    assert f"default {SAME_PERSON};" in SAME_PERSON_HELP        # the help states the default in force
    out_of_range = run("predict", ASTRONAUT, "--group-people", "--same-person", "3")
    assert out_of_range.exit_code == 2 and "a finite number from 0.2 to 1" in out_of_range.output
    alone = run("predict", ASTRONAUT, "--same-person", "0.4")
    assert alone.exit_code == 2 and "add --group-people" in alone.output
    off = run("video", cut_clip.path, "--no-persons", "--same-person", "0.4")
    assert off.exit_code == 2 and "--no-persons" in off.output


@pytest.mark.skipif(not BALD.is_file(), reason="../shared/datasets/faces-multi is not here")
def test_predict_group_people_sorts_four_people(tmp_path):
    result = run("predict", BALD, "--group-people", "--collages", "--json")    # a montage: 6 photos each
    assert result.exit_code == 0, result.output
    faces = json.loads(result.stdout)["faces"]
    rows = [r for r in csv.DictReader(line for line in LABELS.open() if not line.startswith("#"))]
    truth = {}
    for f in faces:
        x, y, w, h = f["box"]
        near = min(rows, key=lambda r: (int(r["cx"]) - x - w / 2) ** 2 + (int(r["cy"]) - y - h / 2) ** 2)
        if f["person"] is not None and abs(int(near["cx"]) - x - w / 2) < w / 2:
            truth.setdefault(f["person"], []).append(near["person"])
    assert sum(len(v) for v in truth.values()) >= 20, "most labelled faces are found and described"
    assert all(len(set(v)) == 1 for v in truth.values()), f"a person mixes people: {truth}"
    assert len(truth) <= 5, f"{len(truth)} persons for 4 people"


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """Three shots: the astronaut, Grace Hopper, the astronaut again (different backgrounds and framing)."""
    folder = tmp_path_factory.mktemp("cuts")
    astronaut = cv2.imread(str(ASTRONAUT))[40:300, 110:330]
    hopper = cv2.imread(str(hopper_path()))[80:460, 80:440]
    shots = [Shot([Actor(astronaut, [(0, 300, 240, 220), (1.5, 330, 240, 230)])], 1.5, seed=1, people=["a"]),
             Shot([Actor(hopper, [(0, 330, 250, 240), (1.5, 310, 245, 240)])], 1.5, seed=2, people=["h"]),
             Shot([Actor(astronaut, [(0, 250, 230, 200), (1.5, 260, 230, 210)])], 1.5, seed=3, pan=60, people=["a"])]
    return write_edited_clip(folder / "cuts.mp4", shots, size=(640, 480), fps=20)


def test_video_cuts_end_tracks_and_persons_join_them(cut_clip, tmp_path):
    out_csv, summary_json, plot = tmp_path / "f.csv", tmp_path / "s.json", tmp_path / "p.png"
    result = run("video", cut_clip.path, "--csv", out_csv, "--summary-json", summary_json, "--plot", plot,
                 "--no-progress", "--all-poses")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out_csv.open()))
    shot_of_frame = {int(r["frame"]): int(r["shot"]) for r in rows}
    assert sorted(set(shot_of_frame.values())) == [0, 1, 2]
    firsts = [min(f for f, s in shot_of_frame.items() if s == k) for k in (1, 2)]
    assert firsts == cut_clip.cuts, "shots start at the cuts"
    tracks = {}
    for r in rows:
        tracks.setdefault(r["track_id"], set()).add(r["shot"])
    assert all(len(s) == 1 for s in tracks.values()), "no track crosses a cut"
    person_by_shot = {}
    for r in rows:
        if r["person"]:
            person_by_shot.setdefault(int(r["shot"]), set()).add(int(r["person"]))
    assert person_by_shot == {0: {1}, 1: {2}, 2: {1}}, "the astronaut is person 1 again after the cut"
    summary = json.loads(summary_json.read_text())
    assert summary["shots"] == 3 and summary["cuts"] == cut_clip.cuts
    persons = {p["person"]: p for p in summary["persons"]}
    assert set(persons) == {1, 2} and persons[1]["shots"] == [0, 2] and len(persons[1]["tracks"]) == 2
    assert persons[1]["seconds_on_screen"] == pytest.approx(3.0, abs=0.3)
    assert persons[2]["seconds_on_screen"] == pytest.approx(1.5, abs=0.3)
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_video_same_person_sets_how_tracks_join(cut_clip, tmp_path):
    summary_json = tmp_path / "s.json"
    result = run("video", cut_clip.path, "--summary-json", summary_json, "--no-progress", "--same-person", "0.75")
    assert result.exit_code == 0, result.output
    persons = json.loads(summary_json.read_text())["persons"]
    assert [p["shots"] for p in persons] == [[0, 1, 2]], "0.75 joins Grace Hopper to the astronaut (0.69 apart)"


def test_video_summary_counts_frontal_faces_unless_all_poses(cut_clip, tmp_path):
    frontal, every = tmp_path / "a.json", tmp_path / "b.json"
    assert run("video", cut_clip.path, "--summary-json", frontal, "--no-progress").exit_code == 0
    assert run("video", cut_clip.path, "--summary-json", every, "--no-progress", "--all-poses").exit_code == 0
    a, b = json.loads(frontal.read_text()), json.loads(every.read_text())
    assert a["counted"] == "frontal faces only" and b["counted"] == "all poses"
    assert b["face_frames_left_out"] == 0
    for pa, pb in zip(a["persons"], b["persons"]):
        assert pa["frames_counted"] + pa["frames_left_out"] == pb["frames_counted"] == pb["frames"]


def test_video_refuses_an_unknown_shot_detector(cut_clip):
    result = run("video", cut_clip.path, "--shots", "magic")
    assert result.exit_code == 2 and "hash, content, histogram, off" in result.output


def test_annotated_pictures_name_the_persons():
    from emolens.predict import photo_tags

    assert photo_tags(3, None) is None                        # no grouping: draw's own numbering
    assert photo_tags(3, [2, None, 5]) == ["#1 P2", "#2", "#3 P5"]
    assert photo_tags(1, [4]) == ["P4"] and photo_tags(1, [None]) == [None]


def test_group_people_ends_with_a_table_per_person(tmp_path):
    small = tmp_path / "astronaut-small.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(ASTRONAUT)), None, fx=0.6, fy=0.6))
    result = run("predict", ASTRONAUT, hopper_path(), small, "--group-people")
    assert result.exit_code == 0, result.output
    summary = result.stdout[result.stdout.index("people: 2 person(s)"):]
    rows = {line.split()[0]: line.split() for line in summary.splitlines() if line.strip().startswith("P")}
    assert rows["P1"][1:3] == ["2", "2"] and rows["P2"][1:3] == ["1", "1"], summary   # pictures, faces
    assert "people:" not in run("predict", ASTRONAUT).stdout                   # only with --group-people


def test_group_people_summary_json_with_json_lines(tmp_path):
    """--summary-json gives the per-person table as a file, also beside --json (stdout stays JSON Lines)."""
    small = tmp_path / "astronaut-small.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(ASTRONAUT)), None, fx=0.6, fy=0.6))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    target = tmp_path / "out" / "people.json"
    result = run("predict", ASTRONAUT, hopper_path(), small, broken, "--group-people", "--json",
                 "--summary-json", target)
    assert result.exit_code == 1, result.output                       # the broken file, reported
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and all("file" in line for line in lines)    # no summary mixed into the lines
    summary = json.loads(target.read_text())
    assert (summary["pictures"], summary["failed"], summary["faces_without_person"]) == (4, 1, 0)
    one, two = summary["persons"]
    assert one["files"] == sorted([str(ASTRONAUT), str(small)]) and two["files"] == [str(hopper_path())]
    assert (one["pictures"], one["faces"], one["faces_counted"]) == (2, 2, 2)
    assert one["dominant"] == "happy" and abs(sum(one["mean_scores"].values()) - 1) < 1e-3
    assert set(one["mean_intensity"]) == set(one["mean_scores"])
    assert not list(target.parent.glob(".*partial*")), "no staging folder left behind"


def test_group_people_summary_json_refusals(tmp_path):
    target = tmp_path / "people.json"
    result = run("predict", ASTRONAUT, "--summary-json", target)
    assert result.exit_code == 2 and "add --group-people" in result.output and not target.exists()
    result = run("predict", ASTRONAUT, "--group-people", "--summary-json", tmp_path / "people.csv")
    assert result.exit_code == 2 and "must be a .json file" in result.output
    a_picture = tmp_path / "pic.json"           # an input named .json cannot be given, but a link can
    a_picture.symlink_to(ASTRONAUT)
    result = run("predict", ASTRONAUT, "--group-people", "--summary-json", a_picture)
    assert result.exit_code == 2 and "would overwrite the input picture" in result.output
    assert a_picture.resolve() == ASTRONAUT.resolve() and ASTRONAUT.read_bytes()[:2] == b"\xff\xd8"


def test_people_tally_counts_frontal_faces_and_unnamed_ones():
    from types import SimpleNamespace

    from emolens.emotions import EMOTIONS
    from emolens.predict import PeopleTally, PhotoResult

    def face(top: str, frontal: bool):
        return SimpleNamespace(frontal=frontal, scores={e: 0.7 if e == top else 0.05 for e in EMOTIONS},
                               intensity={e: 0.5 for e in EMOTIONS})

    tally = PeopleTally()
    tally.add(PhotoResult("a.jpg", faces=[face("happy", True), face("sad", False), face("angry", True)],
                          persons=[1, 1, None]))
    tally.add(PhotoResult("b.jpg", faces=[face("sad", False)], persons=[2]))
    tally.add(PhotoResult("c.jpg", error="c.jpg: not a picture"))
    one, two = tally.rows()
    assert (one["person"], one["pictures"], one["faces"], one["counted"], one["dominant"]) == (1, 1, 2, 1, "happy")
    assert (two["counted"], two["dominant"]) == (1, "sad")          # no frontal face: all of them count
    assert tally.unnamed == 1
