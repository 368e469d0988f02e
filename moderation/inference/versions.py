"""The registry's writes: a bundle recorded as a model version, and each status change
audited. The rules on which change is allowed live in `moderation.training.registry`."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from moderation.audit.services import Action, audit_record
from moderation.inference.models import ModelVersion
from rating_models.bundle import Bundle, read_manifest


@transaction.atomic
def model_version_register(*, path: str | Path, promote: bool = False) -> ModelVersion:
    """Record a bundle directory as a model version (idempotent by bundle version).

    The bundle is loaded first: a corrupt or incompatible bundle never becomes a version.
    """
    # Stored absolute: a relative path would later be read against BUNDLE_DIR by the workers.
    path = Path(path).resolve()
    Bundle.load(path)
    manifest = read_manifest(path)
    version, _ = ModelVersion.objects.get_or_create(
        version=manifest["version"], defaults={"path": str(path), "manifest": manifest}
    )
    if promote and version.status != ModelVersion.Status.CHAMPION:
        model_version_promote(version=version)
    return version


@transaction.atomic
def model_version_promote(
    *, version: ModelVersion, actor: AbstractBaseUser | None = None, reason: str = ""
) -> ModelVersion:
    """Make the version the champion; the one before becomes a former champion (an admin may
    roll back to it). Each change is audited (`actor` None: the system, a retrain's gate)."""
    for old in ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.CHAMPION):
        model_version_status_set(version=old, status=ModelVersion.Status.FORMER, actor=actor)
    # The first promotion's time; every later one (a rollback) is in the audit trail.
    version.promoted_at = version.promoted_at or timezone.now()
    return model_version_status_set(
        version=version, status=ModelVersion.Status.CHAMPION, actor=actor, reason=reason
    )


def model_version_status_set(
    *, version: ModelVersion, status: str, actor: AbstractBaseUser | None, reason: str = ""
) -> ModelVersion:
    """Change a version's status and write its audit row (old → new); no change, no row."""
    old = version.status
    if old == status:
        return version
    version.status = status
    version.save(update_fields=["status", "promoted_at"])
    audit_record(
        action=Action.MODEL_STATUS,
        actor=actor,
        model_version=version,
        old=old,
        new=status,
        reason=reason,
    )
    return version
