import re

from moderation.dashboards.charts import Series, bar_chart, line_chart


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
