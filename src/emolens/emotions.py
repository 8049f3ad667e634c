"""The seven emotions emolens reports, their order, and the names datasets use for them.

The order is FER2013's label order (0 = angry ... 6 = neutral); every model output,
dataset label and JSON result uses it.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Names found in public datasets (FER+, AffectNet, Kaggle folders, photos-dev) -> ours.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
}

# FER+ vote columns in fer2013new.csv / label.csv order, mapped to our index (None = not one of ours).
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)


def canonical_emotion(name: str) -> str | None:
    """Return our label for a dataset's class name, or None when it is not one of the seven."""
    return ALIASES.get(name.strip().lower())


def emotion_index(name: str) -> int | None:
    label = canonical_emotion(name)
    return None if label is None else EMOTIONS.index(label)


FERPLUS_TO_INDEX: tuple[int | None, ...] = tuple(emotion_index(c) for c in FERPLUS_COLUMNS)
