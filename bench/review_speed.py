"""Review speed: keystrokes, server round trips and time per decided item, for single-item review
(the baseline) and grid review (ours), on a PG-heavy queue, by a scripted moderator in Chromium.

One fresh PostgreSQL database (`bench_review_speed_<pid>`, dropped at the end), migrated, served
as bench/hotkeys.py serves a checkout (gunicorn, production settings, DEBUG off, collected
static files), one moderator signed in in Debian's Chromium (moderation/demo/chromium.py).

Each session gets a fresh queue of --items prompt-only items, filled through
`media.services.item_create` by `manage.py shell` before the session (not timed), each with a
champion prediction written straight to the table as the review tests write theirs: 85%
suggested PG with every expert agreeing, 10% suggested PG13 or R (half each) with every expert
agreeing, 5% suggested PG with one expert at PG13 (a down-class warning). Both sessions of a
round get the same recipe (the items' uids, so the 5% blind double-review share, differ).

- single: from another page, click *Review* in the navigation, then `Enter` (accept the
  suggestion) on every item until the queue is empty. A warned item gets the suggestion too: one
  key, as a digit for another rating would be.
- grid: click *Grid*, then per page: click *Load a page*, `a` (select all), `Enter` (confirm
  suggested), `Enter` (the confirm dialog). The warned items go back to the queue, where, being
  the riskiest, they top the next page again; once a page holds nothing but warned items the
  moderator clicks *Give back the page*, then *Review*, and finishes what is left (the warned
  items and the blind double-review share, which grid pages never show) with `Enter` each.
  "grid only" counts up to the last grid decision.

Per decided item: keystrokes and clicks (counted by the script as it presses them), round trips
(the page's HTTP requests seen by Playwright's `page.on("request")`, redirects included, static
files not) and wall time, measured by the script (time.perf_counter) from the first click of the
session to the page showing the answer to its last decision (for single review, the next panel
swapped in and settled: see PROBE). Nothing pauses between actions: a scripted moderator does
not read the items. The grid's *Load a page* and confirm are also timed on their own. One
moderator throughout, so the blind double reviews their decisions open are never offered back
to them. Rounds alternate which mode goes first. The decisions are counted again in the
database at the end: every item of every session must have one decision by the moderator, and
no item may be left open.

`ratio` (bench/results/review_speed.json): single-item time per decision over the grid's (grid
and the single review of its leftovers); above 1, the grid is faster.

    python bench/review_speed.py [--items 400] [--rounds 3] [--seed 7] [--quick]
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hotkeys
import record

USERNAME = "bench-review-speed"
MODES = ("single", "grid")
PG, PG13, R = 1, 2, 4
WARNED_SHARE, MIDDLE_SHARE = 0.05, 0.10  # the rest is suggested PG, every expert agreeing
PROMPTS = [
    "a lighthouse on a cliff at dusk, oil painting",
    "portrait of an old fisherman, dramatic light",
    "a bowl of ramen, studio photo, steam rising",
    "knight in dented armour on a misty moor",
    "a neon street market in the rain, cinematic",
    "two cats asleep on a windowsill",
    "watercolour map of an imaginary archipelago",
    "a dancer mid-leap, long exposure, red silk",
]
UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RECORDED = re.compile(r"Recorded (\d+) decisions? as suggested")

# Installed in every document before its own scripts. `wait()` resolves once #review-panel is
# another element than at the last keydown (htmx swaps the whole panel), is not the "Taking the
# next item" one, and has settled: with the next item's uid, or null for "the queue is empty".
# Settled matters: htmx gives the new panel the old one's classes until it settles (20 ms), and
# hotkeys.js drops a key while the panel carries `htmx-request`, so a key before that is lost.
PROBE = """
(() => {
  const s = (window.__speed = { before: null });
  const panel = () => document.getElementById("review-panel");
  addEventListener("keydown", () => { s.before = panel(); }, true);
  const settled = () => {
    const p = panel();
    if (!p || p === s.before || p.getAttribute("aria-busy") === "true") return false;
    return !/\\bhtmx-(request|swapping|settling)\\b/.test(p.className);
  };
  s.wait = (ms) => new Promise((resolve, reject) => {
    const done = () => resolve(panel().dataset.item || null);
    if (settled()) return done();
    const observer = new MutationObserver(() => {
      if (!settled()) return;
      observer.disconnect();
      done();
    });
    observer.observe(document, {
      subtree: true, childList: true, attributes: true, attributeFilter: ["class"],
    });
    setTimeout(() => reject(new Error("no next item")), ms);
  });
})();
"""

FILL = """
import json
from django.contrib.auth.models import Group, User
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.services import item_create
from moderation.review.claims import review_priorities_update

user, new = User.objects.get_or_create(username={username!r})
if new:
    user.set_password({password!r})
    user.save()
    user.groups.add(Group.objects.get_or_create(name="moderators")[0])
version, _ = ModelVersion.objects.get_or_create(
    version="bench-review-speed", defaults={{"path": "/bundles/bench", "status": "champion"}}
)
ids = []
for n, row in enumerate(json.loads({recipe!r})):
    item, _ = item_create(
        prompt=row["prompt"], tags=[["painting", 0.9], ["outdoors", 0.6]],
        source={source!r}, external_id=f"{source}-{{n}}", queue_for_review=True,
    )
    ratings = row["experts"].items()
    experts = {{k: {{"rating": v, "probs": row["probs"][str(v)]}} for k, v in ratings}}
    Prediction.objects.create(
        item=item, model_version=version, features=b"", mlp_experts=list(row["experts"]),
        experts=experts,
        voter_rating=row["suggested"], mlp_rating=row["suggested"],
        mlp_probs=row["probs"][str(row["suggested"])], suggested_rating=row["suggested"],
    )
    ids.append(item.pk)
review_priorities_update(item_ids=ids, version=version)
print(len(ids))
"""

COUNT = """
import json
from django.db.models import Count
from moderation.inference.models import Prediction
from moderation.review.models import Decision, ReviewState
from moderation.review.workflow import double_review_selected

out = {{}}
for source in json.loads({sources!r}):
    mine = Decision.objects.filter(item__source=source, moderator__username={username!r})
    paths = dict(mine.values_list("path").annotate(n=Count("id")).values_list("path", "n"))
    still_open = ReviewState.objects.filter(item__source=source, state__in=["queued", "claimed"])
    out[source] = {{
        "decided_items": mine.values("item").distinct().count(),
        "decisions": mine.count(),
        "paths": paths,
        "open": still_open.count(),
        # the warned items a grid page may show: not those chosen for blind double review
        "warned_for_grid": sum(
            1
            for p in Prediction.objects.filter(item__source=source).select_related("item")
            if max(e["rating"] for e in p.experts.values()) > p.suggested_rating
            and not double_review_selected(p.item)
        ),
    }}
print(json.dumps(out))
"""


def parse_args() -> Any:
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, help="items in each session's queue (400)")
    parser.add_argument("--rounds", type=int, help="rounds, one session of each mode (3)")
    parser.add_argument("--seed", type=int, default=7, help="the queue recipe's seed (7)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a test")
    args = parser.parse_args()
    sizes = (50, 1) if args.quick else (1000, 5) if args.full else (400, 3)
    for name, default in zip(("items", "rounds"), sizes, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.items < 20 or args.rounds < 1:
        parser.error("--items must be at least 20 and --rounds positive")
    return args


def probs(level: int, rng: random.Random) -> list[float]:
    """MLP probabilities that pick `level`, with a confidence drawn per item (so the queue's
    priorities vary within each kind of item)."""
    confidence = rng.uniform(0.6, 0.95)
    levels = [PG, PG13, R, 8, 16]
    return [round(confidence if lv == level else (1 - confidence) / 4, 4) for lv in levels]


def queue_recipe(items: int, seed: int) -> list[dict[str, Any]]:
    """The items of one queue: the suggestion, each expert's rating and the MLP's
    probabilities per level, in a seeded order."""
    rng = random.Random(seed)
    warned = round(items * WARNED_SHARE)
    middle = round(items * MIDDLE_SHARE)
    kinds = ["warned"] * warned + [PG13, R] * (middle // 2) + [PG] * (items - warned - middle)
    kinds += [PG13] * (items - len(kinds))
    rng.shuffle(kinds)
    rows = []
    for n, kind in enumerate(kinds):
        suggested = PG if kind == "warned" else kind
        experts = {"tag_rules": suggested, "lstm": suggested, "minilm": suggested}
        if kind == "warned":
            experts["tag_rules"] = PG13  # one step above: a down-class warning on the card
        table = {str(level): probs(level, rng) for level in set(experts.values())}
        rows.append(
            {
                "prompt": f"{PROMPTS[n % len(PROMPTS)]}, study {n}",
                "suggested": suggested,
                "experts": experts,
                "probs": table,
            }
        )
    return rows


@dataclass(frozen=True)
class Mark:
    keys: int
    clicks: int
    requests: int
    decided: int
    seconds: float


@dataclass
class Moderator:
    """The page, and everything the scripted moderator has done on it since `start()`."""

    page: Any
    counting: bool = False
    keys: int = 0
    clicks: int = 0
    decided: int = 0
    requests: Counter = field(default_factory=Counter)
    t0: float = 0.0

    def __post_init__(self) -> None:
        self.page.on("request", self._request)

    def _request(self, request: Any) -> None:
        path = urlsplit(request.url).path
        if self.counting and not path.startswith("/static/") and path != "/favicon.ico":
            self.requests[f"{request.method} {UID.sub('<uid>', path)}"] += 1

    def start(self) -> None:
        self.keys = self.clicks = self.decided = 0
        self.requests = Counter()
        self.counting = True
        self.t0 = time.perf_counter()

    def mark(self) -> Mark:
        seconds = time.perf_counter() - self.t0
        total = sum(self.requests.values())
        return Mark(self.keys, self.clicks, total, self.decided, seconds)

    def press(self, key: str, *, loads: bool = False) -> None:
        """A key; with `loads`, one that loads another page: returns once it has loaded."""
        self.keys += 1
        if not loads:
            self.page.keyboard.press(key)
            return
        with self.page.expect_navigation(timeout=hotkeys.PRESS_TIMEOUT_MS):
            self.page.keyboard.press(key)

    def click(self, selector: str) -> None:
        """A click that loads another page; returns once it has loaded."""
        self.clicks += 1
        with self.page.expect_navigation(timeout=hotkeys.PRESS_TIMEOUT_MS):
            self.page.click(selector)

    def panel(self) -> str | None:
        """The item the review panel shows once it has settled; None: the queue is empty."""
        try:
            return self.page.evaluate(f"window.__speed.wait({hotkeys.PRESS_TIMEOUT_MS})")
        except Exception as error:  # a reload, an error page, a key the page ignored
            raise SystemExit(
                f"the review panel did not settle ({self.decided} decided): {error}"
            ) from None


def decide_singly(moderator: Moderator) -> Mark | None:
    """From another page: *Review*, then Enter on each item until the queue is empty. The
    mark after the last decision (None: nothing was left)."""
    moderator.click("nav a[href='/review/']")
    last = None
    item = moderator.panel()
    while item is not None:
        moderator.press("Enter")
        following = moderator.panel()
        if following == item:
            raise SystemExit(f"Enter on {item} showed the same item again")
        moderator.decided += 1
        last, item = moderator.mark(), following
    return last


def single_session(moderator: Moderator) -> dict[str, Any]:
    moderator.start()
    last = decide_singly(moderator)
    moderator.counting = False
    if last is None:
        raise SystemExit("single review found no item")
    return {"all": last, "requests": moderator.requests}


def grid_session(moderator: Moderator) -> dict[str, Any]:
    page = moderator.page
    moderator.start()
    moderator.click("nav a[href='/review/grid/']")
    pages = cards_shown = warned_shown = 0
    grid_last = None
    load_ms, confirm_ms = [], []  # from the click or key to the next page loaded
    while True:
        t = time.perf_counter()
        moderator.click(".grid-filters button[type=submit]")  # Load a page / Load a new page
        load_ms.append(1000 * (time.perf_counter() - t))
        cards = page.locator(".grid-card").count()
        warned = page.locator(".grid-card.is-warned").count()
        if cards == 0:
            break
        pages, cards_shown, warned_shown = pages + 1, cards_shown + cards, warned_shown + warned
        if cards == warned:  # only the warned ones are left: they are for single review
            moderator.click(".grid-release button[type=submit]")
            break
        moderator.press("a")
        moderator.press("Enter")  # confirm suggested: opens the confirm dialog
        t = time.perf_counter()
        moderator.press("Enter", loads=True)  # its Confirm button, focused
        confirm_ms.append(1000 * (time.perf_counter() - t))
        message = page.locator(".message-success").all_inner_texts()
        recorded = RECORDED.search(" ".join(message))
        if recorded is None or int(recorded.group(1)) != cards - warned:
            raise SystemExit(f"a confirm of {cards - warned} items answered {message}")
        moderator.decided += cards - warned
        grid_last = moderator.mark()
    if grid_last is None:
        raise SystemExit("grid review decided nothing: more --items")
    last = decide_singly(moderator) or grid_last
    moderator.counting = False
    return {
        "all": last,
        "grid_only": grid_last,
        "pages": pages,
        "cards_shown": cards_shown,
        "warned_cards_shown": warned_shown,
        "load_page_ms": load_ms,
        "confirm_ms": confirm_ms,
        "requests": moderator.requests,
    }


def per_decision(marks: list[Mark]) -> dict[str, Any]:
    decided = sum(m.decided for m in marks)
    keys, clicks = sum(m.keys for m in marks), sum(m.clicks for m in marks)
    requests, seconds = sum(m.requests for m in marks), sum(m.seconds for m in marks)
    return {
        "decided": decided,
        "keystrokes": keys,
        "clicks": clicks,
        "round_trips": requests,
        "seconds": round(seconds, 3),
        "actions_per_decision": round((keys + clicks) / decided, 4),
        "keystrokes_per_decision": round(keys / decided, 4),
        "clicks_per_decision": round(clicks / decided, 4),
        "round_trips_per_decision": round(requests / decided, 4),
        "ms_per_decision": round(1000 * seconds / decided, 2),
        "round_ms_per_decision": [round(1000 * m.seconds / m.decided, 2) for m in marks],
    }


def shell(env: dict[str, str], code: str) -> str:
    """The last line `manage.py shell -c code` prints, run with the server's environment."""
    return hotkeys.manage(env, record.ROOT, "shell", "-c", code).strip().splitlines()[-1]


def fill(env: dict[str, str], source: str, recipe: list[dict], password: str) -> None:
    recipe_json = json.dumps(recipe)
    made = int(
        shell(
            env,
            FILL.format(username=USERNAME, password=password, source=source, recipe=recipe_json),
        )
    )
    if made != len(recipe):
        raise SystemExit(f"{source}: {made} items made, not {len(recipe)}")


def counted(env: dict[str, str], sources: list[str], items: int) -> dict[str, Any]:
    """Each session's decisions, from the database; every item decided once, none open."""
    code = COUNT.format(username=USERNAME, sources=json.dumps(sources))
    found = json.loads(shell(env, code))
    for source, row in found.items():
        if row["decided_items"] != items or row["decisions"] != items or row["open"]:
            raise SystemExit(f"{source}: {row} in the database, not {items} items decided once")
    return found


def line(name: str, s: dict[str, Any]) -> str:
    return (
        f"{name}: {s['decided']} decisions; per decision {s['actions_per_decision']:.3f} "
        f"keystrokes+clicks, {s['round_trips_per_decision']:.3f} round trips, "
        f"{s['ms_per_decision']:.1f} ms"
    )


def main() -> None:
    from playwright.sync_api import sync_playwright

    from moderation.demo.chromium import launch, log_in

    args = parse_args()
    print(
        f"review speed: single-item review against grid review, {args.rounds} rounds, a fresh "
        f"queue of {args.items} items per session ({WARNED_SHARE:.0%} warned, "
        f"{MIDDLE_SHARE:.0%} PG13/R, the rest PG)",
        flush=True,
    )
    password = secrets.token_urlsafe(16)
    sessions: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(record.database(f"bench_review_speed_{os.getpid()}"))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-speed-")))
        env = record.environment(url, scratch)
        hotkeys.manage(env, record.ROOT, "migrate", "--noinput", "-v", "0")
        hotkeys.manage(env, record.ROOT, "collectstatic", "--noinput", "-v", "0")
        fill(env, "speed-warmup", [], password)  # the moderator and the champion
        workers, threads = hotkeys.WORKERS, hotkeys.THREADS
        log = scratch / "gunicorn.log"
        port, _ = stack.enter_context(
            record.gunicorn(env, workers=workers, threads=threads, log=log)
        )
        base = f"http://127.0.0.1:{port}"
        playwright = stack.enter_context(sync_playwright())
        browser = launch(playwright)
        stack.callback(browser.close)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(PROBE)
        page = context.new_page()
        log_in(page, f"{base}/review/mine/", USERNAME, password)
        page.wait_for_load_state("load")
        for path in ("/review/", "/review/grid/"):  # the static files into the cache
            page.goto(base + path)
            page.wait_for_load_state("load")
        moderator = Moderator(page)
        sources = []
        for r in range(args.rounds):
            recipe = queue_recipe(args.items, args.seed + r)
            for mode in MODES[:: 1 if r % 2 == 0 else -1]:
                source = f"speed-r{r + 1}-{mode}"
                fill(env, source, recipe, password)
                sources.append(source)
                page.goto(f"{base}/review/mine/")
                session = (single_session if mode == "single" else grid_session)(moderator)
                sessions[mode].append(session)
                figures = per_decision([session["all"]])
                print(f"  round {r + 1}/{args.rounds} {line(mode, figures)}", flush=True)
        checked = counted(env, sources, args.items)
        browser_version = browser.version

    single = per_decision([s["all"] for s in sessions["single"]])
    grid = per_decision([s["all"] for s in sessions["grid"]])
    grid_only = per_decision([s["grid_only"] for s in sessions["grid"]])
    grid_only["pages"] = sum(s["pages"] for s in sessions["grid"])
    grid_only["cards_shown"] = sum(s["cards_shown"] for s in sessions["grid"])
    grid_only["warned_cards_shown"] = sum(s["warned_cards_shown"] for s in sessions["grid"])
    # Load a page: claim, redirect, render the page; confirm: every decision, redirect, render.
    for phase in ("load_page_ms", "confirm_ms"):
        times = [ms for s in sessions["grid"] for ms in s[phase]]
        grid_only[phase] = {k: round(v, 1) for k, v in record.percentiles(times).items()}
    ratio = single["ms_per_decision"] / grid["ms_per_decision"]
    for mode, s in sessions.items():
        requests = sum((x["requests"] for x in s), Counter())
        (single if mode == "single" else grid)["round_trips_by_kind"] = dict(requests)
    print(line("single-item review", single))
    print(line("grid + single for the leftovers", grid))
    print(line("grid only", grid_only))
    print(
        f"single / grid per decision: time {ratio:.2f}, keystrokes+clicks "
        f"{single['actions_per_decision'] / grid['actions_per_decision']:.2f}, round trips "
        f"{single['round_trips_per_decision'] / grid['round_trips_per_decision']:.2f}"
    )
    figures = {
        **grid,
        "mode": "grid review, then single review of the items it leaves out",
        "grid_only": grid_only,
        "actions_ratio": round(single["actions_per_decision"] / grid["actions_per_decision"], 3),
        "round_trips_ratio": round(
            single["round_trips_per_decision"] / grid["round_trips_per_decision"], 3
        ),
        "database": checked,
        "method": (
            "time.perf_counter() in the script, from the session's first click to the page "
            "showing the answer to its last decision; keystrokes and clicks counted as the "
            "script makes them; round trips: page.on('request'), redirects included, /static/ "
            "not; no pause between actions"
        ),
        "browser": f"Debian Chromium {browser_version}, headless, Playwright",
        "server": (
            f"gunicorn moderation.wsgi, {workers} workers x {threads} threads, "
            "moderation.settings_production, PostgreSQL on this machine"
        ),
    }
    record.write(
        "review_speed",
        size={
            "items_per_session": args.items,
            "rounds": args.rounds,
            "seed": args.seed,
            "warned_share": WARNED_SHARE,
            "pg13_r_share": MIDDLE_SHARE,
        },
        figures=figures,
        baseline={**single, "mode": "single-item review, Enter on each item"},
        ratio=ratio,
        out=args.out,
    )


if __name__ == "__main__":
    main()
