"""The demo's label-quality seed, so the health page's label quality section is not empty on a
first visit: gold items, and a few blind double reviews answered by two seeded reviewers.

- Gold: up to `GOLD_PER_RATING` corpus-labelled items of each rating, marked by the admin.
- Double reviews: items the hash picks for blind double review (5% at the default
  `DOUBLE_REVIEW_SHARE`) that arrived without a label. The seeded reviewers answer from the
  corpus's own rating, which the import withheld; the second one reads every fourth item one
  level apart, so the agreement figures and an adjudication have something to show. They
  decide through the same services as the review page (claims, the big-downgrade rule,
  tasks), so a mild reading of an explicit item waits for a confirmation as a person's would.

Also reported: how many of the corpus's labels the big-downgrade rule would hold for a second
moderator (two or more levels below the champion's suggestion).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import F
from django.utils import timezone

from moderation.inference.bundles import champion
from moderation.media.models import MediaItem
from moderation.review.decorators import MODERATORS
from moderation.review.gold import gold_mark
from moderation.review.labels import current_labels
from moderation.review.models import GoldItem, ReviewState, ReviewTask
from moderation.review.task_claims import task_get_held
from moderation.review.workflow import decision_submit, double_review_selected
from rating_models.ratings import RATINGS, Rating

Say = Callable[[str], None]
GOLD_PER_RATING = 12
DOUBLE_REVIEWS = 16
REVIEWERS = ("reviewer-a", "reviewer-b")


def label_quality_seed(*, corpus_dir: Path, admin_username: str, say: Say) -> None:
    _gold_seed(admin_username, say)
    _double_reviews_seed(corpus_dir, say)
    say(big_downgrade_report())


def _gold_seed(admin_username: str, say: Say) -> None:
    if GoldItem.objects.exists():
        say(f"{GoldItem.objects.count()} gold items exist")
        return
    admin = get_user_model().objects.get(username=admin_username)
    items = []
    for rating in RATINGS:
        labels = current_labels().filter(level=rating.level, origin="corpus").order_by("item_id")
        items += [label.item for label in labels.select_related("item")[:GOLD_PER_RATING]]
    say(f"marked {gold_mark(items=items, admin=admin)} corpus-labelled items as gold")


def _reviewer(username: str):
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()  # a seeded reviewer, never signed in
        user.save()
    user.groups.add(Group.objects.get(name=MODERATORS))
    return user


def _withheld_ratings(corpus_dir: Path) -> dict[str, str]:
    ratings = {}
    for path in sorted(corpus_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    ratings[str(record.get("id"))] = record.get("rating")
    return ratings


def _double_reviews_seed(corpus_dir: Path, say: Say) -> None:
    if ReviewTask.objects.filter(kind=ReviewTask.Kind.DOUBLE).exists():
        say("double reviews exist")
        return
    first, second = (_reviewer(name) for name in REVIEWERS)
    ratings = _withheld_ratings(corpus_dir)
    queued = MediaItem.objects.filter(
        review__state=ReviewState.State.QUEUED, labels__isnull=True
    ).order_by("pk")
    seeded = 0
    for item in queued.iterator():
        if seeded >= DOUBLE_REVIEWS:
            break
        rating = ratings.get(item.external_id)
        if not rating or not double_review_selected(item):
            continue
        level = Rating.parse(rating).level
        _claim(item, first)
        decision_submit(item=item, level=level, moderator=first, saw_label=None)
        task = ReviewTask.objects.filter(item=item).exclude(state=ReviewTask.State.DONE).first()
        if task is not None and task.kind != ReviewTask.Kind.ADJUDICATION:
            ReviewTask.objects.filter(pk=task.pk).update(
                state=ReviewTask.State.CLAIMED,
                claimed_by=second,
                claimed_until=timezone.now() + timedelta(minutes=5),
            )
            index = Rating.parse(level).index
            apart = RATINGS[index - 1 if index else 1].level  # one level milder (PG: harsher)
            answer = apart if seeded % 4 == 3 else level
            held = task_get_held(moderator=second, item=item)
            decision_submit(item=held.item, level=answer, moderator=second, saw_label=None)
        seeded += 1
    say(f"seeded {seeded} blind double reviews by {', '.join(REVIEWERS)}")


def _claim(item: MediaItem, moderator) -> None:
    ReviewState.objects.filter(item=item).update(
        state=ReviewState.State.CLAIMED,
        claimed_by=moderator,
        claimed_until=timezone.now() + timedelta(minutes=5),
    )


def big_downgrade_report() -> str:
    """How many current corpus labels are two or more levels below the champion's suggestion:
    the decisions the big-downgrade rule would hold for a second moderator."""
    version = champion()
    if version is None:
        return "big-downgrade rule: no champion yet"
    rows = current_labels().filter(
        item__predictions__model_version=version, level__lte=16, origin="corpus"
    )
    pairs = list(
        rows.annotate(suggested=F("item__predictions__suggested_rating")).values_list(
            "level", "suggested"
        )
    )
    caught = sum(
        Rating.parse(suggested).index - Rating.parse(level).index >= 2 for level, suggested in pairs
    )
    share = caught / len(pairs) if pairs else 0.0
    return (
        f"big-downgrade rule: {caught} of {len(pairs)} predicted corpus labels ({share:.1%}) are "
        "two or more levels below the champion's suggestion: given by a moderator, each would "
        "wait for a second moderator's confirmation"
    )
