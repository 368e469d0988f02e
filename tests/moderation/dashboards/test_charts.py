import itertools
import re

import pytest

from moderation.dashboards.charts import TICK_CHAR_PX, Series, bar_chart, line_chart


def test_a_line_chart_escapes_every_text_it_draws():
    svg = line_chart(
        [Series(name="<script>x</script>", values=[0.1, None, 0.3])],
        x_labels=["a&b", "<i>", "c"],
        title='"quoted" <title>',
    )
    assert "<script>" not in svg and "<i>" not in svg
    assert "&lt;script&gt;" in svg and "a&amp;b" in svg


def test_a_line_chart_is_labelled_for_screen_readers():
    svg = line_chart([Series("DCM", [0.1, 0.2])], x_labels=["v1", "v2"], title="DCM trend")
    assert 'role="img"' in svg
    labelled = re.search(r'aria-labelledby="([^ ]+) ([^"]+)"', svg)
    assert f'id="{labelled[1]}"' in svg and f'id="{labelled[2]}"' in svg
    assert "DCM: 10%, 20%" in svg  # the desc carries the numbers


def test_a_gap_splits_the_line_but_keeps_the_points():
    svg = line_chart([Series("s", [0.1, 0.2, None, 0.3, 0.4])], x_labels=list("abcde"), title="t")
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 4


def test_a_bar_chart_has_a_bar_and_a_title_per_value():
    svg = bar_chart([("11-01", 3), ("11-02", 0), ("11-03", 7)], title="labels")
    assert svg.count("<rect") == 3
    assert "<title>11-03: 7</title>" in svg


def test_an_empty_bar_chart_still_renders():
    assert "no data" in bar_chart([], title="nothing")


def x_label_boxes(svg: str) -> list[tuple[float, float]]:
    """Each drawn x label's horizontal extent, from its anchor and its longest line."""
    boxes = []
    for anchor_x, anchor, body in re.findall(
        r'<text class="tick" x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)">(.*?)</text>', svg
    ):
        if "<tspan" not in body:
            continue  # a y-axis tick
        lines = re.findall(r"<tspan[^>]*>(.*?)</tspan>", body)
        width = TICK_CHAR_PX * max(len(line) for line in lines)
        x = float(anchor_x)
        left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
        boxes.append((left, left + width))
    return boxes


LONG_LABELS = [f"…{n:06x} · {k}/2\n{1703 - n:,} test items" for n in range(12) for k in (1, 2)]


def test_the_edge_labels_stay_inside_the_plot():
    svg = line_chart([Series("s", [0.1] * 5)], x_labels=LONG_LABELS[:5], title="t")
    boxes = x_label_boxes(svg)
    left, right = 56, 720 - 16  # the plot's edges
    assert boxes[0][0] >= left and boxes[-1][1] <= right
    assert 'text-anchor="start"' in svg and 'text-anchor="end"' in svg


@pytest.mark.parametrize("n", [2, 3, 6, 9, 24])
def test_x_labels_never_overlap_however_many_points(n):
    svg = line_chart([Series("s", [0.1] * n)], x_labels=LONG_LABELS[:n], title="t")
    boxes = x_label_boxes(svg)
    assert boxes, "no label drawn"
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(boxes)), boxes
    assert LONG_LABELS[n - 1].split("\n")[0] in svg  # the latest point keeps its label


def test_every_point_keeps_its_own_tooltip_when_its_label_is_hidden():
    tips = [f"v{n} (evaluation {n % 2 + 1} of 2) · {n:,} test items" for n in range(24)]
    svg = line_chart(
        [Series("DCM", [0.1] * 24)], x_labels=LONG_LABELS, point_labels=tips, title="t"
    )
    assert len(x_label_boxes(svg)) < 24
    for tip in tips:
        assert f"<title>DCM, {tip}: 10%</title>" in svg


def test_tiny_rates_keep_their_y_ticks_apart():
    svg = line_chart([Series("DCM", [0.0006, 0.0008])], x_labels=["a", "b"], title="t")
    ticks = re.findall(r'text-anchor="end">([^<]*)</text>', svg)
    assert len(set(ticks)) == len(ticks) and "0.02%" in ticks
