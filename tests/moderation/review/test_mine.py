"""A moderator's own history page: what became of their decisions and their gold results;
an admin's gold button on the item page; blind items' history is closed while decided."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from moderation.review.claims import item_claim_next
from moderation.review.gold import gold_mark
from moderation.review.labels import label_get_current
from moderation.review.models import GoldItem, Label
from moderation.review.workflow import decision_submit
from tests.moderation.review.conftest import make_item, make_prediction, make_version


@pytest.mark.django_db
def test_my_decisions_say_what_became_of_each_and_the_gold_score(
    client, alice, bob, carol, champion, settings
):
    settings.GOLD_SHARE = 1.0
    gold = make_item(queued=False, prompt="a <b>bold</b> lighthouse")
    Label.objects.create(item=gold, level=8, origin="corpus")
    gold_mark(items=[gold], admin=carol)
    served = item_claim_next(moderator=alice)
    assert served == gold
    decision_submit(item=served, level=2, moderator=alice, saw_label=None)

    settings.GOLD_SHARE = 0.0
    item = make_item()
    make_prediction(item, champion, experts={"tag_rules": 16}, voter=16, mlp=16)
    decision_submit(item=item_claim_next(moderator=alice), level=1, moderator=alice, saw_label=None)
    client.force_login(alice)

    page = client.get(reverse("review:mine")).content.decode()
    assert "waits for a confirmation" in page
    assert "gold item: under the settled X" in page
    assert "<strong>0%</strong> right" in page

    decision_submit(item=item_claim_next(moderator=bob), level=1, moderator=bob, saw_label=None)
    assert "confirmed by a second decision" in client.get(reverse("review:mine")).content.decode()


@pytest.mark.django_db
def test_an_admin_marks_an_item_gold_from_its_page_and_a_moderator_cannot(client, alice, carol):
    item = make_item(queued=False)
    Label.objects.create(item=item, level=4, origin="corpus")
    client.force_login(alice)
    assert client.post(reverse("review:gold", args=[item.uid])).status_code == 403
    page = client.get(reverse("review:history", args=[item.uid])).content.decode()
    assert "Mark as gold" not in page

    client.force_login(carol)
    assert "Mark as gold" in client.get(reverse("review:history", args=[item.uid])).content.decode()
    response = client.post(reverse("review:gold", args=[item.uid]))
    assert response.status_code == 302
    assert GoldItem.objects.get(item=item).level == 4
    assert label_get_current(item=item).level == 4


@pytest.mark.django_db
def test_a_blind_items_history_is_closed_to_the_one_deciding_it(client, alice, bob, champion):
    item = make_item()
    make_prediction(item, champion, experts={"tag_rules": 16}, voter=16, mlp=16)
    decision_submit(item=item_claim_next(moderator=alice), level=1, moderator=alice, saw_label=None)
    assert item_claim_next(moderator=bob) == item  # a confirmation, blind
    client.force_login(bob)
    assert client.get(reverse("review:history", args=[item.uid])).status_code == 403
    page = client.get(reverse("review:next")).content.decode()
    assert "PG is 4 levels below" not in page and "history</a>" not in page


@pytest.mark.django_db
def test_admins_mark_gold_in_bulk_by_filter_in_the_django_admin(client, carol):
    carol.is_staff = True
    carol.save()
    carol.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_mediaitem", "change_mediaitem"])
    )
    explicit = [make_item(queued=False) for _ in range(3)]
    mild = make_item(queued=False)
    unlabelled = make_item(queued=False)
    for item in explicit:
        Label.objects.create(item=item, level=16, origin="corpus")
    Label.objects.create(item=mild, level=1, origin="corpus")
    client.force_login(carol)
    changelist = reverse("admin:media_mediaitem_changelist")

    filtered = client.get(changelist, {"label": "16"}).content.decode()
    assert all(str(item.uid) in filtered for item in explicit)
    assert str(mild.uid) not in filtered
    response = client.post(
        changelist + "?label=16",
        {
            "action": "mark_gold",
            "select_across": "1",
            "index": "0",
            "_selected_action": [str(explicit[0].pk)],
        },
        follow=True,
    )
    assert "3 items marked as gold" in response.content.decode()
    assert set(GoldItem.objects.values_list("item_id", "level")) == {(i.pk, 16) for i in explicit}
    assert not GoldItem.objects.filter(item__in=[mild, unlabelled]).exists()


@pytest.mark.django_db
def test_double_review_can_hide_the_models_suggestion_from_both(client, alice, bob, settings):
    settings.DOUBLE_REVIEW_SHARE = 1.0
    settings.GOLD_SHARE = 0.0
    champion = make_version("v1")
    item = make_item()
    make_prediction(item, champion, experts={"tag_rules": 4}, voter=4, mlp=4)
    for moderator in (alice, bob):
        client.force_login(moderator)
        settings.DOUBLE_REVIEW_SHOWS_SUGGESTION = True
        assert "Suggested rating" in client.post(reverse("review:claim")).content.decode()
        settings.DOUBLE_REVIEW_SHOWS_SUGGESTION = False
        page = client.get(reverse("review:next")).content.decode()
        assert "Suggested rating" not in page and "Accept" not in page
        decision_submit(item=item, level=4, moderator=moderator, saw_label=None)
    assert label_get_current(item=item).level == 4
