"""Media items: what arrives for rating, and the API clients that send them."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Split(models.TextChoices):
    TRAIN = "train", "train"
    TEST = "test", "test"


class MediaItem(models.Model):
    """One generated image (or a prompt alone) with what its generator and tagger said.

    The split is assigned once, when the item is created, and never changes: a test item that
    became a training item would silently inflate every later evaluation.

    The content (prompt, negative prompt, tags, image) is fixed once a model has rated the
    item: the database refuses the change (migration 0002, `media.content_lock`), because its
    predictions, labels and stored features describe that content. A correction is a new item
    that `supersedes` this one and inherits its split (`media.corrections.item_correct`); the
    one change allowed is a purge, which clears the content and leaves a tombstone.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=100, blank=True)
    # The sender's own id (the corpus id, Civitai's image id): re-importing never duplicates.
    external_id = models.CharField(max_length=200, blank=True)
    image = models.ImageField(upload_to="items/%Y/%m/", blank=True)
    # NULL, not "", for an item without an image: the per-client unique constraints skip it.
    image_sha256 = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # The API client that sent it (None: imported, or corrected by an admin). A client reads
    # only its own items (`ApiClient.sees_all` aside), and the same image or external id is the
    # same item only within one client.
    client = models.ForeignKey(
        "ApiClient", null=True, blank=True, on_delete=models.PROTECT, related_name="items"
    )
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    prompt = models.TextField(blank=True)
    negative_prompt = models.TextField(blank=True)
    # [[name, confidence], ...]; null when no tagger has run (not the same as "no tags").
    tags = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices, editable=False)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The item whose content this one corrects (set by `item_correct`, never edited).
    supersedes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="superseded_by",
        editable=False,
    )
    # A purge (`item_purge`) removed the content: who, when, why. A tombstone stays one.
    purged_at = models.DateTimeField(null=True, blank=True, editable=False)
    purged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    purge_reason = models.TextField(blank=True, editable=False)

    class Meta:
        constraints = [
            # Per client; items without one (imports) share one namespace. Two partial
            # constraints, not NULLS NOT DISTINCT, which SQLite does not have.
            models.UniqueConstraint(
                fields=["client", "source", "external_id"],
                condition=~Q(external_id="") & Q(client__isnull=False),
                name="media_item_unique_external_id_per_client",
            ),
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id="") & Q(client__isnull=True),
                name="media_item_unique_external_id_imported",
            ),
            models.UniqueConstraint(
                fields=["client", "image_sha256"],
                condition=Q(image_sha256__isnull=False, client__isnull=False),
                name="media_item_unique_image_per_client",
            ),
            models.UniqueConstraint(
                fields=["image_sha256"],
                condition=Q(image_sha256__isnull=False, client__isnull=True),
                name="media_item_unique_image_imported",
            ),
        ]
        indexes = [models.Index(fields=["split"])]

    def __str__(self) -> str:
        return f"{self.source or 'item'} {self.external_id or self.uid}"

    @property
    def has_image(self) -> bool:
        return bool(self.image)

    @property
    def is_purged(self) -> bool:
        return self.purged_at is not None


class ApiClient(models.Model):
    """A platform that sends items. Only a digest of its token is stored."""

    name = models.CharField(max_length=100, unique=True)
    # An admin's setting: this client lists and reads every client's items, not only its own.
    sees_all = models.BooleanField(
        default=False, help_text="List and read every client's items, not only its own."
    )
    token_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str) -> tuple[ApiClient, str]:
        """Create a client and return its token, which is shown once and never stored."""
        token = secrets.token_urlsafe(32)
        return cls.objects.create(name=name, token_sha256=cls.digest(token)), token

    @property
    def is_authenticated(self) -> bool:  # what DRF's IsAuthenticated asks of request.user
        return True
