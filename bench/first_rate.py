"""The first `/api/v1/rate/` call after a web process starts: its seconds, and the calls after it.

gunicorn (`moderation.wsgi`, production settings, one worker with the production 4 threads) on
a fresh PostgreSQL database whose champion is a bundle with real weights (the same as
bench/ingest_latency.py's: var/bundles/default when built). Each round starts gunicorn, waits
until it answers `GET /api/v1/items/?limit=1` (authenticated; nothing rated), then, on one new
keep-alive connection, POSTs a real corpus prompt to `/api/v1/rate/`: the first call, timed
alone, then STEADY more, each with another prompt (their p50); then it stops gunicorn.

Ours: WARM_CHAMPION=1, the default: moderation/wsgi.py loads the champion's bundle as the
process starts, before it answers. Baseline, same run: WARM_CHAMPION=0, the bundle loaded
inside the first request that rates, as before the change. Rounds alternate the two, baseline
first. Also reported: seconds from the process's start until it answers, where the warm-up's
load went. `ratio` is the baseline's median first call over ours; target: our first call
within TARGET_FIRST_S seconds. On a checkout without WARM_CHAMPION (8a18bad) both are cold.

    python bench/first_rate.py [--small | --full] [--rounds N] [--steady N] [--bundle DIR]
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import record
from ingest import corpus_items
from ingest_latency import bench_bundle, checkout, database_ready, environment, say

TARGET_FIRST_S = 1.0
STEADY = 20
CLIENT = "bench-rate"
MODES = {"baseline": "0", "ours": "1"}  # WARM_CHAMPION


def parse_args():
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="one round of each")
    parser.add_argument("--rounds", type=int, help="rounds of each (default 3; --full 5)")
    parser.add_argument("--steady", type=int, default=STEADY, help="calls after the first")
    parser.add_argument("--bundle", type=Path, help="the champion's bundle (as ingest_latency)")
    parser.add_argument("--postgres", default=record.POSTGRES, help="a PostgreSQL server")
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/11",
        help="a Redis database for the broker (the settings need one; nothing is queued)",
    )
    args = parser.parse_args()
    if args.small and args.full:
        parser.error("--small or --full, not both")
    if args.rounds is None:
        args.rounds = 1 if args.small else 5 if args.full else 3
    if args.rounds < 1 or args.steady < 1:
        parser.error("--rounds and --steady must be positive")
    return args


def rate_calls(port: int, token: str, prompts: list[dict[str, str]]) -> list[float]:
    """Seconds of each POST /api/v1/rate/, in order, on one new keep-alive connection."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    seconds = []
    for prompt in prompts:
        body = json.dumps(prompt)
        began = time.perf_counter()
        connection.request("POST", "/api/v1/rate/", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        seconds.append(time.perf_counter() - began)
        if response.status != 200 or "model_version" not in json.loads(answer):
            raise SystemExit(f"/api/v1/rate/: {response.status} {answer[:300]!r}")
    connection.close()
    return seconds


def main() -> None:
    args = parse_args()
    load_at_start = os.getloadavg()[0]
    import moderation

    say(f"moderation from {Path(moderation.__file__).parent}")
    bundle, bundle_what = bench_bundle(args.bundle)
    prompts = [
        {"prompt": item["prompt"], "negative_prompt": item["negative_prompt"]}
        for item in corpus_items(1 + args.steady)
    ]
    scratch = Path(tempfile.mkdtemp(prefix="bench-first-rate-"))
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with record.database("bench_first_rate", args.postgres) as url:
        env = environment(url, scratch, args.redis)
        say(f"fresh database, champion {bundle_what}")
        token = database_ready(env, bundle, CLIENT)
        for round_ in range(args.rounds):
            for mode, warm in MODES.items():
                log = scratch / f"gunicorn-{mode}-{round_}.log"
                began = time.perf_counter()
                serving = record.gunicorn(
                    {**env, "WARM_CHAMPION": warm},
                    workers=1,
                    threads=4,
                    log=log,
                    ready_path="/api/v1/items/?limit=1",
                    ready_headers={"Authorization": f"Bearer {token}"},
                )
                with serving as (port, _):
                    answers_s = time.perf_counter() - began
                    calls = rate_calls(port, token, prompts)
                run = {
                    "answers_after_s": answers_s,
                    "first_s": calls[0],
                    "steady_p50_s": float(np.median(calls[1:])),
                }
                runs[mode].append(run)
                say(
                    f"  round {round_ + 1} {mode} (WARM_CHAMPION={warm}): answers after "
                    f"{answers_s:.1f} s; first rate {calls[0]:.3f} s, then p50 "
                    f"{run['steady_p50_s'] * 1000:.1f} ms"
                )

    def summary(mode: str) -> dict[str, Any]:
        return {
            key: round(float(np.median([r[key] for r in runs[mode]])), 4)
            for key in ("first_s", "steady_p50_s", "answers_after_s")
        } | {"rounds": [{k: round(v, 4) for k, v in r.items()} for r in runs[mode]]}

    ours, base = summary("ours"), summary("baseline")
    say(
        f"first /api/v1/rate/ call: ours {ours['first_s']:.3f} s, baseline (WARM_CHAMPION=0) "
        f"{base['first_s']:.3f} s; steady p50 {ours['steady_p50_s'] * 1000:.1f} / "
        f"{base['steady_p50_s'] * 1000:.1f} ms; answers after {ours['answers_after_s']:.1f} / "
        f"{base['answers_after_s']:.1f} s"
    )
    record.write(
        "first_rate",
        size={
            "rounds_each": args.rounds,
            "steady_calls": args.steady,
            "gunicorn": "1 worker x 4 threads (gthread), production settings, PostgreSQL",
            "bundle": bundle_what,
            "checkout": checkout(),
            # Other processes on the machine: the figures are only as quiet as it was.
            "load_average_1min": {
                "start": round(load_at_start, 2),
                "end": round(os.getloadavg()[0], 2),
            },
        },
        figures={
            **ours,
            "first_over_steady_p50": round(ours["first_s"] / ours["steady_p50_s"], 1),
            "target_first_s": TARGET_FIRST_S,
            "meets_target": ours["first_s"] <= TARGET_FIRST_S,
        },
        baseline={
            "what": "the same with WARM_CHAMPION=0: the bundle loaded within the first call",
            **base,
            "first_over_steady_p50": round(base["first_s"] / base["steady_p50_s"], 1),
        },
        ratio=base["first_s"] / ours["first_s"],
        out=args.out,
    )


if __name__ == "__main__":
    main()
