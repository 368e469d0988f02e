"""Ingestion: items/s through the HTTP API into PostgreSQL, each with its prediction queued.

The real production processes, as deploy/Procfile runs them: gunicorn (`moderation.wsgi`,
production settings) on a fresh PostgreSQL database and its own Redis database. Client
threads POST real prompt-only items (prompts of data/ratings, each with its own external id)
as JSON to `/api/v1/items/` over keep-alive connections. Afterwards every item must be in the
database, waiting in the review queue, with one message on the `inference` queue (no worker
runs, so the messages stay there to be counted). Besides the rate and the latencies it reports
the CPU milliseconds per item of the web workers and of PostgreSQL, which a busy shared machine
disturbs less than the rate.

Baseline, same run: the bulk import of the same items (`manage.py import_items`, the same
ingestion service without HTTP) into a second fresh database, predictions queued the same way.
`ratio` is the API's items/s over the import's (expected below 1); the target is the API's
absolute rate: at least 300 items/s on this machine.

    python bench/ingest.py [--full] [--items N] [--workers 2] [--threads 4] [--clients 8]
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import record
import redis

DATA = record.ROOT / "data" / "ratings"
TARGET_ITEMS_PER_S = 300
SOURCE = "bench"  # the API client's name: the items' source in both runs
WARMUP = 40  # items sent before the clock starts: every worker thread connects and imports


def parse_args():
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, help="items to send (default 3,000; --full 8,599)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client connections")
    parser.add_argument(
        "--postgres",
        default=record.POSTGRES,
        help="a PostgreSQL server; the benchmark creates and drops its own databases there",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/9", help="a Redis database for the broker"
    )
    args = parser.parse_args()
    if args.items is None:
        args.items = 8_599 if args.full else 3_000
    if args.items < 1 or args.workers < 1 or args.threads < 1 or args.clients < 1:
        parser.error("--items, --workers, --threads and --clients must be positive")
    return args


# -- the items --------------------------------------------------------------------------------


def corpus_items(n: int) -> list[dict[str, str]]:
    """`n` prompt-only items from the corpus's prompts (cycled when more are asked for)."""
    prompts = []
    for name in ("train", "val", "test"):
        with (DATA / f"{name}.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                record_ = json.loads(line)
                prompts.append((record_["prompt"], record_.get("negative_prompt") or ""))
    return [
        {
            "prompt": prompts[i % len(prompts)][0],
            "negative_prompt": prompts[i % len(prompts)][1],
            "external_id": f"bench-{i}",
        }
        for i in range(n)
    ]


# -- PostgreSQL, Redis and the processes --------------------------------------------------------


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=record.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def cpu_seconds(match: Callable[[str], bool]) -> float:
    """CPU seconds (user and system) used so far by the processes whose command line matches."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not match(command):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# -- sending ------------------------------------------------------------------------------------


def post_items(
    port: int, token: str, items: list[dict[str, str]], clients: int
) -> tuple[float, list[float], dict[int, int]]:
    """POST every item from `clients` threads, each on its own keep-alive connection.

    Returns the wall time, every request's latency (s) and the count of each status code.
    """
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    shares = [items[k::clients] for k in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[dict[int, int]] = [{} for _ in range(clients)]
    failures: list[str] = []
    start_line = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        bodies = [json.dumps(item).encode() for item in shares[k]]
        start_line.wait()
        for body in bodies:
            began = time.perf_counter()
            try:
                connection.request("POST", "/api/v1/items/", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                failures.append(f"{type(error).__name__}: {error}")
                connection.close()  # reconnects on the next request
                continue
            latencies[k].append(time.perf_counter() - began)
            statuses[k][response.status] = statuses[k].get(response.status, 0) + 1
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if failures:
        print(f"  {len(failures)} requests failed, e.g. {failures[0]}", flush=True)
    counts: dict[int, int] = {}
    for status in statuses:
        for code, count in status.items():
            counts[code] = counts.get(code, 0) + count
    return wall, [x for part in latencies for x in part], counts


def bulk_import(env: dict[str, str], items: list[dict[str, str]], path: Path) -> float:
    """Seconds `import_items` takes for the items (Django's start-up not counted).

    `path` must not be named after a split: the items get theirs by hash, as through the API.
    """
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            fields = {"prompt": item["prompt"], "negative_prompt": item["negative_prompt"]}
            handle.write(json.dumps({"id": item["external_id"], "source": SOURCE, **fields}))
            handle.write("\n")
    timing = (
        "import time; from django.core.management import call_command; "
        "t = time.perf_counter(); "
        f"call_command('import_items', {str(path)!r}, verbosity=0); "
        "print('SECONDS', time.perf_counter() - t)"
    )
    out = manage(env, "shell", "-c", timing)
    return float(out.split("SECONDS")[-1])


# -- checking -----------------------------------------------------------------------------------


def stored(database_url: str) -> tuple[set[int], int]:
    """The ids of the benchmark's items, and how many of them wait in the review queue."""
    with psycopg.connect(database_url) as connection:
        ids = connection.execute("SELECT id FROM media_mediaitem WHERE source = %s", [SOURCE])
        queued = connection.execute(
            "SELECT count(*) FROM review_reviewstate r JOIN media_mediaitem m ON m.id = r.item_id "
            "WHERE m.source = %s AND r.state = 'queued'",
            [SOURCE],
        ).fetchone()[0]
        return {row[0] for row in ids.fetchall()}, queued


def queued_ids(broker: redis.Redis) -> list[int]:
    """The item ids named by the prediction messages waiting on the `inference` queue."""
    ids = []
    for key in broker.scan_iter(match="inference*"):
        if broker.type(key) != b"list":
            continue
        for raw in broker.lrange(key, 0, -1):
            message = json.loads(raw)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]  # predict_items(item_ids)
            ids += args[0]
    return ids


def check(what: str, database_url: str, broker: redis.Redis, expected: int) -> dict[str, int]:
    """Every item stored, waiting for review, and queued for prediction exactly once."""
    items, queued = stored(database_url)
    messages = queued_ids(broker)
    found = {
        "items": len(items),
        "queued_for_review": queued,
        "queued_for_prediction": len(messages),
    }
    if set(found.values()) != {expected} or set(messages) != items:
        raise SystemExit(f"{what}: expected {expected} of each, one message per item: {found}")
    print(f"  {what}: {found} (all {expected}, one message per item)", flush=True)
    return found


# -- the run ------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    items = corpus_items(WARMUP + args.items)
    warmup, measured = items[:WARMUP], items[WARMUP:]
    broker = redis.Redis.from_url(args.redis)
    broker.flushdb()
    scratch = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    with (
        record.database("bench_ingest", args.postgres) as api_url,
        record.database("bench_ingest_bulk", args.postgres) as bulk_url,
    ):
        api_env = record.environment(api_url, scratch, args.redis)
        # One client sends every item here: the per-client throttle (API_THROTTLE_RATE,
        # 1200/min by default) would answer most of them 429.
        api_env["API_THROTTLE_RATE"] = "1000000/min"
        bulk_env = record.environment(bulk_url, scratch, args.redis)
        print("migrating two fresh databases", flush=True)
        migrations = [
            subprocess.Popen(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=record.ROOT,
                env=env,
            )
            for env in (api_env, bulk_env)
        ]
        if any([m.wait() != 0 for m in migrations]):  # a list: wait for both
            raise SystemExit("migrate failed")
        token = manage(api_env, "api_client", SOURCE).strip()

        log = scratch / "gunicorn.log"
        serving = record.gunicorn(
            api_env,
            workers=args.workers,
            threads=args.threads,
            log=log,
            ready_path="/api/v1/items/?limit=1",
            ready_headers={"Authorization": f"Bearer {token}"},
        )
        with serving as (port, _):
            print(
                f"gunicorn: {args.workers} workers x {args.threads} threads on port {port}; "
                f"{args.clients} clients, {len(measured)} items",
                flush=True,
            )
            # CPU per item, less noisy than the rate on a shared machine: the web workers, the
            # PostgreSQL backends serving the benchmark's database and this process's client
            # threads (Redis's share is negligible).
            watched = {
                "gunicorn": lambda c: "gunicorn" in c and f"127.0.0.1:{port}" in c,
                "postgres": lambda c: c.startswith("postgres: ") and " bench_ingest " in c,
            }
            post_items(port, token, warmup, args.clients)
            before = {name: cpu_seconds(match) for name, match in watched.items()}
            client_began = time.process_time()
            wall, latencies, statuses = post_items(port, token, measured, args.clients)
            cpu = {name: cpu_seconds(match) - before[name] for name, match in watched.items()}
            cpu["client"] = time.process_time() - client_began
        api_rate = len(measured) / wall
        print(f"  API: {len(measured)} items in {wall:.2f} s = {api_rate:.0f} items/s", flush=True)
        if statuses != {201: len(measured)}:
            raise SystemExit(f"API answers: {statuses} (expected {len(measured)} x 201)")
        api_check = check("API", api_url, broker, len(items))
        broker.flushdb()

        print(f"bulk import of the same {len(items)} items", flush=True)
        bulk_import(bulk_env, warmup, scratch / "warmup.jsonl")  # outside the clock, as above
        bulk_s = bulk_import(bulk_env, measured, scratch / "items.jsonl")
        bulk_rate = len(measured) / bulk_s
        print(
            f"  import: {len(measured)} items in {bulk_s:.2f} s = {bulk_rate:.0f} items/s",
            flush=True,
        )
        bulk_check = check("import", bulk_url, broker, len(items))
        broker.flushdb()

    lat = {k: round(v * 1000, 2) for k, v in record.percentiles(latencies).items()}
    figures: dict[str, Any] = {
        "api_items_per_s": round(api_rate, 1),
        "target_items_per_s": TARGET_ITEMS_PER_S,
        "meets_target": api_rate >= TARGET_ITEMS_PER_S,
        "api_seconds": round(wall, 2),
        "latency_ms": lat,
        "cpu_ms_per_item": {k: round(1000 * v / len(measured), 2) for k, v in cpu.items()},
        "statuses": {str(k): v for k, v in statuses.items()},
        "checked": api_check,
    }
    baseline = {
        "what": "manage.py import_items of the same items (ingestion service, no HTTP)",
        "items_per_s": round(bulk_rate, 1),
        "seconds": round(bulk_s, 2),
        "checked": bulk_check,
    }
    size = {
        "items": len(measured),
        "warmup_items": WARMUP,
        "payload": "prompt-only JSON (real corpus prompts, own external_id)",
        "gunicorn": f"{args.workers} workers x {args.threads} threads (gthread)",
        "clients": args.clients,
        "settings": "moderation.settings_production, PostgreSQL, Redis broker",
    }
    record.write(
        "ingest",
        size=size,
        figures=figures,
        baseline=baseline,
        ratio=api_rate / bulk_rate,
        out=args.out,
    )


if __name__ == "__main__":
    main()
