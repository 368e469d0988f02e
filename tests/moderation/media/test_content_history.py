"""An item's content is history once a model has rated it: the admin and the database refuse to
change it in place, a correction is a new item that supersedes it, and a purge leaves a
tombstone that keeps the item's decisions, labels, predictions and audit rows."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.auth.models import Permission, User
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from moderation.audit.models import AuditEvent
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.corrections import item_correct, item_purge
from moderation.media.models import MediaItem
from moderation.media.serializers import item_data
from moderation.media.validation import ValidationProblem
from moderation.review.models import Decision, Label, ReviewState
from tests.moderation.factories import make_item, png_bytes

ROOT = Path(__file__).resolve().parents[3]


def predict(item: MediaItem) -> Prediction:
    version, _ = ModelVersion.objects.get_or_create(
        version="v1", defaults={"path": "/bundles/v1", "status": ModelVersion.Status.CHAMPION}
    )
    return Prediction.objects.create(
        item=item,
        model_version=version,
        experts={"tag_rules": {"rating": 2, "probs": [0.1, 0.6, 0.1, 0.1, 0.1]}},
        voter_rating=2,
        mlp_rating=2,
        mlp_probs=[0.1, 0.6, 0.1, 0.1, 0.1],
        suggested_rating=2,
        features=b"\x00<\x00<",
        mlp_experts=["tag_rules"],
    )


def change_form(item: MediaItem, **changes: str) -> dict[str, str]:
    """Everything the admin's change form sends for the item, with `changes` applied."""
    form = {
        "prompt": item.prompt,
        "negative_prompt": item.negative_prompt,
        "tags": '[["cat", 0.9]]',
        "metadata": "{}",
        "source": item.source,
        "external_id": item.external_id,
    }
    return {**form, **changes}


def staff(user: User) -> User:
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_mediaitem", "change_mediaitem"])
    )
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def carol_staff(carol) -> Client:
    return client_for(staff(carol))


def raw_update(sql: str, *params: object) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


# ------------------------------------------------------------------- content is fixed


def test_the_admin_does_not_change_the_prompt_of_a_predicted_item(admin_client) -> None:
    item = make_item(prompt="a cat on a sofa", tags=[["cat", 0.9]])
    predict(item)
    url = reverse("admin:media_mediaitem_change", args=[item.pk])
    response = admin_client.post(url, change_form(item, prompt="a dog on a sofa"))
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.prompt == "a cat on a sofa"


def test_a_prediction_landing_during_an_admin_save_is_a_message_not_a_500(admin_client) -> None:
    """The form found the item unrated (its prompt editable); a model rated it before the save:
    the trigger refuses the save, the admin's transaction rolls back, the page says why."""
    item = make_item(prompt="a cat on a sofa", tags=[["cat", 0.9]])
    predict(item)
    url = reverse("admin:media_mediaitem_change", args=[item.pk])
    with mock.patch("moderation.media.admin._content_locked", return_value=False):
        response = admin_client.post(url, change_form(item, prompt="a dog on a sofa"), follow=True)
    assert response.status_code == 200
    assert "a model has rated this item since you opened it" in response.content.decode()
    item.refresh_from_db()
    assert item.prompt == "a cat on a sofa"


def test_the_database_refuses_to_change_the_content_of_a_predicted_item(db) -> None:
    item = make_item(prompt="a cat on a sofa")
    predict(item)
    with pytest.raises(IntegrityError), transaction.atomic():
        MediaItem.objects.filter(pk=item.pk).update(prompt="x")
    with pytest.raises(IntegrityError):
        raw_update("UPDATE media_mediaitem SET negative_prompt = %s WHERE id = %s", "x", item.pk)
    item.refresh_from_db()
    assert item.prompt == "a cat on a sofa"


def test_a_predicted_item_can_still_change_what_is_not_content(db) -> None:
    item = make_item(prompt="a cat on a sofa")
    predict(item)
    item.width = 7
    item.save()  # every column written, the content unchanged: allowed
    assert MediaItem.objects.get(pk=item.pk).width == 7


def test_the_prompt_of_an_unpredicted_item_can_be_fixed_in_the_admin(admin_client) -> None:
    item = make_item(prompt="a cat on a sofs", tags=[["cat", 0.9]])
    url = reverse("admin:media_mediaitem_change", args=[item.pk])
    response = admin_client.post(url, change_form(item, prompt="a cat on a sofa"))
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.prompt == "a cat on a sofa"


# ------------------------------------------------------------------------------- purge


def test_a_purge_leaves_a_tombstone_with_its_history(
    carol, django_capture_on_commit_callbacks
) -> None:
    item = make_item(image=png_bytes(), prompt="illegal", tags=[["x", 0.9]], label=4)
    prediction = predict(item)
    image_path = Path(item.image.path)
    assert image_path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        item_purge(item=item, admin=carol, reason="reported to the authorities")

    item.refresh_from_db()
    assert item.is_purged
    assert (item.prompt, item.negative_prompt, item.tags, item.metadata) == ("", "", None, {})
    assert (item.image.name, item.image_sha256, item.width, item.height) == ("", None, None, None)
    assert not image_path.exists()
    assert item.purged_by == carol
    assert item.purge_reason == "reported to the authorities"
    assert Decision.objects.filter(item=item).count() == 1
    assert Label.objects.filter(item=item).count() == 1
    assert list(item.predictions.all()) == [prediction]
    event = AuditEvent.objects.get(item=item, action="purge")
    assert (event.actor, event.reason) == (carol, "reported to the authorities")
    assert event.at is not None


def test_a_purge_without_a_reason_is_refused(carol) -> None:
    item = make_item(prompt="illegal")
    with pytest.raises(ValidationProblem, match="reason"):
        item_purge(item=item, admin=carol, reason="  ")
    item.refresh_from_db()
    assert not item.is_purged
    assert item.prompt == "illegal"


def test_a_purge_is_final(carol) -> None:
    item = make_item(prompt="illegal")
    item_purge(item=item, admin=carol, reason="illegal material")
    with pytest.raises(ValidationProblem, match="already purged"):
        item_purge(item=item, admin=carol, reason="again")
    with pytest.raises(IntegrityError):
        raw_update("UPDATE media_mediaitem SET purged_at = NULL WHERE id = %s", item.pk)
    with pytest.raises(IntegrityError):
        raw_update("UPDATE media_mediaitem SET prompt = 'back' WHERE id = %s", item.pk)
    assert MediaItem.objects.get(pk=item.pk).is_purged


def test_a_purge_that_leaves_content_is_refused(db) -> None:
    item = make_item(prompt="illegal")
    with pytest.raises(IntegrityError):
        raw_update(
            "UPDATE media_mediaitem SET purged_at = %s WHERE id = %s", timezone.now(), item.pk
        )


def test_the_image_of_a_purged_item_is_not_found(carol, alice) -> None:
    item = make_item(image=png_bytes())
    item_purge(item=item, admin=carol, reason="illegal material")
    response = client_for(alice).get(reverse("review:image", args=[item.uid]))
    assert response.status_code == 404


def test_the_history_page_shows_the_tombstone(carol, alice) -> None:
    item = make_item(prompt="illegal words")
    item_purge(item=item, admin=carol, reason="illegal material")
    response = client_for(alice).get(reverse("review:history", args=[item.uid]))
    assert response.status_code == 200
    assert "Content purged by carol on" in response.content.decode()
    assert "illegal material" in response.content.decode()


def test_the_api_says_who_purged_an_item(carol) -> None:
    item = make_item(prompt="illegal words")
    item_purge(item=item, admin=carol, reason="illegal material")
    data = item_data(MediaItem.objects.get(pk=item.pk))
    assert data["purged"]["by"] == "carol"
    assert data["purged"]["reason"] == "illegal material"
    assert data["supersedes"] is None


def test_an_admin_purges_an_item_in_the_admin(carol_staff) -> None:
    item = make_item(prompt="illegal words")
    url = reverse("admin:media_mediaitem_purge", args=[item.pk])
    page = carol_staff.get(url)
    assert page.status_code == 200
    assert "Kept" in page.content.decode()
    # Without the confirmation nothing changes.
    assert carol_staff.post(url, {"reason": "illegal material"}).status_code == 200
    assert not MediaItem.objects.get(pk=item.pk).is_purged
    response = carol_staff.post(url, {"reason": "illegal material", "confirm": "on"})
    assert response.status_code == 302
    assert MediaItem.objects.get(pk=item.pk).is_purged


def test_a_moderator_may_not_purge(alice) -> None:
    moderator = client_for(staff(alice))
    item = make_item(prompt="illegal words")
    url = reverse("admin:media_mediaitem_purge", args=[item.pk])
    assert moderator.get(url).status_code == 403
    response = moderator.post(url, {"reason": "illegal material", "confirm": "on"})
    assert response.status_code == 403
    assert not MediaItem.objects.get(pk=item.pk).is_purged


def test_the_change_form_links_the_content_tools(carol_staff, alice) -> None:
    item = make_item(prompt="a cat")
    url = reverse("admin:media_mediaitem_change", args=[item.pk])
    page = carol_staff.get(url).content.decode()
    assert reverse("admin:media_mediaitem_purge", args=[item.pk]) in page
    assert reverse("admin:media_mediaitem_correct", args=[item.pk]) in page
    moderator_page = client_for(staff(alice)).get(url).content.decode()
    assert reverse("admin:media_mediaitem_purge", args=[item.pk]) not in moderator_page
    assert carol_staff.get(reverse("admin:media_mediaitem_changelist")).status_code == 200


# -------------------------------------------------------------------------- correction


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_correction_is_a_new_item_in_the_same_split(carol, split: str) -> None:
    old = make_item(prompt="a cat", tags=[["cat", 0.9]], split=split, external_id="e1")
    predict(old)
    new = item_correct(item=old, admin=carol, reason="typo", prompt="a cat on a sofa")

    assert new.pk != old.pk
    assert new.split == split
    assert new.supersedes == old
    assert (new.prompt, new.tags) == ("a cat on a sofa", [["cat", 0.9]])
    assert new.external_id == ""
    assert new.metadata["supersedes_external_id"] == "e1"
    assert ReviewState.objects.get(item=new).state == ReviewState.State.QUEUED
    old.refresh_from_db()
    assert (old.prompt, old.external_id) == ("a cat", "e1")
    event = AuditEvent.objects.get(item=old, action="content")
    assert (event.actor, event.old, event.new, event.reason) == (
        carol,
        str(old.uid),
        str(new.uid),
        "typo",
    )


def test_a_correction_is_queued_for_prediction(carol, django_capture_on_commit_callbacks) -> None:
    old = make_item(prompt="a cat")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        new = item_correct(item=old, admin=carol, reason="typo", prompt="a cat on a sofa")
    assert len(callbacks) == 1
    assert new.prediction_queued is True


def test_a_correction_shares_the_image_but_not_its_hash(carol) -> None:
    old = make_item(image=png_bytes(), prompt="a cat")
    new = item_correct(item=old, admin=carol, reason="typo", prompt="a cat on a sofa")
    assert new.image.name == old.image.name
    assert new.image_sha256 is None
    assert (new.width, new.height) == (old.width, old.height)


def test_a_purge_keeps_a_file_that_a_correction_still_shows(
    carol, django_capture_on_commit_callbacks
) -> None:
    old = make_item(image=png_bytes(), prompt="illegal")
    new = item_correct(item=old, admin=carol, reason="typo", prompt="still illegal")
    path = Path(old.image.path)
    with django_capture_on_commit_callbacks(execute=True):
        item_purge(item=old, admin=carol, reason="illegal material")
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        item_purge(item=new, admin=carol, reason="illegal material")
    assert not path.exists()


def test_a_correction_validates_tags_as_the_api_does(carol) -> None:
    old = make_item(prompt="a cat")
    with pytest.raises(ValidationProblem, match="between 0 and 1"):
        item_correct(item=old, admin=carol, reason="tags", tags=[["cat", 2]])
    assert not MediaItem.objects.filter(supersedes=old).exists()


def test_a_correction_needs_a_reason_and_a_change(carol) -> None:
    old = make_item(prompt="a cat")
    with pytest.raises(ValidationProblem, match="reason"):
        item_correct(item=old, admin=carol, reason="", prompt="a dog")
    with pytest.raises(ValidationProblem, match="unchanged"):
        item_correct(item=old, admin=carol, reason="typo", prompt="a cat")


def test_the_history_pages_link_a_correction_both_ways(carol, alice) -> None:
    old = make_item(prompt="a cat")
    new = item_correct(item=old, admin=carol, reason="typo", prompt="a cat on a sofa")
    moderator = client_for(alice)
    old_page = moderator.get(reverse("review:history", args=[old.uid])).content.decode()
    new_page = moderator.get(reverse("review:history", args=[new.uid])).content.decode()
    assert "Corrected by" in old_page and str(new.uid) in old_page
    assert "Corrects" in new_page and str(old.uid) in new_page
    assert item_data(new)["supersedes"] == old.uid


def test_an_admin_corrects_an_item_in_the_admin(carol_staff) -> None:
    old = make_item(prompt="a cat", tags=[["cat", 0.9]])
    predict(old)
    url = reverse("admin:media_mediaitem_correct", args=[old.pk])
    page = carol_staff.get(url).content.decode()
    assert "a cat" in page and "[[&quot;cat&quot;, 0.9]]" in page
    response = carol_staff.post(
        url,
        {
            "prompt": "a cat on a sofa",
            "negative_prompt": "",
            "tags": '[["cat", 0.9]]',
            "reason": "typo",
        },
    )
    new = MediaItem.objects.get(supersedes=old)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:media_mediaitem_change", args=[new.pk])
    assert new.prompt == "a cat on a sofa"


def test_bad_tags_in_the_admin_correction_are_shown(carol_staff) -> None:
    old = make_item(prompt="a cat")
    url = reverse("admin:media_mediaitem_correct", args=[old.pk])
    response = carol_staff.post(url, {"prompt": "a dog", "tags": "[[", "reason": "typo"})
    assert response.status_code == 200
    assert "is not valid JSON" in response.content.decode()
    assert not MediaItem.objects.filter(supersedes=old).exists()


# ---------------------------------------------------------------------------- deletion


def test_a_labelled_item_cannot_be_deleted(db) -> None:
    item = make_item(prompt="a cat", label=2)
    with pytest.raises(ProtectedError):
        item.delete()
    assert MediaItem.objects.filter(pk=item.pk).exists()


def test_the_admin_deletes_no_item(admin_client) -> None:
    item = make_item(prompt="a cat")
    response = admin_client.post(
        reverse("admin:media_mediaitem_delete", args=[item.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert MediaItem.objects.filter(pk=item.pk).exists()


# -------------------------------------------------------------------------------- SQLite


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh SQLite database, migrated as `manage.py migrate` does on one machine."""
    var = tmp_path_factory.mktemp("sqlite")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {
        "SQLITE_PATH": str(var / "moderation.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "moderation.settings",
        "MODERATION_VAR_DIR": str(var),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return var / "moderation.sqlite3"


def insert(db: sqlite3.Connection, table: str, **given: object) -> int:
    """A row with `given` and a plain value in every other NOT NULL column without a default,
    so the test keeps working when a column is added."""
    values = dict(given)
    for _, name, kind, notnull, default, pk in db.execute(f'PRAGMA table_info("{table}")'):
        if pk or not notnull or default is not None or name in values:
            continue
        kind = kind.lower()
        if "int" in kind or "bool" in kind or "real" in kind or "decimal" in kind:
            values[name] = 0
        elif "datetime" in kind or "date" in kind:
            values[name] = "2026-01-01 00:00:00"
        elif "blob" in kind:
            values[name] = b""
        elif "char" in kind:
            values[name] = ""
        else:  # text: JSON columns are text on SQLite, and {} is valid JSON
            values[name] = "{}"
    columns = ", ".join(f'"{c}"' for c in values)
    marks = ", ".join("?" for _ in values)
    cursor = db.execute(
        f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(values.values())
    )
    return cursor.lastrowid


@pytest.fixture
def sqlite_db(sqlite_path: Path):
    db = sqlite3.connect(sqlite_path, isolation_level=None)
    yield db
    db.close()


def sqlite_item(db: sqlite3.Connection, *, predicted: bool) -> int:
    item = insert(
        db,
        "media_mediaitem",
        uid=uuid.uuid4().hex,
        prompt="a cat",
        negative_prompt="",
        tags='[["cat", 0.9]]',
        image="items/a.png",
        image_sha256=uuid.uuid4().hex,
        source="test",
        external_id="",
        purge_reason="",
        split="train",
    )
    if predicted:
        version = insert(db, "inference_modelversion", version=uuid.uuid4().hex, path="/b")
        insert(db, "inference_prediction", item_id=item, model_version_id=version)
    return item


def test_sqlite_refuses_to_change_a_predicted_prompt(sqlite_db) -> None:
    item = sqlite_item(sqlite_db, predicted=True)
    with pytest.raises(sqlite3.IntegrityError, match="content is fixed"):
        sqlite_db.execute("UPDATE media_mediaitem SET prompt = 'x' WHERE id = ?", [item])
    with pytest.raises(sqlite3.IntegrityError, match="content is fixed"):
        sqlite_db.execute("UPDATE media_mediaitem SET tags = '[]' WHERE id = ?", [item])
    unpredicted = sqlite_item(sqlite_db, predicted=False)
    sqlite_db.execute("UPDATE media_mediaitem SET prompt = 'x' WHERE id = ?", [unpredicted])


def test_sqlite_allows_a_purge_and_keeps_the_tombstone(sqlite_db) -> None:
    item = sqlite_item(sqlite_db, predicted=True)
    sqlite_db.execute(
        "UPDATE media_mediaitem SET prompt = '', negative_prompt = '', tags = NULL, image = '', "
        "image_sha256 = NULL, purged_at = '2026-01-02 00:00:00', purge_reason = 'illegal' "
        "WHERE id = ?",
        [item],
    )
    with pytest.raises(sqlite3.IntegrityError, match="tombstone"):
        sqlite_db.execute("UPDATE media_mediaitem SET purged_at = NULL WHERE id = ?", [item])
    with pytest.raises(sqlite3.IntegrityError, match="tombstone"):
        sqlite_db.execute("UPDATE media_mediaitem SET prompt = 'x' WHERE id = ?", [item])


def test_sqlite_refuses_changes_to_labels_and_predictions(sqlite_db) -> None:
    item = sqlite_item(sqlite_db, predicted=True)
    label = insert(sqlite_db, "review_label", item_id=item, level=2, origin="import")
    (prediction,) = sqlite_db.execute(
        "SELECT id FROM inference_prediction WHERE item_id = ?", [item]
    ).fetchone()
    for table, pk in (("review_label", label), ("inference_prediction", prediction)):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            sqlite_db.execute(f'UPDATE "{table}" SET created_at = created_at WHERE id = ?', [pk])
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            sqlite_db.execute(f'DELETE FROM "{table}" WHERE id = ?', [pk])
