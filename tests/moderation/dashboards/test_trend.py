"""The overview's trend cards: short version names on the axis, one point per evaluation that
says on how many items (and which evaluation, for a version evaluated twice), and empty cards
that say in words when their first point appears."""

import html
import re

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from moderation import schedules
from moderation.dashboards import views
from moderation.schedules import LIVE_FIGURES, PERIODIC_TASKS

from .conftest import make_evaluation, make_version

pytestmark = pytest.mark.django_db

GENERATED = "20250301-101112-a1b2c3"


def trend_card(client, data: str) -> str:
    page = html.unescape(client.get("/dashboards/").content.decode())
    start = page.index(f'id="trend-{data}"')
    return page[start : page.index("</section>", start)]


def first_chart(card: str) -> str:
    return card[card.index("<svg") : card.index("</svg>")]


def evaluate(version, n: int, *, data: str = "test"):
    """An evaluation on `n` items (the first one explicit, rated PG)."""
    return make_evaluation(
        version, [3] + [0] * (n - 1), {k: [0] * n for k in ("suggested", "voter", "mlp")}, data=data
    )


@pytest.mark.parametrize(
    ("version", "short"),
    [(GENERATED, "…a1b2c3"), ("v12", "v12"), ("a-very-long-hand-made-name", "a-very-long…")],
)
def test_a_version_is_named_short_on_the_axis(version, short):
    assert views.short_version(version) == short


def test_a_version_evaluated_twice_has_two_points_that_say_which_and_on_how_many_items(
    admin_client,
):
    champion = make_version(GENERATED)
    evaluate(champion, 1703)
    evaluate(champion, 1292)
    card = trend_card(admin_client, "test")
    svg = first_chart(card)
    ticks = re.findall(r"<tspan[^>]*>(.*?)</tspan>", svg)
    assert ticks == ["…a1b2c3 · 1/2", "1,703 test items", "…a1b2c3 · 2/2", "1,292 test items"]
    assert GENERATED not in "".join(ticks)  # the whole name only in tooltips and the table
    tooltips = re.findall(r"<title>Suggested, ([^<]*)</title>", svg)
    assert [re.sub(r", \d{4}-\d\d-\d\d\)", ", DATE)", tip) for tip in tooltips] == [
        f"{GENERATED} (evaluation 1 of 2, DATE) · 1,703 test items: 0.1%",
        f"{GENERATED} (evaluation 2 of 2, DATE) · 1,292 test items: 0.1%",
    ]
    assert svg.count("<circle") == 2 * 3  # two points for each of the suggestion, voter, MLP
    table = card[card.index("<table") :]
    assert "evaluation 1 of 2" in table and "evaluation 2 of 2" in table


def test_a_version_evaluated_once_says_only_its_size(admin_client):
    evaluate(make_version("v1"), 24)
    svg = first_chart(trend_card(admin_client, "test"))
    assert re.findall(r"<tspan[^>]*>(.*?)</tspan>", svg) == ["v1", "24 test items"]
    assert "evaluation 1 of" not in svg


def test_live_points_count_live_labels(admin_client):
    evaluate(make_version("v1"), 40, data="live")
    assert "40 live labels" in trend_card(admin_client, "live")


def test_the_empty_live_trend_says_when_its_first_point_appears(admin_client):
    card = trend_card(admin_client, "live")
    assert "LIVE_FIGURES_SECONDS" not in card
    assert (
        "No live figures yet. The first point appears within a day of the first moderator's "
        "label on an item the champion rated, then one more every day." in card
    )


def live_figures_task(**fields) -> PeriodicTask:
    """The periodic task as an admin left it on the Periodic tasks page."""
    task, _ = PeriodicTask.objects.update_or_create(
        name=LIVE_FIGURES,
        defaults={"task": PERIODIC_TASKS[LIVE_FIGURES][0], **fields},
    )
    return task


def test_the_empty_live_trend_follows_the_interval_an_admin_set(admin_client):
    six_hours, _ = IntervalSchedule.objects.get_or_create(every=6, period=IntervalSchedule.HOURS)
    live_figures_task(interval=six_hours, enabled=True)
    card = trend_card(admin_client, "live")
    assert "within 6 hours of the first moderator's label" in card
    assert "then one more every 6 hours." in card


def test_the_empty_live_trend_says_when_no_point_will_appear(admin_client):
    a_day, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.DAYS)
    live_figures_task(interval=a_day, enabled=False)
    assert "No live figures yet, and none will appear" in trend_card(admin_client, "live")


def test_without_its_periodic_task_the_live_trend_reads_the_setting(admin_client, settings):
    PeriodicTask.objects.filter(name=LIVE_FIGURES).delete()
    settings.LIVE_FIGURES_SECONDS = 90
    assert "within 90 seconds" in trend_card(admin_client, "live")


def test_the_empty_test_trend_says_when_its_first_point_appears(admin_client):
    card = trend_card(admin_client, "test")
    assert "The first point appears when a retrain finishes" in card


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (86400, ("a day", "every day")),
        (3600, ("an hour", "every hour")),
        (21600, ("6 hours", "every 6 hours")),
        (604800, ("a week", "every week")),
        (172800, ("2 days", "every 2 days")),
        (90, ("90 seconds", "every 90 seconds")),
        (300, ("5 minutes", "every 5 minutes")),
    ],
)
def test_intervals_are_said_in_words(seconds, words):
    assert schedules.interval_words(seconds) == words


def test_the_live_figures_task_is_the_one_beat_runs():
    assert LIVE_FIGURES in PERIODIC_TASKS
