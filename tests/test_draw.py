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
