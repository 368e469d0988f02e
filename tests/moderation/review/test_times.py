"""`ago` and `age` (templatetags/times.py): "just now" instead of "0 minutes ago"."""

from __future__ import annotations

from datetime import timedelta

from django.template import Context, Template
from django.utils import timezone

from moderation.review.decisions import label_create
from moderation.review.models import ReviewState
from moderation.review.templatetags.times import age, ago

from .conftest import make_item


def before(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


def test_under_a_minute_is_just_now():
    assert ago(before(seconds=0)) == "just now"
    assert ago(before(seconds=59)) == "just now"


def test_a_moment_ahead_is_just_now_too():
    # Another process's clock a little ahead: Django's timesince says "0 minutes" there.
    assert ago(timezone.now() + timedelta(seconds=5)) == "just now"


def test_minutes_and_hours_say_how_long_ago():
    assert ago(before(minutes=5, seconds=10)) == "5\xa0minutes ago"
    assert ago(before(minutes=1, seconds=1)) == "1\xa0minute ago"
    assert ago(before(hours=2)) == "2\xa0hours ago"
    assert ago(before(hours=2, minutes=5)) == "2\xa0hours, 5\xa0minutes ago"


def test_an_age_under_a_minute_is_said_so():
    assert age(before(seconds=10)) == "under a minute"
    assert age(before(days=3)) == "3\xa0days"


def test_no_time_is_nothing():
    assert ago(None) == "" and age(None) == ""


def test_templates_load_them():
    rendered = Template("{% load times %}{{ a|ago }}; oldest {{ b|age }} old").render(
        Context({"a": before(seconds=3), "b": before(seconds=3)})
    )
    assert rendered == "just now; oldest under a minute old"


def test_the_review_page_says_an_item_was_decided_just_now(alice_client, bob):
    item = make_item()
    label_create(item=item, level=2, moderator=bob)
    ReviewState.objects.filter(item=item).update(state=ReviewState.State.QUEUED)

    html = alice_client.post("/review/claim/", headers={"HX-Request": "true"}).content.decode()

    assert "by bob, just now." in html
    assert "0\xa0minutes" not in html
