"""Queue claims: 20 moderators claiming and labelling at once on PostgreSQL.

A fresh database (`bench_queue`, dropped at the end) is migrated and filled with queued items,
each with the champion's prediction and its queue priority (bench/review_data.py): 100,000 by
default, 1,000,000 with --full. Two ways to claim are compared on the same queue:

- ours: `review.claims.item_claim_next` (SELECT ... ORDER BY priority LIMIT 1 FOR UPDATE
  SKIP LOCKED, then the claim), `decision_record` for the decision;
- baseline: the same claim with a plain FOR UPDATE, no SKIP LOCKED: every moderator queues
  behind the one holding the riskiest row, and claims go one at a time.

Each moderator is a process (forked after Django is set up; each opens its own connection),
so the GIL serialises nothing: what waits, waits on PostgreSQL or on the CPU. In a loop for
--seconds it claims the next item (the latency measured is the whole `item_claim_next` call,
what the review page waits for) and decides it with a random level. Both claims run twice:

- flat out: the next claim as soon as the decision is written. The database's capacity
  (decisions/s) and the locks at their worst; on 2 cores twenty busy processes also queue
  for the CPU, which every latency then includes (`ratio` is this phase's p95, the
  baseline's over ours);
- paced: --pace-ms (500 ms on average) on each item before deciding, a quick moderator with
  hotkeys. Moderators start at random points of their first item and take 0.5-1.5x the pace
  on each, as people do, rather than claiming in step twenty at a time.

The queue is reset between phases (labels deleted, states back to queued, VACUUM ANALYZE,
CHECKPOINT), so that no phase pays for the writes of the one before it.

Double claims: every item is claimed and decided once at most (nothing is skipped or expires
here), so an item claimed twice in a phase, two overlapping holds of one item (times taken
inside the real hold, as in tests/moderation/review/race.py), an item with two labels or a
decision refused because another moderator held the item are all counted.

`EXPLAIN (ANALYZE, BUFFERS)` of the claim query, with and without the partial index
`review_queue_open` and again after a phase, goes to queue_explain.txt beside the JSON.

    python bench/queue.py [--full] [--items N] [--moderators 20] [--seconds S] [--pace-ms MS]
"""

from __future__ import annotations

import sys

if __name__ == "queue":
    # `python bench/<name>.py` puts bench/ first on sys.path, so `import queue` in any bench
    # script (psycopg, multiprocessing and concurrent.futures all do it) finds this file instead
    # of the standard library's. Hand over the real module: an import statement returns what
    # sys.modules holds once the file has run (below, only definitions run in this case).
    import importlib.util
    import sysconfig
    from pathlib import Path

    _spec = importlib.util.spec_from_file_location(
        "queue", Path(sysconfig.get_path("stdlib")) / "queue.py"
    )
    _queue = importlib.util.module_from_spec(_spec)
    sys.modules["queue"] = _queue
    _spec.loader.exec_module(_queue)
else:
    import multiprocessing as mp
    import random
    import time
    import traceback
    from collections import defaultdict
    from datetime import timedelta
    from pathlib import Path
    from typing import Any

    import record
    import review_data

DATABASE = "bench_queue"
TARGET_P95_MS = 20.0
LEVELS = (1, 2, 4, 8, 16, 32)


def parse_args() -> Any:
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, help="queued items (100,000; --full 1,000,000)")
    parser.add_argument("--moderators", type=int, default=20, help="concurrent moderators")
    parser.add_argument(
        "--database",
        default=DATABASE,
        help=f"the scratch database, created and dropped on 127.0.0.1 ({DATABASE})",
    )
    parser.add_argument("--seconds", type=float, help="length of each phase (15; --full 30)")
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=500.0,
        help="a moderator's time on an item in the paced phases (500)",
    )
    args = parser.parse_args()
    if args.items is None:
        args.items = 1_000_000 if args.full else 100_000
    if args.seconds is None:
        args.seconds = 30.0 if args.full else 15.0
    if args.items < 1 or args.moderators < 1 or args.seconds <= 0 or args.pace_ms < 0:
        parser.error("--items, --moderators, --seconds must be positive, --pace-ms not negative")
    return args


# -- the two claims ------------------------------------------------------------------------------


def item_claim_next_naive(*, moderator: Any) -> Any:
    """`item_claim_next` with a plain FOR UPDATE: the same query and index, but a moderator
    who finds the riskiest row locked waits for its holder instead of taking the next one."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from moderation.review.models import ReviewState
    from moderation.review.selectors import review_state_list_open

    now = timezone.now()
    held = ReviewState.objects.filter(
        claimed_by=moderator, state=ReviewState.State.CLAIMED, claimed_until__gte=now
    ).first()
    if held is not None:
        return held.item
    with transaction.atomic():
        state = review_state_list_open(moderator=moderator).select_for_update().first()
        if state is None:
            return None
        state.state, state.claimed_by = ReviewState.State.CLAIMED, moderator
        state.claimed_until = now + timedelta(minutes=settings.CLAIM_MINUTES)
        state.save(update_fields=["state", "claimed_by", "claimed_until", "updated_at"])
        return state.item


def _claim(naive: bool) -> Any:
    if naive:
        return item_claim_next_naive
    from moderation.review.claims import item_claim_next

    return item_claim_next


# -- one moderator -------------------------------------------------------------------------------


def moderate(
    moderator_id: int, naive: bool, start_at: float, seconds: float, think: float, out: Any
) -> None:
    """One moderator's process: its loop's results, or the error that stopped it."""
    try:
        out.put(moderate_loop(moderator_id, naive, start_at, seconds, think))
    except Exception:
        out.put({"error": traceback.format_exc()})


def moderate_loop(
    moderator_id: int, naive: bool, start_at: float, seconds: float, think: float
) -> dict[str, Any]:
    """One moderator's loop: claim, decide, until the phase ends."""
    from django.contrib.auth.models import User

    from moderation.review.decisions import DecisionError, decision_record

    claim = _claim(naive)
    rng = random.Random(moderator_id)
    moderator = User.objects.get(pk=moderator_id)  # opens this process's connection
    # item, claim latency, hold start, hold end, decision recorded
    claims: list[tuple[int, float, float, float, float]] = []
    labels: list[float] = []
    refused, emptied = 0, False
    stop = start_at + seconds
    # People do not keep step: paced, each moderator starts at a random point of the first item
    # and spends between half and one and a half times the pace on each one (the same draws for
    # both claims, the moderator's seed).
    time.sleep(max(0.0, start_at + rng.uniform(0.0, think) - time.monotonic()))
    while time.monotonic() < stop:
        t0 = time.monotonic()
        item = claim(moderator=moderator)
        held_from = time.monotonic()
        if item is None:
            emptied = True
            break
        if think:
            time.sleep(rng.uniform(0.5, 1.5) * think)
        held_until = time.monotonic()
        try:
            # Nothing was labelled before the bench: the moderator saw no label.
            decision_record(
                item=item,
                level=rng.choice(LEVELS),
                moderator=moderator,
                path="review",
                saw_label=None,
                reason="decided in the benchmark",
            )
        except DecisionError:
            refused += 1
        done = time.monotonic()
        labels.append(done - held_until)
        claims.append((item.pk, held_from - t0, held_from, held_until, done))
    return {"claims": claims, "labels": labels, "refused": refused, "emptied": emptied}


def phase(*, naive: bool, moderators: list[int], seconds: float, think: float) -> dict[str, Any]:
    """Run every moderator at once for `seconds`; the claims' latency, the decisions, and
    every sign of an item held by two moderators."""
    from django.db import connections
    from django.db.models import Count

    from moderation.review.models import Label

    connections.close_all()  # a forked child must not share the parent's socket
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.monotonic() + 3.0  # every process connected and waiting
    processes = [
        ctx.Process(target=moderate, args=(m, naive, start_at, seconds, think, out))
        for m in moderators
    ]
    for p in processes:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in processes]
    for p in processes:
        p.join()
    for result in results:
        if "error" in result:
            raise SystemExit(f"a moderator stopped:\n{result['error']}")
    claims = [c for r in results for c in r["claims"]]
    # The phase ends with the last decision (claims begun before the stop still count).
    elapsed = max([seconds] + [c[4] - start_at for c in claims])
    holds = defaultdict(list)
    for item, _, start, end, _ in claims:
        holds[item].append((start, end))
    overlapping = 0
    for intervals in holds.values():
        held_until = float("-inf")
        for start, end in sorted(intervals):
            overlapping += start < held_until
            held_until = max(held_until, end)
    twice = (
        Label.objects.values("item_id").order_by().annotate(n=Count("id")).filter(n__gt=1).count()
    )
    latencies = [c[1] * 1000 for c in claims]
    return {
        "claim_ms": {k: round(v, 3) for k, v in record.percentiles(latencies).items()},
        "claim_mean_ms": round(sum(latencies) / len(latencies), 3),
        "label_ms": {
            k: round(v * 1000, 3)
            for k, v in record.percentiles([x for r in results for x in r["labels"]]).items()
        },
        "decisions": len(claims),
        "seconds": round(elapsed, 2),
        "decisions_per_s": round(len(claims) / elapsed, 1),
        "double_claims": sum(len(v) - 1 for v in holds.values()),
        "overlapping_holds": overlapping,
        "items_labelled_twice": twice,
        "refused_decisions": sum(r["refused"] for r in results),
        "queue_emptied": any(r["emptied"] for r in results),
    }


def queue_reset() -> None:
    """Back to the filled queue: no labels, no skips, every item queued, and nothing of the
    last phase left for the next one to pay (dead rows vacuumed, dirty pages written)."""
    from django.db import connection

    with connection.cursor() as cursor:
        # Decisions, labels and audit rows are append-only (a row trigger refuses DELETE); the
        # bench's own scratch database empties them with TRUNCATE, which fires no row trigger.
        cursor.execute(
            "TRUNCATE model_audit_auditsample, review_reviewtask, review_label, "
            "review_decision, audit_auditevent"
        )
        cursor.execute("DELETE FROM review_skip")
        cursor.execute(
            "UPDATE review_reviewstate SET state = 'queued', claimed_by_id = NULL, "
            "claimed_until = NULL WHERE state <> 'queued'"
        )
        cursor.execute("VACUUM ANALYZE review_reviewstate, review_label, review_decision")
        queue_settle(cursor)


def queue_settle(cursor: Any) -> None:
    """Write every dirty page now (a checkpoint), so that a phase does not pay, in its commits'
    waits, for the writes of the fill or of the phase before it."""
    cursor.execute("CHECKPOINT")


# -- EXPLAIN -------------------------------------------------------------------------------------


def claim_plan(moderator_id: int, *, without_index: bool = False) -> tuple[str, str]:
    """The claim query item_claim_next runs for this moderator, and its EXPLAIN (ANALYZE,
    BUFFERS); rolled back, so nothing is claimed (and the indexes are as they were)."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from moderation.review.selectors import review_state_list_open

    moderator = User.objects.get(pk=moderator_id)
    with transaction.atomic():
        query = review_state_list_open(moderator=moderator).select_for_update(skip_locked=True)
        sql, params = query[:1].query.sql_with_params()
        with connection.cursor() as cursor:
            if without_index:  # as before migration 0003: the index it replaced, not this one
                cursor.execute("DROP INDEX review_queue_open")
                cursor.execute(
                    "CREATE INDEX review_queue_order ON review_reviewstate "
                    "(state, priority DESC, item_id)"
                )
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            shown = cursor.mogrify(sql, params)
        transaction.set_rollback(True)
    return shown, plan


def plan_summary(plan: str) -> dict[str, Any]:
    lines = [line.strip() for line in plan.splitlines()]
    scan = next(
        (line.split("  (")[0].lstrip("-> ") for line in lines if "Scan" in line and "->" in line),
        "",
    )
    execution = next(line for line in lines if line.startswith("Execution Time"))
    return {
        "scan": scan,
        "sorts_whole_queue": any(line.startswith("->  Sort") for line in lines),
        "execution_ms": float(execution.split(":")[1].split()[0]),
    }


def sound(result: dict[str, Any]) -> bool:
    """No item held by two moderators at once, claimed twice, labelled twice or refused."""
    signs = ("double_claims", "overlapping_holds", "items_labelled_twice", "refused_decisions")
    return all(result[sign] == 0 for sign in signs)


def main() -> None:
    args = parse_args()
    paces = {"flat_out": 0.0, "paced": args.pace_ms / 1000}
    size = {
        "items": args.items,
        "moderators": args.moderators,
        "seconds_per_phase": args.seconds,
        "paced_ms_per_item": args.pace_ms,
        "concurrency": "one process per moderator, each with its own PostgreSQL connection",
    }
    print(
        f"queue: {args.items:,} queued items, {args.moderators} moderators, "
        f"4 phases of {args.seconds:g} s"
    )
    runs: dict[str, dict[str, Any]] = {"ours": {}, "naive": {}}
    with record.database(args.database) as url:
        review_data.django_setup(url)
        start = time.monotonic()
        people = [u.pk for u in review_data.moderators_create(args.moderators)]
        review_data.queue_fill(items=args.items)
        from django.db import connection

        with connection.cursor() as cursor:
            queue_settle(cursor)
        print(f"filled in {time.monotonic() - start:.1f} s")

        sql, plan = claim_plan(people[0])
        _, plan_without = claim_plan(people[0], without_index=True)
        for pace, think in paces.items():
            for claim in ("ours", "naive"):
                result = phase(
                    naive=claim == "naive", moderators=people, seconds=args.seconds, think=think
                )
                print(f"{pace}, {claim}:", result, flush=True)
                runs[claim][pace] = result
                if (pace, claim) == ("flat_out", "ours"):
                    _, plan_after = claim_plan(people[0])
                queue_reset()

    ours, naive = runs["ours"], runs["naive"]
    explain = args.out / "queue_explain.txt"
    explain.parent.mkdir(parents=True, exist_ok=True)
    explain.write_text(
        f"The claim query of item_claim_next ({args.items:,} queued items), as PostgreSQL "
        f"runs it:\n\n{sql}\n\n"
        "== With the partial index review_queue_open (review migration 0003), fresh queue ==\n"
        f"{plan}\n\n"
        f"== After the flat-out SKIP LOCKED phase ({ours['flat_out']['decisions']:,} items "
        "decided, their dead index entries still there) ==\n"
        f"{plan_after}\n\n"
        "== Before migration 0003: review_queue_open dropped and the index it replaced, "
        "review_queue_order (state, priority DESC, item_id), built again, inside a "
        "rolled-back transaction ==\n"
        f"{plan_without}\n"
    )
    figures = {
        **ours,
        "decisions_per_s_ratio": round(
            ours["flat_out"]["decisions_per_s"] / naive["flat_out"]["decisions_per_s"], 2
        ),
        "paced_ratio": round(
            naive["paced"]["claim_ms"]["p95"] / ours["paced"]["claim_ms"]["p95"], 3
        ),
        "plan": plan_summary(plan),
        "plan_after_run": plan_summary(plan_after),
        "plan_without_index": plan_summary(plan_without),
        "explain": record.relative(explain),
        "target": {"claim_p95_ms": TARGET_P95_MS, "double_claims": 0, "at_items": 1_000_000},
        "meets_target": {
            pace: ours[pace]["claim_ms"]["p95"] < TARGET_P95_MS and sound(ours[pace])
            for pace in paces
        },
    }
    baseline = {**naive, "method": "the same claim with SELECT ... FOR UPDATE, no SKIP LOCKED"}
    record.write(
        "queue",
        size=size,
        figures=figures,
        baseline=baseline,
        ratio=naive["flat_out"]["claim_ms"]["p95"] / ours["flat_out"]["claim_ms"]["p95"],
        out=args.out,
    )


if __name__ == "__main__":
    main()
