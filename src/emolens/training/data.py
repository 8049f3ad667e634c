"""Face-expression datasets as one in-memory uint8 array.

Formats read (``load_dataset`` picks by what the path is):

* ``fer2013.csv`` / ``fer2013.csv.gz`` (Kaggle format: ``emotion,pixels,Usage``), rows
  chosen by ``split``; optional FER+ votes from a row-aligned ``fer2013new.csv``.
* a folder of class folders (``train/angry/*.jpg`` ...), with class-name aliases.
* a FERPlus folder (``label.csv`` + PNGs; label = majority vote).

Nothing is dropped silently: a fer2013 csv without a ``Usage`` column has no splits (use
``all``), a ``Usage`` other than Training/PublicTest/PrivateTest, a short row, a pixel that is
not an integer 0..255 or a split without rows is a ``DatasetError`` naming the file, the line
and the fix; a FER+ file must be row-aligned with the csv (same rows, same ``Usage`` per row).
Text files may start with a UTF-8 BOM. Only the given files are read (FERPlus image names
must be file names beside ``label.csv``).

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
from emolens.file_search import folder_files

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


# the Usage values of the Kaggle file (case-sensitive, as written there)
USAGES = ("Training", "PublicTest", "PrivateTest")


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
    """A csv file as text; ``utf-8-sig`` drops a leading byte-order mark (spreadsheets write one)."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def fer2013_usages(path: str | Path) -> set[str] | None:
    """The ``Usage`` values present in a fer2013 csv (reads the column only); None without the column.

    An unreadable file gives an empty set: ``load_fer2013_csv`` then says what is wrong with it.
    """
    try:
        with _open_text(Path(path)) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or "Usage" not in header:
                return None if header else set()
            col = header.index("Usage")
            return {row[col] for row in reader if len(row) > col}
    except (OSError, EOFError, UnicodeDecodeError, csv.Error):
        return set()


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise DatasetError(f"limit {limit!r}: must be 0 (every row) or a positive number of rows")
    return limit


def load_fer2013_csv(path: str | Path, split: str = "Training", ferplus: str | Path | None = None,
                     limit: int = 0) -> FaceDataset:
    """Rows of a Kaggle-format fer2013 csv(.gz) whose ``Usage`` is ``split`` (or ``all``).

    With ``ferplus`` (a row-aligned ``fer2013new.csv``), ``intensity`` holds each row's vote
    fractions over the 7 emotions; rows FER+ marks as not-a-face or without emotion votes
    get NaN (they still train the classifier). ``limit`` > 0 stops after that many rows.
    """
    path = Path(path)
    usage = canonical_split(split)
    limit = _limit(limit)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file. Pass the path of fer2013.csv or fer2013.csv.gz")
    pixel_rows: list[str] = []
    labels: list[int] = []
    row_numbers: list[int] = []   # data-row index of each kept row (the FER+ file is aligned by it)
    lines: list[int] = []         # its line in the file, for messages
    usages: list[str] = []        # Usage of every data row read, kept or not (for the FER+ check)
    complete = True
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
            if i_use is None and usage != "all":
                raise DatasetError(
                    f"{path}: has no Usage column, so it has no {usage} rows; use split 'all' (evaluate --split "
                    "all) for every row, or add the Usage column (Training, PublicTest or PrivateTest per row)"
                )
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise DatasetError(f"{path}, line {line}: {len(row)} fields, expected {len(header)} "
                                       f"({','.join(header)}); the row is cut short or has stray commas")
                if i_use is not None:
                    if row[i_use] not in USAGES:
                        raise DatasetError(f"{path}, line {line}: Usage {row[i_use]!r} is not one of "
                                           f"{', '.join(USAGES)} (spelt exactly so); fix the row")
                    usages.append(row[i_use])
                    if usage != "all" and row[i_use] != usage:
                        continue
                else:
                    usages.append("")
                try:
                    label = int(row[i_emo])
                except ValueError:
                    raise DatasetError(f"{path}, line {line}: emotion {row[i_emo]!r} is not an integer 0..6") from None
                if not 0 <= label < len(EMOTIONS):
                    raise DatasetError(f"{path}, line {line}: unknown label {label}; fer2013 labels are 0..6 ({', '.join(EMOTIONS)})")
                pixels = row[i_pix].strip()
                if pixels.count(" ") != N_PIXELS - 1:  # other whitespace, doubled spaces or a wrong count
                    values = pixels.split()
                    if len(values) != N_PIXELS:
                        raise DatasetError(f"{path}, line {line}: {len(values)} pixel values, expected {N_PIXELS} (a 48x48 face)")
                    pixels = " ".join(values)
                pixel_rows.append(pixels)
                labels.append(label)
                row_numbers.append(len(usages) - 1)
                lines.append(line)
                if limit and len(labels) >= limit:
                    complete = False
                    break
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text; save the csv as UTF-8") from None
    except (OSError, EOFError, gzip.BadGzipFile, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read it ({exc}); is it a complete fer2013 csv or csv.gz?") from None
    if not labels:
        if not usages:
            raise DatasetError(f"{path}: no data rows (a header only); pass a complete fer2013 csv")
        present = ", ".join(u for u in USAGES if u in set(usages))
        raise DatasetError(f"{path}: no {usage} rows; the file has {present}: choose one of those as the split")
    images = _parse_pixels(pixel_rows, path, lines).reshape(-1, SIZE, SIZE)
    intensity = majority = None
    if ferplus is not None:
        votes, vote_usages = read_ferplus_votes(ferplus, with_usage=True)
        check_ferplus_alignment(path, ferplus, usages, complete, vote_usages)
        rows = np.asarray(row_numbers, dtype=np.int64)
        intensity = vote_fractions(votes[rows])
        majority = majority_labels(votes[rows])
    return FaceDataset(images, np.asarray(labels, np.int64), intensity, str(path), usage, {}, majority)


def check_ferplus_alignment(path: Path, ferplus: str | Path, usages: list[str], complete: bool,
                            vote_usages: list[str]) -> None:
    """Refuse a FER+ file that is not row-aligned with the fer2013 csv rows read (``usages``).

    Row counts must match (when the csv was read to its end; at least cover the rows read
    otherwise) and each row's ``Usage`` must be the csv's: a file shifted by a row, shortened or
    lengthened fails one of these. (Image names cannot be checked: the shared copy's are not in
    row order.)
    """
    n = len(usages)
    if (complete and len(vote_usages) != n) or len(vote_usages) < n:
        raise DatasetError(
            f"{ferplus}: {len(vote_usages)} vote rows but {path} has {n if complete else f'at least {n}'} rows; the "
            "FER+ file must be row-aligned with the fer2013 csv (row k of one is row k of the other)"
        )
    if any(vote_usages) and any(usages):
        mine, theirs = np.asarray(usages), np.asarray(vote_usages[:n])
        differ = np.flatnonzero((mine != theirs) & (mine != "") & (theirs != ""))
        if len(differ):
            k = int(differ[0])
            raise DatasetError(
                f"{ferplus}: row {k + 1} has Usage {theirs[k]} but row {k + 1} of {path} is {mine[k]}: the files are "
                "not row-aligned; pass the fer2013new.csv that belongs to this fer2013 csv"
            )


def _parse_pixels(pixel_rows: list[str], path: Path, lines: list[int]) -> np.ndarray:
    """All rows' pixels in one C-speed parse; on a bad value, the row is found and named."""
    try:
        values = np.fromstring(" ".join(pixel_rows), dtype=np.int32, sep=" ")  # noqa: NPY201 - the fast C parser
    except ValueError:  # numpy >= 2.3: text that does not parse as integers
        values = None
    if values is not None and values.size == len(pixel_rows) * N_PIXELS and \
            values.min(initial=0) >= 0 and values.max(initial=0) <= 255:
        return values.astype(np.uint8)
    for pixels, line in zip(pixel_rows, lines):
        for value in pixels.split():
            if not value.isdigit():  # "1.5", "-3", "abc"
                raise DatasetError(f"{path}, line {line}: pixel value {value[:20]!r} is not an integer 0..255")
            if int(value) > 255:
                raise DatasetError(f"{path}, line {line}: pixel value {value[:20]} is outside 0..255")
    raise DatasetError(f"{path}: pixel values that are not integers 0..255")


def read_ferplus_votes(path: str | Path, with_usage: bool = False):
    """FER+ votes as an ``(N, 10)`` array in ``FERPLUS_COLUMNS`` order, one row per csv row.

    Rows with an empty ``Image name`` (FER+ "not a face") are all zeros but the NF column.
    ``with_usage`` also returns each row's ``Usage`` ("" where the file has no such column), for
    the alignment check.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file. Pass the FER+ votes file fer2013new.csv")
    out, usages = [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None) or []
            missing = [c for c in FERPLUS_COLUMNS if c not in header]
            if missing:
                raise DatasetError(f"{path}: missing FER+ columns {missing}; expected the fer2013new.csv header")
            cols = [header.index(c) for c in FERPLUS_COLUMNS]
            i_use = header.index("Usage") if "Usage" in header else None
            for row in reader:
                if not row:
                    continue
                try:
                    votes = [float(row[c]) if row[c] else 0.0 for c in cols]
                except (ValueError, IndexError):
                    raise DatasetError(f"{path}, line {reader.line_num}: vote counts must be numbers") from None
                if not all(0 <= v < 1e6 for v in votes):  # also refuses nan and inf
                    raise DatasetError(f"{path}, line {reader.line_num}: vote counts must be numbers >= 0")
                out.append(votes)
                usages.append(row[i_use] if i_use is not None and i_use < len(row) else "")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text; save the FER+ votes file as UTF-8") from None
    except (OSError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read it ({exc})") from None
    votes = np.asarray(out, np.float32).reshape(-1, len(FERPLUS_COLUMNS))
    return (votes, usages) if with_usage else votes


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
    """A grey 48x48 face, or None for a file that is unreadable or not a picture.

    Read through ``emolens.images.read_image``, the decoder every other path uses: the same pixel
    limit (a decompression bomb is skipped, not decoded), non-regular files refused."""
    from emolens.images import ImageError, read_image, to_grey

    try:
        img = to_grey(read_image(path))
    except (ImageError, OSError):  # no permission, vanished, a folder named like a picture, a bomb
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
    class_dirs = [p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if usage == "all" and any(p.name.lower() in {n.lower() for v in SPLIT_FOLDERS.values() for n in v} for p in class_dirs):
        class_dirs = [c for d in class_dirs for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    images, labels, skipped = [], [], {}
    unknown: dict[str, int] = {}
    for class_dir in class_dirs:
        label = canonical_emotion(class_dir.name)
        # a folder named like a picture is only a folder (its pictures are found inside it)
        files = [Path(f) for f in folder_files(class_dir, IMAGE_SUFFIXES, regular_only=False)]
        if label is None:
            unknown[class_dir.name] = unknown.get(class_dir.name, 0) + len(files)
            continue
        for f in files:
            img = _read_face(f) if f.is_file() else None  # not FIFOs, devices or dangling links
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
        try:
            with open(label_file, encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.reader(fh))
        except UnicodeDecodeError:
            raise DatasetError(f"{label_file}: not UTF-8 text; save label.csv as UTF-8") from None
        except (OSError, csv.Error) as exc:
            raise DatasetError(f"{label_file}: cannot read it ({exc})") from None
        for line, row in enumerate(rows, start=1):
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
            if not (np.isfinite(votes).all() and (votes >= 0).all()):
                raise DatasetError(f"{label_file}, line {line}: vote counts must be numbers >= 0")
            label = int(majority_labels(votes)[0])
            if label < 0:
                skipped["no_emotion_majority"] = skipped.get("no_emotion_majority", 0) + 1
                continue
            name = row[0].strip()
            if not name or Path(name).name != name or name in (".", ".."):
                raise DatasetError(f"{label_file}, line {line}: image name {name!r} is not a file name beside "
                                   "label.csv; a FERPlus label.csv names the PNGs in its own folder")
            img_path = folder / name
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
    limit = _limit(limit)
    try:
        ds = _load_any(Path(path), split, ferplus, limit)
    except PermissionError as exc:
        raise DatasetError(f"{exc.filename or path}: permission denied; pass a dataset you can read") from None
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
        usages = fer2013_usages(path)
        if usages is None:  # no Usage column: no splits
            return "all"
        return "PrivateTest" if "PrivateTest" in usages else "PublicTest"
    if path.is_dir():
        names = {p.name.lower() for p in path.iterdir() if p.is_dir()}
        for split in ("PrivateTest", "PublicTest"):
            if names & {n.lower() for n in SPLIT_FOLDERS[split]}:
                return split
    return "all"
