"""The label-quality section of the health page: agreement, gold, holds, queues and outcomes,
each number linked to the tasks behind it; the agreement CSV; an admin's answers to a hold.

Tasks are made by the review services a moderator's page calls, never written by hand."""

from __future__ import annotations

import csv
import io
import re
from html import escape, unescape

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from playwright.sync_api import sync_playwright

from moderation.audit.models import AuditEvent
from moderation.dashboards.quality import items_url, week_starts
from moderation.demo.chromium import launch, log_in
from moderation.review.claims import item_claim_next
from moderation.review.gold import gold_mark, hold_get_standing
from moderation.review.labels import label_get_current
from moderation.review.models import LEVELS, Label, ReviewTask
from moderation.review.workflow import decision_submit
from rating_models.agreement import agreement
from tests.moderation.people import PASSWORD, make_user

from .conftest import make_item

Kind = ReviewTask.Kind
HEALTH = "/dashboards/health/"
ITEMS = "/dashboards/health/quality/items/"


@pytest.fixture
def double_review(settings):
    settings.DOUBLE_REVIEW_SHARE = 1.0
    settings.GOLD_SHARE = 0.0


@pytest.fixture
def dave(db):
    return make_user("dave", "moderators")


def decide(moderator, level):
    item = item_claim_next(moderator=moderator)
    assert item is not None, f"{moderator} got nothing to review"
    decision_submit(
        item=item, level=level, moderator=moderator, saw_label=label_get_current(item=item)
    )
    return item


def reviewed_twice(first, second, a: int, b: int):
    """One item decided blind by `first` at level a, then by `second` at level b."""
    item = make_item()
    assert decide(first, a) == item
    assert decide(second, b) == item
    return item


def section(html: str) -> str:
    return html[html.index('id="label-quality"') :]


def link(number: object, url: str) -> str:
    return f'href="{escape(url)}">{number}</a>'


def listed(client, url: str) -> set:
    """The items a link of the page lists (every page of them)."""
    response = client.get(unescape(url))
    assert response.status_code == 200
    page = response.context["page"]
    uids = {task.item.uid for task in page.object_list}
    assert all(f'href="/review/items/{uid}/"' in response.text for uid in uids)
    return uids


@pytest.fixture
def pairs(alice, bob, dave, double_review):
    """Six double reviews: alice then bob (four), bob then dave (two); levels as given."""
    levels = {
        (alice, bob): [(4, 4), (2, 8), (1, 1), (8, 16)],
        (bob, dave): [(16, 16), (2, 2)],
    }
    items = {}
    for (first, second), answers in levels.items():
        items[first.username, second.username] = [
            reviewed_twice(first, second, a, b) for a, b in answers
        ]
    return levels, items


def test_the_section_shows_agreement_as_rating_models_computes_it(admin_client, pairs):
    levels, _ = pairs
    every = [pair for answers in levels.values() for pair in answers]
    overall = agreement([LEVELS.index(a) for a, _ in every], [LEVELS.index(b) for _, b in every])
    alice_bob = [LEVELS.index(x) for pair in levels[next(iter(levels))] for x in pair]
    expected_pair = agreement(alice_bob[0::2], alice_bob[1::2])

    response = admin_client.get(HEALTH)

    rows = response.context["quality"].agreement
    assert [(r.names, r.agreement) for r in rows] == [
        (None, overall),
        (("alice", "bob"), expected_pair),
        (("bob", "dave"), rows[2].agreement),
    ]
    assert rows[2].agreement.n == 2 and rows[2].agreement.exact.value == 1.0
    html = section(response.text)
    assert f"{overall.kappa.value:.3f}" in html
    assert f"{overall.kappa.low:.3f}–{overall.kappa.high:.3f}" in html
    assert f"{100 * expected_pair.exact.value:.1f}%" in html
    assert link(6, items_url(kind="double", state="done")) in html
    assert link(4, items_url(pair="alice,bob")) in html


def test_a_pairs_link_lists_exactly_its_double_reviews(admin_client, pairs):
    _, items = pairs
    html = section(admin_client.get(HEALTH).text)
    url = re.search(r'href="([^"]*pair=bob%2Cdave[^"]*)">2</a>', html).group(1)

    assert listed(admin_client, url) == {item.uid for item in items["bob", "dave"]}
    # Either order names the same pair.
    assert listed(admin_client, f"{ITEMS}?pair=dave,bob") == listed(admin_client, url)
    every = {item.uid for answers in items.values() for item in answers}
    assert listed(admin_client, items_url(kind="double", state="done")) == every


def test_the_outcome_weeks_link_to_the_tasks_closed_that_week(admin_client, pairs):
    _, items = pairs
    quality = admin_client.get(HEALTH).context["quality"]
    assert quality.weeks == week_starts() and len(quality.weeks) == 8
    rows = {(row.kind, row.outcome): row for row in quality.outcomes}
    agreed, differed = rows[Kind.DOUBLE, "agreed"], rows[Kind.DOUBLE, "differed"]
    assert [n for n, _ in agreed.cells] == [0] * 7 + [4]
    assert [n for n, _ in differed.cells] == [0] * 7 + [2]

    _, url = differed.cells[-1]
    html = section(admin_client.get(HEALTH).text)
    assert link(2, url) in html
    alice_bob = items["alice", "bob"]
    assert listed(admin_client, url) == {alice_bob[1].uid, alice_bob[3].uid}
    assert listed(admin_client, agreed.cells[0][1]) == set()  # seven weeks ago: none closed


def test_a_queue_size_links_to_its_open_tasks(admin_client, pairs):
    _, items = pairs
    quality = admin_client.get(HEALTH).context["quality"]
    sizes = {row.kind: row.size for row in quality.queues}
    assert sizes == {
        Kind.CONFIRMATION: 0,
        Kind.SECOND_LOOK: 0,
        Kind.ADJUDICATION: 2,  # the two double reviews that differed
        Kind.DOUBLE: 0,
    }
    (adjudications,) = [row for row in quality.queues if row.kind == Kind.ADJUDICATION]
    assert link(2, adjudications.url) in section(admin_client.get(HEALTH).text)
    alice_bob = items["alice", "bob"]
    assert listed(admin_client, adjudications.url) == {alice_bob[1].uid, alice_bob[3].uid}


def gold_items(count: int, level: int) -> list:
    items = [make_item(queued=False) for _ in range(count)]
    for item in items:
        Label.objects.create(item=item, level=level, origin="corpus")
    return items


@pytest.fixture
def held_alice(alice, bob, carol, settings):
    """alice labels three items, then misses five gold items of six and is held."""
    settings.GOLD_SHARE = 0.0
    labelled = [make_item() for _ in range(3)]
    for _ in labelled:
        decide(alice, 2)
    settings.GOLD_SHARE = 1.0
    settings.GOLD_MIN_ANSWERS = 6
    gold = gold_items(6, level=8)
    gold_mark(items=gold, admin=carol)
    answers = [8, 1, 1, 16, 4, 2]  # one hit, four below, one above
    for level in answers:
        decide(alice, level)
    settings.GOLD_SHARE = 0.0
    hold = hold_get_standing(moderator=alice)
    assert hold is not None
    return hold, labelled


def test_gold_results_link_to_exactly_the_answers_behind_them(admin_client, held_alice):
    html = section(admin_client.get(HEALTH).text)
    quality = admin_client.get(HEALTH).context["quality"]
    (row,) = quality.gold
    assert (row.result.username, row.result.answers, row.result.under) == ("alice", 6, 4)
    assert row.held and row.over_threshold
    assert link(6, row.urls["answers"]) in html
    assert link("66.7%", row.urls["under"]) in html

    under = listed(admin_client, row.urls["under"])
    assert len(under) == 4
    tasks = ReviewTask.objects.filter(kind=Kind.GOLD, assigned_to__username="alice")
    assert under == {t.item.uid for t in tasks.filter(outcome="under")}
    assert len(listed(admin_client, row.urls["hit"])) == 1
    assert len(listed(admin_client, row.urls["answers"])) == 6


def test_a_held_moderator_is_listed_with_the_work_waiting_on_them(admin_client, held_alice, alice):
    hold, _ = held_alice
    waiting = make_item()
    assert decide(alice, 4) == waiting  # held: the decision waits for a second look

    response = admin_client.get(HEALTH)

    (row,) = response.context["quality"].holds
    assert (row.hold, row.waiting) == (hold, 1)
    html = section(response.text)
    assert escape(hold.reason) in html
    assert link(1, row.waiting_url) in html
    assert listed(admin_client, row.waiting_url) == {waiting.uid}


def test_clearing_a_hold_from_the_section_writes_an_audit_row(admin_client, held_alice, carol):
    hold, _ = held_alice
    response = admin_client.post(
        f"/dashboards/health/quality/holds/{hold.pk}/clear/", {"reason": "retrained"}
    )

    assert response.status_code == 302 and response.url.startswith(HEALTH)
    hold.refresh_from_db()
    assert hold.cleared_at is not None and hold.cleared_by == carol
    event = AuditEvent.objects.filter(action=AuditEvent.Action.HOLD, actor=carol).get()
    assert (event.old, event.new, event.reason) == ("alice held", "cleared", "retrained")
    page = admin_client.get(response.url)
    assert "The hold on alice is cleared" in page.text
    assert page.context["quality"].holds == []
    again = admin_client.post(f"/dashboards/health/quality/holds/{hold.pk}/clear/", follow=True)
    assert "cleared already" in again.text


def test_sending_back_opens_a_second_look_at_each_recent_label(admin_client, held_alice, carol):
    hold, labelled = held_alice
    url = f"/dashboards/health/quality/holds/{hold.pk}/second-look/"

    response = admin_client.post(url, {"days": "7"}, follow=True)

    assert escape("Sent 3 of alice's decisions from the 7 days before the hold") in response.text
    looks = ReviewTask.objects.filter(kind=Kind.SECOND_LOOK)
    assert {t.item for t in looks} == set(labelled)
    assert all(t.reason == "decided by held moderator alice" for t in looks)
    assert all(t.excluded.username == "alice" for t in looks)
    events = AuditEvent.objects.filter(action=AuditEvent.Action.TASK, actor=carol)
    assert events.filter(new="second look opened").count() == 3
    (row,) = response.context["quality"].holds
    assert row.waiting == 3
    assert listed(admin_client, row.waiting_url) == {item.uid for item in labelled}

    twice = admin_client.post(url, {}, follow=True)  # the default: 7 days
    assert escape("Sent 0 of alice's decisions") in twice.text
    assert "3 had one open already" in twice.text
    assert looks.count() == 3


def test_sending_back_with_a_bad_day_count_says_so(admin_client, held_alice):
    hold, _ = held_alice
    url = f"/dashboards/health/quality/holds/{hold.pk}/second-look/"
    for days in ("abc", "0", "99999"):
        response = admin_client.post(url, {"days": days}, follow=True)
        assert response.status_code == 200
        assert "whole number from 1 to 365" in response.text
    assert not ReviewTask.objects.filter(kind=Kind.SECOND_LOOK).exists()
    assert admin_client.post("/dashboards/health/quality/holds/999999/clear/").status_code == 404


def test_the_agreement_csv_has_every_pair_and_defuses_formulas(admin_client, alice, double_review):
    eve = make_user("=eve", "moderators")
    reviewed_twice(eve, alice, 4, 4)
    reviewed_twice(eve, alice, 1, 2)
    expected = agreement([2, 0], [2, 1])

    response = admin_client.get("/dashboards/health/quality/agreement.csv")

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "pair",
        "n",
        "exact",
        "exact_low",
        "exact_high",
        "kappa",
        "kappa_low",
        "kappa_high",
        "alpha",
        "alpha_low",
        "alpha_high",
    ]
    assert [r[0] for r in rows[1:]] == ["all pairs", "'=eve,alice"]
    for row in rows[1:]:
        assert int(row[1]) == 2
        assert float(row[2]) == expected.exact.value
        assert float(row[5]) == pytest.approx(expected.kappa.value)
        assert float(row[8]) == pytest.approx(expected.alpha.value)
    assert "=eve" in section(admin_client.get(HEALTH).text)  # shown escaped, as text


def test_an_empty_section_says_what_fills_it(admin_client):
    html = section(admin_client.get(HEALTH).text)
    assert "No blind double review has closed yet" in html
    assert "No gold answer yet" in html and "No moderator is held" in html
    rows = list(
        csv.reader(io.StringIO(admin_client.get("/dashboards/health/quality/agreement.csv").text))
    )
    assert rows[1] == ["all pairs", "0", *[""] * 9]


def test_the_health_page_query_count_does_not_grow_with_the_tasks(
    admin_client, alice, bob, dave, double_review
):
    reviewed_twice(alice, bob, 4, 4)
    reviewed_twice(bob, dave, 2, 4)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(HEALTH).status_code == 200
        return len(captured)

    few = queries()
    for a, b in [(1, 1), (2, 8), (16, 16), (4, 2)]:
        reviewed_twice(alice, dave, a, b)
    assert queries() == few


ACTIONS = [
    ("get", ITEMS),
    ("get", "/dashboards/health/quality/agreement.csv"),
    ("post", "/dashboards/health/quality/holds/1/clear/"),
    ("post", "/dashboards/health/quality/holds/1/second-look/"),
]


@pytest.mark.parametrize(("method", "url"), ACTIONS)
def test_a_moderator_is_forbidden_the_sections_pages_and_actions(client, alice, method, url):
    client.force_login(alice)
    assert getattr(client, method)(url).status_code == 403


@pytest.mark.parametrize(("method", "url"), ACTIONS)
def test_anonymous_visitors_are_sent_to_log_in(client, db, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_the_hold_actions_refuse_a_get_and_a_post_without_csrf(client, carol, held_alice):
    hold, _ = held_alice
    client.force_login(carol)
    url = f"/dashboards/health/quality/holds/{hold.pk}/clear/"
    assert client.get(url).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(carol)
    assert strict.post(url).status_code == 403
    assert hold_get_standing(moderator=hold.moderator) is not None


@pytest.mark.parametrize(
    "query",
    [
        "kind=nope",
        "state=maybe",
        "outcome=nope",
        "moderator=nobody",
        "week=2024-13-45",
        "week=2024-01-02",  # a Tuesday
        "pair=alice",
        "pair=alice,ghost",
        "pair=,",
        "pair=" + "a," * 200,
        "moderator=%00",
        "pair=alice,%00",
        "outcome=%00",
    ],
)
def test_a_malformed_filter_is_refused_with_a_message(admin_client, alice, query):
    response = admin_client.get(f"{ITEMS}?{query}")
    assert response.status_code == 400
    assert "field-error" in response.text


@pytest.mark.parametrize("query", ["page=abc", "page=9999", "page=-1", "kind=gold&kind=double"])
def test_an_odd_page_or_several_kinds_still_list(admin_client, query):
    assert admin_client.get(f"{ITEMS}?{query}").status_code == 200


def test_the_items_page_escapes_what_people_typed(admin_client, alice, bob, double_review):
    moderator = make_user("<b>mal</b>", "moderators")
    reviewed_twice(moderator, bob, 4, 4)
    page = admin_client.get(f"{ITEMS}?kind=double").text
    assert "<b>mal</b>" not in page and "&lt;b&gt;mal&lt;/b&gt;" in page
    assert "<b>mal</b>" not in section(admin_client.get(HEALTH).text)


@pytest.mark.django_db(transaction=True)
def test_on_a_phone_the_sections_tables_scroll_inside_their_cards(
    live_server, settings, monkeypatch
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright
    alice, bob = make_user("alice", "moderators"), make_user("bob", "moderators")
    carol = make_user("carol", "admins")
    settings.DOUBLE_REVIEW_SHARE, settings.GOLD_SHARE, settings.GOLD_MIN_ANSWERS = 1.0, 0.0, 2
    reviewed_twice(alice, bob, 4, 4)
    reviewed_twice(alice, bob, 2, 8)
    settings.DOUBLE_REVIEW_SHARE, settings.GOLD_SHARE = 0.0, 1.0
    gold_mark(items=gold_items(2, level=8), admin=carol)
    decide(bob, 1)
    decide(bob, 2)
    assert hold_get_standing(moderator=bob) is not None

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 390, "height": 800})
        log_in(page, f"{live_server.url}{HEALTH}", "carol", PASSWORD)
        cards = page.evaluate(
            """[...document.querySelectorAll('#label-quality ~ section.card')].map(card => {
                const outside = [...card.querySelectorAll('*')]
                    .filter(e => !e.closest('.scroll-table'));
                const table = card.querySelector('.scroll-table');
                return {
                    id: card.id,
                    spills: Math.max(...outside.map(e => e.getBoundingClientRect().right))
                        > card.getBoundingClientRect().right,
                    scrolls: table ? table.scrollWidth > table.clientWidth : null,
                };
            })"""
        )
        browser.close()
    assert [c["id"] for c in cards] == ["agreement", "gold-results", "held-moderators", "outcomes"]
    assert not any(c["spills"] for c in cards), cards
    assert all(c["scrolls"] for c in cards), cards
