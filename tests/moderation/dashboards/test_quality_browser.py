"""An admin opens the label-quality section of the health page in Debian's Chromium.

Six weeks of second decisions, made by the review services a moderator's page calls: four
moderators and an admin; forty blind double reviews over four pairs (most agree, a few one
level apart, two two levels apart), the admin adjudicating the older ones; every moderator
answering twenty-odd gold items, dev missing below the settled rating often enough to be held;
big downgrades confirmed or sent on to adjudication; second looks, closed and open. Each event
happens at its own moment in the past (`timezone.now` moved, as the dashboards' `make_label`
does), so the outcomes spread over the weeks and the waiting queues have ages. The picture of
the section is the README's (docs/label-quality.png). As in the other browser tests, the ORM
is used only outside the `sync_playwright()` block.
"""

from __future__ import annotations

import random
import re
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from moderation.dashboards.quality import label_quality
from moderation.demo.chromium import launch, log_in
from moderation.review.claims import item_claim_next
from moderation.review.gold import gold_mark, hold_get_standing
from moderation.review.labels import label_get_current
from moderation.review.models import LEVELS, GoldItem, Label, ReviewTask
from moderation.review.task_claims import second_look_open, task_get_held
from moderation.review.workflow import decision_submit
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.review.conftest import make_item, make_prediction, make_version
from tests.moderation.screenshots import screenshot_path

Kind = ReviewTask.Kind
HEALTH = "/dashboards/health/"

# Blind double reviews per pair (first answer, second answer); the first of a pair answers
# first on even items, the other on odd ones. Levels: 1 PG, 2 PG13, 4 R, 8 X, 16 XXX, 32 Blocked.
DOUBLES = {
    ("ana", "ben"): [
        (1, 1), (2, 2), (4, 4), (1, 1), (8, 8), (2, 2), (2, 4),
        (4, 4), (16, 16), (1, 1), (2, 2), (8, 16), (4, 4), (1, 4),
    ],
    ("ben", "chloe"): [
        (2, 2), (4, 4), (1, 1), (8, 8), (4, 8), (2, 2), (1, 1), (16, 16), (2, 1), (4, 4),
    ],
    ("chloe", "dev"): [(4, 2), (1, 1), (8, 8), (8, 2), (2, 2), (16, 8), (4, 4), (4, 2)],
    ("ana", "dev"): [(2, 2), (8, 4), (1, 1), (4, 4), (32, 32), (4, 4), (2, 2), (2, 4)],
}  # fmt: skip
ADJUDICATED = 8  # the admin decides the eight oldest of the twelve adjudications
# Gold answers per moderator, by position: "u" one level below the settled rating, "uu" two,
# "o" one above, anything else right. dev misses below five times in her first twenty answers:
# a weighted miss rate of (3 x 5 + 1) / (3 x 20) = 27% > 20%, so she is held at the twentieth.
GOLD = {
    "ana": {9: "u", 4: "o", 17: "o", "answers": 24},
    "ben": {6: "u", 15: "u", 11: "o", "answers": 22},
    "chloe": {13: "u", 3: "o", 8: "o", 18: "o", "answers": 21},
    "dev": {2: "u", 5: "uu", 9: "u", 13: "u", 17: "u", 11: "o", "answers": 21},
}
# The settled ratings of the forty gold items: mostly explicit, where a miss costs most.
GOLD_LEVELS = [2] * 8 + [4] * 10 + [8] * 14 + [16] * 8


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


class Clock:
    """Moments counted back from now; `at` runs the services as if at one of them."""

    def __init__(self) -> None:
        self.now = timezone.now().replace(second=0, microsecond=0)

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    @contextmanager
    def at(self, moment: datetime):
        with mock.patch("django.utils.timezone.now", return_value=moment):
            yield


def decide(moderator, level, *, expect_item=None, expect_kind=None):
    item = item_claim_next(moderator=moderator)
    assert item is not None, f"{moderator} got nothing to review"
    if expect_item is not None:
        assert item == expect_item, f"{moderator} got another item"
    task = task_get_held(moderator=moderator, item=item)
    if expect_kind is not None:
        assert task is not None and task.kind == expect_kind, (moderator, task)
    decision_submit(
        item=item,
        level=level,
        moderator=moderator,
        saw_label=label_get_current(item=item),
        reason=why(level),
    )
    return item, task


def why(level: int) -> str:
    """Blocked asks why; no other rating does."""
    return "depicts a minor in a sexual context" if level == Label.BLOCKED else ""


def shift(level: int, steps: int) -> int:
    return LEVELS[min(max(LEVELS.index(level) + steps, 0), len(LEVELS) - 1)]


def build_doubles(clock, people, settings) -> dict[tuple[str, str], list]:
    """The pairs' double reviews, round robin over the pairs from 40 days ago to 5."""
    settings.DOUBLE_REVIEW_SHARE, settings.GOLD_SHARE = 1.0, 0.0
    queue = []
    for round_ in range(max(len(answers) for answers in DOUBLES.values())):
        for pair, answers in DOUBLES.items():
            if round_ < len(answers):
                first, second = pair if round_ % 2 == 0 else pair[::-1]
                queue.append((pair, first, second, *answers[round_]))
    items: dict[tuple[str, str], list] = {pair: [] for pair in DOUBLES}
    step = 35 / len(queue)
    for i, (pair, first, second, a, b) in enumerate(queue):
        with clock.at(clock.ago(40 - i * step)):
            item = make_item(prompt=f"double review {i}")
            decide(people[first], a, expect_item=item)
            decide(people[second], b, expect_item=item, expect_kind=Kind.DOUBLE)
        items[pair].append(item)
    return items


def build_big_downgrades(clock, people, champion, settings) -> None:
    """Moderators rating PG or PG13 what the champion calls X or XXX: a second moderator
    confirms (twice), or differs and it goes to adjudication (once)."""
    settings.DOUBLE_REVIEW_SHARE, settings.GOLD_SHARE = 0.0, 0.0
    for days, suggested, first, a, second, b in [
        (24, 16, "ana", 1, "ben", 1),
        (17, 8, "chloe", 2, "ben", 2),
        (12, 8, "ben", 1, "chloe", 4),
    ]:
        with clock.at(clock.ago(days)):
            item = make_item(prompt=f"a big downgrade of {suggested}")
            make_prediction(
                item, champion, experts={"tag_rules": suggested}, voter=suggested, mlp=suggested
            )
            decide(people[first], a, expect_item=item)
        with clock.at(clock.ago(days - 0.3)):
            decide(people[second], b, expect_item=item, expect_kind=Kind.CONFIRMATION)


def build_gold(clock, people, settings) -> None:
    """Forty gold items marked by carol six weeks ago; each moderator's answers spread from
    36 days ago to a few days ago, right or off as GOLD says."""
    settings.DOUBLE_REVIEW_SHARE, settings.GOLD_SHARE = 0.0, 1.0
    with clock.at(clock.ago(42)):
        items = [make_item(queued=False, prompt="a gold item") for _ in GOLD_LEVELS]
        for item, level in zip(items, GOLD_LEVELS, strict=True):
            Label.objects.create(item=item, level=level, origin="corpus")
        assert gold_mark(items=items, admin=people["carol"]) == len(items)
    for name, plan in GOLD.items():
        answers = plan["answers"]
        last = 6 if name == "dev" else 2
        for i in range(answers):
            with clock.at(clock.ago(36 - i * (36 - last) / (answers - 1))):
                moderator = people[name]
                item = item_claim_next(moderator=moderator)
                assert task_get_held(moderator=moderator, item=item).kind == Kind.GOLD
                settled = GoldItem.objects.get(item=item).level
                steps = {"u": -1, "uu": -2, "o": 1}.get(plan.get(i), 0)
                level = shift(settled, steps)
                decision_submit(
                    item=item, level=level, moderator=moderator, saw_label=None, reason=why(level)
                )
            held = hold_get_standing(moderator=moderator) is not None
            assert held == (name == "dev" and i >= 19), (name, i)


def build_adjudications(clock, people) -> None:
    """carol adjudicates the oldest adjudications a day after each opened, siding with the
    more restrictive answer."""
    for _ in range(ADJUDICATED):
        task = (
            ReviewTask.objects.filter(kind=Kind.ADJUDICATION, state=ReviewTask.State.OPEN)
            .order_by("-priority", "created_at", "pk")
            .select_related("pending", "answer")
            .first()
        )
        with clock.at(task.created_at + timedelta(days=1)):
            decide(
                people["carol"],
                max(task.pending.level, task.answer.level),
                expect_item=task.item,
                expect_kind=Kind.ADJUDICATION,
            )


def likely_error(label: Label, likely: str, chance: float) -> tuple[Label, str, float]:
    given = {1: "PG", 2: "PG13", 4: "R", 8: "X", 16: "XXX"}[label.level]
    reason = f"likely label error: v1 gives {likely} {chance:.0%} chance of a rating above {given}"
    return label, reason, chance


def build_recent(clock, people, items, champion, settings) -> None:
    """The last week: two second looks closed (confirmed, relabelled); a big downgrade and a
    first answer of a double review still open; two of dev's decisions waiting for a second
    look while she is held, and two more second looks. Made in the order that gives each
    its taker (an open second look would be served to the next moderator who claims)."""
    settings.DOUBLE_REVIEW_SHARE, settings.GOLD_SHARE = 0.0, 0.0
    ana_ben = items["ana", "ben"]
    for days, item, level in [(6, ana_ben[4], 8), (5, ana_ben[5], 4)]:  # X kept, PG13 -> R
        with clock.at(clock.ago(days)):
            label, reason, chance = likely_error(label_get_current(item=item), "XXX", 0.31)
            assert second_look_open(label=label, reason=reason, priority=chance)
            decide(people["chloe"], level, expect_item=item, expect_kind=Kind.SECOND_LOOK)
    settings.DOUBLE_REVIEW_SHARE = 1.0
    with clock.at(clock.ago(1)):
        item = make_item(prompt="a double review, waiting")
        decide(people["ana"], 4, expect_item=item)
    settings.DOUBLE_REVIEW_SHARE = 0.0
    with clock.at(clock.ago(0.4)):  # ana again: any other moderator would get the above first
        item = make_item(prompt="a big downgrade, waiting")
        make_prediction(item, champion, experts={"tag_rules": 16}, voter=16, mlp=16)
        decide(people["ana"], 2, expect_item=item)
    for days, level in [(4, 2), (2.5, 4)]:
        with clock.at(clock.ago(days)):
            item = make_item(prompt="decided while held")
            decide(people["dev"], level, expect_item=item)
    ben_chloe = items["ben", "chloe"]
    for days, item, chance in [(3, ben_chloe[0], 0.42), (1.5, ben_chloe[2], 0.27)]:
        with clock.at(clock.ago(days)):
            label, reason, chance = likely_error(label_get_current(item=item), "R", chance)
            assert second_look_open(label=label, reason=reason, priority=chance)


def build_quality(settings):
    random.seed(20260412)  # the gold draw: random.random against GOLD_SHARE, random.choices
    settings.GOLD_MIN_ANSWERS, settings.GOLD_HOLD_RATE, settings.BIG_DOWNGRADE_LEVELS = 20, 0.2, 2
    clock = Clock()
    with clock.at(clock.ago(60)):
        people = {name: make_user(name, "moderators") for name in ("ana", "ben", "chloe", "dev")}
        people["carol"] = make_user("carol", "admins")
        champion = make_version("v1")
    items = build_doubles(clock, people, settings)
    build_big_downgrades(clock, people, champion, settings)
    build_gold(clock, people, settings)
    build_adjudications(clock, people)
    build_recent(clock, people, items, champion, settings)
    return items


def section_box(page) -> dict:
    """The section from its title to the end of its last card, the width of the page's main,
    in the page's coordinates (a bounding box is the viewport's, which has scrolled)."""
    main = page.locator("main").bounding_box()
    top = page.locator("#label-quality").bounding_box()
    bottom = page.locator("#outcomes").bounding_box()
    margin = 16
    y = top["y"] - margin
    return {
        "x": main["x"],
        "y": y + page.evaluate("window.scrollY"),
        "width": main["width"],
        "height": bottom["y"] + bottom["height"] + margin - y,
    }


@pytest.mark.django_db(transaction=True)
def test_the_label_quality_section_shows_six_weeks_of_second_decisions(
    live_server, settings, tmp_path
):
    build_quality(settings)
    quality = label_quality()
    queues = {row.kind: row.size for row in quality.queues}
    assert queues == {
        Kind.CONFIRMATION: 1,
        Kind.SECOND_LOOK: 4,
        Kind.ADJUDICATION: 4,
        Kind.DOUBLE: 1,
    }
    overall, *pairs = quality.agreement
    assert overall.agreement.n == 40
    assert [(row.names, row.agreement.n) for row in pairs] == [
        (("ana", "ben"), 14),
        (("ana", "dev"), 8),
        (("ben", "chloe"), 10),
        (("chloe", "dev"), 8),
    ]
    assert [(g.result.username, g.result.answers, g.held) for g in quality.gold] == [
        ("ana", 24, False),
        ("ben", 22, False),
        ("chloe", 21, False),
        ("dev", 21, True),
    ]
    (hold,) = quality.holds
    waiting = hold.waiting
    assert waiting >= 2  # her two decisions since the hold, and adjudications on her answers
    outcomes = {(row.kind, row.outcome): sum(n for n, _ in row.cells) for row in quality.outcomes}
    assert outcomes[Kind.DOUBLE, "agreed"] == 29 and outcomes[Kind.DOUBLE, "differed"] == 11
    assert outcomes[Kind.ADJUDICATION, "adjudicated"] == ADJUDICATED
    assert outcomes[Kind.SECOND_LOOK, "confirmed"] == outcomes[Kind.SECOND_LOOK, "relabelled"] == 1
    (agreed,) = [
        row for row in quality.outcomes if row.outcome == "agreed" and row.kind == "double"
    ]
    assert sum(n > 0 for n, _ in agreed.cells) >= 4  # spread over the weeks
    dev_rate = f"{100 * quality.gold[3].result.weighted_miss_rate:.1f}%"

    console: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # The site has no favicon: Chromium's request for one is the only 404 it may log.
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and not m.location.get("url", "").endswith("/favicon.ico")
                and console.append(f"{m.text} ({m.location.get('url')})")
            ),
        )
        page.on("pageerror", lambda e: console.append(str(e)))
        log_in(page, f"{live_server.url}{HEALTH}", "carol", PASSWORD)
        expect(page).to_have_url(re.compile(re.escape(HEALTH) + "$"))
        page.locator("#label-quality").scroll_into_view_if_needed()

        kpis = page.locator("section.kpis[aria-label='Second-decision queues now'] .kpi")
        expect(kpis).to_have_count(4)
        expect(kpis.locator("strong")).to_have_text(["1", "4", "4", "1"])

        rows = page.locator("#agreement tbody tr")
        expect(rows.locator("th")).to_have_text(
            ["All pairs", "ana · ben", "ana · dev", "ben · chloe", "chloe · dev"]
        )
        expect(rows.locator("td:nth-child(2)")).to_have_text(["40", "14", "8", "10", "8"])
        for column in (4, 5):  # weighted kappa, ordinal alpha: a figure and its interval
            figures = rows.locator(f"td:nth-child({column}) a.fig")
            expect(figures).to_have_text([re.compile(r"^-?\d\.\d{3}$")] * 5)
            expect(rows.locator(f"td:nth-child({column}) .ci")).to_have_text(
                [re.compile(r"^-?\d\.\d{3}–-?\d\.\d{3}$")] * 5
            )

        gold = page.locator("#gold-results tbody tr")
        expect(gold.locator("th")).to_have_text(["ana", "ben", "chloe", "dev"])
        expect(gold.locator("td:nth-child(2)")).to_have_text(["24", "22", "21", "21"])
        expect(gold.locator("td:last-child")).to_have_text(["no", "no", "no", "held"])
        expect(gold.last.locator("td:nth-child(6) a.fig.bad")).to_have_text(dev_rate)

        held = page.locator("#held-moderators tbody tr")
        expect(held).to_have_count(1)
        expect(held.locator("th")).to_have_text("dev")
        expect(held).to_contain_text("20 answers")
        expect(held.locator("td.num a")).to_have_text(str(waiting))

        outcome_rows = page.locator("#outcomes tbody tr")
        for kind, shown in [
            ("blind double review", ["agreed", "differed"]),
            ("adjudication", ["adjudicated"]),
            ("second look", ["confirmed", "relabelled"]),
        ]:
            of_kind = outcome_rows.filter(has=page.locator("th", has_text=re.compile(f"^{kind}$")))
            expect(of_kind.locator("td:nth-child(2)")).to_have_text(shown)

        page.screenshot(
            path=str(screenshot_path("label-quality.png", tmp_path)),
            clip=section_box(page),
            full_page=True,
        )

        # A pair's number opens exactly its double reviews.
        rows.nth(1).locator("td:nth-child(2) a").click()
        expect(page.locator("h1")).to_have_text("Second decisions behind a number")
        expect(page.locator("table.quality-items tbody tr")).to_have_count(14)
        expect(page.locator(".pagination")).to_contain_text("14 tasks")
        kinds = page.locator("table.quality-items tbody td:nth-child(2)")
        expect(kinds).to_have_text(["blind double review"] * 14)
        page.go_back()
        # dev's open tasks: her held decisions waiting for a second look among them.
        page.locator("#held-moderators td.num a").click()
        tasks = page.locator("table.quality-items tbody tr")
        expect(tasks).to_have_count(waiting)
        expect(tasks.filter(has_text="decided by a moderator held")).to_have_count(2)
        browser.close()
    assert console == []
