"""A review queue of any size in a fresh PostgreSQL database, for bench/queue.py and pages.py.

`queue_fill` writes items, the champion's predictions, their review states and (optionally)
moderators' labels with `INSERT ... SELECT generate_series` inside the server: a million items
take about a minute, where the ORM row by row would take hours. The rows look like the
product's own: ratings skewed as in the corpus (PG 80 %, PG13 14 %, R 5 %, X 0.6 %, XXX 0.4 %),
three experts, a voter (their median) and an MLP, the suggestion the more restrictive of those
two, and the queue priority computed by `review.queue.down_class_risk`'s formula (so many
items tie, and ties go oldest first, as in production). A labelled item is done; its label
agrees with the suggestion 85 % of the time, otherwise it is a random level (Blocked included).

Run as a script it migrates the database DATABASE_URL names, fills it and adds a moderator
and an admin who can log in, `bench-moderator00` and `bench-admin00` (bench/pages.py runs it
in a subprocess for each size, with the production settings the server will use):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_pages \
        python bench/review_data.py --items 1000000 --labelled 100000 --password secret
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import record  # noqa: F401  (puts the project on sys.path)

LEVELS = (1, 2, 4, 8, 16)
# Cumulative shares of PG, PG13, R, X (XXX takes the rest): the corpus's skew.
SHARES = (0.80, 0.94, 0.99, 0.996)
EXPERTS = ("tag_rules", "lstm", "minilm")
CONFIDENCE = 0.7  # probability of a model's own rating; the rest is spread evenly


def django_setup(database_url: str) -> None:
    """Point the project's settings at `database_url` and migrate it (once per process)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def moderators_create(
    n: int, *, prefix: str = "moderator", group: str = "moderators", password: str | None = None
) -> list[Any]:
    """`n` new users in `group`. Without a password they cannot log in (and need no hashing)."""
    from django.contrib.auth.models import Group, User

    members = Group.objects.get_or_create(name=group)[0]
    people = []
    for i in range(n):
        user = User.objects.create_user(f"{prefix}{i:02d}", password=password)
        user.groups.add(members)
        people.append(user)
    return people


def _level_index(r: str) -> str:
    """SQL: the class index (0 PG ... 4 XXX) that the uniform draw `r` falls on."""
    arms = " ".join(f"WHEN {r} < {share} THEN {i}" for i, share in enumerate(SHARES))
    return f"(CASE {arms} ELSE {len(SHARES)} END)"


def _probs(index: int) -> str:
    rest = round((1 - CONFIDENCE) / (len(LEVELS) - 1), 6)
    return json.dumps([CONFIDENCE if i == index else rest for i in range(len(LEVELS))])


def queue_fill(
    *, items: int, labelled: int = 0, moderators: Sequence[Any] = (), seed: float = 0.42
):
    """Write `items` items, one champion prediction and one review state each, and a label on
    `labelled` of them (spread evenly, written by `moderators` in turn over the last 30 days).

    Returns the champion ModelVersion. The database must be freshly migrated and empty.
    """
    from django.db import connection

    from moderation.inference.models import ModelVersion

    if labelled and not moderators:
        raise ValueError("labels need moderators to write them")
    version = ModelVersion.objects.create(
        version="bench-champion", path="/bundles/bench", status=ModelVersion.Status.CHAMPION
    )
    levels = "ARRAY[" + ",".join(map(str, LEVELS)) + "]::smallint[]"
    probs = "ARRAY[" + ",".join(f"'{_probs(i)}'::jsonb" for i in range(len(LEVELS))) + "]"
    experts = ", ".join(
        f"'{name}', jsonb_build_object('rating', ({levels})[e{i} + 1], "
        f"'probs', ({probs})[e{i} + 1])"
        for i, name in enumerate(EXPERTS)
    )
    step = max(items // labelled, 1) if labelled else 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        # Oldest first: item n arrived 2 s after item n - 1, the last one just now.
        cursor.execute(
            """
            INSERT INTO media_mediaitem (uid, source, external_id, image, prompt, negative_prompt,
                                         tags, metadata, split, received_at, purge_reason)
            SELECT gen_random_uuid(), 'bench', n::text, '',
                   'a generated picture, prompt number ' || n, 'blurry, low quality',
                   '[["cat", 0.93], ["sofa", 0.71]]'::jsonb, '{}'::jsonb,
                   CASE WHEN n %% 5 = 0 THEN 'test' ELSE 'train' END,
                   now() - (%(items)s - n) * interval '2 seconds', ''
            FROM generate_series(1, %(items)s) AS n
            """,
            {"items": items},
        )
        # One draw per item: three experts' and the MLP's class indices, the label's.
        cursor.execute(
            f"""
            CREATE TEMPORARY TABLE bench_draw AS
            SELECT n, item_id, received_at, e0, e1, e2, m,
                   greatest(least(e0, e1), least(greatest(e0, e1), e2)) AS v,
                   greatest(e0, e1, e2) AS top, r_agree, {_level_index("r_label")} AS l
            FROM (
                SELECT row_number() OVER (ORDER BY id) AS n, id AS item_id, received_at,
                       {_level_index("r0")} AS e0, {_level_index("r1")} AS e1,
                       {_level_index("r2")} AS e2, {_level_index("r3")} AS m,
                       r_agree, r_label
                FROM (
                    SELECT id, received_at, random() AS r0, random() AS r1, random() AS r2,
                           random() AS r3, random() AS r_agree, random() AS r_label
                    FROM media_mediaitem
                ) AS draws
            ) AS indices
            """
        )
        cursor.execute(
            f"""
            INSERT INTO inference_prediction (item_id, model_version_id, experts, voter_rating,
                                              mlp_rating, mlp_probs, suggested_rating, flagged,
                                              features, mlp_experts, created_at)
            SELECT item_id, %(version)s, jsonb_build_object({experts}),
                   ({levels})[v + 1], ({levels})[m + 1], ({probs})[m + 1],
                   ({levels})[greatest(v, m) + 1], false, ''::bytea, %(read)s::jsonb,
                   received_at + interval '1 second'
            FROM bench_draw
            """,
            {"version": version.pk, "read": json.dumps(EXPERTS)},  # every expert speaks
        )
        # down_class_risk: the MLP's mass above the suggestion, plus a quarter per level an
        # expert rates above it.
        cursor.execute(
            """
            INSERT INTO review_reviewstate (item_id, state, priority, updated_at)
            SELECT item_id,
                   CASE WHEN %(step)s > 0 AND n %% %(step)s = 0 AND n / %(step)s <= %(labelled)s
                        THEN 'done' ELSE 'queued' END,
                   round(((4 - greatest(v, m)) * %(rest)s
                          + greatest(0, top - greatest(v, m)) / 4.0)::numeric, 6),
                   now()
            FROM bench_draw
            """,
            {"step": step, "labelled": labelled, "rest": (1 - CONFIDENCE) / (len(LEVELS) - 1)},
        )
        if labelled:
            cursor.execute(
                f"""
                INSERT INTO review_label (item_id, level, moderator_id, origin, created_at,
                                          prediction_id, agreed_with_voter, agreed_with_mlp)
                SELECT d.item_id, lv, (%(moderators)s::int[])[1 + d.n %% %(count)s], 'moderator',
                       now() - random() * interval '30 days', p.id,
                       lv = p.voter_rating, lv = p.mlp_rating
                FROM (
                    SELECT *, CASE WHEN r_agree < 0.85 THEN ({levels})[greatest(v, m) + 1]
                                   WHEN r_agree < 0.86 THEN 32
                                   ELSE ({levels})[l + 1] END AS lv
                    FROM bench_draw
                    WHERE n %% %(step)s = 0 AND n / %(step)s <= %(labelled)s
                ) AS d
                JOIN inference_prediction AS p
                  ON p.item_id = d.item_id AND p.model_version_id = %(version)s
                """,
                {
                    "moderators": [m.pk for m in moderators],
                    "count": len(moderators),
                    "step": step,
                    "labelled": labelled,
                    "version": version.pk,
                },
            )
        cursor.execute("DROP TABLE bench_draw")
        # Autovacuum may be off (it is on this machine): fresh statistics for the planner.
        cursor.execute("VACUUM ANALYZE")
    return version


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, required=True, help="items in the queue")
    p.add_argument("--labelled", type=int, default=0, help="items with a moderator's label")
    p.add_argument("--password", required=True, help="password of bench-moderator, bench-admin")
    p.add_argument("--moderators", type=int, default=20, help="moderators who wrote the labels")
    args = p.parse_args()
    django_setup(os.environ["DATABASE_URL"])
    start = time.monotonic()
    people = moderators_create(args.moderators)
    queue_fill(items=args.items, labelled=args.labelled, moderators=people)
    moderators_create(1, prefix="bench-moderator", password=args.password)
    moderators_create(1, prefix="bench-admin", group="admins", password=args.password)
    print(
        json.dumps(
            {
                "items": args.items,
                "labelled": args.labelled,
                "seconds": round(time.monotonic() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
