"""Overlays on images and plots (matplotlib is imported only by the plotting functions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def plot_confusion(report: dict, path: str | Path) -> None:
    """Row-normalised confusion matrix of an ``evaluate`` report, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion"], dtype=float)
    labels = report["labels"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}, n={report['n']}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOT_SUFFIXES = (".png", ".svg", ".pdf")    # what ``plot_timeline`` writes (by the file's suffix)


def _with_gaps(t: np.ndarray, v: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Times and scores with a NaN row wherever the face was off screen for more than ``gap`` seconds
    (so the plot breaks the line instead of drawing a straight one across the absence)."""
    if len(t) < 2:
        return t, v
    cut = np.flatnonzero(np.diff(t) > gap)
    if not len(cut):
        return t, v
    t = np.insert(t.astype(float), cut + 1, np.nan)
    v = np.insert(v.astype(float), cut + 1, np.nan, axis=0)
    return t, v


def plot_timeline(series: dict, path: str | Path, title: str = "", max_tracks: int = 12,
                  cuts: list[float] | None = None) -> None:
    """``timeline_figure`` written to ``path`` (the format follows its suffix, ``PLOT_SUFFIXES``)."""
    import matplotlib.pyplot as plt

    fig = timeline_figure(series, title, max_tracks, cuts)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def timeline_figure(series: dict, title: str = "", max_tracks: int = 12, cuts: list[float] | None = None):
    """Emotion scores over time, one subplot per person or track (the longest ``max_tracks``).

    ``series``: ``{"person 1" or track id: (times (n,), scores (n, 7))}``
    (``emolens.video.Timeline.series()``); ``cuts``: shot-cut times (s), drawn as dashed lines.
    The title and the emotion legend sit in a header of fixed height above the plots, so
    they never collide whatever the number of rows; lines break where a face was off screen.
    Returns the matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from emolens.emotions import EMOTIONS

    shown = sorted(series, key=lambda k: -len(series[k][0]))[:max_tracks]
    shown.sort(key=lambda k: (isinstance(k, str) and not k.startswith("person"), _natural(k)))
    n = max(1, len(shown))
    header, footer, row = 0.8, 0.55, 1.7          # inches
    height = header + footer + row * n
    fig, axes = plt.subplots(n, 1, figsize=(9, height), sharex=True, squeeze=False)
    fig.subplots_adjust(top=1 - header / height, bottom=footer / height, left=0.09, right=0.98, hspace=0.25)
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_yticks([])
    steps = np.concatenate([np.diff(series[k][0]) for k in shown if len(series[k][0]) > 1] or [np.array([0.1])])
    gap = max(0.2, 5 * float(np.median(steps)))   # an absence of 5 analysed frames breaks the line
    for ax, key in zip(axes[:, 0], shown):
        t, v = _with_gaps(*series[key], gap)
        for k, e in enumerate(EMOTIONS):
            b, g, r = EMOTION_COLORS[e]
            ax.plot(t, v[:, k], color=(r / 255, g / 255, b / 255), lw=1.4, marker="." if len(t) < 3 else None)
        for c in cuts or []:
            ax.axvline(c, color="0.5", lw=0.8, ls="--", zorder=0)
        ax.set_ylim(0, 1)
        ax.set_ylabel(key if isinstance(key, str) else f"track #{key}")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)" + ("; dashed: shot cuts" if cuts else ""))
    handles = [Line2D([], [], color=tuple(c / 255 for c in EMOTION_COLORS[e][::-1]), lw=2) for e in EMOTIONS]
    fig.legend(handles, list(EMOTIONS), loc="center", bbox_to_anchor=(0.5, 1 - 0.55 / height),
               ncol=len(EMOTIONS), fontsize=8, frameon=False)
    more = len(series) - len(shown)
    text = title if len(title) <= 100 else "..." + title[-97:]
    fig.suptitle(text + (f" ({more} shorter not shown)" if more > 0 else ""), fontsize=10,
                 y=1 - 0.2 / height, va="center")
    return fig


def _natural(key) -> tuple:
    """Sort "person 2" before "person 10"."""
    if isinstance(key, str):
        name, _, number = key.rpartition(" ")
        return (name, int(number)) if number.isdigit() else (key, 0)
    return ("", key)


# ---------------------------------------------------------------------------------------
# overlays on pictures (OpenCV)

# BGR colour per emotion, in EMOTIONS order.
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (60, 60, 230),
    "disgust": (60, 170, 60),
    "fear": (190, 80, 170),
    "happy": (0, 210, 255),
    "sad": (210, 130, 40),
    "surprise": (0, 140, 255),
    "neutral": (190, 190, 190),
}

ANNOTATE_MIN_SIDE = 720  # small pictures are enlarged so text and bars stay readable


def annotated_size(height: int, width: int, min_side: int = ANNOTATE_MIN_SIDE) -> tuple[int, int]:
    """(height, width) of ``draw_faces``' output for a picture of this size."""
    s = max(1.0, min_side / max(height, width))
    return int(round(height * s)), int(round(width * s))


def _text(img, text, org, scale, color, thickness):
    import cv2

    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + max(1, thickness),
                cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


@dataclass(frozen=True)
class Placement:
    """Where one face's scores are drawn, in the annotated picture's pixels.

    ``kind``: ``"panel"`` (a title line and the 7 score bars), ``"panel-small"`` (the same
    in smaller type), ``"label"`` (the title line alone, e.g. ``P2 happy 87%``, when no
    panel fits), ``"label-small"``, ``"short"`` (``P2 happy``, small) or ``"inside"`` (no
    free room at all: the short label inside the face's own box, cut at its width);
    ``rect``: ``(x, y, w, h)``; ``side``: where it sits from the box (``right``, ``left``,
    ``below``, ``above`` or ``inside``).
    """

    kind: str
    rect: tuple[int, int, int, int]
    side: str


PANEL_SIDES = ("right", "left", "below", "above")     # the order panels are tried in
LABEL_SIDES = ("above", "below", "right", "left")     # labels: above the face first


def overlap(a, b) -> bool:
    """Two ``(x, y, w, h)`` rectangles share some area (touching edges do not count)."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _around(box, size, side: str, gap: int) -> list[tuple[int, int]]:
    """Top-left corners of a ``size`` rectangle on one side of ``box``, aligned with the box's
    start, centre and end (top, middle, bottom beside it; left, centre, right above or below)."""
    x, y, w, h = box
    pw, ph = size
    if side in ("right", "left"):
        px = x + w + gap if side == "right" else x - gap - pw
        return [(px, y), (px, y + (h - ph) // 2), (px, y + h - ph)]
    py = y + h + gap if side == "below" else y - gap - ph
    return [(x, py), (x + (w - pw) // 2, py), (x + w - pw, py)]


def place_annotations(boxes, options, canvas: tuple[int, int], gap: int = 4, margin: int = 2,
                      prefer: list[str | None] | None = None) -> list[Placement]:
    """Where each face's scores go so that they cover no face and nothing placed before.

    ``boxes``: the faces' ``(x, y, w, h)``; ``options``: per face, ``[(kind, (w, h)), ...]``
    from the most to the least wanted (``draw_faces``: the panel, the small panel, the
    label, the small label, the short label); ``canvas``: ``(width, height)``. Larger
    faces choose first. Each tries its options in turn, a panel beside the box
    (``PANEL_SIDES``), a label above it first (``LABEL_SIDES``), slid inside the picture;
    the first place free of every face box (grown by ``margin``) and of what was placed
    so far wins. With no free place for any option, the last one goes inside the face's
    own box, no wider than it (kind ``"inside"``). So that the first faces' panels do not
    take the room every other face needs for a label, the whole layout is redone starting
    from the second option, the third, ..., and the first with the fewest faces left
    inside is kept. ``prefer``: a side to try first per face (video: the side of the
    previous frame, so panels do not hop about). A pure function: rectangles are
    returned, in ``boxes``' order; nothing is drawn.
    """
    best, fewest = None, None
    for start in range(max((len(o) for o in options), default=1)):
        places = _place(boxes, [o[min(start, len(o) - 1):] for o in options], canvas, gap, margin, prefer)
        inside = sum(p.kind == "inside" for p in places)
        if fewest is None or inside < fewest:
            best, fewest = places, inside
        if inside == 0:
            break
    return best


def _place(boxes, options, canvas, gap, margin, prefer) -> list[Placement]:
    """One greedy pass of ``place_annotations``."""
    W, H = canvas
    faces = [(x - margin, y - margin, w + 2 * margin, h + 2 * margin) for x, y, w, h in boxes]
    taken: list[tuple[int, int, int, int]] = []
    out: list[Placement | None] = [None] * len(boxes)

    def free(rect) -> bool:
        return not any(overlap(rect, r) for r in faces) and not any(overlap(rect, r) for r in taken)

    def first_free(box, size, sides) -> tuple[str, tuple] | None:
        pw, ph = size
        if pw > W or ph > H:
            return None
        for side in sides:
            for px, py in _around(box, size, side, gap):
                rect = (min(max(px, 0), W - pw), min(max(py, 0), H - ph), pw, ph)
                if free(rect):
                    return side, rect
        return None

    order = sorted(range(len(boxes)), key=lambda k: (-boxes[k][2] * boxes[k][3], k))
    for k in order:
        box = tuple(int(v) for v in boxes[k])
        found = None
        for kind, size in options[k]:
            sides = PANEL_SIDES if kind.startswith("panel") else LABEL_SIDES
            if prefer is not None and prefer[k] in sides:
                sides = (prefer[k],) + sides
            if (found := first_free(box, size, sides)) is not None:
                break
        if found is None:
            kind, (lw, lh) = options[k][-1]
            x, y, w, h = box
            lw, lh = min(lw, max(w, 1)), min(lh, max(h, 1))
            found = "inside", (min(max(x, 0), max(W - lw, 0)), min(max(y, 0), max(H - lh, 0)), lw, lh)
            kind = "inside"
        side, rect = found
        taken.append(rect)
        out[k] = Placement(kind, tuple(int(v) for v in rect), side)
    return out


def face_title(face, tag: str | None = None, score: bool = True) -> str:
    """A face's one-line label: ``P2 happy 87%`` (``P2 happy`` without ``score``); ``~`` after
    the emotion marks a face not seen from the front (less reliable), as in ``emolens
    predict``'s table. (A box crop, the table's ``*``, shows as a box without landmarks.)"""
    marks = "" if getattr(face, "frontal", True) else "~"
    text = f"{face.emotion}{marks}" + (f" {float(face.scores[face.emotion]):.0%}" if score else "")
    return f"{tag} {text}" if tag else text


@dataclass(frozen=True)
class _Style:
    """Sizes of the overlay's text and bars for a picture of a given size (1.0 at 900 px)."""

    unit: float

    @property
    def font(self) -> float:
        return 0.6 * self.unit

    @property
    def thick(self) -> int:
        return max(1, int(round(1.4 * self.unit)))

    @property
    def row(self) -> int:
        return max(8, int(round(22 * self.unit)))

    @property
    def pad(self) -> int:
        return max(2, int(round(8 * self.unit)))

    @property
    def bar_w(self) -> int:
        return int(round(90 * self.unit))

    def text_size(self, text: str, scale: float = 1.0, extra: int = 0) -> tuple[int, int, int]:
        import cv2

        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self.font * scale, self.thick + extra)
        return w, h, base

    def label_size(self, title: str) -> tuple[int, int]:
        w, h, base = self.text_size(title, 1.15, 1)
        return w + 2 * self.pad, h + base + self.pad

    @property
    def small(self) -> "_Style":
        """The smaller type of crowded pictures (not below a size that stays legible)."""
        return _Style(max(0.7 * self.unit, min(self.unit, 0.55)))

    def of(self, kind: str) -> "_Style":
        """The style a placement of this kind is drawn in."""
        return self if kind in ("panel", "label") else self.small

    def options(self, title: str, short: str) -> list[tuple[str, tuple[int, int]]]:
        """What ``place_annotations`` may place for a face, most wanted first."""
        small = self.small
        return [("panel", self.panel_size(title)), ("panel-small", small.panel_size(title)),
                ("label", self.label_size(title)), ("label-small", small.label_size(title)),
                ("short", small.label_size(short))]

    def panel_size(self, title: str) -> tuple[int, int]:
        from emolens.emotions import EMOTIONS

        name_w = self.text_size("surprise")[0]
        pct_w = self.text_size("100%")[0]
        lw, lh = self.label_size(title)
        return max(self.pad * 4 + name_w + self.bar_w + pct_w, lw), lh + self.pad + self.row * len(EMOTIONS)


def _scaled_boxes(faces, s: float) -> list[tuple[int, int, int, int]]:
    return [tuple(int(round(v * s)) for v in face.box) for face in faces]


def _texts(faces, tags: list[str] | None) -> list[tuple[str, str]]:
    """Each face's label with and without its score; faces are numbered when there are several
    and no ``tags`` are given."""
    if tags is None:
        tags = [f"#{i + 1}" if len(faces) > 1 else None for i in range(len(faces))]
    return [(face_title(f, t), face_title(f, t, score=False)) for f, t in zip(faces, tags)]


def annotation_layout(faces, height: int, width: int, min_side: int = ANNOTATE_MIN_SIDE,
                      tags: list[str] | None = None, prefer: list[str | None] | None = None) -> list[Placement]:
    """Where ``draw_faces`` puts each face's scores on a ``height`` x ``width`` picture
    (``place_annotations`` with the overlay's own sizes), in the annotated picture's pixels."""
    H, W = annotated_size(height, width, min_side)
    style = _Style(max(H, W) / 900.0)
    texts = _texts(faces, tags)
    return place_annotations(_scaled_boxes(faces, W / width), [style.options(*t) for t in texts], (W, H),
                             gap=style.pad // 2, margin=style.thick + 1, prefer=prefer)


def draw_faces(image_bgr: np.ndarray, faces, min_side: int = ANNOTATE_MIN_SIDE,
               tags: list[str] | None = None, prefer: list[str | None] | None = None,
               layout: list[Placement] | None = None) -> np.ndarray:
    """The picture with each face's box and landmarks, and its scores where they cover no face.

    Each face gets a panel (its tag, top emotion and a bar per emotion) beside its box, or,
    where there is no room for one, a one-line label (``#2 happy 87%``); see
    ``annotation_layout``. Pictures whose longest side is below ``min_side`` are enlarged
    first (see ``annotated_size``; 0 keeps the size, as video does); the input is not
    modified. ``tags``: a short text per face (video: ``P2`` for person 2, ``#5`` for a track
    not yet named); by default faces are numbered when there are several. ``prefer``: see
    ``place_annotations``; ``layout``: the placements when already computed
    (``annotation_layout`` with the same arguments).
    """
    import cv2

    H0, W0 = image_bgr.shape[:2]
    H, W = annotated_size(H0, W0, min_side)
    s = W / W0
    canvas = cv2.resize(image_bgr, (W, H), interpolation=cv2.INTER_CUBIC) if s != 1.0 else image_bgr.copy()
    style = _Style(max(H, W) / 900.0)
    texts = _texts(faces, tags)
    boxes = _scaled_boxes(faces, s)
    places = layout if layout is not None else place_annotations(
        boxes, [style.options(*t) for t in texts], (W, H), gap=style.pad // 2, margin=style.thick + 1, prefer=prefer)
    for face, (x, y, w, h) in zip(faces, boxes):
        color = EMOTION_COLORS.get(face.emotion, (255, 255, 255))
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, max(1, style.thick), cv2.LINE_AA)
        if face.landmarks is not None:
            r = max(1, int(round(1.6 * style.unit)))
            for px, py in np.asarray(face.landmarks) * s:
                cv2.circle(canvas, (int(round(px)), int(round(py))), r, (120, 255, 255), -1, cv2.LINE_AA)
    for face, (title, short), place in zip(faces, texts, places):
        _draw_annotation(canvas, face, short if place.kind in ("short", "inside") else title, place, style)
    return canvas


def _draw_annotation(canvas: np.ndarray, face, title: str, place: Placement, style: _Style) -> None:
    import cv2

    from emolens.emotions import EMOTIONS

    color = EMOTION_COLORS.get(face.emotion, (255, 255, 255))
    px, py, pw, ph = place.rect
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(px, 0), max(py, 0), min(px + pw, W), min(py + ph, H)
    if x1 <= x0 or y1 <= y0:
        return
    style = style.of(place.kind)
    pad, thick = style.pad, style.thick
    scale = 1.15
    lw, lh = style.label_size(title)
    # The title on the emotion's colour (the whole label, or the panel's first line), cut at the rectangle.
    strip = canvas[y0:min(py + lh, y1), x0:x1]
    strip[:] = color
    _, th, _ = style.text_size(title, scale, 1)
    cv2.putText(strip, title, (px - x0 + pad, py - y0 + pad // 2 + th), cv2.FONT_HERSHEY_SIMPLEX,
                style.font * scale, (20, 20, 20), thick + 1, cv2.LINE_AA)
    if not place.kind.startswith("panel"):
        return
    top = py + lh
    if top < y1:
        roi = canvas[top:y1, x0:x1]
        canvas[top:y1, x0:x1] = cv2.addWeighted(roi, 0.25, np.full_like(roi, 25), 0.75, 0)
    cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), color, thick, cv2.LINE_AA)
    name_w = style.text_size("surprise")[0]
    row, font, bar_w = style.row, style.font, style.bar_w
    for k, e in enumerate(EMOTIONS):
        p = float(face.scores.get(e, 0.0))
        cy = top + pad // 2 + k * row
        base_y = cy + int(row * 0.72)
        bold = e == face.emotion
        _text(canvas, e, (px + pad, base_y), font, (255, 255, 255) if bold else (200, 200, 200), thick)
        bx = px + pad * 2 + name_w
        by0, by1 = cy + int(row * 0.2), cy + int(row * 0.85)
        cv2.rectangle(canvas, (bx, by0), (bx + bar_w, by1), (70, 70, 70), -1)
        cv2.rectangle(canvas, (bx, by0), (bx + int(round(bar_w * p)), by1), EMOTION_COLORS[e], -1)
        _text(canvas, f"{p:.0%}", (bx + bar_w + pad, base_y), font, (230, 230, 230), thick)
