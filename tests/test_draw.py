"""Plots and overlays: layout properties that must hold for any number of faces."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.draw import _with_gaps, timeline_figure


@pytest.mark.parametrize("rows", [1, 3, 12, 20])
def test_timeline_title_and_legend_never_collide(rows):
    import matplotlib.pyplot as plt

    t = np.linspace(0, 10, 50)
    series = {f"person {k + 1}": (t, np.random.default_rng(k).random((50, 7))) for k in range(rows)}
    fig = timeline_figure(series, title="a-rather-long-file-name-of-a-video.mp4: smoothed emotion scores per person",
                          cuts=[3.0, 6.5])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    top_axes = fig.axes[0].get_window_extent(renderer)
    assert title.y0 > legend.y1, "the title sits above the legend"
    assert legend.y0 > top_axes.y1, "the legend sits above the plots"
    assert title.y1 <= fig.bbox.y1 and title.x0 >= 0 and title.x1 <= fig.bbox.x1
    plt.close(fig)


def test_timeline_breaks_lines_where_a_face_was_away():
    t = np.array([0.0, 0.1, 0.2, 5.0, 5.1])
    v = np.ones((5, 7))
    t2, v2 = _with_gaps(t, v, gap=1.0)
    assert len(t2) == 6 and np.isnan(t2[3]) and np.isnan(v2[3]).all()
    t3, _ = _with_gaps(t[:3], v[:3], gap=1.0)
    assert len(t3) == 3


# ---------------------------------------------------------------------------------------
# score panels: never over a face or another panel (issue 26 item 5)


def make_face(box, emotion="happy", frontal=True, landmarks=False):
    from emolens.emotions import EMOTIONS
    from emolens.recognize import Face

    scores = {e: (0.87 if e == emotion else 0.13 / 6) for e in EMOTIONS}
    points = None
    if landmarks:
        x, y, w, h = box
        points = np.stack([np.linspace(x + 0.1 * w, x + 0.9 * w, 68), np.linspace(y + 0.2 * h, y + 0.9 * h, 68)], 1)
    return Face(tuple(int(v) for v in box), points, scores, dict(scores), emotion, True, frontal=frontal)


def side_by_side(n: int, width: int, height: int, side: int):
    """n faces of ``side`` px in a row across the middle of the picture."""
    step = width / n
    return [(int(step * k + (step - side) / 2), (height - side) // 2, side, side) for k in range(n)]


def crowd(n: int, width: int, height: int, side: int, seed: int = 0):
    """n faces of about ``side`` px on a jittered grid filling the picture (a group photo)."""
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n * width / height)))
    rows = int(np.ceil(n / cols))
    boxes = []
    for k in range(n):
        r, c = divmod(k, cols)
        s = int(side * rng.uniform(0.8, 1.1))
        cx = (c + 0.5) * width / cols + rng.uniform(-0.1, 0.1) * width / cols
        cy = (r + 0.5) * height / rows + rng.uniform(-0.1, 0.1) * height / rows
        boxes.append((int(cx - s / 2), int(cy - s / 2), s, s))
    return boxes


def check_layout(boxes, places, canvas):
    from emolens.draw import overlap

    W, H = canvas
    for i, p in enumerate(places):
        x, y, w, h = p.rect
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H, f"face {i}: {p} leaves the picture"
        assert p.kind != "inside", f"face {i}: no free room found ({p})"
        for j, box in enumerate(boxes):
            assert not overlap(p.rect, box), f"face {i}'s {p.kind} {p.rect} covers face {j} {box}"
        for j, q in enumerate(places[:i]):
            assert not overlap(p.rect, q.rect), f"face {i}'s {p.kind} covers face {j}'s {q.kind}"


CASES = [  # (name, picture size, boxes): photos are enlarged to 720 px, video frames are drawn as they are
    *[(f"{n} side by side, video", (1280, 720), side_by_side(n, 1280, 720, min(200, 1280 // n - 30)))
      for n in (3, 6, 12)],
    *[(f"{n} side by side, photo", (1600, 900), side_by_side(n, 1600, 900, min(260, 1600 // n - 40)))
      for n in (3, 6, 12)],
    *[(f"{n} in a crowd, video", (1280, 720), crowd(n, 1280, 720, {3: 150, 6: 120, 12: 90}[n], seed=n))
      for n in (3, 6, 12)],
    *[(f"{n} in a crowd, photo", (1986, 1545), crowd(n, 1986, 1545, {3: 300, 6: 220, 12: 160}[n], seed=n))
      for n in (3, 6, 12)],
]


@pytest.mark.parametrize("name, size, boxes", CASES, ids=[c[0] for c in CASES])
def test_score_panels_cover_no_face_and_no_other_panel(name, size, boxes):
    from emolens.draw import annotated_size, annotation_layout

    W, H = size
    faces = [make_face(b, emotion=("happy", "sad", "neutral")[k % 3], frontal=k % 4 != 1) for k, b in enumerate(boxes)]
    min_side = 0 if "video" in name else 720
    tags = [f"P{k + 1}" for k in range(len(faces))] if "video" in name else None
    places = annotation_layout(faces, H, W, min_side=min_side, tags=tags)
    aH, aW = annotated_size(H, W, min_side)
    s = aW / W
    check_layout([tuple(int(round(v * s)) for v in b) for b in boxes], places, (aW, aH))
    if len(boxes) == 3:
        assert all(p.kind.startswith("panel") for p in places), "three faces with room get panels"


def test_crowded_faces_get_compact_labels_and_the_rest_falls_inside_their_own_box():
    from emolens.draw import place_annotations

    boxes = [(x, y, 90, 90) for y in range(0, 400, 100) for x in range(0, 600, 100)]   # no room between them
    options = [[("panel", (200, 180)), ("label", (120, 24)), ("short", (70, 16))]] * len(boxes)
    places = place_annotations(boxes, options, (600, 400), gap=2, margin=1)
    assert {p.kind for p in places} == {"inside"}
    for p, (x, y, w, h) in zip(places, boxes):
        px, py, pw, ph = p.rect
        assert x <= px and px + pw <= x + w and y <= py and py + ph <= y + h, "inside its own box, cut to it"
    # With room above each row (gaps of 40 px), labels fit and cover nothing.
    boxes = [(x, y, 90, 90) for y in range(40, 520, 130) for x in range(0, 600, 100)]
    places = place_annotations(boxes, options, (600, 560), gap=2, margin=1)
    assert {p.kind for p in places} <= {"label", "short"}
    check_layout(boxes, places, (600, 560))


def test_panel_sides_order_edges_and_preference():
    from emolens.draw import place_annotations

    options = [[("panel", (100, 80)), ("label", (60, 20))]]
    assert place_annotations([(50, 50, 60, 60)], options, (400, 300))[0].side == "right"
    assert place_annotations([(330, 50, 60, 60)], options, (400, 300))[0].side == "left"     # no room right
    assert place_annotations([(50, 50, 60, 60)], options, (400, 300), prefer=["below"])[0].side == "below"
    # A larger face chooses first: the small one beside it takes what is left.
    big, small = (150, 60, 120, 120), (280, 60, 40, 40)
    places = place_annotations([small, big], options * 2, (500, 300))
    assert places[1].side == "left" and places[0].kind in ("panel", "label")
    check_layout([small, big], places, (500, 300))


def test_drawing_follows_the_layout_faces_stay_visible():
    """Inside every face box (inside its outline) the pixels are the picture's own: no text or panel."""
    from emolens.draw import annotation_layout, draw_faces

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (600, 1000, 3), dtype=np.uint8)
    boxes = side_by_side(6, 1000, 600, 120)
    faces = [make_face(b) for b in boxes]
    out = draw_faces(image, faces, min_side=0)
    assert out.shape == image.shape and not np.array_equal(out, image)
    for x, y, w, h in boxes:
        inner = (slice(y + 4, y + h - 3), slice(x + 4, x + w - 3))
        assert np.array_equal(out[inner], image[inner])
    kinds = {p.kind for p in annotation_layout(faces, 600, 1000, min_side=0)}
    assert kinds <= {"panel", "panel-small", "label", "label-small", "short"}


def test_labels_name_the_person_and_mark_faces_that_are_not_frontal():
    from emolens.draw import face_title
    from emolens.video.outputs import face_tag

    class Tracked:
        def __init__(self, person, frontal):
            self.track_id, self.person, self.frontal = 7, person, frontal
            self.emotion, self.scores, self.aligned = "happy", {"happy": 0.874}, True

    assert face_tag(Tracked(2, True)) == "P2" and face_tag(Tracked(None, True)) == "#7"
    assert face_title(Tracked(2, True), "P2") == "P2 happy 87%"
    assert face_title(Tracked(2, False), "P2") == "P2 happy~ 87%"
    assert face_title(Tracked(2, False), "P2", score=False) == "P2 happy~"
