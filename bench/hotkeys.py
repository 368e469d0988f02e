"""Hotkeys: from a moderator's key press to the next item on the review page, in Chromium.

Two checkouts in one run: the working tree, and a baseline git ref (--baseline-ref, HEAD by
default) checked out with `git worktree add --detach` in /tmp and removed at the end. The
baseline has no virtual environment of its own: it runs with this checkout's Python, its
processes started in the worktree with PYTHONPATH on it, so that its own `moderation` package
(views, templates, static files) is what they import and serve.

Each checkout gets a fresh PostgreSQL database (`bench_hotkeys_<pid>_<checkout>`, dropped at
the end), migrated by its own `manage.py migrate`, and its own `manage.py shell` fills it
through its own services: a moderator in the group "moderators" and --items prompt-only items
queued for review with `media.services.item_create` (no predictions: "Prediction pending",
the rating buttons but no Accept). Each is served as bench/pages.py serves it (gunicorn,
production settings, DEBUG off, its own collected static files, its own port), and both
servers stay up for the whole run.

One Debian Chromium (moderation/demo/chromium.py), one browser context per checkout: the
moderator signs in, opens /review/ and waits for `#review-panel[data-item]` (rendered with
the page, or fetched by htmx after it loads). Then each press: a key among 1-5 (PG ... XXX,
the same seeded sequence for both checkouts), and the time until the next item is in the DOM.

Timed inside the page with performance.now(), so Playwright's round trips are not counted:
a script installed before the page's own ones starts the clock in a capture listener for
`keydown` on window (before hotkeys.js clicks the button) and stops it in a MutationObserver
callback that finds `#review-panel` carrying another `data-item` (the swap of the next item;
layout and paint after it are not included). --pause-ms (100) passes between the swap and the
next key, as a quick moderator's glance. The first --warmup presses of each checkout are not
counted. Rounds alternate the checkouts (and which goes first), so drift on the machine falls
on both alike.

Printed and written to bench/results/hotkeys.json: median, p95, p99 of each checkout, and the
working tree's median over the baseline's (1.0: no change; below 1: faster). `ratio`, as in
every results file, is the baseline's median over the working tree's (above 1: faster).

    python bench/hotkeys.py [--baseline-ref HEAD] [--items 300] [--rounds 3] [--presses 50]
                            [--pause-ms 100] [--quick]
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import record

USERNAME = "bench-hotkeys"
KEYS = "12345"
PRESS_TIMEOUT_MS = 30_000
WORKERS, THREADS = 2, 4  # gunicorn, as bench/pages.py runs it

# Installed in every document before its own scripts (Playwright's init script).
PROBE = """
(() => {
  const hk = (window.__hotkeys = { presses: 0, swaps: 0, pending: false, log: [] });
  const panel = () => document.getElementById("review-panel");
  addEventListener("keydown", () => {
    const p = panel();
    hk.from = p ? p.dataset.item : undefined;
    hk.t0 = performance.now();
    hk.pending = true;
    hk.presses += 1;
  }, true);
  new MutationObserver(() => {
    const p = panel();
    if (!hk.pending || !p || p.dataset.item === hk.from) return;
    hk.pending = false;
    hk.swaps += 1;
    hk.log.push({ ms: performance.now() - hk.t0, item: p.dataset.item || null });
  }).observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-item"],
  });
})();
"""

FILL = """
import moderation
from django.contrib.auth.models import Group, User
from moderation.media.services import item_create

user = User.objects.create_user({username!r}, password={password!r})
user.groups.add(Group.objects.get_or_create(name="moderators")[0])
for n in range({items}):
    item_create(
        prompt=f"a lighthouse on a cliff at dusk, oil painting, study {{n}}",
        negative_prompt="blurry, low quality",
        tags=[["lighthouse", 0.93], ["cliff", 0.71], ["sea", 0.64]],
        source="bench",
        external_id=f"hotkeys-{{n}}",
        queue_for_review=True,
    )
print(moderation.__file__)
"""


def parse_args() -> Any:
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="HEAD", help="git ref of the baseline (HEAD)")
    parser.add_argument("--items", type=int, help="queued items in each database (300)")
    parser.add_argument("--rounds", type=int, help="rounds, each checkout in turn (3; --full 5)")
    parser.add_argument("--presses", type=int, help="timed presses per round (50; --full 100)")
    parser.add_argument("--warmup", type=int, help="presses before the timed ones (5)")
    parser.add_argument("--pause-ms", type=float, default=100.0, help="after a swap (100)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a test")
    args = parser.parse_args()
    sizes = (2, 4, 2, 16) if args.quick else (5, 100, 5, 600) if args.full else (3, 50, 5, 300)
    for name, default in zip(("rounds", "presses", "warmup", "items"), sizes, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(args.rounds, args.presses) < 1 or args.warmup < 0:
        parser.error("--rounds and --presses must be positive, --warmup not negative")
    # The page claims one item, each press decides it and shows the next.
    if args.items < args.warmup + args.rounds * args.presses + 1:
        parser.error("--items must be at least --warmup + --rounds x --presses + 1")
    return args


def git(*command: str) -> str:
    done = subprocess.run(["git", *command], cwd=record.ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(command)} failed:\n{done.stderr}")
    return done.stdout.strip()


def worktree_remove(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=record.ROOT)
    shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune")


def manage(env: dict[str, str], checkout: Path, *words: str) -> str:
    """`manage.py` of that checkout, run in it: its own `moderation` is the one imported."""
    command = [sys.executable, "manage.py", *words]
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: manage.py {words[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def gunicorn(env: dict[str, str], checkout: Path, log: Path) -> Iterator[int]:
    """record.gunicorn's server, started in the checkout (that one starts in this project): the
    checkout is then the only copy of the project on sys.path. Yields the port once it serves."""
    port = record.free_port()
    command = [str(Path(sys.executable).with_name("gunicorn")), "moderation.wsgi"]
    command += ["--bind", f"127.0.0.1:{port}", "--timeout", "120"]
    command += ["--workers", str(WORKERS), "--threads", str(THREADS)]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=checkout, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/accounts/login/")
                if connection.getresponse().status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn in {checkout} did not serve:\n{log.read_text()}")
            time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(
    stack: contextlib.ExitStack, name: str, checkout: Path, args: Any, password: str, scratch: Path
) -> int:
    """A fresh database for the checkout, filled by its own code, and its server; the port."""
    url = stack.enter_context(record.database(f"bench_hotkeys_{os.getpid()}_{name}"))
    env = record.environment(url, scratch / name)
    env["PYTHONPATH"] = str(checkout)
    manage(env, checkout, "migrate", "--noinput", "-v", "0")
    manage(env, checkout, "collectstatic", "--noinput", "-v", "0")
    fill = FILL.format(username=USERNAME, password=password, items=args.items)
    imported = manage(env, checkout, "shell", "-c", fill).strip().splitlines()[-1]
    if not Path(imported).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"{name}: imported {imported}, not the checkout's {checkout}")
    port = stack.enter_context(gunicorn(env, checkout, scratch / f"{name}.log"))
    print(f"  {name}: {checkout}, {args.items} items, http://127.0.0.1:{port}/review/", flush=True)
    return port


def review_page(browser: Any, port: int, password: str) -> Any:
    """The moderator signed in on the review page, an item in front of them."""
    from moderation.demo.chromium import log_in

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(PROBE)
    page = context.new_page()
    log_in(page, f"http://127.0.0.1:{port}/review/", USERNAME, password)
    page.wait_for_selector("#review-panel[data-item]", timeout=PRESS_TIMEOUT_MS)
    page.wait_for_load_state("load")
    return page


def presses(page: Any, keys: list[str], pause_ms: float) -> list[float]:
    """Press each key once the page shows an item; the times from keydown to the next item."""
    page.bring_to_front()
    start = page.evaluate("window.__hotkeys.swaps")
    for n, key in enumerate(keys, start + 1):
        page.wait_for_timeout(pause_ms)
        page.keyboard.press(key)
        try:
            page.wait_for_function(f"window.__hotkeys.swaps >= {n}", timeout=PRESS_TIMEOUT_MS)
        except Exception as error:  # a reload, an error page, a key the page ignored
            raise SystemExit(f"no next item {PRESS_TIMEOUT_MS} ms after {key!r}: {error}") from None
    log = page.evaluate("window.__hotkeys.log")[start:]
    if len(log) != len(keys) or any(entry["item"] is None for entry in log):
        raise SystemExit("the queue ran out, or a key swapped twice: more --items")
    return [entry["ms"] for entry in log]


def summary(times: list[float], round_medians: list[float]) -> dict[str, Any]:
    return {
        "next_item_ms": {k: round(v, 2) for k, v in record.percentiles(times).items()},
        "mean_ms": round(statistics.fmean(times), 2),
        "presses": len(times),
        "round_medians_ms": [round(m, 2) for m in round_medians],
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    from moderation.demo.chromium import launch

    args = parse_args()
    commit = git("rev-parse", "--verify", f"{args.baseline_ref}^{{commit}}")
    head, dirty = git("rev-parse", "HEAD"), bool(git("status", "--porcelain"))
    print(
        f"hotkeys: baseline {args.baseline_ref} ({commit[:10]}) against the working tree "
        f"({head[:10]}{', with changes' if dirty else ''}); {args.rounds} rounds of "
        f"{args.presses} presses each, {args.warmup} warm-up, {args.items} items"
    )
    rng = random.Random(7)
    keys = [rng.choice(KEYS) for _ in range(args.warmup + args.rounds * args.presses)]
    password = secrets.token_urlsafe(16)
    times: dict[str, list[float]] = {"baseline": [], "working_tree": []}
    medians: dict[str, list[float]] = {"baseline": [], "working_tree": []}
    with contextlib.ExitStack() as stack:
        worktree = Path(tempfile.gettempdir()) / f"hotkeys-baseline-{os.getpid()}"
        if worktree.exists():
            worktree_remove(worktree)
        git("worktree", "add", "--detach", str(worktree), commit)
        stack.callback(worktree_remove, worktree)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-hotkeys-")))
        checkouts = {"baseline": worktree, "working_tree": record.ROOT}
        ports = {
            name: serve(stack, name, c, args, password, scratch) for name, c in checkouts.items()
        }
        playwright = stack.enter_context(sync_playwright())
        browser = launch(playwright)
        stack.callback(browser.close)
        pages = {name: review_page(browser, port, password) for name, port in ports.items()}
        browser_version = browser.version
        for page in pages.values():
            presses(page, keys[: args.warmup], args.pause_ms)
        for r in range(args.rounds):
            chunk = keys[args.warmup + r * args.presses :][: args.presses]
            for name in list(pages)[:: 1 if r % 2 == 0 else -1]:
                measured = presses(pages[name], chunk, args.pause_ms)
                times[name] += measured
                medians[name].append(statistics.median(measured))
                figures = summary(measured, [])["next_item_ms"]
                print(f"  round {r + 1}/{args.rounds} {name}: {figures}", flush=True)

    ours = summary(times["working_tree"], medians["working_tree"])
    base = summary(times["baseline"], medians["baseline"])
    over = ours["next_item_ms"]["p50"] / base["next_item_ms"]["p50"]
    p95_over = ours["next_item_ms"]["p95"] / base["next_item_ms"]["p95"]
    for name, s in (("baseline", base), ("working tree", ours)):
        ms = s["next_item_ms"]
        print(f"{name}: median {ms['p50']:.1f} ms, p95 {ms['p95']:.1f} ms, p99 {ms['p99']:.1f} ms")
    print(f"working tree / baseline: median {over:.3f}, p95 {p95_over:.3f}")
    figures = {
        **ours,
        "median_over_baseline": round(over, 3),
        "p95_over_baseline": round(p95_over, 3),
        "commit": head,
        "uncommitted_changes": dirty,
        "method": (
            "performance.now() in the page, from keydown (capture listener on window) to the "
            "MutationObserver callback that sees #review-panel with another data-item"
        ),
        "browser": f"Debian Chromium {browser_version}, headless, Playwright",
        "server": (
            f"gunicorn moderation.wsgi, {WORKERS} workers x {THREADS} threads, "
            "moderation.settings_production, PostgreSQL on this machine"
        ),
    }
    record.write(
        "hotkeys",
        size={
            "items": args.items,
            "rounds": args.rounds,
            "presses_per_round": args.presses,
            "warmup_presses": args.warmup,
            "pause_ms": args.pause_ms,
        },
        figures=figures,
        baseline={**base, "ref": args.baseline_ref, "commit": commit},
        ratio=base["next_item_ms"]["p50"] / ours["next_item_ms"]["p50"],
        out=args.out,
    )


if __name__ == "__main__":
    main()
