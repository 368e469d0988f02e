"""Media items: what arrives for rating, and the API clients that send them."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.db import models
from django.db.models import Q


class Split(models.TextChoices):
    TRAIN = "train", "train"
    TEST = "test", "test"


class MediaItem(models.Model):
    """One generated image (or a prompt alone) with what its generator and tagger said.

    The split is assigned once, when the item is created, and never changes: a test item that
    became a training item would silently inflate every later evaluation.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=100, blank=True)
    # The sender's own id (the corpus id, Civitai's image id): re-importing never duplicates.
    external_id = models.CharField(max_length=200, blank=True)
    image = models.ImageField(upload_to="items/%Y/%m/", blank=True)
    image_sha256 = models.CharField(max_length=64, null=True, blank=True, unique=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    prompt = models.TextField(blank=True)
    negative_prompt = models.TextField(blank=True)
    # [[name, confidence], ...]; null when no tagger has run (not the same as "no tags").
    tags = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices, editable=False)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id=""),
                name="media_item_unique_external_id",
            )
        ]
        indexes = [models.Index(fields=["split"])]

    def __str__(self) -> str:
        return f"{self.source or 'item'} {self.external_id or self.uid}"

    @property
    def has_image(self) -> bool:
        return bool(self.image)


class ApiClient(models.Model):
    """A platform that sends items. Only a digest of its token is stored."""

    name = models.CharField(max_length=100, unique=True)
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
