"""emolens batch without Dask: inputs and manifests, photo chunks, frame-exact video segments.

Clips are made in tmp_path from photos-dev faces (``emolens.testing.clips``): a constant-rate
MP4 and a variable-rate MJPEG AVI, long enough (12 s) that segments start with a real seek.
"""

from __future__ import annotations

import hashlib
import os

import pytest

pytest.importorskip("av", reason="segments need PyAV (the batch extra)")
pyarrow = pytest.importorskip("pyarrow", reason="manifests in Parquet need pyarrow (the batch extra)")

from emolens.batch.inputs import InputError, expand_inputs, read_manifest  # noqa: E402
from emolens.batch.plan import photo_chunks, plan_units  # noqa: E402
from emolens.batch.segments import plan_segments, plan_video, read_segment, segment_times  # noqa: E402
from emolens.testing import clips  # noqa: E402
from emolens.video.sources import VideoFile  # noqa: E402

SIZE = (160, 120)


@pytest.fixture(scope="module")
def faces(photos_dev):
    return clips.photo_paths(photos_dev)[:2]


@pytest.fixture(scope="module")
def cfr_clip(tmp_path_factory, faces):
    path = tmp_path_factory.mktemp("clips") / "cfr.mp4"
    return clips.write_clip(path, clips.moving_face(faces[0], SIZE, 12.0), SIZE, 25, 12.0, noise=3).path


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory, faces):
    path = tmp_path_factory.mktemp("clips") / "vfr.avi"
    slots = ([True] * 5 + [False, True, False, False, True]) * 36          # 12 s at 30 slots/s, 252 frames
    info = clips.write_vfr_avi(path, clips.moving_face(faces[1], SIZE, 12.0), slots, SIZE, 30)
    return info.path


def _whole(path, every):
    return [(f.index, round(f.timestamp, 6), hashlib.md5(f.image.tobytes()).hexdigest())
            for f in VideoFile(path, every=every, prefetch=0)]


@pytest.mark.parametrize("which", ["cfr_clip", "vfr_clip"])
@pytest.mark.parametrize("every", [1, 3])
def test_segments_analyse_every_frame_exactly_once(request, which, every):
    """Every frame of the whole-file read appears once across the segments: same index, time, pixels."""
    path = request.getfixturevalue(which)
    plan = plan_video(path, 1.5, every=every, detect_every=2)
    assert plan.split and len(plan.segments) >= 4, plan
    got, warm_ups = [], []
    for start, stop in plan.segments:
        times, offset = segment_times(plan.times_ms, start, stop, every)
        for warm_up, f in read_segment(path, start, stop, times, every, offset):
            item = (f.index, round(f.timestamp, 6), hashlib.md5(f.image.tobytes()).hexdigest())
            (warm_ups if warm_up else got).append(item)
    whole = _whole(path, every)
    assert got == whole
    assert len(warm_ups) == len(plan.segments) - 1           # the frame before each later segment, for cuts
    assert all(w in whole for w in warm_ups)


def test_vfr_timestamps_are_the_containers(vfr_clip):
    plan = plan_video(vfr_clip, 1.5)
    gaps = {round(b - a, 1) for a, b in zip(plan.times_ms, plan.times_ms[1:])}
    assert gaps == {33.3, 66.7, 100.0}                      # irregular: the file is truly variable-rate


def test_segment_plan_boundaries():
    assert plan_segments(100, 25, 0) == [(0, None)]
    assert plan_segments(100, 25, 60) == [(0, None)]         # fits in one segment
    segments = plan_segments(1000, 25, 2.0, every=3, detect_every=5)
    assert all(start % 15 == 0 for start, _ in segments)
    assert segments[-1][1] is None and all(b == a2 for (_, b), (a2, _) in zip(segments, segments[1:]))
    assert plan_segments(101, 25, 2.0, every=1, detect_every=5)[-1] == (50, None)   # no 1-frame sliver


def test_short_or_unsplittable_videos_are_read_whole(tmp_path, faces):
    clip = clips.write_clip(tmp_path / "short.mp4", clips.steady_face(faces[0], SIZE, 1.0), SIZE, 25, 1.0).path
    plan = plan_video(clip, 60)
    assert not plan.split and plan.segments == [(0, None)] and plan.times_ms is None
    assert plan_video(clip, 0).note.startswith("--segment-seconds 0")


def test_manifests_text_csv_and_parquet(tmp_path, faces):
    import pyarrow.parquet as pq

    (tmp_path / "data").mkdir()
    a = tmp_path / "data" / "a.jpg"
    a.write_bytes(faces[0].read_bytes())
    (tmp_path / "data" / "clip.mp4").write_bytes(b"not really")
    (tmp_path / "list.txt").write_text("# photos\ndata/a.jpg\n\n" + str(tmp_path / "data" / "clip.mp4") + "\nnone.jpg\n")
    (tmp_path / "list.csv").write_text("id,path\n1,data/a.jpg\n2,data/*.mp4\n")
    pq.write_table(pyarrow.table({"path": ["data/a.jpg", "data"]}), tmp_path / "list.parquet")
    txt = expand_inputs([tmp_path / "list.txt"])
    assert [(i.path, i.kind, i.error is None) for i in txt] == [
        (str(a), "photo", True), (str(tmp_path / "data" / "clip.mp4"), "video", True),
        (str(tmp_path / "none.jpg"), "photo", False)]
    assert txt[0].size == a.stat().st_size and txt[0].mtime_ns == a.stat().st_mtime_ns
    assert [i.path for i in expand_inputs([tmp_path / "list.csv"])] == [str(a), str(tmp_path / "data" / "clip.mp4")]
    assert [i.path for i in expand_inputs([tmp_path / "list.parquet"])] == [str(a), str(tmp_path / "data" / "clip.mp4")]
    # mixed arguments: a folder, a glob, a file twice -> each file once
    mixed = expand_inputs([tmp_path / "data", str(tmp_path / "data" / "*.jpg"), a])
    assert [i.path for i in mixed] == [str(a), str(tmp_path / "data" / "clip.mp4")]
    (tmp_path / "bad.csv").write_text("file\nx.jpg\n")
    with pytest.raises(InputError, match="no 'path' column"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(InputError, match="bad.parquet"):
        read_manifest(tmp_path / "bad.parquet")


@pytest.mark.timeout(20)
def test_a_manifest_that_is_no_list_of_paths_is_refused_in_bounded_memory(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.txt")        # read line by line, it never ended
    os.mkfifo(tmp_path / "pipe.txt")                      # opening it blocked for ever
    for name in ("zero.txt", "pipe.txt"):
        with pytest.raises(InputError, match=f"{name}: the manifest is not a regular file"):
            read_manifest(tmp_path / name)
    (tmp_path / "binary.txt").write_bytes(b"\x00" * 10_000 + b"\nok.jpg\n")
    with pytest.raises(InputError, match="line 1 is longer than 4096 characters"):
        read_manifest(tmp_path / "binary.txt")
    longest = "a" * 4092 + ".jpg"                          # a path as long as Linux allows is still one
    (tmp_path / "long.txt").write_text(longest + "\r\n")
    assert read_manifest(tmp_path / "long.txt") == [str(tmp_path / longest)]


def test_photo_chunks_change_only_where_a_photo_changes(tmp_path):
    from emolens.batch.inputs import BatchInput

    photos = [BatchInput(f"/p/{i:04d}.jpg", "photo", 10, 1) for i in range(300)]
    before = photo_chunks(photos, 16)
    assert 8 <= len(before) <= 40 and sum(map(len, before)) == 300
    extra = photos[:150] + [BatchInput("/p/0149b.jpg", "photo", 10, 1)] + photos[150:]
    after = photo_chunks(extra, 16)
    changed = [c for c in after if [p.path for p in c] not in [[p.path for p in b] for b in before]]
    assert len(changed) == 1 and "/p/0149b.jpg" in [p.path for p in changed[0]]
    keys = {u.key for u in plan_units(photos, "options", 16)}
    touched = photos[:10] + [BatchInput(photos[10].path, "photo", 10, 2)] + photos[11:]
    assert len(keys - {u.key for u in plan_units(touched, "options", 16)}) == 1      # one chunk redone
    assert not keys & {u.key for u in plan_units(photos, "other options", 16)}       # an option: all redone


def test_stitching_never_joins_two_persons_seen_on_one_frame():
    """A segment's two local persons, alike but on one frame together, stay two global persons,
    as one run of the tracker keeps them (the segment's rows say which persons met)."""
    import numpy as np

    from emolens.batch.stitching import VideoStitcher

    d = np.zeros(128)
    first = {"persons": {"1": [d.tolist(), 1]}, "track_person": {"1": 1}}
    second = {"persons": {"1": [(d + 0.001).tolist(), 1], "2": [(d + 0.002).tolist(), 1]},
              "track_person": {"1": 1, "2": 2}}
    for rows, expected in (([{"frame": 50, "person": 1}, {"frame": 50, "person": 2}], {1: 1, 2: 2}),
                           ([{"frame": 50, "person": 1}, {"frame": 51, "person": 2}], {1: 1, 2: 1})):
        stitcher = VideoStitcher("v.mp4", "m", fps=25.0, half_life=0.3, max_missed=5)
        assert stitcher._person_ids(first, {1: 1}, [{"frame": 0, "person": 1}]) == {1: 1}
        assert stitcher._person_ids(second, {1: 2, 2: 3}, rows) == expected



def test_same_person_is_an_option_of_the_rows_without_changing_older_keys():
    import json
    from dataclasses import asdict

    from emolens import __version__
    from emolens.batch.settings import AnalysisOptions
    from emolens.options import OptionError
    from emolens.people.persons import SAME_PERSON

    default, loose = AnalysisOptions(), AnalysisOptions(same_person=0.6)
    assert default.same_person == SAME_PERSON
    assert default.key() != loose.key(), "another distance gives other person ids: the rows are redone"
    assert loose.tracking_kwargs()["same_person"] == 0.6
    # The key as computed before the option existed: a batch resumed after the upgrade is not redone.
    before = {k: v for k, v in asdict(default).items() if k not in ("model", "same_person")}
    before["emolens"] = __version__
    assert default.key() == hashlib.blake2b(json.dumps(before, sort_keys=True).encode(), digest_size=8).hexdigest()
    with pytest.raises(OptionError, match="same_person must be a finite number from 0.2 to 1"):
        AnalysisOptions(same_person=3.0).resolved()
