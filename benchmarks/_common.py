"""Shared by the benchmark scripts: where photos-dev is, its labels, thread pinning."""

from __future__ import annotations

import csv
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "datasets" / "photos-dev"
FER = REPO.parent / "shared" / "datasets" / "fer2013"


def pin_threads(n: int) -> None:
    """Pin OpenCV, ONNX Runtime (via EMOLENS_THREADS) and BLAS to ``n`` threads. Call before heavy imports."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "EMOLENS_THREADS"):
        os.environ[var] = str(n)
    import cv2

    cv2.setNumThreads(n)


def add_fer2013_arguments(ap, ferplus: bool = True) -> None:
    """--data, --ferplus (optional), --split (PublicTest) and --threads, shared by the PublicTest scripts."""
    ap.add_argument("--data", type=Path, default=FER / "fer2013.csv.gz", help="FER2013 csv (default: ../shared/datasets)")
    if ferplus:
        ap.add_argument("--ferplus", type=Path, default=FER / "fer2013new.csv", help="FER+ votes (fer2013new.csv)")
    ap.add_argument("--split", default="PublicTest", help="split to score (default PublicTest)")
    ap.add_argument("--threads", type=int, default=2, help="threads for ONNX Runtime and OpenCV (default 2)")


def photo_labels(photos: Path) -> list[tuple[Path, str]]:
    """(image path, our emotion label) rows of photos-dev's labels.csv."""
    from emolens.emotions import canonical_emotion

    labels = photos / "labels.csv"
    if not labels.is_file():
        raise SystemExit(f"{labels} not found; pass --photos PATH to a photos-dev folder")
    rows = []
    with labels.open(newline="") as f:
        for row in csv.DictReader(f):
            label = canonical_emotion(row["emotion"])
            if label is None:
                raise SystemExit(f"{labels}: unknown emotion {row['emotion']!r} for {row['image']}")
            rows.append((photos / "images" / row["image"], label))
    return rows


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def parse_detector(spec: str) -> tuple[str, dict]:
    """``"name key=value ..."`` -> name and options (numbers converted)."""
    name, *pairs = spec.split()
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                pass
        options[key] = value
    return name, options


def parse_spec(spec: str) -> tuple[str, dict]:
    """``emonet:width=40,blocks=1-2-3-2`` -> ("emonet", {"width": 40, "blocks": [1, 2, 3, 2]})."""
    name, _, rest = spec.partition(":")
    args: dict = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{spec}: expected key=value, got {item!r}")
        if value.lower() in ("true", "false"):
            args[key] = value.lower() == "true"
        elif "-" in value:
            args[key] = [int(v) for v in value.split("-")]
        else:
            try:
                args[key] = int(value)
            except ValueError:
                args[key] = float(value)
    return name, args
