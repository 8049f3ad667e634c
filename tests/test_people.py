"""Unit tests of emolens.people: shot cuts, head pose and landmark fit, person descriptors."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from emolens.people.persons import SAME_PERSON, FaceDescriber, PersonRegistry, group_faces
from emolens.people.pose import head_pose, is_frontal, landmark_fit
from emolens.people.shots import ShotDetector, detect_shots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(ROOT, "examples", "astronaut.jpg")


def grace_hopper() -> np.ndarray:
    import matplotlib

    return cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))


@pytest.fixture(scope="module")
def recognizer():
    from emolens import Recognizer

    return Recognizer(threads=1)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.imread(ASTRONAUT)


# ---------------------------------------------------------------- shots

def _frames(first: np.ndarray, second: np.ndarray, n: int = 40, cut: int = 20, fps: float = 25.0):
    """A moving crop of ``first`` (a slow pan with brightness flicker), then of ``second`` from ``cut`` on."""
    out = []
    for i in range(n):
        src = first if i < cut else second
        x = 2 * (i % 20)
        frame = cv2.resize(src[20:420, x:x + 400], (320, 240))
        out.append((i, i / fps, cv2.add(frame, np.full_like(frame, i % 3))))
    return out


@pytest.mark.parametrize("method", ["content", "hash"])
def test_shot_detector_finds_the_cut_and_nothing_else(astronaut, method):
    frames = _frames(astronaut, grace_hopper())
    changes = detect_shots(frames, method=method)
    assert [c.index for c in changes] == [20]
    assert changes[0].shot == 1 and changes[0].timestamp == pytest.approx(20 / 25)


def test_shot_detector_off_and_min_shot_length(astronaut):
    frames = _frames(astronaut, grace_hopper())
    assert detect_shots(frames, method="off") == []
    # Three cuts 0.12 s apart (a flash): only the first counts with a 0.4 s minimum shot.
    hopper = grace_hopper()
    flashes = [(i, i / 25, cv2.resize((astronaut if i in (0, 1, 2, 4, 6, 8, 9, 10) else hopper)[:400, :400], (160, 160)))
               for i in range(11)]
    assert [c.index for c in detect_shots(flashes, min_shot_seconds=0.4)] == [3]
    assert len(detect_shots(flashes, min_shot_seconds=0.0)) >= 4


def test_a_reported_cut_between_matching_thumbnails_is_not_a_cut(astronaut, monkeypatch):
    """The confirmation step: whatever the detector reports, two frames whose thumbnails correlate
    (the same picture, darker and lower in contrast) are one shot; another picture is a cut."""
    from emolens.people.shots import correlation, thumbnail

    dim = cv2.convertScaleAbs(astronaut, alpha=0.6, beta=10)
    small = ShotDetector().small
    assert correlation(thumbnail(small(astronaut)), thumbnail(small(dim))) > 0.99
    hopper = cv2.resize(grace_hopper(), (astronaut.shape[1], astronaut.shape[0]))
    assert correlation(thumbnail(small(astronaut)), thumbnail(small(hopper))) < 0.89
    for confirm, expected in ((0.89, [False, False, True]), (None, [False, True, True])):
        det = ShotDetector(confirm=confirm, min_shot_seconds=0)
        monkeypatch.setattr(det._detector, "process_frame", lambda tc, image: [tc])   # "a cut" on every frame
        assert [det.update(f, i, i / 25) for i, f in enumerate((astronaut, dim, hopper))] == expected


def test_with_skipped_frames_a_cut_needs_a_low_step_somewhere_in_the_chain(astronaut, monkeypatch):
    """--every N: a pan that moves the picture far between two analysed frames is no cut when the
    skipped frames' thumbnails show it moving step by step; a real cut among them still is."""
    from emolens.people.shots import chain_correlation, thumbnail

    def view(x: int, src=astronaut) -> np.ndarray:
        return cv2.resize(src[20:420, x:x + 400], (320, 240))

    pan = [view(x) for x in range(0, 110, 11)]                     # 10 frames, 11 px apart
    hopper = grace_hopper()
    steps = [thumbnail(f) for f in pan[1:-1]]
    assert chain_correlation([thumbnail(pan[0]), *steps, thumbnail(pan[-1])]) > 0.89
    with_cut = [thumbnail(f) for f in pan[1:5]] + [thumbnail(view(0, hopper)), thumbnail(view(10, hopper))]
    assert chain_correlation([thumbnail(pan[0]), *with_cut, thumbnail(view(20, hopper))]) < 0.89

    det = ShotDetector(min_shot_seconds=0)
    monkeypatch.setattr(det._detector, "process_frame", lambda tc, image: [tc])   # "a cut" on every frame
    assert det.update(pan[0], 0, 0.0) is False
    assert det.update(pan[-1], 9, 0.36) is True                   # the two frames alone look like a cut
    det = ShotDetector(min_shot_seconds=0)
    monkeypatch.setattr(det._detector, "process_frame", lambda tc, image: [tc])
    det.update(pan[0], 0, 0.0)
    assert det.update(pan[-1], 9, 0.36, between=steps) is False   # the chain shows a pan
    assert det.update(view(20, hopper), 19, 0.76, between=with_cut[4:]) is True


def test_a_video_read_every_nth_frame_carries_thumbnails_of_every_second_skipped_frame(tmp_path, astronaut):
    from emolens.people.shots import correlation, thumbnail
    from emolens.video.sources import VideoFile

    path = tmp_path / "pan.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    pan = [cv2.resize(astronaut[20:420, x:x + 400], (320, 240)) for x in range(0, 100, 4)]   # 25 frames
    for frame in pan:
        writer.write(frame)
    writer.release()
    for every, between in ((1, [0] * 25), (3, [0] + [1] * 8), (10, [0, 4, 4])):
        with VideoFile(path, every=every, prefetch=0) as source:
            frames = list(source)
        assert [len(f.between) for f in frames] == between, every
    # every 10: frame 10 carries frames 2, 4, 6 and 8
    assert [f.index for f in frames] == [0, 10, 20]
    assert all(correlation(t, thumbnail(pan[k])) > 0.97 for t, k in zip(frames[1].between, (2, 4, 6, 8)))


def test_shot_detector_rejects_bad_settings():
    with pytest.raises(ValueError, match="confirm"):
        ShotDetector(confirm=1.5)
    with pytest.raises(ValueError, match="unknown shot detector"):
        ShotDetector("magic")
    with pytest.raises(ValueError, match="min_shot_seconds"):
        ShotDetector(min_shot_seconds=float("nan"))


def test_shot_detector_takes_grey_frames_and_backward_clocks(astronaut):
    det = ShotDetector()
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert det.update(grey, 0, 1.0) is False
    assert det.update(grey, 1, 0.5) is False      # the clock stepped back: no crash, no cut
    assert det.shot == 0


# ---------------------------------------------------------------- pose

def test_head_pose_of_a_frontal_face_and_its_mirror(recognizer, astronaut):
    face = recognizer.analyze(astronaut)[0]
    size = (astronaut.shape[1], astronaut.shape[0])
    pose = head_pose(face.landmarks, size)
    mirrored = cv2.flip(astronaut, 1)
    pose_m = head_pose(recognizer.analyze(mirrored)[0].landmarks, size)
    assert abs(pose.yaw) < 20 and abs(pose.roll) < 10
    assert np.sign(pose.yaw) == -np.sign(pose_m.yaw)
    assert landmark_fit(face.landmarks, face.box, pose)


def test_head_pose_roll_follows_the_picture(recognizer, astronaut):
    h, w = astronaut.shape[:2]
    rolls = []
    for angle in (0, 20):
        turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h))
        rolls.append(head_pose(recognizer.analyze(turned)[0].landmarks, (w, h)).roll)
    # OpenCV's positive angle turns the picture anticlockwise: the head's clockwise roll falls by ~20.
    assert rolls[0] - rolls[1] == pytest.approx(20, abs=5)


def test_landmark_fit_refuses_templates_that_do_not_fit(recognizer, astronaut):
    face = recognizer.analyze(astronaut)[0]
    lm, box = face.landmarks.copy(), face.box
    centre = lm.mean(0)
    squashed = centre + (lm - centre) * np.array([0.25, 1.0])       # a profile's narrow eye span
    shifted = lm + np.array([box[2] * 0.8, 0])                      # beside the detector's box
    tiny = centre + (lm - centre) * 0.3                             # a fraction of the box
    assert landmark_fit(lm, box)
    assert not landmark_fit(squashed, box)
    assert not landmark_fit(shifted, box)
    assert not landmark_fit(tiny, box)
    assert not landmark_fit(None, box)
    assert head_pose(np.full((68, 2), np.nan), (100, 100)) is None


def test_frontal_flag():
    from emolens.people.pose import HeadPose

    assert is_frontal(HeadPose(10, 5, 0))
    assert not is_frontal(HeadPose(50, 0, 0))
    assert is_frontal(HeadPose(0, 40, 0))                 # pitch is not used by default
    assert not is_frontal(HeadPose(0, 40, 0), max_pitch=25)
    assert not is_frontal(None)


# ---------------------------------------------------------------- persons

def test_descriptors_tell_two_people_apart_and_group_them(recognizer, astronaut):
    describe = FaceDescriber()
    hopper = grace_hopper()
    views = [astronaut, hopper, cv2.resize(astronaut, None, fx=0.6, fy=0.6), cv2.flip(hopper, 1)]
    descriptors = [describe(v, recognizer.analyze(v)[0].landmarks) for v in views]
    assert all(d.shape == (128,) for d in descriptors)
    same = [np.linalg.norm(descriptors[0] - descriptors[2]), np.linalg.norm(descriptors[1] - descriptors[3])]
    other = np.linalg.norm(descriptors[0] - descriptors[1])
    assert max(same) < SAME_PERSON < other
    assert group_faces(descriptors) == [1, 2, 1, 2]
    assert group_faces([descriptors[0], None, descriptors[2]]) == [1, 2, 1]


def test_person_registry_refine_and_errors():
    reg = PersonRegistry(0.5)
    a = np.zeros(128)
    b = np.zeros(128)
    b[0] = 1.0
    assert reg.assign(a) == 1
    assert reg.assign(b) == 2
    reg.refine(1, a + 0.01)
    assert reg.persons[0].count == 2
    lone = reg.new_person()
    assert reg.assign(np.zeros(128) + 0.001) == 1 and lone == 3
    with pytest.raises(ValueError):
        PersonRegistry(0)


def test_a_person_excluded_is_never_joined():
    reg = PersonRegistry(0.5)
    a = np.zeros(128)
    assert reg.assign(a) == 1
    assert reg.assign(a + 0.001, exclude={1}) == 2        # on screen with person 1: someone else
    assert reg.assign(a + 0.002, exclude={2}) == 1
    assert reg.assign(a + 0.003, exclude={1, 2}) == 3


def test_move_takes_a_tracks_descriptors_out_of_a_person():
    reg = PersonRegistry(0.5)
    a, b = np.zeros(128), np.full(128, 0.02)                   # 0.23 apart: one person by distance
    reg.assign(a)
    reg.refine(1, a)
    reg.refine(1, b)
    reg.refine(1, b)
    assert reg.move(1, 2 * b, 2, exclude={1}) == 2             # seen on one frame with person 1
    assert reg.persons[0].count == 2 and np.allclose(reg.persons[0].mean, a)
    assert reg.persons[1].count == 2 and np.allclose(reg.persons[1].mean, b)
    assert reg.move(2, b, 1) == 1                              # never back into its own: the nearest other
    assert reg.persons[0].count == 3 and reg.persons[1].count == 1
    assert reg.move(1, b, 1, exclude={2}) == 3                 # the other is excluded: a new person


def test_tracks_named_apart_that_meet_on_one_frame_are_separated(recognizer):
    """Two tracks named while one of them was unseen can share a person; on the frame where both
    are seen the older keeps it and the other moves out (to a new person here)."""
    from emolens.people.persons import TrackIdentity
    from emolens.video.tracking import FaceTracker, Track

    tracker = FaceTracker(recognizer, shots="off", persons=True)
    d = np.zeros(128)
    pid = tracker.persons.assign(d)
    tracks = []
    for tid in (2, 1):
        ident = TrackIdentity(person=pid, descriptors=1, own=d.copy())
        tracks.append(Track(tid, (0, 0, 50, 50), 0.3, identity=ident))
        if tid == 1:
            tracker.persons.refine(pid, d)
    tracker._separate(tracks)
    older, newer = sorted(tracks, key=lambda t: t.id)
    assert older.identity.person == pid and newer.identity.person not in (None, pid)
    assert tracker.persons.persons[pid - 1].count == 1
    tracker._separate(tracks)                                   # apart now: nothing moves
    assert (older.identity.person, newer.identity.person) == (pid, newer.identity.person)


def test_two_faces_on_screen_together_are_two_persons_even_when_alike(recognizer, astronaut, tmp_path):
    """Twins, or one photo twice: descriptors closer than the same-person distance, yet two faces
    seen on the same frame are two people."""
    from emolens.testing.clips import Actor, Shot, write_edited_clip
    from emolens.video.sources import VideoFile
    from emolens.video.tracking import FaceTracker

    x, y, w, h = recognizer.analyze(astronaut)[0].box
    crop = astronaut[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2]
    path = tmp_path / "twins.mp4"
    write_edited_clip(path, [Shot([Actor(crop, [(0.0, 170, 240, 180), (2.5, 175, 240, 180)]),
                                   Actor(crop, [(0.0, 470, 240, 180), (2.5, 465, 240, 180)])], 2.5, seed=4)],
                      (640, 480), 20)
    tracker = FaceTracker(recognizer, shots="off", persons=True)
    with VideoFile(path, prefetch=0) as source:
        rows = [(f.track_id, f.person) for r in map(tracker.process, source) for f in r.faces]
    assert len({t for t, _ in rows}) == 2 and tracker.descriptors >= 2, rows
    assert len({p for _, p in rows if p is not None}) == 2, rows


def test_track_identity_names_first_then_checks_only_when_the_look_drifts():
    from emolens.people.persons import DESCRIPTORS_PER_TRACK, IDENTITY_DRIFT, IDENTITY_MIN_GAP, TrackIdentity

    ident = TrackIdentity()
    assert ident.wants(0.0) and ident.distance(np.zeros(128)) == float("inf")
    for k in range(DESCRIPTORS_PER_TRACK):
        d = np.full(128, 0.01 * k)
        ident.described(d, None, float(k), ident.distance(d))
        assert not ident.wants(k + 0.5)                         # naming descriptors come 1 s apart
    assert not ident.naming
    assert ident.distance(np.full(128, 0.01)) == pytest.approx(0.0)   # the mean of 0, 0.01, 0.02
    later = DESCRIPTORS_PER_TRACK + 5.0
    assert not ident.wants(later)                               # named, and the look unchanged: no cost
    assert not ident.wants(later, look=IDENTITY_DRIFT + 0.05)
    assert ident.wants(later, look=IDENTITY_DRIFT - 0.05)       # the face looks different: check it
    ident.described(np.ones(128), None, later, ident.distance(np.ones(128)))
    assert not ident.wants(later + IDENTITY_MIN_GAP / 2, look=0.0)   # at most every IDENTITY_MIN_GAP
    assert ident.distance(np.full(128, 0.01)) == pytest.approx(0.0)  # checks do not move the track's own mean


def test_a_doubted_track_is_described_again_after_the_gap_whatever_its_look():
    from emolens.people.persons import IDENTITY_MIN_GAP, TrackIdentity

    ident = TrackIdentity()
    ident.described(np.ones(128), None, 0.0, ident.distance(np.ones(128)))
    ident.doubt(1.0)                               # while naming: the mean of its own is unchanged
    assert ident.doubted and ident.naming and ident.descriptors == 1
    assert ident.distance(np.ones(128)) == 0.0
    ident.described(np.ones(128), None, 1.5, 0.0)
    ident.described(np.ones(128), None, 2.5, 0.0)
    assert not ident.naming and ident.distance(np.ones(128)) == 0.0
    ident.doubt(10.0)
    assert ident.doubted and ident.descriptors == 3
    assert not ident.wants(10.0 + IDENTITY_MIN_GAP / 2)
    assert ident.wants(10.0 + 1.5 * IDENTITY_MIN_GAP, look=None)     # confirm or clear, even if the look is back
    ident.described(np.ones(128), None, 11.0, 0.0)
    assert not ident.doubted and not ident.wants(12.0, look=None)


@pytest.mark.parametrize("far, far_calls, splits", [
    (0.6, (), 0), (0.6, (5,), 0), (0.6, (5, 7), 0), (0.6, range(5, 999), 1), (0.6, (5, 6), 2),
    (0.7, (5,), 2), (0.7, range(5, 999), 1)])
def test_one_far_descriptor_does_not_split_a_track_two_in_a_row_do(recognizer, astronaut, tmp_path, monkeypatch,
                                                                    far, far_calls, splits):
    """A face caught badly (a hand over it, a blur) can give one descriptor far from its own: the
    track is split only when the next check, IDENTITY_MIN_GAP later, is far too. (5, 6): two far
    descriptors in a row split the track, the new one is named after the far face, and the first
    face coming back two checks later takes it over again. 0.7 (over IDENTITY_SPLIT_AT_ONCE, as a
    hard cut to another person): one far descriptor splits at once, and so does the face coming back."""
    import emolens.people.persons as persons_module
    from emolens.testing.clips import Actor, Shot, write_edited_clip
    from emolens.video.sources import VideoFile
    from emolens.video.tracking import FaceTracker

    x, y, w, h = recognizer.analyze(astronaut)[0].box
    crop = astronaut[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2]
    path = tmp_path / "still.mp4"
    write_edited_clip(path, [Shot([Actor(crop, [(0.0, 320, 240, 200), (4.0, 330, 240, 200)])], 4.0, seed=3)],
                      (640, 480), 25)
    monkeypatch.setattr(persons_module, "IDENTITY_DRIFT", 1.01)    # every look drifts: a check every gap
    calls = []

    def describe(image, landmarks):
        calls.append(len(calls))
        return np.full(128, far / np.sqrt(128) if len(calls) - 1 in far_calls else 0.0) + 1e-4 * len(calls)

    tracker = FaceTracker(recognizer, shots="off", persons=True)
    tracker._describer = describe
    with VideoFile(path, prefetch=0) as source:
        rows = [(r.index, f.track_id) for r in map(tracker.process, source) for f in r.faces]
    assert len(calls) > 8
    assert tracker.splits == splits and len({t for _, t in rows}) == 1 + splits, rows


def test_a_face_that_takes_over_a_track_without_a_cut_starts_a_new_track_and_person(recognizer, astronaut, tmp_path):
    """Another face in the same place on the same set (no cut the shot detector could see: here it is
    off): the track is split at the change, so no track and no person holds two people."""
    from emolens.testing.clips import Actor, Shot, write_edited_clip
    from emolens.video.sources import VideoFile
    from emolens.video.tracking import FaceTracker

    def face_crop(image):
        x, y, w, h = recognizer.analyze(image)[0].box
        return image[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2]

    # the change at 3.2 s, after the track's naming descriptors (0, 1 and 2 s): only the drifting look shows it;
    # by a hard cut, or by a 1 s cross-dissolve (noticed within 0.6 s of its end)
    for dissolve, settle in ((0.0, 6), (1.0, 25 + 15)):
        path = tmp_path / f"swap-{dissolve}.mp4"
        shots = [Shot([Actor(face_crop(photo), [(0.0, 320, 240, 200), (3.2, 330, 240, 200)])], 3.2, seed=3,
                      dissolve=dissolve if k else 0.0) for k, photo in enumerate((astronaut, grace_hopper()))]
        change = write_edited_clip(path, shots, (640, 480), 25).cuts[0]
        for persons, tracks_expected in ((True, 2), (False, 1)):
            tracker = FaceTracker(recognizer, shots="off", persons=persons)
            with VideoFile(path, prefetch=0) as source:
                rows = [(r.index, f.track_id, f.person) for r in map(tracker.process, source) for f in r.faces]
            assert len({t for _, t, _ in rows}) == tracks_expected, (dissolve, rows)
            if persons:
                before = {(t, p) for i, t, p in rows if i < change}
                after = {(t, p) for i, t, p in rows if i > change + settle}
                assert len(before) == 1 and len(after) == 1 and before.isdisjoint(after), (dissolve, rows)
                assert {p for _, p in before} != {p for _, p in after} and tracker.splits == 1


def test_association_refuses_a_face_that_grew_too_fast():
    from emolens.video.tracking import greedy_match

    track = (100, 100, 100, 100)
    assert greedy_match([track], [(100, 100, 180, 180)]) == []        # IoU 0.31, but the side grew 1.8x
    assert greedy_match([track], [(100, 100, 140, 140)]) == [(0, 0)]  # 1.4x: a face coming closer
    assert greedy_match([track], [(130, 100, 100, 100)]) == [(0, 0)]  # moved by 0.3 of its width


def _face(person=1):
    from emolens.emotions import EMOTIONS
    from emolens.video.tracking import TrackedFace

    scores = {e: 1 / 7 for e in EMOTIONS}
    return TrackedFace(track_id=1, box=(0, 0, 50, 50), landmarks=None, emotion="neutral", scores=scores,
                       intensity=scores, raw_emotion="neutral", raw_scores=scores, raw_intensity=scores,
                       aligned=False, detected=True, person=person)


def test_time_on_screen_follows_the_timestamps_of_a_variable_frame_rate():
    """60 frames at 30 fps then 30 at 10 fps: 2 s + 3 s on screen, whatever the mean frame time;
    a face missed for a while (a gap of over 4 of its shortest steps) is not on screen meanwhile."""
    from emolens.video.summary import PersonStats, TrackStats

    track = TrackStats(1)
    times = [i / 30 for i in range(60)] + [2.0 + i / 10 for i in range(30)]
    for i, t in enumerate(times):
        track.add(_face(), i, t)
    assert track.seconds_on_screen(frame_seconds=1.0) == pytest.approx(2.0 + 2.9 + 1 / 30, abs=1e-6)
    missed = TrackStats(2)
    for i, t in enumerate([0.0, 0.1, 0.2, 5.0, 5.1]):        # missed between 0.2 and 5.0 s
        missed.add(_face(), i, t)
    assert missed.seconds_on_screen(frame_seconds=1.0) == pytest.approx(0.5)
    alone = TrackStats(3)
    alone.add(_face(), 0, 1.0)
    assert alone.seconds_on_screen(frame_seconds=0.04) == pytest.approx(0.04)
    person = PersonStats(1, identified=True)
    for t in (track, missed, alone):
        person.add_track(t)
    d = person.to_dict(frame_seconds=0.04)
    assert d["tracks"] == [1, 2, 3] and d["seconds_on_screen"] == pytest.approx(2.0 + 2.9 + 1 / 30 + 0.5 + 0.04, abs=1e-3)
