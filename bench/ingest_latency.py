"""Upload to stored prediction: seconds from an upload's answer until its prediction is stored,
with a worker and the periodic sweep running.

The production processes as deploy/Procfile runs them, on a fresh PostgreSQL database and a
Redis database of their own as broker: gunicorn (`moderation.wsgi`, production settings,
2 workers x 4 threads), the `inference,training` worker (concurrency 1) and the `default`
worker (concurrency 2), and Celery beat, whose sweep (`sweep_unpredicted`, on the default
worker) queues every item without a champion prediction every SWEEP_SECONDS: 5 s here (3 s
with --small) instead of 300, so that a short run holds many sweeps. The champion is a bundle
with real weights (see `bench_bundle`), registered with `manage.py register_bundle --promote`.

The phase: a backlog of prompt-only items is POSTed while no worker runs, so their messages
wait in the `inference` queue as after an outage or a restart; then the workers and beat
start, and once the inference worker is up, single items are POSTed at a steady pace by one
client (--small: a backlog of 300, then 40 uploads; by default 1,000 and 120; --full 3,000
and 300; 2 a second). An upload's latency is its prediction's `created_at` (set by the worker
as it writes the row, after the bundle's predict; the insert commits milliseconds later) minus
the wall-clock time at which the client had read the POST's 201: one clock, one machine, and
no polling that would load the database while it is measured.

Baseline, same run, after the workers and beat have stopped: the in-process time to rate one
stored item with the same bundle, `predictions_create(item_ids=[id])` in a Django shell (the
bundle loaded first; the call's queries, the bundle's predict and the row's insert), median
over the baseline items; the bundle's bare `predict` of one example is printed beside it.
`latency_over_baseline` gives the p50 and p95 as multiples of it; `ratio` follows record.py
(the baseline over ours, here the p95: far below 1, the cost of queueing). Target: p95 within
TARGET_P95_S seconds.

    python bench/ingest_latency.py [--small | --full] [--backlog N] [--items N] [--pace R]
                                   [--sweep-seconds S] [--bundle DIR]
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import record
import redis
from ingest import SOURCE, corpus_items, manage, post_items

DATA = record.ROOT / "data" / "ratings"
DEFAULT_BUNDLE = record.ROOT / "var" / "bundles" / "default"  # `make bundle`, the demo's
BENCH_BUNDLE = record.ROOT / "var" / "bench" / "latency-bundle"
BENCH_BUNDLE_SIZE = (1000, 200)  # training and validation items of the bench's own bundle
TARGET_P95_S = 5.0
INFERENCE_BATCH_SIZE = 64  # the settings' default, which the sweep's messages carry
BASELINE_ITEMS = 21  # the first loads the bundle and is not counted
SIZES = {  # backlog, paced uploads, uploads per second, sweep seconds
    "small": (300, 40, 2.0, 3),
    "default": (1000, 120, 2.0, 5),
    "full": (3000, 300, 2.0, 5),
}


def parse_args():
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run (about 2 minutes)")
    parser.add_argument("--backlog", type=int, help="items queued before the workers start")
    parser.add_argument("--items", type=int, help="paced single uploads timed")
    parser.add_argument("--pace", type=float, help="paced uploads per second")
    parser.add_argument("--sweep-seconds", type=int, help="the sweep's interval (beat)")
    parser.add_argument(
        "--drain-timeout", type=float, default=300, help="seconds to wait for the last prediction"
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        help="the champion's bundle (default: var/bundles/default when built, else the bench's "
        "own, trained once into var/bench/latency-bundle)",
    )
    parser.add_argument("--postgres", default=record.POSTGRES, help="a PostgreSQL server")
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/10", help="a Redis database for the broker"
    )
    args = parser.parse_args()
    if args.small and args.full:
        parser.error("--small or --full, not both")
    size = SIZES["small" if args.small else "full" if args.full else "default"]
    for name, value in zip(("backlog", "items", "pace", "sweep_seconds"), size, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.backlog < 0 or args.items < 1 or args.pace <= 0 or args.sweep_seconds < 1:
        parser.error("--items, --pace and --sweep-seconds must be positive, --backlog >= 0")
    return args


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def checkout() -> str:
    """The commit measured, `-dirty` when the working tree has changes (`git describe`)."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=record.ROOT, capture_output=True, text=True
    )
    return f"{record.ROOT} at {done.stdout.strip() or 'an unknown commit'}"


# -- the champion's bundle ------------------------------------------------------------------


def bench_bundle(path: Path | None = None) -> tuple[Path, str]:
    """The bundle the benchmark registers, and what it is.

    `make bundle`'s default bundle when it is built: the demo's, the production default. Else
    one trained once with the same `fast` preset and so the same weights where they are not
    trained (the packaged MiniLM encoder, frozen, under both transformer experts; Open-NSFW for
    images) on the first BENCH_BUNDLE_SIZE corpus items with 2-fold stacking and no selection:
    under a minute instead of `make bundle`'s 6 to 7, and the same experts to run per item.
    """
    if path is not None:
        return path.resolve(), f"{record.relative(path)} (given)"
    if (DEFAULT_BUNDLE / "manifest.json").is_file():
        return DEFAULT_BUNDLE, "var/bundles/default (`make bundle`: the demo's default bundle)"
    n_train, n_val = BENCH_BUNDLE_SIZE
    what = (
        f"var/bench/latency-bundle: the fast preset's experts (packaged MiniLM, frozen) trained "
        f"on the first {n_train} train and {n_val} val items, 2 folds, no selection"
    )
    if (BENCH_BUNDLE / "manifest.json").is_file():
        return BENCH_BUNDLE, what
    say(f"no var/bundles/default: training {what} (once; about a minute)")
    from rating_models.examples import load_examples
    from rating_models.train import BundleConfig, train_bundle

    began = time.perf_counter()
    train_bundle(
        load_examples(DATA / "train.jsonl")[:n_train],
        load_examples(DATA / "val.jsonl")[:n_val],
        config=BundleConfig.from_preset("fast", {"folds": 2}),
        out=BENCH_BUNDLE,
    )
    say(f"  trained in {time.perf_counter() - began:.0f} s")
    return BENCH_BUNDLE, what


def environment(database_url: str, scratch: Path, broker_url: str) -> dict[str, str]:
    """record.environment, with this checkout first on the path of every process: the
    editable install maps `moderation` to the main checkout, which a worktree (the "before"
    runs) must not import. Says where the processes import `moderation` from."""
    env = {**record.environment(database_url, scratch, broker_url), "PYTHONPATH": str(record.ROOT)}
    where = subprocess.run(
        [sys.executable, "-c", "import moderation; print(moderation.__file__)"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    say(f"the processes import {where}")
    if not Path(where).is_relative_to(record.ROOT):
        raise SystemExit(f"the processes would import {where}, not this checkout's")
    return env


def database_ready(env: dict[str, str], bundle: Path, client: str) -> str:
    """Migrate the (fresh) database, make the bundle the champion; the API client's token."""
    manage(env, "migrate", "--noinput", "-v", "0")
    say("  " + manage(env, "register_bundle", str(bundle), "--promote").strip().splitlines()[0])
    return manage(env, "api_client", client).strip()


# -- the processes ----------------------------------------------------------------------------


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process of the deployment in its own session, logging to `log`; stopped at the end
    (SIGTERM, as a deploy does, then SIGKILL to what is left of its group)."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=record.ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # a worker child left behind, if any


# deploy/Procfile's worker and beat lines, with node names of the benchmark's own.
PROCFILE = {
    "inference": [
        *("worker", "-Q", "inference,training", "--concurrency", "1"),
        *("-n", "bench-inference@%h", "-l", "info"),
    ],
    "default": [
        *("worker", "-Q", "default", "--concurrency", "2"),
        *("-n", "bench-default@%h", "-l", "info"),
    ],
    "beat": ["beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler", "-l", "info"],
}


@contextlib.contextmanager
def workers_and_beat(env: dict[str, str], scratch: Path) -> Iterator[dict[str, Path]]:
    """The two workers and beat, yielded once both workers are ready; yields their logs."""
    celery = str(Path(sys.executable).with_name("celery"))
    logs = {name: scratch / f"{name}.log" for name in PROCFILE}
    with contextlib.ExitStack() as stack:
        processes = {
            name: stack.enter_context(started([celery, "-A", "moderation", *args], env, logs[name]))
            for name, args in PROCFILE.items()
        }
        for name in ("inference", "default"):
            wait_for(logs[name], " ready.", processes[name])
        yield logs


def wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{log.name}: no {text!r} ({process.poll()=}):\n{log.read_text()}")
        time.sleep(0.2)


class QueueDepth(threading.Thread):
    """Samples the number of messages waiting on the `inference` queue (every priority's
    list) until stopped."""

    def __init__(self, broker: redis.Redis, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.broker, self.every = broker, every
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            keys = [k for k in self.broker.scan_iter(match="inference*")]
            depth = sum(self.broker.llen(k) for k in keys if self.broker.type(k) == b"list")
            self.samples.append((time.time(), depth))
            self.done.wait(self.every)

    def depth_at(self, moment: float) -> int:
        before = [d for t, d in self.samples if t <= moment]
        return before[-1] if before else 0


# -- the uploads ----------------------------------------------------------------------------


def paced_uploads(
    port: int, token: str, items: list[dict[str, str]], pace: float
) -> dict[str, float]:
    """POST each item on one keep-alive connection at `pace` per second, on a fixed schedule
    (a late answer does not shift the next); the wall-clock time each 201 was read, by
    external id."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    answered: dict[str, float] = {}
    began = time.monotonic()
    for n, item in enumerate(items):
        time.sleep(max(0.0, began + n / pace - time.monotonic()))
        connection.request("POST", "/api/v1/items/", body=json.dumps(item), headers=headers)
        response = connection.getresponse()
        body = response.read()
        answered[item["external_id"]] = time.time()
        if response.status != 201:
            raise SystemExit(f"upload {n}: {response.status} {body[:300]!r}")
    connection.close()
    return answered


def predicted_at(database_url: str, external_ids: list[str]) -> dict[str, float]:
    """The wall-clock time each item's (first) prediction was made, by external id."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT m.external_id, min(p.created_at) FROM media_mediaitem m "
            "JOIN inference_prediction p ON p.item_id = m.id WHERE m.external_id = ANY(%s) "
            "GROUP BY m.external_id",
            [external_ids],
        ).fetchall()
    return {external_id: at.timestamp() for external_id, at in rows}


def wait_predicted(database_url: str, external_ids: list[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done = predicted_at(database_url, external_ids)
        if len(done) == len(external_ids) or time.monotonic() > deadline:
            return done
        time.sleep(1)


def worker_counts(inference_log: Path, default_log: Path, batch: int) -> dict[str, Any]:
    """What the workers' logs say they ran: prediction messages by the rows each wrote (0: all
    its items already predicted, a duplicate), the seconds spent in those that wrote none, the
    sweeps and the items and messages they queued (`batch` items a message)."""
    done = re.compile(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([\d.e-]+)s: (\d+)")
    ran = [m for m in done.finditer(inference_log.read_text(errors="replace"))]
    rows = [
        (int(m.group(3)), float(m.group(2))) for m in ran if m.group(1).endswith("predict_items")
    ]
    swept = [m for m in done.finditer(default_log.read_text(errors="replace"))]
    sweeps = [int(m.group(3)) for m in swept if m.group(1).endswith("sweep_unpredicted")]
    bins = {"0": (0, 0), "1": (1, 1), "2-9": (2, 9), "10+": (10, 10**9)}
    return {
        "prediction_messages": len(rows),
        "messages_by_rows_written": {
            name: sum(low <= n <= high for n, _ in rows) for name, (low, high) in bins.items()
        },
        "seconds_in_messages_writing_nothing": round(sum(s for n, s in rows if n == 0), 2),
        "sweeps": len(sweeps),
        "items_queued_by_sweeps": sum(sweeps),
        "messages_queued_by_sweeps": sum(-(-n // batch) for n in sweeps),
    }


# -- the baseline ---------------------------------------------------------------------------

BASELINE_CODE = """
import json, time
from moderation.inference.services import predictions_create, item_example, bundle_for, champion
from moderation.media.models import MediaItem
ids = list(MediaItem.objects.filter(external_id__startswith="baseline-")
           .order_by("pk").values_list("pk", flat=True))
predictions_create(item_ids=ids[:1])  # loads the bundle
stored, bare = [], []
for pk in ids[1:]:
    began = time.perf_counter()
    predictions_create(item_ids=[pk])
    stored.append(time.perf_counter() - began)
bundle = bundle_for(champion())
for item in MediaItem.objects.filter(pk__in=ids[1:]):
    example = item_example(item)
    began = time.perf_counter()
    bundle.predict([example])
    bare.append(time.perf_counter() - began)
print("BASELINE", json.dumps({"stored": stored, "bare": bare}))
"""


def baseline(env: dict[str, str], port: int, token: str) -> dict[str, list[float]]:
    """Seconds to rate one stored item in process, and the bundle's bare predict (see above).
    Its items are POSTed now, with no worker running: nothing rates them meanwhile."""
    items = [
        {**item, "external_id": f"baseline-{n}"}
        for n, item in enumerate(corpus_items(BASELINE_ITEMS))
    ]
    post_items(port, token, items, clients=1)
    out = manage(env, "shell", "-c", BASELINE_CODE)
    return json.loads(out.split("BASELINE", 1)[1])


# -- the run ------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    load_at_start = os.getloadavg()[0]
    import moderation

    say(f"moderation from {Path(moderation.__file__).parent}")
    bundle, bundle_what = bench_bundle(args.bundle)
    items = corpus_items(args.backlog + args.items)
    backlog, paced = items[: args.backlog], items[args.backlog :]
    broker = redis.Redis.from_url(args.redis)
    broker.flushdb()
    scratch = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    with record.database("bench_ingest_latency", args.postgres) as url:
        env = environment(url, scratch, args.redis)
        # The sweep's interval, read by `migrate` as it creates the periodic task; the API's
        # per-client throttle (1200/min) would refuse the backlog's burst; the production
        # batch, whatever this shell's environment says.
        env.update(
            SWEEP_SECONDS=str(args.sweep_seconds),
            API_THROTTLE_RATE="1000000/min",
            INFERENCE_BATCH_SIZE=str(INFERENCE_BATCH_SIZE),
        )
        say(f"fresh database, champion {bundle_what}")
        token = database_ready(env, bundle, SOURCE)
        serving = record.gunicorn(
            env,
            workers=2,
            threads=4,
            log=scratch / "gunicorn.log",
            ready_path="/api/v1/items/?limit=1",
            ready_headers={"Authorization": f"Bearer {token}"},
        )
        with serving as (port, _):
            say(f"gunicorn on port {port}; {len(backlog)} backlog items, no worker running")
            wall, _, statuses = post_items(port, token, backlog, clients=8)
            if backlog and statuses != {201: len(backlog)}:
                raise SystemExit(f"backlog: {statuses}")
            say(f"  backlog posted in {wall:.1f} s; starting the workers and beat")
            depth = QueueDepth(broker)
            depth.start()
            restart = time.time()
            with workers_and_beat(env, scratch) as logs:
                ready = time.time()
                say(
                    f"  workers ready after {ready - restart:.1f} s; {len(paced)} uploads at "
                    f"{args.pace:g}/s, the sweep every {args.sweep_seconds} s"
                )
                answered = paced_uploads(port, token, paced, args.pace)
                say("  uploads done; waiting for their predictions")
                made = wait_predicted(url, list(answered), args.drain_timeout)
                finished = time.time()
                backlog_done = predicted_at(url, [i["external_id"] for i in backlog])
            depth.done.set()
            depth.join()
            counts = worker_counts(logs["inference"], logs["default"], INFERENCE_BATCH_SIZE)
            say("workers stopped; baseline: one stored item rated in process")
            base = baseline(env, port, token)
    broker.flushdb()

    missing = len(answered) - len(made)
    latencies = [made[key] - at for key, at in answered.items() if key in made]
    if not latencies:
        raise SystemExit("no upload was predicted")
    lat = record.percentiles(latencies, (50, 95, 99))
    base_s = float(np.median(base["stored"]))
    bare_s = float(np.median(base["bare"]))
    waiting_at_upload = [depth.depth_at(at) for at in answered.values()]
    say(
        f"upload -> prediction: p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s, max "
        f"{max(latencies):.2f} s ({missing} not predicted within {args.drain_timeout:g} s); "
        f"in-process one item: {base_s * 1000:.1f} ms (bare predict {bare_s * 1000:.1f} ms); "
        f"p50 {lat['p50'] / base_s:.0f}x, p95 {lat['p95'] / base_s:.0f}x the baseline"
    )
    say(f"  workers: {counts}; inference queue at most {max(d for _, d in depth.samples)}")
    figures: dict[str, Any] = {
        "latency_s": {**{k: round(v, 3) for k, v in lat.items()}, "max": round(max(latencies), 3)},
        "latency_over_baseline": {
            "p50": round(lat["p50"] / base_s, 1),
            "p95": round(lat["p95"] / base_s, 1),
        },
        "target_p95_s": TARGET_P95_S,
        "meets_target": missing == 0 and lat["p95"] <= TARGET_P95_S,
        "not_predicted": missing,
        "first_10_latencies_s": [round(x, 2) for x in latencies[:10]],
        "last_10_latencies_s": [round(x, 2) for x in latencies[-10:]],
        "workers_ready_s": round(ready - restart, 1),
        "backlog_predicted_s_after_workers_ready": (
            round(max(backlog_done.values()) - ready, 1) if backlog_done else None
        ),
        "run_s_after_workers_ready": round(finished - ready, 1),
        "inference_queue_max": max(d for _, d in depth.samples),
        "inference_queue_at_upload": {
            "p50": int(np.median(waiting_at_upload)),
            "max": max(waiting_at_upload),
        },
        "workers": counts,
    }
    record.write(
        "ingest_latency",
        size={
            "backlog_items": len(backlog),
            "paced_uploads": len(paced),
            "uploads_per_s": args.pace,
            "sweep_seconds": args.sweep_seconds,
            "bundle": bundle_what,
            "processes": "gunicorn 2x4; celery worker -Q inference,training -c 1; "
            "worker -Q default -c 2; beat (DatabaseScheduler); Redis broker; PostgreSQL",
            "latency": "prediction created_at minus the client's wall time at the 201",
            "checkout": checkout(),
            # Other processes on the machine: the figures are only as quiet as it was.
            "load_average_1min": {
                "start": round(load_at_start, 2),
                "end": round(os.getloadavg()[0], 2),
            },
        },
        figures=figures,
        baseline={
            "what": "predictions_create(item_ids=[id]) in process, same bundle, loaded; median",
            "seconds": round(base_s, 4),
            "p95_s": round(float(np.percentile(base["stored"], 95)), 4),
            "bare_predict_seconds": round(bare_s, 4),
            "items": len(base["stored"]),
        },
        ratio=base_s / lat["p95"],
        out=args.out,
    )


if __name__ == "__main__":
    main()
