"""Face-expression datasets as one in-memory uint8 array.

Formats read (``load_dataset`` picks by what the path is):

* ``fer2013.csv`` / ``fer2013.csv.gz`` (Kaggle format: ``emotion,pixels,Usage``), rows
  chosen by ``split``; optional FER+ votes from a row-aligned ``fer2013new.csv``.
* a folder of class folders (``train/angry/*.jpg`` ...), with class-name aliases.
* a FERPlus folder (``label.csv`` + PNGs; label = majority vote).

This module needs numpy and OpenCV only, so ``emolens evaluate`` can use it without torch.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emolens.emotions import EMOTIONS, FERPLUS_COLUMNS, FERPLUS_TO_INDEX, canonical_emotion

log = logging.getLogger(__name__)

SIZE = 48
N_PIXELS = SIZE * SIZE
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm"}

# Canonical Usage values and the names users may type for them.
SPLITS = {
    "training": "Training", "train": "Training",
    "publictest": "PublicTest", "public": "PublicTest", "val": "PublicTest", "valid": "PublicTest",
    "validation": "PublicTest",
    "privatetest": "PrivateTest", "private": "PrivateTest", "test": "PrivateTest",
    "all": "all",
}
# Folder names used for each split by class-folder and FERPlus layouts.
SPLIT_FOLDERS = {
    "Training": ("train", "training", "FER2013Train"),
    "PublicTest": ("val", "valid", "validation", "publictest", "FER2013Valid"),
    "PrivateTest": ("test", "privatetest", "FER2013Test"),
}


class DatasetError(ValueError):
    """A dataset file is malformed; the message names the file, the row and the fix."""


@dataclass
class FaceDataset:
    """Faces as one ``(N, 48, 48)`` uint8 array with labels in ``EMOTIONS`` order.

    ``intensity`` holds FER+ vote fractions over the 7 emotions ``(N, 7)``; rows without
    votes are NaN. ``None`` when the source has no votes at all.
    """

    images: np.ndarray
    labels: np.ndarray
    intensity: np.ndarray | None = None
    source: str = ""
    split: str = "all"
    skipped: dict[str, int] = field(default_factory=dict)
    # FER+ majority label per row (our index; -1 = contempt/unknown/not-a-face), when votes are known.
    ferplus_majority: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "FaceDataset":
        return FaceDataset(
            self.images[index], self.labels[index],
            None if self.intensity is None else self.intensity[index],
            self.source, self.split, dict(self.skipped),
            None if self.ferplus_majority is None else self.ferplus_majority[index],
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(EMOTIONS))
        return {e: int(c) for e, c in zip(EMOTIONS, counts)}

    @property
    def has_intensity(self) -> np.ndarray:
        if self.intensity is None:
            return np.zeros(len(self), bool)
        return ~np.isnan(self.intensity).any(axis=1)


def canonical_split(split: str) -> str:
    key = split.replace("_", "").replace("-", "").lower()
    if key not in SPLITS:
        raise DatasetError(
            f"unknown split {split!r}: use Training, PublicTest, PrivateTest or all "
            "(train/val/test are accepted too)"
        )
    return SPLITS[key]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def fer2013_usages(path: str | Path) -> set[str]:
    """The ``Usage`` values present in a fer2013 csv (reads the column only)."""
    with _open_text(Path(path)) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or "Usage" not in header:
            return set()
        col = header.index("Usage")
        return {row[col] for row in reader if len(row) > col}


def load_fer2013_csv(path: str | Path, split: str = "Training", ferplus: str | Path | None = None,
                     limit: int = 0) -> FaceDataset:
    """Rows of a Kaggle-format fer2013 csv(.gz) whose ``Usage`` is ``split`` (or ``all``).

    With ``ferplus`` (a row-aligned ``fer2013new.csv``), ``intensity`` holds each row's vote
    fractions over the 7 emotions; rows FER+ marks as not-a-face or without emotion votes
    get NaN (they still train the classifier). ``limit`` > 0 stops after that many rows.
    """
    path = Path(path)
    usage = canonical_split(split)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file. Pass the path of fer2013.csv or fer2013.csv.gz")
    pixel_rows: list[str] = []
    labels: list[int] = []
    row_numbers: list[int] = []
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or not {"emotion", "pixels"} <= set(header):
                raise DatasetError(
                    f"{path}: header is {header!r}; expected the Kaggle fer2013 header 'emotion,pixels,Usage'"
                )
            i_emo, i_pix = header.index("emotion"), header.index("pixels")
            i_use = header.index("Usage") if "Usage" in header else None
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if i_use is not None and usage != "all" and row[i_use] != usage:
                    continue
                try:
                    label = int(row[i_emo])
                except (ValueError, IndexError):
                    raise DatasetError(f"{path}, line {line}: emotion {row[i_emo] if row else ''!r} is not an integer 0..6") from None
                if not 0 <= label < len(EMOTIONS):
                    raise DatasetError(f"{path}, line {line}: unknown label {label}; fer2013 labels are 0..6 ({', '.join(EMOTIONS)})")
                pixels = row[i_pix].strip()
                if pixels.count(" ") != N_PIXELS - 1:
                    n = len(pixels.split())
                    raise DatasetError(f"{path}, line {line}: {n} pixel values, expected {N_PIXELS} (a 48x48 face)")
                pixel_rows.append(pixels)
                labels.append(label)
                row_numbers.append(line - 2)
                if limit and len(labels) >= limit:
                    break
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read it ({exc}); is it a complete fer2013 csv or csv.gz?") from None
    if pixel_rows:
        images = _parse_pixels(pixel_rows, path).reshape(-1, SIZE, SIZE)
    else:
        images = np.zeros((0, SIZE, SIZE), np.uint8)
    intensity = majority = None
    if ferplus is not None:
        votes = read_ferplus_votes(ferplus)
        rows = np.asarray(row_numbers, dtype=np.int64)
        if len(votes) <= (rows.max() if len(rows) else -1):
            raise DatasetError(
                f"{ferplus}: {len(votes)} vote rows but {path} has row {rows.max()}; "
                "the FER+ file must be row-aligned with the fer2013 csv"
            )
        intensity = vote_fractions(votes[rows])
        majority = majority_labels(votes[rows])
    return FaceDataset(images, np.asarray(labels, np.int64), intensity, str(path), usage, {}, majority)


def _parse_pixels(pixel_rows: list[str], path: Path) -> np.ndarray:
    text = " ".join(pixel_rows)
    values = np.fromstring(text, dtype=np.int32, sep=" ")  # noqa: NPY201 - text mode is the fast C parser
    if values.size != len(pixel_rows) * N_PIXELS:
        raise DatasetError(f"{path}: pixel values that are not integers; each value must be 0..255")
    if values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise DatasetError(f"{path}: pixel values outside 0..255")
    return values.astype(np.uint8)


def read_ferplus_votes(path: str | Path) -> np.ndarray:
    """FER+ votes as an ``(N, 10)`` array in ``FERPLUS_COLUMNS`` order, one row per csv row.

    Rows with an empty ``Image name`` (FER+ "not a face") are all zeros but the NF column.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file. Pass the FER+ votes file fer2013new.csv")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None) or []
        missing = [c for c in FERPLUS_COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"{path}: missing FER+ columns {missing}; expected the fer2013new.csv header")
        cols = [header.index(c) for c in FERPLUS_COLUMNS]
        out = []
        for line, row in enumerate(reader, start=2):
            try:
                out.append([float(row[c]) if row[c] else 0.0 for c in cols])
            except (ValueError, IndexError):
                raise DatasetError(f"{path}, line {line}: vote counts must be numbers") from None
    return np.asarray(out, np.float32).reshape(-1, len(FERPLUS_COLUMNS))


def vote_fractions(votes: np.ndarray) -> np.ndarray:
    """Vote counts ``(N, 10)`` -> fractions over our 7 emotions ``(N, 7)``; NaN where no emotion votes."""
    out = np.zeros((len(votes), len(EMOTIONS)), np.float32)
    for col, idx in enumerate(FERPLUS_TO_INDEX):
        if idx is not None:
            out[:, idx] = votes[:, col]
    total = out.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out / total
    out[total[:, 0] == 0] = np.nan
    return out


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """FER+ majority label per row in our index, -1 where the majority is contempt/unknown/not-a-face."""
    top = votes.argmax(axis=1)
    mapping = np.array([-1 if i is None else i for i in FERPLUS_TO_INDEX])
    labels = mapping[top]
    labels[votes.sum(axis=1) == 0] = -1
    return labels


def _read_face(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if img is None:
        return None
    if img.shape != (SIZE, SIZE):
        img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return img


def _split_dir(root: Path, split: str) -> Path:
    """The sub-folder of ``root`` that holds ``split``, or ``root`` itself when it has none."""
    if split == "all":
        return root
    names = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for candidate in SPLIT_FOLDERS[split]:
        if candidate.lower() in names:
            return names[candidate.lower()]
    known = {n.lower() for names_ in SPLIT_FOLDERS.values() for n in names_}
    if any(n in known for n in names):
        raise DatasetError(f"{root}: has no folder for split {split} (looked for {', '.join(SPLIT_FOLDERS[split])})")
    return root


def load_class_folders(root: str | Path, split: str = "all") -> FaceDataset:
    """A folder of class folders (``angry/``, ``happiness/`` ...), optionally under ``train/``/``test/``.

    Unknown classes (e.g. ``contempt``) are skipped with a warning naming them; unreadable
    images are skipped and counted in ``skipped``.
    """
    root = Path(root)
    usage = canonical_split(split)
    base = _split_dir(root, usage)
    class_dirs = [p for p in sorted(base.iterdir()) if p.is_dir()]
    if usage == "all" and any(p.name.lower() in {n.lower() for v in SPLIT_FOLDERS.values() for n in v} for p in class_dirs):
        class_dirs = [c for d in class_dirs for c in sorted(d.iterdir()) if c.is_dir()]
    images, labels, skipped = [], [], {}
    unknown: dict[str, int] = {}
    for class_dir in class_dirs:
        label = canonical_emotion(class_dir.name)
        files = [f for f in sorted(class_dir.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        if label is None:
            unknown[class_dir.name] = unknown.get(class_dir.name, 0) + len(files)
            continue
        for f in files:
            img = _read_face(f)
            if img is None:
                skipped["unreadable"] = skipped.get("unreadable", 0) + 1
                log.warning("%s: not a readable image, skipped", f)
                continue
            images.append(img)
            labels.append(EMOTIONS.index(label))
    if unknown:
        listing = ", ".join(f"{k} ({v} images)" for k, v in sorted(unknown.items()))
        log.warning("%s: skipped classes that are not one of the 7 emotions: %s", base, listing)
        skipped.update({f"class:{k}": v for k, v in unknown.items()})
    if not images:
        raise DatasetError(
            f"{base}: no images in emotion class folders; expected e.g. {base}/angry/*.jpg, {base}/happy/*.jpg"
        )
    return FaceDataset(np.stack(images), np.asarray(labels, np.int64), None, str(root), usage, skipped)


def load_ferplus_folder(root: str | Path, split: str = "all") -> FaceDataset:
    """A FERPlus folder: ``label.csv`` (``name,box,10 vote counts``) beside the PNGs.

    ``root`` may be the folder with ``label.csv`` or its parent with ``FER2013Train`` /
    ``FER2013Valid`` / ``FER2013Test``. Labels are the majority vote; rows whose majority is
    contempt, unknown or not-a-face are skipped and counted.
    """
    root = Path(root)
    usage = canonical_split(split)
    if (root / "label.csv").is_file():
        folders = [root]
    elif usage == "all":
        folders = [p for p in sorted(root.iterdir()) if (p / "label.csv").is_file()]
    else:
        folders = [_split_dir(root, usage)]
    images, labels, fractions, skipped = [], [], [], {}
    for folder in folders:
        label_file = folder / "label.csv"
        if not label_file.is_file():
            raise DatasetError(f"{folder}: no label.csv; a FERPlus folder holds label.csv beside its PNGs")
        with open(label_file, encoding="utf-8", newline="") as fh:
            for line, row in enumerate(csv.reader(fh), start=1):
                if not row:
                    continue
                if len(row) < 2 + len(FERPLUS_COLUMNS):
                    raise DatasetError(
                        f"{label_file}, line {line}: {len(row)} fields; expected image name, face box and "
                        f"{len(FERPLUS_COLUMNS)} vote counts"
                    )
                try:
                    votes = np.asarray([float(v) for v in row[-len(FERPLUS_COLUMNS):]], np.float32)[None]
                except ValueError:
                    raise DatasetError(f"{label_file}, line {line}: vote counts must be numbers") from None
                label = int(majority_labels(votes)[0])
                if label < 0:
                    skipped["no_emotion_majority"] = skipped.get("no_emotion_majority", 0) + 1
                    continue
                img_path = folder / row[0]
                img = _read_face(img_path) if img_path.is_file() else None
                if img is None:
                    skipped["unreadable"] = skipped.get("unreadable", 0) + 1
                    log.warning("%s: missing or unreadable image, skipped", img_path)
                    continue
                images.append(img)
                labels.append(label)
                fractions.append(vote_fractions(votes)[0])
    if not images:
        raise DatasetError(f"{root}: no usable faces found in label.csv")
    return FaceDataset(np.stack(images), np.asarray(labels, np.int64), np.stack(fractions), str(root), usage, skipped)


def is_fer2013_csv(path: Path) -> bool:
    return path.is_file() and (path.name.endswith(".csv") or path.name.endswith(".csv.gz"))


def load_dataset(path: str | Path, split: str = "Training", ferplus: str | Path | None = None,
                 limit: int = 0) -> FaceDataset:
    """Load any supported dataset format (see the module docstring); ``limit`` > 0 keeps the first N faces."""
    ds = _load_any(Path(path), split, ferplus, limit)
    if limit and limit < len(ds):
        ds = ds.subset(slice(0, limit))
    return ds


def _load_any(path: Path, split: str, ferplus: str | Path | None, limit: int) -> FaceDataset:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder. Pass fer2013.csv(.gz), a class-folder tree or a FERPlus folder")
    if is_fer2013_csv(path):
        return load_fer2013_csv(path, split, ferplus, limit)
    if path.is_dir():
        if (path / "label.csv").is_file() or any((p / "label.csv").is_file() for p in path.iterdir() if p.is_dir()):
            return load_ferplus_folder(path, split)
        return load_class_folders(path, split)
    raise DatasetError(f"{path}: not a dataset; pass fer2013.csv(.gz), a class-folder tree or a FERPlus folder")


def default_eval_split(path: str | Path) -> str:
    """PrivateTest when a fer2013 csv has it, else PublicTest; for folders, the test folder if any."""
    path = Path(path)
    if is_fer2013_csv(path):
        return "PrivateTest" if "PrivateTest" in fer2013_usages(path) else "PublicTest"
    if path.is_dir():
        names = {p.name.lower() for p in path.iterdir() if p.is_dir()}
        for split in ("PrivateTest", "PublicTest"):
            if names & {n.lower() for n in SPLIT_FOLDERS[split]}:
                return split
    return "all"
