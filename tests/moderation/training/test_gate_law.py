"""The gate is the law (issue 14): a candidate the gate did not pass outright is promoted only
with an admin's reason, which the audit trail keeps; the candidate of a failed or cancelled run,
a retired version and a former champion (through "promote") never are; rollback is to former
champions only, confirmed; the status cannot be edited in the Django admin."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from moderation.audit.models import AuditEvent
from moderation.inference.models import ModelVersion
from moderation.training import registry
from moderation.training.models import TrainingRun
from tests.moderation.training.conftest import run_promotions

from .test_views import PASSED, REFUSED, finished_run

pytestmark = pytest.mark.django_db

ADMIN_DECIDES = {"passed": True, "needs_admin": "only 3 explicit test items", "checks": []}


@pytest.fixture
def candidate(champion, bundle_dir):
    return ModelVersion.objects.create(version="cand-1", path=str(bundle_dir))


@pytest.mark.parametrize(
    ("verdict", "why"),
    [
        (REFUSED, "the gate refused it"),
        (ADMIN_DECIDES, "only 3 explicit test items"),
        (None, "the gate never judged it"),
    ],
)
def test_a_candidate_the_gate_did_not_pass_needs_a_reason(
    carol_client, carol, champion, candidate, verdict, why
):
    if verdict is not None:
        finished_run(champion, candidate=candidate, gate=verdict)
    url = reverse("training:promote", args=[candidate.pk])

    refused = carol_client.post(url, follow=True)
    candidate.refresh_from_db()
    assert candidate.status == "candidate"
    assert why in refused.text and "needs your reason" in refused.text

    carol_client.post(url, {"reason": "the severe items are mislabelled; checked by hand"})
    run_promotions()
    candidate.refresh_from_db()
    assert candidate.status == "champion"
    event = AuditEvent.objects.get(model_version=candidate, new="champion")
    assert (event.actor, event.reason) == (
        carol,
        "the severe items are mislabelled; checked by hand",
    )
    page = carol_client.get(reverse("training:versions")).text
    assert "the severe items are mislabelled; checked by hand" in page  # its history


@pytest.mark.parametrize("state", ["failed", "cancelled"])
def test_the_candidate_of_a_failed_or_cancelled_run_is_never_promoted(
    carol_client, champion, candidate, state
):
    finished_run(champion, candidate=candidate, gate=PASSED, state=state)
    response = carol_client.post(
        reverse("training:promote", args=[candidate.pk]), {"reason": "please"}, follow=True
    )
    candidate.refresh_from_db()
    assert candidate.status == "candidate"
    assert f"its run #{TrainingRun.objects.get().pk} {state}" in response.text


def test_a_retired_version_never_comes_back(carol_client, champion, candidate):
    finished_run(champion, candidate=candidate, gate=PASSED)
    carol_client.post(reverse("training:retire", args=[candidate.pk]))
    for name, form in (("promote", {"reason": "x"}), ("rollback", {"confirm": "yes"})):
        carol_client.post(reverse(f"training:{name}", args=[candidate.pk]), form)
        run_promotions()
        candidate.refresh_from_db()
        assert candidate.status == "retired", name
    page = carol_client.get(reverse("training:versions")).text
    assert reverse("training:rollback", args=[candidate.pk]) not in page
    assert reverse("training:promote", args=[candidate.pk]) not in page


def test_rollback_is_only_to_a_former_champion(champion, candidate):
    with pytest.raises(registry.PromotionRefused, match="only a former champion"):
        registry.promotion_start(version=candidate, kind="rollback")


def test_a_rollback_keeps_the_first_promotion_date_and_the_whole_history(
    carol_client, champion, candidate
):
    finished_run(champion, candidate=candidate, gate=PASSED)
    first_promoted = champion.promoted_at = champion.created_at
    champion.save(update_fields=["promoted_at"])
    carol_client.post(reverse("training:promote", args=[candidate.pk]))
    run_promotions()
    carol_client.post(reverse("training:rollback", args=[champion.pk]), {"confirm": "yes"})
    run_promotions()
    champion.refresh_from_db()
    assert champion.promoted_at == first_promoted
    history = list(AuditEvent.objects.filter(model_version=champion).values_list("old", "new"))
    assert history == [
        ("candidate", "champion"),  # registered as the champion
        ("champion", "former"),
        ("former", "champion"),
    ]


def test_the_status_is_read_only_in_the_django_admin(admin_client, champion):
    page = admin_client.get(reverse("admin:inference_modelversion_change", args=[champion.pk]))
    assert 'name="status"' not in page.content.decode()


def test_the_command_line_replaces_a_champion_only_with_a_reason(champion, bundle_dir, tmp_path):
    second = tmp_path / "second"
    shutil.copytree(bundle_dir, second)
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["version"] = "second"
    (second / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(CommandError, match="needs your reason"):
        call_command("register_bundle", str(second), "--promote", stdout=io.StringIO())
    assert ModelVersion.objects.get(version="second").status == "candidate"

    out = io.StringIO()
    call_command(
        "register_bundle", str(second), "--promote", "--reason", "hotfix bundle", stdout=out
    )
    assert "second: champion" in out.getvalue()
    event = AuditEvent.objects.get(model_version__version="second", new="champion")
    assert (event.actor, event.reason) == (None, "hotfix bundle")
    champion.refresh_from_db()
    assert champion.status == "former"
