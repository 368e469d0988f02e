"""Every page runs as many queries over 30 items as over 3: no query per row (issue 8).

Each page is rendered once over a small world (3 items with predictions by two versions,
labels, corrections, evaluations, retrains), then again after ten times as much of each was
added; the two counts must be equal. bench/pages.py times the review page and the dashboard
over a million items; this test keeps their query counts from growing with the data.
"""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from moderation.inference.models import ModelVersion
from moderation.media.models import MediaItem
from moderation.training.models import TrainingRun
from tests.moderation.dashboards.conftest import make_evaluation, make_label, make_prediction
from tests.moderation.people import make_user
from tests.moderation.review.conftest import make_item, make_version

PG, PG13, R, X, XXX, BLOCKED = 1, 2, 4, 8, 16, 32
LEVELS = (PG, PG13, R, X, XXX)


class World:
    """Items, predictions, labels and retrains that `grow` adds to, and the pages over them."""

    def __init__(self, moderators: list[User], admin: User) -> None:
        self.moderators = moderators
        self.admin = admin
        self.champion = make_version("v1")
        self.candidate = make_version("v2", status=ModelVersion.Status.CANDIDATE)
        self.watched = make_item()  # the item whose history page grows
        self.numbers = itertools.count()
        self.readers = itertools.count()

    def grow(self, n: int) -> None:
        for _ in range(n):
            i = next(self.numbers)
            item = make_item(split="test" if i % 5 == 0 else "train")
            for version, shift in ((self.champion, 0), (self.candidate, 2)):
                make_prediction(
                    item,
                    version,
                    suggested=LEVELS[(i + shift) % 5],
                    voter=LEVELS[(i + shift + 1) % 5],
                    mlp=LEVELS[(i + shift) % 5],
                    experts={"tag_rules": LEVELS[i % 5], "lstm": None if i % 4 else PG},
                )
            moderator = self.moderators[i % len(self.moderators)]
            # Explicit labels on mildly rated items: severe rows, disagreements to list.
            make_label(item, (X, XXX, R, BLOCKED, PG)[i % 5], moderator, agreed_with_voter=False)
            if i % 3 == 0:
                make_label(item, XXX, moderator, agreed_with_mlp=True)  # a correction
            make_label(self.watched, LEVELS[i % 5], moderator)
            if i % 3 == 0:
                retired = make_version(f"r{i}", status=ModelVersion.Status.RETIRED)
                make_prediction(self.watched, retired, suggested=LEVELS[i % 5])
                make_evaluation(
                    self.champion, [i % 5, 3], {"suggested": [0, 0], "voter": [0, 3], "mlp": [0, 0]}
                )
                TrainingRun.objects.create(
                    state=TrainingRun.State.SUCCEEDED,
                    active=None,
                    started_by=self.admin,
                    base_version=self.champion,
                    candidate=retired,
                )

    def queries(self, url: str, *, reader: User | None = None) -> int:
        """The queries of one GET of `url` by `reader` (by default the admin)."""
        client = Client()
        client.force_login(reader or self.admin)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, url
        return len(captured)

    def new_moderator(self) -> User:
        return make_user(f"reader{next(self.readers)}", "moderators")


@pytest.fixture
def world(alice, bob, carol) -> World:
    return World([alice, bob], carol)


def history_url(world: World) -> str:
    return f"/review/items/{world.watched.uid}/"


# (page, URL or a function of the world giving it)
PAGES = [
    ("dashboard", "/dashboards/"),
    ("dashboard CSV", "/dashboards/?format=csv"),
    ("version on the test split", "/dashboards/versions/v1/"),
    ("version on live labels", "/dashboards/versions/v1/?data=live&model=tag_rules"),
    ("moderation health", "/dashboards/health/"),
    ("disagreements", "/review/disagreements/"),
    ("item history", history_url),
    ("retrains", "/training/"),
    ("model versions", "/training/versions/"),
]


@pytest.mark.parametrize(("page", "url"), PAGES, ids=[page for page, _ in PAGES])
def test_a_page_runs_as_many_queries_over_30_items_as_over_3(world, page, url):
    world.grow(3)
    address = url(world) if callable(url) else url
    few = world.queries(address)
    world.grow(27)
    assert world.queries(address) == few, page


def test_the_review_page_claims_and_shows_an_item_in_as_many_queries_over_30_items(world):
    # A new moderator each time: the first view claims the riskiest item, the costly path.
    world.grow(3)
    few = world.queries("/review/", reader=world.new_moderator())
    world.grow(27)
    assert world.queries("/review/", reader=world.new_moderator()) == few


def test_the_review_page_shows_a_held_item_in_as_many_queries_over_30_items(world):
    reader = world.new_moderator()
    world.grow(3)
    world.queries("/review/", reader=reader)  # claims
    few = world.queries("/review/", reader=reader)
    world.grow(27)
    assert world.queries("/review/", reader=reader) == few


def test_the_world_holds_what_the_pages_list(world):
    # The counts above compare pages that show rows: severe items, disagreements, history.
    world.grow(30)
    html = Client()
    html.force_login(world.admin)
    overview = html.get("/dashboards/").content.decode()
    assert "Severe down-class items" in overview and "/review/items/" in overview
    disagreements = html.get("/review/disagreements/").content.decode()
    assert disagreements.count("/review/items/") >= 10
    assert MediaItem.objects.get(pk=world.watched.pk).labels.count() == 30
