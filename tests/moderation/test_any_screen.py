"""Every page of the product, at a phone's width (390 × 844) and a desktop's (1280 × 800), as a
moderator and as an admin, in Debian's Chromium: nothing scrolls sideways (a wide table
scrolls inside its card), no element sticks out of the viewport, no console error, and on the
review and audit pages the decision bar is on screen with the prompt above it.

The data are a few months of a deployment, sized so that a page that does not fit fails: four
model versions with their evaluations (the DCM dashboard's browser test builds them), long
prompts with long unbroken tokens, long sources and ids, retrains in every state, gold
answers, a hold, a blind double review gone to adjudication, an audit session. The sweep's
list of pages is checked against the URL patterns: a new page without an entry fails.

As in the other browser tests, DJANGO_ALLOW_ASYNC_UNSAFE lets the test use the ORM beside
Playwright's event loop, and the database is read only outside the `sync_playwright()` block.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.inference.models import ModelVersion
from moderation.model_audit.sampling import audit_decide, audit_next, audit_session_start
from moderation.review.claims import item_claim_next
from moderation.review.gold import gold_mark
from moderation.review.grid import GridFilters, grid_claim
from moderation.review.labels import label_get_current
from moderation.review.models import Label, ModeratorHold, ReviewState
from moderation.review.workflow import decision_submit
from moderation.training import gate
from moderation.training.models import Evaluation, TrainingRun
from tests.moderation.dashboards.conftest import make_label
from tests.moderation.dashboards.test_browser import build_history
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.review.conftest import make_item, make_prediction, make_version
from tests.moderation.screenshots import screenshot_path

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

# What generators send: weights, LoRA tags and underscores make long unbroken words.
PROMPT = (
    "(masterpiece, best quality:1.2), ultra-detailed, 8k uhd, photorealistic portrait of a woman "
    "in a red swimsuit on a beach at sunset, golden hour, rim light, 85mm f/1.4, film grain, "
    "<lora:add_detail_v2_civitai_1893745:0.7>, "
    "<lora:epiCRealismHelper_sdxl_v1.0_final_by_epinikion:0.45>, BREAK (detailed skin:1.1), "
    "wet hair, waves, highly_detailed_background_with_volumetric_lighting_and_lens_flare"
)
NEGATIVE = (
    "(worst quality, low quality:1.4), nsfw, nude, lowres, blurry, extra fingers, "
    "bad-hands-5, EasyNegativeV2_and_badhandv4_and_ng_deepnegative_v1_75t"
)
TAGS = [
    ["1girl", 0.98],
    ["swimsuit", 0.94],
    ["see-through_legwear_with_lace_garter_straps", 0.61],
    ["beach", 0.91],
    ["sunset", 0.88],
    ["cleavage", 0.46],
]
SOURCE = "civitai-generator-eu-west"


def external_id(n: int) -> str:
    return f"gen-5f0c2a9e4b7d4c1e9a8b6f3d2e1c0b{n:02d}"


@dataclass(frozen=True)
class Screen:
    """A page of the sweep: `name` is its URL pattern's (namespace:name), `shot` the stem of
    its pictures in docs/screens/, `status` what it answers."""

    name: str
    path: str
    shot: str
    admin_only: bool = True
    status: int = 200
    decides: bool = False  # shows the decision bar


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def queued(champion: ModelVersion, n: int, *, image: bool = False, **fields):
    """A queued item of the long prompt, suggested R with a down-class warning from one
    expert (X) and a mild MLP."""
    item = make_item(
        image=image,
        source=SOURCE,
        external_id=external_id(n),
        prompt=f"{PROMPT}, variation {n}",
        negative_prompt=NEGATIVE,
        tags=TAGS,
        **fields,
    )
    experts = {"tag_rules": 8, "lstm": 4, "minilm": 4, "distilbert": 2, "open_nsfw": 4}
    make_prediction(item, champion, experts=experts, voter=4, mlp=2)
    return item


def decide(moderator, level: int):
    item = item_claim_next(moderator=moderator)
    assert item is not None, f"{moderator} got nothing to decide"
    decision_submit(
        item=item, level=level, moderator=moderator, saw_label=label_get_current(item=item)
    )
    return item


def build_product(settings) -> dict:
    """Everything the pages show; returns what their paths need."""
    random.seed(18)  # the gold draw
    settings.CLAIM_MINUTES = 120  # the claims made here outlast the sweep
    settings.BIG_DOWNGRADE_LEVELS = 9  # no confirmation waits on the decisions made here
    champion, candidate = build_history()
    alice, bob, dmitri = (User.objects.get(username=n) for n in ("alice", "bob", "dmitri"))
    carol = make_user("carol", "admins")
    labelled = list(Label.objects.select_related("item").order_by("pk"))

    # alice answers gold items, some off, and decides a few items of the queue.
    settings.GOLD_SHARE, settings.DOUBLE_REVIEW_SHARE = 1.0, 0.0
    gold_mark(items=[label.item for label in labelled if label.moderator != alice][:6], admin=carol)
    for level in (8, 2, 4, 16, 1):
        decide(alice, level)
    settings.GOLD_SHARE = 0.0
    for n in range(3):
        queued(champion, 90 + n)
        decide(alice, 8)

    # A blind double review that alice and bob answer apart: carol holds its adjudication.
    settings.DOUBLE_REVIEW_SHARE = 1.0
    disputed = queued(champion, 80)
    assert decide(alice, 4) == disputed
    assert decide(bob, 16) == disputed
    settings.DOUBLE_REVIEW_SHARE = 0.0
    assert item_claim_next(moderator=carol) == disputed

    # alice holds a portrait image; the grid pages (claimed by the test) show the rest.
    held = queued(champion, 0, image=True, size=(512, 768))
    ReviewState.objects.filter(item=held).update(
        state=ReviewState.State.CLAIMED,
        claimed_by=alice,
        claimed_until=timezone.now() + timedelta(hours=2),
    )
    for n in range(1, 41):
        queued(champion, n, image=n % 3 == 0)

    ModeratorHold.objects.create(
        moderator=dmitri,
        reason="gold: a weighted miss rate of 26.7% over 20 answers, above 20.0%",
        created_by=None,
    )
    runs = build_runs(champion, candidate, carol)

    # carol audits the model: four items rated, the fifth held.
    session = audit_session_start(admin=carol, mode="triggered", size=8, days=7)
    for level in (4, 8, 2, 16):
        task = audit_next(admin=carol)
        seen = label_get_current(item=task.item)
        audit_decide(task=task, level=level, admin=carol, seen=seen)
    assert audit_next(admin=carol) is not None

    severe = labelled[7].item  # a severe DCM of the champion, relabelled by bob
    make_label(severe, 16, bob)
    return {
        "history": severe.uid,
        "conflict": labelled[8].item.uid,
        "version": champion.version,
        "run": runs[0].pk,
        "session": session.pk,
    }


def build_runs(champion, candidate, carol) -> list[TrainingRun]:
    """Retrains in every state; the first passed the gate with the candidate."""
    reports = {
        e.model_version_id: e.report
        for e in Evaluation.objects.filter(data="test").order_by("created_at")
    }
    verdict = gate.promotion_gate(
        candidate=reports[candidate.pk], champion=reports[champion.pk], alpha=None
    )
    common = {"base_version": champion, "n_train": 6013, "n_test": 1703}
    passed = TrainingRun.objects.create(
        **common,
        mode=TrainingRun.Mode.FULL,
        state=TrainingRun.State.SUCCEEDED,
        active=None,
        stage="done",
        progress=1.0,
        started_by=carol,
        candidate=candidate,
        gate=verdict,
        training_fingerprint="9f2c41d0b7aa58e3c6d1f0e2b4a7c9d8e1f3a5b7c9d0e2f4a6b8c0d2e4f6a8b0",
        reason="passed the gate: severe DCM count 1 against the champion's 2, DCM rate "
        "0.0391 against 0.0443, macro-F1 0.871 against 0.858; waiting for an admin",
        log="\n".join(f"[{n:02d}:00] epoch {n}: loss 0.{90 - n:02d}" for n in range(40)),
        finished_at=timezone.now(),
    )
    failed = TrainingRun.objects.create(
        **common,
        state=TrainingRun.State.FAILED,
        active=None,
        stage="experts",
        progress=0.42,
        trigger="schedule",
        reason="Traceback: RuntimeError: CUDA out of memory while fitting "
        "distilbert_multilingual_cased_finetuned_on_civitai_prompts_v3 (batch 64)",
    )
    running = TrainingRun.objects.create(
        **common, state=TrainingRun.State.RUNNING, stage="features", progress=0.63, started_by=carol
    )
    return [passed, failed, running]


def screens(data: dict) -> list[Screen]:
    return [
        Screen("review:next", "/review/", "review", admin_only=False, decides=True),
        Screen("review:grid", "/review/grid/", "grid", admin_only=False),
        Screen("review:mine", "/review/mine/", "mine", admin_only=False),
        Screen("review:disagreements", "/review/disagreements/", "disagreements", admin_only=False),
        Screen("review:history", f"/review/items/{data['history']}/", "history", admin_only=False),
        Screen("conflict", f"/review/{data['conflict']}/decide/", "conflict", False, status=409),
        Screen("404", "/review/no-such-page/", "not-found", admin_only=False, status=404),
        Screen("dashboards:overview", "/dashboards/", "dashboards"),
        Screen("dashboards:version", f"/dashboards/versions/{data['version']}/", "version"),
        Screen("dashboards:health", "/dashboards/health/", "health"),
        Screen("dashboards:quality_items", "/dashboards/health/quality/items/", "quality-items"),
        Screen("training:runs", "/training/", "training"),
        Screen("training:run", f"/training/runs/{data['run']}/", "training-run"),
        Screen("training:versions", "/training/versions/", "versions"),
        Screen("audit:events", "/audit/", "audit"),
        Screen("model_audit:index", "/model-audit/", "model-audit"),
        Screen("model_audit:audit", "/model-audit/audit/", "model-audit-item", decides=True),
        Screen(
            "model_audit:figures", f"/model-audit/figures/?session={data['session']}", "figures"
        ),
    ]


# The conflict page answers a decision posted over a newer label (nothing is written): a plain
# form post, as a browser without JavaScript would send it.
POST_STALE_DECISION = """path => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = path;
  const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  for (const [name, value] of [["csrfmiddlewaretoken", token], ["level", "1"], ["seen", ""]]) {
    const input = Object.assign(document.createElement("input"), {type: "hidden", name, value});
    form.append(input);
  }
  document.body.append(form);
  form.submit();
}"""

# Elements whose visible part (after the clipping of any scrolling or clipping ancestor below
# <body>) reaches outside the viewport; only the outermost of a nest is named.
STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const out = new Set();
  const named = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height) continue;
    let left = box.left, right = box.right;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") {
        const clip = a.getBoundingClientRect();
        left = Math.max(left, clip.left);
        right = Math.min(right, clip.right);
      }
    }
    if (right - left <= 0 || (left >= -1 && right <= width + 1)) continue;
    out.add(el);
    if (out.has(el.parentElement)) continue;
    const classes = [...el.classList].map(c => "." + c).join("");
    const text = (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 40);
    named.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${classes} ` +
      `[${Math.round(left)}, ${Math.round(right)}] "${text}"`);
  }
  return named;
}"""


def open_screen(page, base: str, screen: Screen) -> None:
    if screen.name == "conflict":
        page.goto(f"{base}/review/mine/")
        with page.expect_navigation() as navigation:
            page.evaluate(POST_STALE_DECISION, screen.path)
        response = navigation.value
    else:
        response = page.goto(f"{base}{screen.path}")
    assert response.status == screen.status, (screen.name, response.status)
    if screen.decides:
        expect(page.locator("#review-panel form.decide")).to_be_visible()
    page.wait_for_load_state("networkidle")


def problems_of(page, screen: Screen, viewport: dict) -> list[str]:
    found = []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 0:
        found.append(f"scrolls sideways by {overflow} px")
    found += [f"sticks out: {e}" for e in page.evaluate(STICKING_OUT)]
    if screen.decides:
        bar = page.locator("#review-panel form.decide").bounding_box()
        inside = (
            bar["x"] >= 0
            and bar["y"] >= 0
            and bar["x"] + bar["width"] <= viewport["width"]
            and bar["y"] + bar["height"] <= viewport["height"]
        )
        if not inside:
            found.append(f"the decision bar is off screen: {bar}")
        prompt = page.locator("#review-panel .prompt").first.bounding_box()
        # In one column (the bar at the bottom) the prompt starts above it, on screen.
        if viewport["width"] < 1000 and not 0 <= prompt["y"] < bar["y"]:
            found.append(f"the prompt is not above the decision bar: {prompt['y']} / {bar['y']}")
    return found


def sweep(browser, base: str, username: str, viewport: dict, pages, tmp_path, shoot) -> list:
    """Visit `pages` as `username` (the login page first, signed out); every problem found."""
    page = browser.new_context(viewport=viewport).new_page()
    errors: list[tuple[str, str]] = []  # (message, the URL it came from)
    page.on(
        "console", lambda m: m.type == "error" and errors.append((m.text, m.location.get("url")))
    )
    page.on("pageerror", lambda e: errors.append((str(e), "")))
    found = []
    login = Screen("login", "/accounts/login/", "login", admin_only=False)
    for screen in [login, *pages]:
        if screen is login:
            page.goto(f"{base}/accounts/login/")
        else:
            open_screen(page, base, screen)
        # Chromium logs a 404 or 409 document as a failed load: that one is the page itself.
        own = f"status of {screen.status}"
        errors[:] = [(m, url) for m, url in errors if not (own in m and url == page.url)]
        found += [f"{screen.name}: {p}" for p in problems_of(page, screen, viewport)]
        found += [f"{screen.name}: console: {m} ({url})" for m, url in errors]
        errors.clear()
        if shoot(screen):
            name = f"screens/{screen.shot}-{viewport['width']}.png"
            path = screenshot_path(name, tmp_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path))
        if screen is login:
            log_in(page, f"{base}/accounts/login/", username, PASSWORD)
            page.wait_for_load_state("networkidle")
    page.context.close()
    return [f"{username} at {viewport['width']} px: {p}" for p in found]


@pytest.mark.django_db(transaction=True)
def test_every_page_fits_a_phone_and_a_desktop(live_server, settings, tmp_path):
    data = build_product(settings)
    pages = screens(data)
    moderator_pages = [s for s in pages if not s.admin_only]
    people = {name: User.objects.get(username=name) for name in ("alice", "carol")}

    problems = []
    for viewport in (PHONE, DESKTOP):
        # Leaving a grid page gives its items back: each size gets a page anew.
        for person in people.values():
            assert len(grid_claim(moderator=person, filters=GridFilters(), size=12)) == 12
        with sync_playwright() as playwright:
            browser = launch(playwright)
            # The moderator's pictures of the pages both see; the admin's of the others.
            problems += sweep(
                browser, live_server.url, "alice", viewport, moderator_pages, tmp_path, every_screen
            )
            problems += sweep(
                browser, live_server.url, "carol", viewport, pages, tmp_path, admin_screen
            )
            # bob holds no grid page: the grid before "Load a page", its filters alone.
            grid = [s for s in pages if s.name == "review:grid"]
            problems += sweep(browser, live_server.url, "bob", viewport, grid, tmp_path, no_shot)
            browser.close()
    assert not problems, "\n".join(problems)


def every_screen(screen: Screen) -> bool:
    return True


def admin_screen(screen: Screen) -> bool:
    return screen.admin_only


def no_shot(screen: Screen) -> bool:
    return False


def url_names(resolver: URLResolver, namespace: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or namespace
            if inner not in ("admin", "api"):
                yield from url_names(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), pattern


def is_document(response) -> bool:
    html = response.status_code == 200 and response["Content-Type"].startswith("text/html")
    return html and b"<html" in response.content


@pytest.mark.django_db
def test_the_sweep_visits_every_page_a_browser_can_get(carol, settings):
    """Every URL pattern outside the admin and the API that answers a GET with an HTML
    document (for the admin, or signed out: the login page) has an entry in the sweep.
    Fragments (htmx partials), downloads, images, redirects and POST-only actions are not
    pages."""
    champion = make_version("v1")
    item = make_item(prompt="a cat on a sofa")
    run = TrainingRun.objects.create(state="succeeded", active=None, base_version=champion)
    hold = ModeratorHold.objects.create(moderator=carol, reason="test")
    samples = {
        "uid": item.uid,
        "pk": run.pk,
        "version": champion.version,
        "hold_id": hold.pk,
    }
    admin, anonymous = Client(), Client()
    admin.force_login(carol)
    pages = set()
    for name, pattern in url_names(get_resolver()):
        kwargs = {key: samples[key] for key in pattern.pattern.converters}
        url = reverse(name, kwargs=kwargs)
        if any(is_document(client.get(url)) for client in (admin, anonymous)):
            pages.add(name)
    paths = {"history": item.uid, "conflict": item.uid, "run": run.pk, "session": 1}
    swept = {s.name for s in screens({**paths, "version": champion.version})} | {"login"}
    assert pages == swept - {"conflict", "404"}
