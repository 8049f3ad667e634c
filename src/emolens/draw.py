"""Overlays on images and plots (matplotlib is imported only by the plotting functions)."""

from __future__ import annotations

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
    gap = max(1.0, 5 * float(np.median(steps)))
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


def _panel_origin(box, pw, ph, W, H, gap, taken):
    """Top-left of a pw x ph panel beside the face box: right, left, below, above, else inside."""
    x, y, w, h = box
    candidates = [(x + w + gap, y), (x - gap - pw, y), (x, y + h + gap), (x, y - gap - ph)]

    def fits(px, py):
        if px < 0 or py < 0 or px + pw > W or py + ph > H:
            return False
        return all(px + pw <= tx or tx + tw <= px or py + ph <= ty or ty + th <= py for tx, ty, tw, th in taken)

    for px, py in candidates:
        py = min(max(py, 0), max(H - ph, 0))
        px = min(max(px, 0), max(W - pw, 0)) if px >= -pw else px
        if fits(px, py):
            return px, py
    # No free room: overlap the picture at the box's bottom-right, kept on the canvas.
    return min(max(x + w - pw, 0), max(W - pw, 0)), min(max(y + h - ph, 0), max(H - ph, 0))


def draw_faces(image_bgr: np.ndarray, faces, min_side: int = ANNOTATE_MIN_SIDE,
               tags: list[str] | None = None) -> np.ndarray:
    """The picture with each face's box, landmarks, top emotion and a bar chart of its 7 scores.

    Pictures whose longest side is below ``min_side`` are enlarged first (see
    ``annotated_size``; 0 keeps the size, as video does); the input is not modified.
    ``tags``: a short text per face written in its box (video: the track id); by
    default faces are numbered when there are several.
    """
    import cv2

    from emolens.emotions import EMOTIONS

    H0, W0 = image_bgr.shape[:2]
    H, W = annotated_size(H0, W0, min_side)
    s = W / W0
    canvas = cv2.resize(image_bgr, (W, H), interpolation=cv2.INTER_CUBIC) if s != 1.0 else image_bgr.copy()
    unit = max(H, W) / 900.0                      # 1.0 on a 900 px picture
    font = 0.6 * unit
    thick = max(1, int(round(1.4 * unit)))
    row = int(round(22 * unit))
    pad = int(round(8 * unit))
    name_w = cv2.getTextSize("surprise", cv2.FONT_HERSHEY_SIMPLEX, font, thick)[0][0]
    pct_w = cv2.getTextSize("100%", cv2.FONT_HERSHEY_SIMPLEX, font, thick)[0][0]
    bar_w = int(round(90 * unit))
    pw = pad * 4 + name_w + bar_w + pct_w
    ph = pad * 2 + row * len(EMOTIONS)
    # Panels avoid the other faces as well as each other.
    taken = [tuple(int(round(v * s)) for v in face.box) for face in faces]
    for i, face in enumerate(faces):
        x, y, w, h = (int(round(v * s)) for v in face.box)
        color = EMOTION_COLORS.get(face.emotion, (255, 255, 255))
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, max(2, thick + 1), cv2.LINE_AA)
        if face.landmarks is not None:
            r = max(2, int(round(2.2 * unit)))
            for px, py in np.asarray(face.landmarks) * s:
                cv2.circle(canvas, (int(round(px)), int(round(py))), r, (40, 40, 40), -1, cv2.LINE_AA)
                cv2.circle(canvas, (int(round(px)), int(round(py))), max(1, r - 1), (120, 255, 255), -1,
                           cv2.LINE_AA)
        # Top emotion tag above the box (inside it when there is no room above).
        label = f"{face.emotion} {face.scores[face.emotion]:.0%}" + ("" if face.aligned else " (box crop)")
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font * 1.3, thick + 1)
        ty = y - pad if y - th - base - 2 * pad >= 0 else y + th + pad
        tx = min(max(x, 0), max(W - tw - pad, 0))
        cv2.rectangle(canvas, (tx, ty - th - pad // 2), (tx + tw + pad, ty + base + pad // 2 - 1), color, -1)
        cv2.putText(canvas, label, (tx + pad // 2, ty), cv2.FONT_HERSHEY_SIMPLEX, font * 1.3, (20, 20, 20),
                    thick + 1, cv2.LINE_AA)
        # Score panel beside the face.
        px, py = _panel_origin((x, y, w, h), pw, ph, W, H, pad, taken)
        taken.append((px, py, pw, ph))
        x0, y0, x1, y1 = max(px, 0), max(py, 0), min(px + pw, W), min(py + ph, H)
        if x1 > x0 and y1 > y0:
            roi = canvas[y0:y1, x0:x1]
            canvas[y0:y1, x0:x1] = cv2.addWeighted(roi, 0.3, np.full_like(roi, 25), 0.7, 0)
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), color, thick, cv2.LINE_AA)
        tag = tags[i] if tags is not None else (f"#{i + 1}" if len(faces) > 1 else None)
        if tag:
            _text(canvas, tag, (x + pad // 2, y + h - pad), font * 1.2, color, thick)
        for k, e in enumerate(EMOTIONS):
            p = float(face.scores.get(e, 0.0))
            cy = py + pad + k * row
            base_y = cy + int(row * 0.72)
            bold = e == face.emotion
            _text(canvas, e, (px + pad, base_y), font, (255, 255, 255) if bold else (200, 200, 200), thick)
            bx = px + pad * 2 + name_w
            by0, by1 = cy + int(row * 0.2), cy + int(row * 0.85)
            cv2.rectangle(canvas, (bx, by0), (bx + bar_w, by1), (70, 70, 70), -1)
            cv2.rectangle(canvas, (bx, by0), (bx + int(round(bar_w * p)), by1), EMOTION_COLORS[e], -1)
            _text(canvas, f"{p:.0%}", (bx + bar_w + pad, base_y), font, (230, 230, 230), thick)
    return canvas
