"""The demo's set-up steps, one function each; `manage.py demo` runs them in order.

Every step reuses what exists: a second run trains nothing and imports nothing.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from moderation.inference.bundles import champion
from moderation.inference.models import ModelVersion, Prediction
from moderation.inference.versions import model_version_register
from moderation.media.models import MediaItem
from moderation.media.services import item_create
from moderation.review.decorators import ADMINS, MODERATORS
from moderation.review.models import ReviewState
from moderation.training.gate import evaluation_create_from_manifest

DATA = Path(settings.BASE_DIR) / "data"
RATINGS = DATA / "ratings"
PHOTOS_DIR = DATA / "demo-images"
# (file, how many of its items); None imports the whole file. `val` and `test` keep their split.
CORPUS = (("train.jsonl", 1500), ("val.jsonl", None), ("test.jsonl", None))
UNLABELLED_SHARE = 0.25
# Real photographs (sources and licences in data/demo-images/README.md), imported with their
# image and no label so that the review queue shows the image path.
PHOTOS = (
    ("astronaut.jpg", "portrait photo of an astronaut in an orange spacesuit, flag behind her"),
    ("coffee.jpg", "a cup of coffee on a saucer on a wooden table, top view"),
    ("chelsea.jpg", "close-up photo of a tabby cat looking to the side"),
    ("rocket.jpg", "a rocket lifting off from the launch pad in clouds of smoke"),
    ("hubble_deep_field.jpg", "deep space telescope photo, thousands of distant galaxies"),
)
PHOTO_SOURCE = "demo-photos"

Say = Callable[[str], None]


@dataclass
class Credentials:
    username: str
    password: str
    role: str


def default_bundle_dir() -> Path:
    return Path(settings.BUNDLE_DIR) / "default"


def credentials_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-credentials.txt"


# ------------------------------------------------------------------------------ database


def migrate(say: Say) -> None:
    db = settings.DATABASES["default"]
    say(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}")
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)


# ------------------------------------------------------------------------------- people


def users_ensure(say: Say) -> list[Credentials]:
    """The demo moderator and admin; a password is made once and kept in var/ so that a
    second run can print it again."""
    saved = _read_credentials()
    people = []
    for username, role in (("moderator", MODERATORS), ("admin", ADMINS)):
        user, created = get_user_model().objects.get_or_create(username=username)
        password = saved.get(username)
        if created or password is None or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            say(f"{'created' if created else 'reset the password of'} user {username!r}")
        else:
            say(f"user {username!r} exists")
        say(f"  {username} password: {password}")
        if role == ADMINS:
            user.is_staff = user.is_superuser = True
        user.save()
        user.groups.add(Group.objects.get(name=role))
        people.append(Credentials(username, password, role))
    _write_credentials(people)
    return people


def _read_credentials() -> dict[str, str]:
    path = credentials_file()
    if not path.is_file():
        return {}
    pairs = (line.split(None, 2) for line in path.read_text().splitlines() if line.strip())
    return {p[0]: p[1] for p in pairs if len(p) >= 2}


def _write_credentials(people: list[Credentials]) -> None:
    path = credentials_file()
    path.write_text("".join(f"{p.username} {p.password} {p.role}\n" for p in people))
    path.chmod(0o600)


# ------------------------------------------------------------------------------- bundle


def bundle_ensure(bundle: Path, say: Say) -> None:
    """Train the default bundle as `make bundle` does (settings chosen by cross-validation,
    the fast preset), unless built."""
    if (bundle / "manifest.json").is_file():
        say(f"bundle {bundle} exists: not training")
        return
    say(
        f"training the default bundle into {bundle} (cross-validated selection, then the fast "
        "preset: about 7 minutes on 2 cores)"
    )
    command = [
        str(Path(sys.executable).with_name("rating-models")),
        "train",
        "--data",
        str(RATINGS / "train.jsonl"),
        "--val",
        str(RATINGS / "val.jsonl"),
        "--test",
        str(RATINGS / "test.jsonl"),
        "--out",
        str(bundle),
        "--preset",
        "fast",
        "--select",
    ]
    subprocess.run(command, check=True)


def champion_ensure(bundle: Path, say: Say) -> ModelVersion:
    current = champion()
    if current is not None:
        say(f"champion: model version {current.version}")
    else:
        current = model_version_register(path=bundle, promote=True)
        say(f"registered {bundle} as the champion: model version {current.version}")
    # The dashboards show the champion's figures on the test split from the start.
    evaluation_create_from_manifest(version=current)
    return current


# -------------------------------------------------------------------------------- items


def corpus_plan(limit: int | None) -> list[tuple[Path, int]]:
    """(file, number of records to import) for each corpus file; `limit` caps each file."""
    plan = []
    for name, cap in CORPUS:
        path = RATINGS / name
        with path.open(encoding="utf-8") as handle:
            records = sum(1 for line in handle if line.strip())
        count = records if cap is None else min(cap, records)
        plan.append((path, count if limit is None else min(limit, count)))
    return plan


def items_ensure(limit: int | None, say: Say) -> None:
    """Import the corpus items and the photographs through the ingestion service, unless the
    database holds them all. Importing is idempotent: a rerun after an interruption only adds
    what is missing."""
    plan = corpus_plan(limit)
    expected = sum(count for _, count in plan) + len(PHOTOS)
    stored = MediaItem.objects.count()
    if stored >= expected:
        say(f"{stored} items in the database: not importing")
        return
    say(f"importing {expected} items ({stored} already stored)")
    # The photographs first: predictions are queued in order, so they are rated first.
    photos_import(say)
    for path, count in plan:
        call_command(
            "import_items", str(path), limit=count, unlabelled_share=UNLABELLED_SHARE, verbosity=1
        )


def photos_import(say: Say) -> None:
    created = 0
    for name, prompt in PHOTOS:
        _, new = item_create(
            image=(PHOTOS_DIR / name).read_bytes(),
            prompt=prompt,
            source=PHOTO_SOURCE,
            external_id=name,
            label_origin="import",
        )
        created += new
    say(f"photographs: created {created}, existing {len(PHOTOS) - created}")


def queue_summary() -> str:
    items = MediaItem.objects.count()
    waiting = ReviewState.objects.filter(state=ReviewState.State.QUEUED).count()
    with_image = MediaItem.objects.exclude(image="").count()
    return f"{items} items, {with_image} with an image, {waiting} waiting for review"


def predicted_count(version: ModelVersion) -> int:
    return Prediction.objects.filter(model_version=version).count()
