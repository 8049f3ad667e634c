"""Shot cuts and persons on edited clips made from real faces.

Builds ``--clips`` edited clips (640x480, 30 fps, seeded): each has 6 shots of 2-4 s with
1-3 of the 4 people of faces-multi/bald_guys.jpg (a different photo of a person in each
shot), some shots panning, dim, with the exposure ramping, or with photographers' flashes,
and consecutive shots sometimes on the same background (only the people change). Then:

1. Cut detection alone, per PySceneDetect detector and threshold: precision, recall and F1
   of the cuts found (a cut counts when found within one analysed frame), every frame,
   ``--every 3`` and ``--every 10``, frames read as ``emolens video`` reads them (with the
   skipped frames' thumbnails); cost per frame.
   Then the same on the filmed clips of ``emolens.testing.footage`` (one true cut, three
   single shots), each detector with its thumbnail confirmation (``confirm``) off, on the two
   analysed frames only ("pair"), and on the chain through the skipped frames ("chain", the default).
2. The whole pipeline (``Recognizer.stream`` with its defaults): tracks that cross a cut
   (must be 0), persons found against people shown, person purity (each face row's person
   against the actor at that place), and the time per frame with descriptors. Then
   "takeovers": one person after another in the same place on one set, by hard cuts and
   dissolves the cut detector cannot see, with the track identity check on and off; and how
   far the identity checks lie from the track's own descriptors (the same face on the filmed and
   edited clips; another person just after a hard cut).
   Last, the filmed clips (one person each) every frame and every 10th: shots, tracks, persons
   and descriptors.

    python benchmarks/shot_cuts.py [--clips 4] [--out /tmp/emolens-cuts] [--faces-multi PATH]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, pin_threads  # noqa: E402
from persons import FACES_MULTI, labelled_face_crops  # noqa: E402

SIZE = (640, 480)
FPS = 30.0


def make_clips(crops, n_clips: int, out: Path, seed: int = 0):
    from emolens.testing.clips import Actor, Shot, write_edited_clip

    rng = random.Random(seed)
    by_person = defaultdict(list)
    for image, label in crops:
        by_person[label].append(image)
    people = sorted(by_person)
    clips = []
    for c in range(n_clips):
        shots, background = [], rng.randrange(1000)
        for k in range(6):
            seconds = rng.choice([2.0, 3.0, 4.0])
            cast = rng.sample(people, rng.choice([1, 1, 2, 3]))
            side = {1: 240, 2: 200, 3: 170}[len(cast)]
            actors = []
            for i, who in enumerate(cast):
                cx = SIZE[0] * (i + 1) / (len(cast) + 1)
                cy = SIZE[1] * 0.5 + rng.uniform(-30, 30)
                drift = rng.uniform(-40, 40)
                actors.append(Actor(rng.choice(by_person[who]), [(0.0, cx, cy, side), (seconds, cx + drift, cy, side * rng.uniform(0.9, 1.1))]))
            if rng.random() > 0.3:
                background = rng.randrange(1000)      # else: same set, other people (shot / reverse shot)
            look = rng.choice(["plain", "plain", "pan", "dim", "ramp", "flash"])
            shots.append(Shot(actors, seconds, seed=background, people=cast,
                              pan=rng.choice([-90.0, 90.0]) if look == "pan" else 0.0,
                              brightness=0.45 if look == "dim" else 1.0,
                              ramp=0.5 if look == "ramp" else None,
                              flash=[seconds / 2] if look == "flash" else ()))
        info = write_edited_clip(out / f"cuts{c}.mp4", shots, SIZE, FPS)
        clips.append((info, shots))
    return clips


def decoded_frames(path: Path, every: int = 1):
    """(index, seconds, BGR frame, thumbnails of the skipped frames) of every ``every``-th frame, read as
    ``emolens video --every`` reads them (``VideoFile``: the file's own timestamps, ``Frame.between``)."""
    from emolens.video.sources import VideoFile

    with VideoFile(path, every=every, prefetch=0) as source:
        for frame in source:
            yield frame.index, frame.timestamp, frame.image, frame.between


def cut_scores(found: list[int], truth: list[int], tolerance: int) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) matching each true cut at most once."""
    left = list(truth)
    tp = 0
    for f in found:
        near = [t for t in left if abs(f - t) <= tolerance]
        if near:
            left.remove(near[0])
            tp += 1
    return tp, len(found) - tp, len(left)


def truth_person(shots, info, index: int, box) -> str | None:
    """The person whose actor is nearest the box centre at frame ``index`` (None: no actor there)."""
    t = index / FPS
    k = max(i for i, s in enumerate(info.shot_starts) if s <= t + 1e-9)
    shot, local = shots[k], t - info.shot_starts[k]
    x, y, w, h = box
    best, who = None, None
    for actor, person in zip(shot.actors, shot.people):
        pose = actor.pose(local)
        if pose is None:
            continue
        d = np.hypot(x + w / 2 - pose[0], y + h / 2 - pose[1])
        if d < pose[2] / 2 and (best is None or d < best):
            best, who = d, person
    return who


# Filmed clips (emolens.testing.footage) and their true cuts: face_then_cartoon's cut is a
# two-frame transition (frames 72 and 73: either counts); the others are single shots.
FILMED_CUTS = {"carphone": [], "single_face": [], "sad_to_laughing": [], "face_then_cartoon": [72]}


def filmed_clips(grid) -> None:
    """False and missed cuts on filmed footage, each detector with its confirmation on and off."""
    from emolens.people.shots import DEFAULT_CONFIRM, ShotDetector
    from emolens.testing.footage import available_footage

    clips = {name: path for name, path in available_footage().items() if name in FILMED_CUTS}
    if not clips:
        print("\nno filmed clips: run `python -m emolens.testing.footage fetch`")
        return
    frames_total = 0
    rows = []
    for every in (1, 3, 10):
        frames = {name: list(decoded_frames(path, every)) for name, path in clips.items()}
        frames_total = max(frames_total, sum(len(v) for v in frames.values()))
        # confirmation off; on the two analysed frames only; on the chain through the skipped frames (the default)
        confirms = [("off", None, False), ("pair", DEFAULT_CONFIRM, False)] + \
            ([("chain", DEFAULT_CONFIRM, True)] if every > 1 else [])
        for method, threshold in grid:
            for label, confirm, chain in confirms:
                found = false = missed = 0
                for name, decoded in frames.items():
                    det = ShotDetector(method, threshold, confirm=confirm)
                    for index, ts, image, between in decoded:
                        det.update(image, index, ts, between if chain else ())
                    hits = [c.index for c in det.changes]
                    for cut in FILMED_CUTS[name]:
                        near = [h for h in hits if cut - every <= h <= cut + 1 + every]
                        found += bool(near)
                        missed += not near
                        hits = [h for h in hits if h not in near[:1]]
                    false += len(hits)
                rows.append([every, method, threshold, label if confirm is None else f"{label} {confirm}", found,
                             false, missed])
    print(f"\nfilmed clips ({', '.join(clips)}; {frames_total} frames, "
          f"{sum(len(FILMED_CUTS[n]) for n in clips)} cut)")
    print(markdown_table(["every", "detector", "threshold", "confirm", "cuts found", "false cuts", "missed"], rows))


def takeovers(crops, out: Path, rec) -> None:
    """Another face taking a track over where the shot detector sees nothing: 4 shots on one set, one
    person each, in the same place (offset 0) or 60 px to alternate sides, joined by hard cuts or
    cross-dissolves. Counts the tracks and persons that hold two people (face rows inside a dissolve,
    where both are on screen, are not counted), with the track identity check (session 20) and without
    it (every descriptor taken as the track's person, as before)."""
    import emolens.people.persons as persons_module
    from emolens.testing.clips import Actor, Shot, write_edited_clip

    by_person = defaultdict(list)
    for image, label in crops:
        by_person[label].append(image)
    people = sorted(by_person)[:4]
    rows = []
    for dissolve in (0.0, 0.5, 1.0):
        for offset in (0, 60):
            shots = [Shot([Actor(by_person[who][0], [(0.0, 320 + (offset if k % 2 else -offset), 240, 220),
                                                    (3.0, 330 + (offset if k % 2 else -offset), 240, 220)])],
                          3.0, seed=5, people=[who], dissolve=dissolve if k else 0.0) for k, who in enumerate(people)]
            info = write_edited_clip(out / f"takeover_{dissolve}_{offset}.mp4", shots, SIZE, FPS)
            for check in (False, True):
                saved = persons_module.TrackIdentity.distance
                if not check:
                    persons_module.TrackIdentity.distance = lambda self, d: 0.0 if self.own is not None else float("inf")
                try:
                    tracks, persons, cuts = defaultdict(Counter), defaultdict(Counter), 0
                    for result in rec.stream(str(info.path)):
                        t = result.index / FPS
                        k = max(i for i, start in enumerate(info.shot_starts) if start <= t + 1e-9)
                        cuts += result.cut
                        if k and t - info.shot_starts[k] < dissolve:
                            continue
                        for face in result.faces:
                            tracks[face.track_id][people[k]] += 1
                            persons[face.person][people[k]] += 1
                finally:
                    persons_module.TrackIdentity.distance = saved
                mixed = [c for c in tracks.values() if len(c) > 1]
                rows.append([f"{dissolve:.1f} s" if dissolve else "hard cut", offset, "on" if check else "off", cuts,
                             len(tracks), len(mixed), sum(sum(c.values()) - max(c.values()) for c in mixed),
                             len(persons), sum(len(c) > 1 for c in persons.values())])
    print("\ntakeovers: 4 people, one per shot, one set (shots of 3 s, 90 frames)")
    print(markdown_table(["transition", "offset px", "identity check", "cuts seen", "tracks", "tracks with 2+ people",
                          "face rows of the minority person", "persons", "persons with 2+ people"], rows))


def identity_distances(rec, edited: list[Path], takeover: Path) -> None:
    """How far a track's identity checks lie from its own descriptors: on the filmed clips (every frame
    and every 10th) and the edited clips, where every check is of the same face, and on the hard-cut
    takeover clip (offset 0), where the first check after each cut is another person's face."""
    import emolens.people.persons as persons_module
    from emolens.testing.footage import available_footage

    checks: list[tuple[float, float]] = []          # (time of the frame before, distance)
    clock = [0.0]
    plain = persons_module.TrackIdentity.distance

    def recorded(self, descriptor):
        d = plain(self, descriptor)
        if self.own is not None:
            checks.append((clock[0], d))
        return d

    persons_module.TrackIdentity.distance = recorded
    try:
        same = []
        for path, every in [(p, e) for p in sorted(available_footage().values()) for e in (1, 10)] + \
                           [(p, 1) for p in edited]:
            checks.clear()
            for result in rec.stream(str(path), every=every):
                pass
            same += [d for _, d in checks]
        checks.clear()
        for result in rec.stream(str(takeover)):
            clock[0] = result.index / FPS
        after_cut = [next(d for t, d in checks if t >= start - 1 / FPS - 1e-6) for start in (3.0, 6.0, 9.0)]
    finally:
        persons_module.TrackIdentity.distance = plain
    print(f"\nidentity checks of the same face (filmed clips every 1st and 10th frame, edited clips): {len(same)}, "
          f"largest {max(same):.3f}, {sum(d >= 0.55 for d in same)} at 0.55+, {sum(d >= 0.65 for d in same)} at 0.65+")
    print("first check after each hard cut to another person (takeover, offset 0): "
          + ", ".join(f"{d:.3f}" for d in after_cut))


def skipped_thumbnail_cost(paths: list[Path], every: int = 10, rec=None) -> None:
    """What the skipped frames' thumbnails cost at ``--every``: decoding alone (``VideoFile``), and
    with ``rec`` the whole pipeline (``Recognizer.stream``), per analysed frame, with and without them."""
    import emolens.video.sources as sources

    rows = []
    stride = sources.BETWEEN_STRIDE
    try:
        for label, value in (("pair only (no thumbnails)", 10**9), (f"chain (every {stride}nd skipped frame)", stride)):
            sources.BETWEEN_STRIDE = value
            t0, n = time.perf_counter(), 0
            for path in paths:
                with sources.VideoFile(path, every=every, prefetch=0) as source:
                    n += sum(1 for _ in source)
            decode = (time.perf_counter() - t0) / n * 1000
            row = [label, n, f"{decode:.2f}"]
            if rec is not None:
                t0, m, cuts = time.perf_counter(), 0, 0
                for path in paths:
                    for result in rec.stream(str(path), every=every):
                        m, cuts = m + 1, cuts + result.cut
                row += [f"{(time.perf_counter() - t0) / m * 1000:.1f}", cuts]
            rows.append(row)
    finally:
        sources.BETWEEN_STRIDE = stride
    print(f"\n--every {every}: {', '.join(p.name for p in paths)}")
    print(markdown_table(["cut confirmation", "analysed frames", "decode ms per analysed frame"]
                         + (["pipeline ms per analysed frame", "cuts"] if rec is not None else []), rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("/tmp/emolens-cuts"))
    ap.add_argument("--faces-multi", type=Path, default=FACES_MULTI)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-pipeline", action="store_true", help="cut detection only")
    args = ap.parse_args()
    pin_threads(args.threads)
    from emolens.people.shots import ShotDetector

    picture = args.faces_multi / "images" / "bald_guys.jpg"
    if not picture.is_file():
        raise SystemExit(f"{picture} not found; pass --faces-multi PATH")
    crops = labelled_face_crops(picture)
    clips = make_clips(crops, args.clips, args.out)
    n_cuts = sum(len(info.cuts) for info, _ in clips)
    n_frames = sum(info.frames for info, _ in clips)
    print(f"{len(clips)} clips, {n_frames} frames, {n_cuts} cuts; shots: "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(
              "pan" if s.pan else "dim" if s.brightness < 1 else "ramp" if s.ramp else "flash" if s.flash else "plain"
              for _, shots in clips for s in shots).items())))

    grid = [("content", 12.0), ("content", 18.0), ("content", 27.0), ("content", 36.0), ("histogram", 0.1),
            ("histogram", 0.2), ("hash", 0.08), ("hash", 0.1), ("hash", 0.15), ("hash", 0.2), ("hash", 0.25), ("hash", 0.35), ("hash", 0.45)]
    rows = []
    for every in (1, 3, 10):
        frames = {info.path: list(decoded_frames(info.path, every)) for info, _ in clips}
        for method, threshold in grid:
            tp = fp = fn = fp_pair = 0
            spent = 0.0
            for info, _ in clips:
                det = ShotDetector(method, threshold)
                t0 = time.perf_counter()
                for index, ts, image, between in frames[info.path]:
                    det.update(image, index, ts, between)
                spent += time.perf_counter() - t0
                a, b, c = cut_scores([ch.index for ch in det.changes], info.cuts, every)
                tp, fp, fn = tp + a, fp + b, fn + c
                if every > 1:   # the confirmation on the two analysed frames only, as before the chain
                    pair = ShotDetector(method, threshold)
                    for index, ts, image, _ in frames[info.path]:
                        pair.update(image, index, ts)
                    fp_pair += cut_scores([ch.index for ch in pair.changes], info.cuts, every)[1]
            p = tp / max(tp + fp, 1)
            r = tp / max(tp + fn, 1)
            f1 = 2 * p * r / max(p + r, 1e-9)
            per_frame = spent / sum(len(v) for v in frames.values()) * 1000
            rows.append([every, method, threshold, tp, fp, fp_pair if every > 1 else "", fn, f"{p:.3f}", f"{r:.3f}",
                         f"{f1:.3f}", f"{per_frame:.2f}"])
    print(markdown_table(["every", "detector", "threshold", "cuts found", "false cuts", "false cuts, pair only",
                          "missed", "precision", "recall", "F1", "ms/frame"], rows))
    filmed_clips(grid)
    from emolens.testing.footage import available_footage

    cost_clips = [info.path for info, _ in clips] + [p for n, p in sorted(available_footage().items())
                                                    if n in FILMED_CUTS]
    if args.skip_pipeline:
        skipped_thumbnail_cost(cost_clips)
        return

    from emolens import Recognizer

    rec = Recognizer(threads=args.threads)
    skipped_thumbnail_cost(cost_clips, rec=rec)
    takeovers(crops, args.out, rec)
    identity_distances(rec, [info.path for info, _ in clips], args.out / "takeover_0.0_0.mp4")
    described = count_descriptors()
    rows = []
    for info, shots in clips:
        track_frames = defaultdict(list)
        person_truth = defaultdict(Counter)
        seconds, processed = [], 0
        described.clear()
        for result in rec.stream(str(info.path)):
            processed += 1
            seconds.append(result.seconds)
            for face in result.faces:
                track_frames[face.track_id].append(result.index)
                who = truth_person(shots, info, result.index, face.box)
                if face.person is not None and who is not None:
                    person_truth[face.person][who] += 1
        crossing = sum(1 for fr in track_frames.values() if any(min(fr) < c <= max(fr) for c in info.cuts))
        shown = {p for s in shots for p in s.people}
        rows_total = sum(sum(c.values()) for c in person_truth.values())
        purity = sum(max(c.values()) for c in person_truth.values()) / max(rows_total, 1)
        true_to_found = defaultdict(set)
        for pid, c in person_truth.items():
            true_to_found[c.most_common(1)[0][0]].add(pid)
        split = sum(len(v) - 1 for v in true_to_found.values())
        rows.append([info.path.name, info.frames, len(info.cuts), len(track_frames), crossing, len(shown),
                     len(person_truth), split, f"{purity:.3f}", len(described), f"{np.mean(seconds) * 1000:.1f}",
                     f"{np.percentile(seconds, 99) * 1000:.1f}"])
    print(markdown_table(["clip", "frames", "cuts", "tracks", "tracks crossing a cut", "people shown", "persons found",
                          "extra persons (a person split)", "person purity", "descriptors", "ms/frame mean",
                          "ms/frame p99"], rows))
    filmed_pipeline(rec, described)


def count_descriptors() -> list:
    """A list that grows by one for every face descriptor computed from now on (in this process)."""
    from emolens.people.persons import FaceDescriber

    described: list = []
    plain = FaceDescriber.describe_chips

    def counted(self, chips):
        described.extend([None] * len(chips))
        return plain(self, chips)

    FaceDescriber.describe_chips = counted
    return described


def filmed_pipeline(rec, described: list) -> None:
    """The filmed clips through the whole pipeline, every frame and every 10th: one person each, so
    tracks and persons above one are splits; the descriptors the identity checks cost."""
    from emolens.testing.footage import available_footage

    rows = []
    for name, path in sorted(available_footage().items()):
        for every in (1, 10):
            described.clear()
            frames, tracks, persons = 0, set(), set()
            for result in rec.stream(str(path), every=every):
                frames += 1
                tracks.update(f.track_id for f in result.faces)
                persons.update(f.person for f in result.faces)
            rows.append([name, every, frames, result.shot + 1, len(tracks), len(persons), len(described)])
    print("\nfilmed clips (one person each)")
    print(markdown_table(["clip", "every", "analysed frames", "shots", "tracks", "persons", "descriptors"], rows))


if __name__ == "__main__":
    main()
