"""History, and what the workers write, is shown in the Django admin and never added,
changed or deleted there."""

from __future__ import annotations

import pytest
from django.urls import reverse

from moderation.inference.models import RatingDispatch
from tests.moderation.factories import make_item

pytestmark = pytest.mark.django_db

READ_ONLY = [
    "audit_auditevent",
    "review_decision",
    "review_label",
    "inference_prediction",
    "inference_ratingdispatch",
]


@pytest.mark.parametrize("model", READ_ONLY)
def test_the_admin_lists_but_never_adds(admin_client, model):
    assert admin_client.get(reverse(f"admin:{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:{model}_add")).status_code == 403


def test_the_admin_never_deletes_a_failed_rating_which_only_an_audited_retry_clears(
    admin_client,
):
    item = make_item(prompt="a cat")
    RatingDispatch.objects.filter(item=item).update(failure="unreadable")
    url = reverse("admin:inference_ratingdispatch_delete", args=[item.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert RatingDispatch.objects.filter(item=item).exists()
