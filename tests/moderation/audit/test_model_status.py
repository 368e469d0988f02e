"""Every change of a model's status writes an audit row: who, old → new, why (issue 13)."""

from __future__ import annotations

import pytest

from moderation.audit.models import AuditEvent
from moderation.inference.models import ModelVersion
from moderation.inference.versions import model_version_promote
from moderation.training.registry import model_version_retire
from tests.moderation.review.conftest import make_version

pytestmark = pytest.mark.django_db


def test_a_promotion_and_a_retirement_are_audited(carol):
    old = make_version("v1")
    new = make_version("v2", status=ModelVersion.Status.CANDIDATE)
    model_version_promote(version=new, actor=carol, reason="promoted")
    model_version_retire(version=old, actor=carol)

    rows = list(
        AuditEvent.objects.filter(action="model_status")
        .order_by("pk")
        .values_list("model_version__version", "old", "new", "actor__username", "reason")
    )
    assert rows == [
        ("v1", "champion", "former", "carol", ""),
        ("v2", "candidate", "champion", "carol", "promoted"),
        ("v1", "former", "retired", "carol", "retired"),
    ]


def test_the_admin_cannot_change_a_status_around_the_audit(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    version = make_version("v1", status=ModelVersion.Status.CANDIDATE)
    client.force_login(admin)
    page = client.get(f"/admin/inference/modelversion/{version.pk}/change/").content.decode()
    assert 'name="status"' not in page
