"""Pages: time to first byte of the review page and the dashboard, big database against 1k items.

Two fresh PostgreSQL databases, filled by bench/review_data.py (items, the champion's
predictions, queue states, moderators' labels on a tenth of the items): the big one with
100,000 items and 10,000 labels by default, 1,000,000 and 100,000 with --full; the small one
(the baseline) with 1,000 items and 100 labels. For each, the real app as deploy/Procfile runs
it (gunicorn, production settings, plain HTTP straight to it), a moderator and an admin who
log in through the login form, the moderator takes an item (`POST /review/claim/`, as the page
does once loaded), then --requests GETs of `/review/` (the moderator's page: the held item, its
prediction, the queue's size) and `/dashboards/` (the admin's overview of
every version, live figures and severe items), one at a time, each on a new connection.
Two more pages are measured the same way, apart from the headline: `/review/disagreements/`
(the moderator's list of down-classed items, its first page and row count) and
`/dashboards/health/` (the admin's labels per day and per moderator, the queue's size and age).

Time to first byte: from sending the request to having the status line and headers (Django
sends them with the body, once the view has run). The first requests of each page are warm-up
(each worker connects, compiles templates; the dashboard counts its live figures, which it then
reuses for DASHBOARD_LIVE_SECONDS): the very first is reported apart as `first_ms`.

`ratio` is the small database's p95 over the big one's, for the headline page whose cost grows
most (1.0: flat); `ratio_by_page` has it for every page. The target is a p95 under 200 ms at
1,000,000 items for the headline pages.

    python bench/pages.py [--full] [--items N] [--requests 50]
"""

from __future__ import annotations

import http.client
import re
import secrets
import subprocess
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import record

PAGES = {"review": ("moderator", "/review/"), "dashboard": ("admin", "/dashboards/")}
# Measured and reported too, but not part of the headline ratio and target.
MORE_PAGES = {
    "disagreements": ("moderator", "/review/disagreements/"),
    "health": ("admin", "/dashboards/health/"),
}
USERS = {"moderator": "bench-moderator00", "admin": "bench-admin00"}
TARGET_P95_MS = 200.0
WARMUP = 8  # requests per page before the measured ones


def parse_args() -> Any:
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, help="items in the big database (100,000; --full 1M)")
    parser.add_argument("--labelled", type=int, help="labelled items there (a tenth of --items)")
    parser.add_argument("--small-items", type=int, default=1_000, help="the baseline's items")
    parser.add_argument("--requests", type=int, help="measured GETs per page (50; --full 100)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    args = parser.parse_args()
    if args.items is None:
        args.items = 1_000_000 if args.full else 100_000
    if args.labelled is None:
        args.labelled = args.items // 10
    if args.requests is None:
        args.requests = 100 if args.full else 50
    if min(args.items, args.small_items, args.requests, args.workers, args.threads) < 1:
        parser.error("sizes, --requests, --workers and --threads must be positive")
    if not 0 <= args.labelled <= args.items:
        parser.error("--labelled must be between 0 and --items")
    return args


# -- the server ----------------------------------------------------------------------------------


def run(env: dict[str, str], *command: str) -> str:
    done = subprocess.run(command, cwd=record.ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# -- the client ----------------------------------------------------------------------------------


class Answer:
    def __init__(self, response: http.client.HTTPResponse, ttfb: float) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read().decode(errors="replace")
        self.ttfb = ttfb  # seconds until the status line and headers arrived


def request(
    port: int, method: str, path: str, *, cookies: dict[str, str] | None = None, **headers: str
) -> Answer:
    """One request on a new connection, timed to its first byte."""
    body = headers.pop("body", None)
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        began = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response, time.perf_counter() - began)
    finally:
        connection.close()


def log_in(port: int, username: str, password: str) -> dict[str, str]:
    """Sign in through the login form as a browser does; returns the session's cookies."""
    form = request(port, "GET", "/accounts/login/")
    cookies = {m.key: m.value for m in SimpleCookie(form.headers["Set-Cookie"]).values()}
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body).group(1)
    body = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    answer = request(
        port,
        "POST",
        "/accounts/login/",
        cookies=cookies,
        body=body,
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    if answer.status != 302:
        raise SystemExit(f"{username} could not log in: {answer.status}\n{answer.body[:2000]}")
    for header in answer.headers.get_all("Set-Cookie"):
        cookies.update({m.key: m.value for m in SimpleCookie(header).values()})
    return cookies


def claim(port: int, cookies: dict[str, str]) -> None:
    """The review page's own first step: take an item by POST (a GET claims nothing), so that
    each GET of `/review/` then shows the held item, its prediction and the queue's size."""
    answer = request(
        port, "POST", "/review/claim/", cookies=cookies, **{"X-CSRFToken": cookies["csrftoken"]}
    )
    if answer.status != 200 or "data-item=" not in answer.body:
        raise SystemExit(f"POST /review/claim/: {answer.status}\n{answer.body[:2000]}")


def page_times(port: int, path: str, cookies: dict[str, str], n: int) -> dict[str, Any]:
    """TTFB of the first request, then of `n` after the warm-up, in milliseconds."""
    times = []
    for _ in range(WARMUP + n):
        answer = request(port, "GET", path, cookies=cookies)
        if answer.status != 200:
            raise SystemExit(f"GET {path}: {answer.status}\n{answer.body[:2000]}")
        times.append(answer.ttfb * 1000)
    measured = times[WARMUP:]
    return {
        "ttfb_ms": {k: round(v, 2) for k, v in record.percentiles(measured).items()},
        "mean_ms": round(sum(measured) / n, 2),
        "first_ms": round(times[0], 1),
        "requests": n,
        "bytes": len(answer.body.encode()),
    }


def measure(
    name: str, items: int, labelled: int, args: Any, scratch: Path
) -> dict[str, dict[str, Any]]:
    """Fill a fresh database, serve it, and time each page's TTFB."""
    password = secrets.token_urlsafe(16)
    with record.database(name) as url:
        env = record.environment(url, scratch)
        start = time.monotonic()
        filling = [sys.executable, "bench/review_data.py", "--items", str(items)]
        run(env, *filling, "--labelled", str(labelled), "--password", password)
        print(f"  {name}: {items:,} items, {labelled:,} labels in {time.monotonic() - start:.0f} s")
        log = scratch / f"{name}.log"
        with record.gunicorn(env, workers=args.workers, threads=args.threads, log=log) as (port, _):
            sessions = {role: log_in(port, USERS[role], password) for role in USERS}
            claim(port, sessions["moderator"])
            results = {}
            for page, (role, path) in {**PAGES, **MORE_PAGES}.items():
                results[page] = page_times(port, path, sessions[role], args.requests)
                print(f"  {name} {path}: {results[page]}", flush=True)
    return results


def main() -> None:
    args = parse_args()
    print(
        f"pages: {args.items:,} items and {args.labelled:,} labels against "
        f"{args.small_items:,} items; {args.requests} requests per page"
    )
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as folder:
        scratch = Path(folder)
        # The production settings serve hashed static files named in a manifest.
        env = record.environment(record.POSTGRES, scratch)
        run(env, sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0")
        small_labelled = args.small_items * args.labelled // args.items
        small = measure("bench_pages_small", args.small_items, small_labelled, args, scratch)
        big = measure("bench_pages", args.items, args.labelled, args, scratch)

    growth = {page: small[page]["ttfb_ms"]["p95"] / big[page]["ttfb_ms"]["p95"] for page in big}
    figures: dict[str, Any] = dict(big)
    figures["ratio_by_page"] = {page: round(r, 3) for page, r in growth.items()}
    figures["headline_pages"] = list(PAGES)
    figures["target"] = {"ttfb_p95_ms": TARGET_P95_MS, "at_items": 1_000_000}
    figures["meets_target"] = all(big[page]["ttfb_ms"]["p95"] < TARGET_P95_MS for page in PAGES)
    figures["server"] = (
        f"gunicorn moderation.wsgi, {args.workers} workers x {args.threads} threads, "
        "moderation.settings_production, PostgreSQL on this machine"
    )
    record.write(
        "pages",
        size={
            "items": args.items,
            "labels": args.labelled,
            "baseline_items": args.small_items,
            "baseline_labels": small_labelled,
            "requests_per_page": args.requests,
        },
        figures=figures,
        baseline=small,
        ratio=min(growth[page] for page in PAGES),
        out=args.out,
    )


if __name__ == "__main__":
    main()
