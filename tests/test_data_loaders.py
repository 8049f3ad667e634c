"""Each dataset loader on small fixture files written here, well-formed and malformed."""

from __future__ import annotations

import csv
import gzip
import logging

import cv2
import numpy as np
import pytest

from emolens.emotions import EMOTIONS, canonical_emotion
from emolens.training.data import (
    DatasetError,
    default_eval_split,
    load_dataset,
    load_fer2013_csv,
    majority_labels,
    vote_fractions,
)

FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def write_fer_csv(path, rows, gz=False):
    text = "emotion,pixels,Usage\n" + "".join(
        f"{label},{' '.join(map(str, img.ravel()))},{usage}\n" for label, img, usage in rows
    )
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


@pytest.fixture
def fer_rows():
    usages = ["Training"] * 4 + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    return [(i % 7, face(i), u) for i, u in enumerate(usages)]


@pytest.mark.parametrize("gz", [False, True])
def test_fer2013_csv_splits(tmp_path, fer_rows, gz):
    path = tmp_path / ("fer2013.csv.gz" if gz else "fer2013.csv")
    write_fer_csv(path, fer_rows, gz=gz)
    train = load_fer2013_csv(path, "Training")
    assert train.images.shape == (4, 48, 48) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(train.images[1], fer_rows[1][1])
    assert len(load_fer2013_csv(path, "PublicTest")) == 2
    assert len(load_fer2013_csv(path, "test")) == 2  # alias of PrivateTest
    assert len(load_fer2013_csv(path, "all")) == 8
    assert default_eval_split(path) == "PrivateTest"


def test_default_split_without_private(tmp_path, fer_rows):
    path = tmp_path / "fer2013.csv"
    write_fer_csv(path, [r for r in fer_rows if r[2] != "PrivateTest"])
    assert default_eval_split(path) == "PublicTest"


def test_ferplus_votes_become_intensity(tmp_path, fer_rows):
    path = tmp_path / "fer2013.csv"
    write_fer_csv(path, fer_rows)
    votes = tmp_path / "fer2013new.csv"
    lines = [FERPLUS_HEADER]
    for i, (_, _, usage) in enumerate(fer_rows):
        if i == 1:  # not a face: empty name, no emotion votes
            lines.append(f"{usage},,0,0,0,0,0,0,0,0,0,10")
        else:
            lines.append(f"{usage},fer{i:07d}.png,5,3,0,0,2,0,0,0,0,0")
    votes.write_text("\n".join(lines) + "\n")
    ds = load_fer2013_csv(path, "Training", ferplus=votes)
    assert ds.intensity.shape == (4, 7)
    assert np.isnan(ds.intensity[1]).all()
    np.testing.assert_allclose(ds.intensity[0], [0.2, 0, 0, 0.3, 0, 0, 0.5])
    assert ds.has_intensity.tolist() == [True, False, True, True]
    assert ds.ferplus_majority.tolist() == [EMOTIONS.index("neutral"), -1, 6, 6]


def test_vote_helpers():
    votes = np.array([[0, 0, 0, 0, 0, 0, 0, 6, 4, 0], [1, 9, 0, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    assert majority_labels(votes).tolist() == [-1, EMOTIONS.index("happy")]
    fr = vote_fractions(votes)
    assert np.isnan(fr[0]).all() and fr[1, EMOTIONS.index("happy")] == pytest.approx(0.9)


@pytest.mark.parametrize(
    "row, message",
    [
        ("3,1 2 3,Training", "3 pixel values, expected 2304"),
        ("9," + " ".join(["1"] * 2304) + ",Training", "unknown label 9"),
        ("x," + " ".join(["1"] * 2304) + ",Training", "is not an integer"),
        ("3," + " ".join(["1"] * 2303 + ["300"]) + ",Training", "outside 0..255"),
    ],
)
def test_fer2013_malformed_rows_name_file_and_line(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text("emotion,pixels,Usage\n" + "0," + " ".join(["1"] * 2304) + ",Training\n" + row + "\n")
    with pytest.raises(DatasetError, match=message) as info:
        load_fer2013_csv(path, "Training")
    assert "bad.csv" in str(info.value)
    if "pixel values," in message or "label" in message or "integer" in message:
        assert "line 3" in str(info.value)


def test_fer2013_wrong_header_and_truncated_gzip(tmp_path):
    bad = tmp_path / "fer2013.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DatasetError, match="expected the Kaggle fer2013 header"):
        load_fer2013_csv(bad)
    gz = tmp_path / "fer2013.csv.gz"
    write_fer_csv(gz, [(0, face(0), "Training")] * 50, gz=True)
    gz.write_bytes(gz.read_bytes()[:300])
    with pytest.raises(DatasetError, match="cannot read it"):
        load_fer2013_csv(gz)


def test_unknown_split_is_a_clear_error(tmp_path, fer_rows):
    path = tmp_path / "fer2013.csv"
    write_fer_csv(path, fer_rows)
    with pytest.raises(DatasetError, match="unknown split"):
        load_fer2013_csv(path, "holdout")


def test_class_folders_with_aliases_unknown_classes_and_bad_images(tmp_path, caplog):
    root = tmp_path / "faces"
    for split in ("train", "test"):
        for name in ("anger", "happiness", "Surprised", "neutral", "contempt"):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(d / f"{i}.png"), cv2.resize(face(i), (64, 64)))
    (root / "train" / "neutral" / "broken.jpg").write_bytes(b"not an image")
    (root / "train" / "neutral" / "empty.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root, "Training")
    assert ds.images.shape == (8, 48, 48)
    assert sorted(set(ds.labels.tolist())) == sorted(EMOTIONS.index(e) for e in ("angry", "happy", "surprise", "neutral"))
    assert ds.skipped["unreadable"] == 2
    assert ds.skipped["class:contempt"] == 2
    assert "contempt (2 images)" in caplog.text
    assert len(load_dataset(root, "test")) == 8
    assert len(load_dataset(root, "all")) == 16
    assert default_eval_split(root) == "PrivateTest"


def test_class_folders_without_any_emotion_class(tmp_path):
    (tmp_path / "cats").mkdir()
    cv2.imwrite(str(tmp_path / "cats" / "a.png"), face(0))
    with pytest.raises(DatasetError, match="no images in emotion class folders"):
        load_dataset(tmp_path, "all")


def test_ferplus_folder_majority_vote(tmp_path):
    folder = tmp_path / "FER2013Valid"
    folder.mkdir()
    rows = [
        ("fer0000001.png", [0, 8, 1, 0, 0, 0, 0, 0, 1, 0]),  # happy
        ("fer0000002.png", [6, 0, 0, 0, 4, 0, 0, 0, 0, 0]),  # neutral
        ("fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 7, 3, 0]),  # contempt: skipped
        ("fer0000004.png", [0, 0, 9, 0, 0, 0, 1, 0, 0, 0]),  # surprise, image missing
    ]
    with open(folder / "label.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        for i, (name, votes) in enumerate(rows):
            w.writerow([name, "(0, 0, 48, 48)", *votes])
            if i < 3:
                cv2.imwrite(str(folder / name), face(i))
    ds = load_dataset(tmp_path, "PublicTest")
    assert ds.labels.tolist() == [EMOTIONS.index("happy"), EMOTIONS.index("neutral")]
    assert ds.skipped == {"no_emotion_majority": 1, "unreadable": 1}
    np.testing.assert_allclose(ds.intensity[0].sum(), 1.0, rtol=1e-6)


def test_ferplus_folder_malformed_row(tmp_path):
    (tmp_path / "label.csv").write_text("fer1.png,(0, 0, 48, 48),1,2\n")
    with pytest.raises(DatasetError, match=r"label.csv, line 1: 7 fields"):
        load_dataset(tmp_path, "all")


def test_missing_path():
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset("/nonexistent/fer2013.csv")


def test_aliases():
    assert canonical_emotion("Happiness") == "happy"
    assert canonical_emotion("anger") == "angry"
    assert canonical_emotion("surprised") == "surprise"
    assert canonical_emotion("contempt") is None


def test_real_fer2013_public_test(fer2013_path, ferplus_path):
    ds = load_dataset(fer2013_path, "PublicTest", ferplus_path)
    assert len(ds) == 3587
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (48, 48)
    assert set(ds.labels.tolist()) == set(range(7))
    assert 0.95 < ds.has_intensity.mean() <= 1.0
