"""``emolens predict``: pictures in, faces and emotions out (table, JSON Lines, annotated pictures).

Inputs are files, folders (searched recursively for pictures) and glob patterns, searched by
``emolens.file_search`` (hidden names skipped, symlinked folders not entered). Each input gives
one ``PhotoResult``; a bad file is reported and the batch goes on.

JSON Lines shape, one object per input::

    {"file": "photos/a.jpg",
     "error": null,                      # or "photos/a.jpg: truncated JPEG ...; re-download ..."
     "faces": [                          # [] when no face was found
       {"box": [x, y, w, h],             # ints, the file's pixels
        "emotion": "happy",              # top label, one of EMOTIONS
        "scores": {"angry": p, ...},     # 7 probabilities summing to 1
        "intensity": {"angry": v, ...},  # 7 values in 0..1
        "aligned": true,                 # false: face too small for landmarks, box crop used
        "landmarks": [[x, y], ...] | null,   # 68 points (iBUG order) or null
        "detection_score": s,            # the detector's confidence (scale depends on the detector)
        "pose": {"yaw": y, "pitch": p, "roll": r} | null,   # degrees; null: no landmarks that fit
        "frontal": true,                 # |yaw| <= 30: the answer can be trusted (emolens.people.pose)
        "person": 1 | null}]}            # only with --group-people: the same id for the same person
                                         # across the call's pictures (never two faces of one picture,
                                         # unless --collages); null: face too small or turned

With ``--group-people --summary-json FILE.json`` the per-person summary (the table the command
ends with) is written to FILE.json (``PeopleTally.to_dict``); stdout stays one line per input.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from emolens import options
from emolens.annotated_files import marked, written_by_emolens
from emolens.file_search import GLOB_CHARS, folder_files, glob_files
from emolens.images import IMAGE_SUFFIXES, ImageError, read_image_scaled


@dataclass
class PhotoResult:
    file: str
    faces: list = field(default_factory=list)   # list[emolens.recognize.Face], in the file's pixels
    error: str | None = None
    annotated: str | None = None
    persons: list | None = None                 # with group_people: a person id (or None) per face

    def to_dict(self) -> dict:
        faces = [f.to_dict() for f in self.faces]
        if self.persons is not None:
            for face, person in zip(faces, self.persons):
                face["person"] = person
        return {"file": self.file, "faces": faces, "error": self.error}


class PeopleTally:
    """Per person over a ``predict --group-people`` call: the pictures and faces, and the mean
    scores of the person's frontal faces (all its faces when none is frontal: a profile-only
    person still gets a row). ``add`` each ``PhotoResult``; ``rows()`` in person order."""

    def __init__(self):
        self.faces: dict[int, list] = {}
        self.pictures: dict[int, set] = {}
        self.unnamed = 0

    def add(self, result: PhotoResult) -> None:
        for face, person in zip(result.faces, result.persons or [None] * len(result.faces)):
            if person is None:
                self.unnamed += 1
                continue
            self.faces.setdefault(person, []).append(face)
            self.pictures.setdefault(person, set()).add(result.file)

    def rows(self) -> list[dict]:
        from emolens.emotions import EMOTIONS

        out = []
        for person in sorted(self.faces):
            faces = self.faces[person]
            counted = [f for f in faces if f.frontal] or faces
            means = {e: sum(f.scores[e] for f in counted) / len(counted) for e in EMOTIONS}
            intensity = {e: sum(f.intensity[e] for f in counted) / len(counted) for e in EMOTIONS}
            out.append({"person": person, "pictures": len(self.pictures[person]), "faces": len(faces),
                        "counted": len(counted), "dominant": max(means, key=means.get), "mean_scores": means,
                        "mean_intensity": intensity, "files": sorted(self.pictures[person])})
        return out

    def to_dict(self) -> dict:
        """``predict --summary-json``: per person the pictures (their files), faces, the faces counted
        (frontal ones; all when none is) and the dominant emotion, mean scores and intensities::

            {"persons": [{"person": 1, "pictures": 2, "faces": 2, "faces_counted": 2,
                          "dominant": "happy", "mean_scores": {...}, "mean_intensity": {...},
                          "files": ["a.jpg", "b.jpg"]}, ...],
             "faces_without_person": 1}          # under 40 px or no landmarks that fit
        """
        def rounded(values: dict) -> dict:
            return {e: round(float(v), 4) for e, v in values.items()}

        persons = [{"person": r["person"], "pictures": r["pictures"], "faces": r["faces"],
                    "faces_counted": r["counted"], "dominant": r["dominant"], "mean_scores": rounded(r["mean_scores"]),
                    "mean_intensity": rounded(r["mean_intensity"]), "files": r["files"]} for r in self.rows()]
        return {"persons": persons, "faces_without_person": self.unnamed}


class PhotoPersons:
    """Groups the faces of one ``predict`` call into persons (``--group-people``): dlib descriptors
    of every face whose landmarks fit and that is 40 px or more, joined online (``PersonRegistry``).

    The faces of one picture are different people (a group photo), as the faces of one video
    frame are: the face nearest a known person takes it first, the others the nearest of the
    rest or a new person. ``collages=True`` lifts that for pictures that show one person
    several times (montages, contact sheets)."""

    def __init__(self, same_person: float | None = None, collages: bool = False):
        from emolens.people.persons import SAME_PERSON, FaceDescriber, PersonRegistry

        self.describe = FaceDescriber()
        self.registry = PersonRegistry(SAME_PERSON if same_person is None else same_person)
        self.collages = collages

    def __call__(self, image, faces) -> list:
        from emolens.people.persons import describable

        descriptors = {i: self.describe(image, f.landmarks) for i, f in enumerate(faces) if describable(f)}
        if self.collages:
            return [self.registry.assign(descriptors[i]) if i in descriptors else None for i in range(len(faces))]
        who: list = [None] * len(faces)
        near = {i: self.registry.nearest(d)[1] for i, d in descriptors.items()}
        # closest match first, so a weaker look-alike in the picture cannot take a person's id; then
        # the new people in the picture's order
        for i in sorted(descriptors, key=lambda i: (0, near[i]) if near[i] < self.registry.threshold else (1, i)):
            who[i] = self.registry.assign(descriptors[i], exclude={p for p in who if p is not None})
        return who


def photo_tags(count: int, persons: list | None) -> list | None:
    """The annotated picture's face labels: the table's face number (``#2``, when there are
    several), and with ``--group-people`` the person (``#2 P5``; ``P5`` for a lone face)."""
    if persons is None:
        return None
    numbers = [f"#{i + 1}" if count > 1 else "" for i in range(count)]
    return [" ".join(t for t in (n, "" if p is None else f"P{p}") if t) or None for n, p in zip(numbers, persons)]


def expand_inputs(paths: Iterable[str | Path]) -> list[tuple[str, str | None]]:
    """``(path, error)`` per input: folders are searched recursively for pictures, globs expanded.

    A path that does not exist and matches nothing is kept with an error, so it is reported.
    """
    out: list[tuple[str, str | None]] = []
    for raw in paths:
        text = str(raw)
        p = Path(text)
        if text == "":   # Path("") is the current folder
            out.append((text, "empty path (an unset shell variable?); pass pictures or folders"))
        elif p.is_dir():
            found = folder_files(p, IMAGE_SUFFIXES)
            if not found:
                out.append((text, f"{text}: folder has no pictures ({', '.join(sorted(IMAGE_SUFFIXES))})"))
            out.extend((f, None) for f in found)
        elif p.exists():
            out.append((text, None))
        elif GLOB_CHARS & set(text):
            matches = glob_files(text)
            if not matches:
                out.append((text, f"{text}: no file matches this pattern"))
            out.extend((m, None) for m in matches)
        else:
            out.append((text, f"{text}: file not found; check the path"))
    seen: set[str] = set()
    unique = []
    for path, err in out:
        if path not in seen or err is not None:
            seen.add(path)
            unique.append((path, err))
    return unique


def annotated_path(out_dir: Path, source: str, used: set[str]) -> Path:
    """``OUT_DIR/<name>`` (JPEG/PNG kept, others written as PNG), made unique within a run."""
    src = Path(source)
    suffix = src.suffix.lower() if src.suffix.lower() in {".jpg", ".jpeg", ".png"} else ".png"
    stem, n = src.stem, 1
    candidate = out_dir / f"{stem}{suffix}"
    while str(candidate) in used:
        candidate = out_dir / f"{stem}-{n}{suffix}"
        n += 1
    used.add(str(candidate))
    return candidate


def annotation_targets(inputs: Iterable[tuple[str, str | None]], out_dir: str | Path) -> dict[str, Path]:
    """Where ``predict --annotate OUT_DIR`` writes the annotated copy of each readable input.

    The rules: no annotated copy may land on an input picture, this one or any other
    (compared through symlinks, ``./`` spellings and hard links). That happens when
    OUT_DIR is an input folder, or lies inside one and holds pictures of the same names
    (an earlier run's copies, found again by the recursive search). And no copy replaces a
    file emolens did not write (``emolens.annotated_files``): an earlier run's copies are
    replaced, the user's own picture of that name is not. Raises ``OutputPathError`` naming
    the paths; nothing has been written then.
    """
    from emolens.output_paths import OutputPathError

    inputs = [(path, error) for path, error in inputs if error is None]
    by_real = {os.path.realpath(path): path for path, _ in inputs}
    by_inode = {}
    for path, _ in inputs:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            by_inode[(st.st_dev, st.st_ino)] = path
    used: set[str] = set()
    targets = {}
    for path, _ in inputs:
        target = annotated_path(Path(out_dir), path, used)
        other = by_real.get(os.path.realpath(target))
        if other is None:
            with contextlib.suppress(OSError):
                st = os.stat(target)
                other = by_inode.get((st.st_dev, st.st_ino))
        if other is not None:
            raise OutputPathError(f"{target}: the annotated copy of {path} would overwrite the input picture "
                                  f"{other}; give --annotate a folder outside the input folders")
        if os.path.lexists(target) and not written_by_emolens(target):
            raise OutputPathError(f"{target}: the annotated copy of {path} would overwrite this file, which is "
                                  "not an annotated copy emolens wrote; give --annotate a new or empty folder "
                                  "(or move the file)")
        targets[path] = target
    return targets


def write_picture(path: str | Path, picture) -> None:
    """Encode a BGR picture by the path's suffix (.jpg, .png), marked as emolens's annotated copy,
    and write it with Python, so any file name works (OpenCV's own file writing crashes on names
    that are not UTF-8). Raises ``OSError``."""
    import cv2

    ok, data = cv2.imencode(Path(path).suffix.lower(), picture)
    if not ok:
        raise OSError(f"OpenCV cannot encode a {Path(path).suffix} picture")
    data = marked(data.tobytes())   # a rerun may replace it (annotation_targets)
    with open(path, "wb") as f:
        f.write(data)


def predict_files(recognizer, inputs: Iterable[str | Path] | list[tuple[str, str | None]],
                  annotate: Path | None = None, group_people: bool = False,
                  same_person: float | None = None, collages: bool = False) -> Iterator[PhotoResult]:
    """Analyse each input; yields a ``PhotoResult`` per file (errors included, never raised).

    ``group_people``: give every face a person id, the same for the same person across the
    call's pictures (``PhotoPersons``); ``same_person``: the face-descriptor distance below which two
    faces are one person (default ``SAME_PERSON``, 0.5; checked by ``emolens.options``). The faces
    of one picture are different people unless ``collages`` (pictures that show one person
    several times).

    ``annotate``: a folder for annotated copies (created if needed; see ``annotation_targets``
    for where they go). An unusable folder, or a copy that would overwrite an input, raises
    ``OutputPathError`` before the first result.
    """
    from emolens.draw import draw_faces
    from emolens.output_paths import prepare_output_folder

    if same_person is not None:
        same_person = options.check("same_person", same_person)
    inputs = list(inputs)
    if not all(isinstance(i, tuple) for i in inputs):
        inputs = expand_inputs(inputs)
    targets: dict[str, Path] = {}
    if annotate is not None:
        targets = annotation_targets(inputs, annotate)
        prepare_output_folder(annotate, "annotated pictures")
    persons = PhotoPersons(same_person, collages) if group_people else None
    for path, error in inputs:
        if error is not None:
            yield PhotoResult(path, error=error)
            continue
        try:
            image, factor = read_image_scaled(path)
            faces = recognizer.analyze(image, color="bgr")
            who = persons(image, faces) if persons is not None else None
        except ImageError as exc:
            yield PhotoResult(path, error=str(exc))
            continue
        except MemoryError:
            yield PhotoResult(path, error=f"{path}: out of memory while analysing; downscale the picture")
            continue
        except Exception as exc:  # a library failing on odd data must not stop the batch
            yield PhotoResult(path, error=f"{path}: could not be analysed ({type(exc).__name__}: {exc}); "
                                          "please report this with the file")
            continue
        result = PhotoResult(path, faces=[f.scaled(factor) for f in faces], persons=who)
        if annotate is not None:
            target = targets[path]
            try:
                write_picture(target, draw_faces(image, faces, tags=photo_tags(len(faces), who)))
            except OSError as exc:
                result.error = (f"{path}: could not write the annotated picture {target} "
                                f"({exc.strerror or exc}); check the folder and the free disk space")
            else:
                result.annotated = str(target)
        yield result
