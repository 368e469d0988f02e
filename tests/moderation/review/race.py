"""Many moderators racing over one review queue, for `test_concurrency.py`.

`race(...)` runs in the caller's Django setup (the PostgreSQL test database there). Run as a
module it migrates whatever database its settings name and prints the summary as JSON: the
SQLite variant runs it in a subprocess on the embedded default's settings.

Each moderator is a thread with its own database connection. In a loop it claims the next item
and then, at random (seeded), skips it, lets the claim expire (its `claimed_until` moved into the
past) or decides it. Every claim is recorded as (item, moderator, start, end), where start is
taken after the claim returned and end before the hold was given up: the recorded interval lies
inside the real hold, so two recorded intervals of one item overlap only if two moderators
really held it at once.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

SKIP, EXPIRE, DECIDE = "skip", "expire", "decide"
LEVELS = (1, 2, 4, 8, 16, 32)


def queue_create(*, items: int, moderators: int, seed: int) -> list[Any]:
    """`items` queued train items with random priorities, and the moderators (new users)."""
    from django.contrib.auth.models import Group, User

    from moderation.media.models import MediaItem
    from moderation.review.models import ReviewState

    rng = random.Random(seed)
    group = Group.objects.get_or_create(name="moderators")[0]
    people = []
    for n in range(moderators):
        user = User.objects.create_user(f"racer{n:02d}")
        user.groups.add(group)
        people.append(user)
    created = MediaItem.objects.bulk_create(
        [
            MediaItem(source="race", external_id=str(n), prompt=f"prompt {n}", split="train")
            for n in range(items)
        ],
        batch_size=500,
    )
    ReviewState.objects.bulk_create(
        [ReviewState(item=item, priority=rng.random()) for item in created], batch_size=500
    )
    return people


def _moderate(moderator: Any, seed: int, n_moderators: int, out: dict[str, Any]) -> None:
    """One moderator's loop, until nothing is left that they could claim."""
    from django.db import connection
    from django.utils import timezone

    from moderation.review.claims import item_claim_next, item_skip
    from moderation.review.decisions import DecisionError, decision_record
    from moderation.review.labels import label_get_current
    from moderation.review.models import ReviewState, Skip

    rng = random.Random(seed)
    claims: list[tuple[int, int, float, float, str]] = []
    decisions: list[tuple[int, int]] = []
    refused: list[str] = []
    errors: list[str] = []
    idle_since = None
    try:
        while True:
            item = item_claim_next(moderator=moderator)
            start = time.monotonic()
            # What the review page would show with the item: its current label, if any.
            saw = None if item is None else label_get_current(item=item)
            if item is None:
                # Claims others hold may still come back (skipped or expired): stop only when
                # every item this moderator has not skipped is done (done is final here).
                mine = Skip.objects.filter(moderator=moderator).values("item_id")
                left = (
                    ReviewState.objects.exclude(state=ReviewState.State.DONE)
                    .exclude(item_id__in=mine)
                    .exists()
                )
                if not left:
                    break
                idle_since = idle_since or start
                if start - idle_since > 30:
                    errors.append("waited 30 s for items held by others")
                    break
                time.sleep(0.005)
                continue
            idle_since = None
            roll = rng.random()
            # Everyone skipping an item would leave it undecided: the last one must decide.
            if roll < 0.15 and Skip.objects.filter(item=item).count() < n_moderators - 1:
                action = SKIP
            elif roll < 0.22:
                action = EXPIRE
            else:
                action = DECIDE
            end = time.monotonic()
            claims.append((item.pk, moderator.pk, start, end, action))
            if action == SKIP:
                item_skip(item=item, moderator=moderator)
            elif action == EXPIRE:
                ReviewState.objects.filter(item=item, claimed_by=moderator).update(
                    claimed_until=timezone.now() - timedelta(seconds=1)
                )
            else:
                try:
                    decision_record(
                        item=item,
                        level=rng.choice(LEVELS),
                        moderator=moderator,
                        path="review",
                        saw_label=saw,
                        reason="decided in the race",
                    )
                except DecisionError as error:
                    refused.append(f"item {item.pk}: {error}")
                else:
                    decisions.append((item.pk, moderator.pk))
    except Exception as error:  # reported to the test, which fails on it
        errors.append(f"{type(error).__name__}: {error}")
    finally:
        connection.close()
    out.update(claims=claims, decisions=decisions, refused=refused, errors=errors)


def race(*, items: int, moderators: int, seed: int = 7) -> dict[str, Any]:
    """Run the race and check it; the summary says what was found (all zeros when sound)."""
    from django.db.models import Count

    from moderation.review.models import Label, ReviewState

    people = queue_create(items=items, moderators=moderators, seed=seed)
    results: list[dict[str, Any]] = [{} for _ in people]
    threads = [
        threading.Thread(target=_moderate, args=(person, seed * 1000 + n, moderators, results[n]))
        for n, person in enumerate(people)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began

    claims = [c for r in results for c in r.get("claims", [])]
    decisions = [d for r in results for d in r.get("decisions", [])]
    by_item: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
    for item_id, moderator_id, start, end, _ in claims:
        by_item[item_id].append((start, end, moderator_id))
    overlaps = 0
    for holds in by_item.values():
        holds.sort()
        for (_, end, _), (start, _, _) in itertools.pairwise(holds):
            if start < end:
                overlaps += 1
    per_item = Label.objects.values("item_id").annotate(n=Count("pk"))
    return {
        "items": items,
        "moderators": moderators,
        "seconds": round(seconds, 2),
        "claims": len(claims),
        "skips": sum(1 for c in claims if c[4] == SKIP),
        "expiries": sum(1 for c in claims if c[4] == EXPIRE),
        "decisions": len(decisions),
        "decided_items": len({item_id for item_id, _ in decisions}),
        "labels": Label.objects.count(),
        "labelled_items": per_item.count(),
        "items_with_several_labels": per_item.filter(n__gt=1).count(),
        "not_done": ReviewState.objects.exclude(state=ReviewState.State.DONE).count(),
        "overlapping_claims": overlaps,
        "refused": [x for r in results for x in r.get("refused", [])],
        "errors": [x for r in results for x in r.get("errors", [])],
        "finished_threads": sum(1 for r in results if r),
    }


def main() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    items, moderators = int(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(race(items=items, moderators=moderators)))


if __name__ == "__main__":
    main()
