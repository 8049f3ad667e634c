"""``emolens predict``: pictures in, faces and emotions out (table, JSON Lines, annotated pictures).

Inputs are files, folders (searched recursively for pictures) and glob patterns. Each
input gives one ``PhotoResult``; a bad file is reported and the batch goes on.

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
        "detection_score": s}]}          # the detector's confidence (scale depends on the detector)
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from emolens.images import IMAGE_SUFFIXES, ImageError, read_image_scaled

GLOB_CHARS = set("*?[")


@dataclass
class PhotoResult:
    file: str
    faces: list = field(default_factory=list)   # list[emolens.recognize.Face], in the file's pixels
    error: str | None = None
    annotated: str | None = None

    def to_dict(self) -> dict:
        return {"file": self.file, "faces": [f.to_dict() for f in self.faces], "error": self.error}


def expand_inputs(paths: Iterable[str | Path]) -> list[tuple[str, str | None]]:
    """``(path, error)`` per input: folders are searched recursively for pictures, globs expanded.

    A path that does not exist and matches nothing is kept with an error, so it is reported.
    """
    out: list[tuple[str, str | None]] = []
    for raw in paths:
        text = str(raw)
        p = Path(text)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                out.append((text, f"{text}: folder has no pictures ({', '.join(sorted(IMAGE_SUFFIXES))})"))
            out.extend((f, None) for f in found)
        elif p.exists():
            out.append((text, None))
        elif GLOB_CHARS & set(text):
            matches = sorted(m for m in glob.glob(os.path.expanduser(text), recursive=True) if Path(m).is_file())
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


def predict_files(recognizer, inputs: Iterable[str | Path] | list[tuple[str, str | None]],
                  annotate: Path | None = None) -> Iterator[PhotoResult]:
    """Analyse each input; yields a ``PhotoResult`` per file (errors included, never raised)."""
    import cv2

    from emolens.draw import draw_faces

    used: set[str] = set()
    if annotate is not None:
        annotate.mkdir(parents=True, exist_ok=True)
    inputs = list(inputs)
    if not all(isinstance(i, tuple) for i in inputs):
        inputs = expand_inputs(inputs)
    for path, error in inputs:
        if error is not None:
            yield PhotoResult(path, error=error)
            continue
        try:
            image, factor = read_image_scaled(path)
            faces = recognizer.analyze(image, color="bgr")
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
        result = PhotoResult(path, faces=[f.scaled(factor) for f in faces])
        if annotate is not None:
            target = annotated_path(annotate, path, used)
            picture = draw_faces(image, faces)
            if not cv2.imwrite(str(target), picture):
                result.error = f"{path}: could not write the annotated picture {target}; check the folder"
            else:
                result.annotated = str(target)
        yield result
