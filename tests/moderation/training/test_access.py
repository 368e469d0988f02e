"""Retraining and the registry are for admins: moderators get 403, strangers the login page."""

import pytest
from django.urls import reverse

from moderation.training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def pages(champion):
    run = TrainingRun.objects.create(base_version=champion, state="succeeded", active=None)
    gets = [
        reverse("training:runs"),
        reverse("training:run", args=[run.pk]),
        reverse("training:versions"),
    ]
    posts = [
        reverse("training:start"),
        reverse("training:cancel", args=[run.pk]),
        reverse("training:promote", args=[champion.pk]),
        reverse("training:rollback", args=[champion.pk]),
        reverse("training:retire", args=[champion.pk]),
    ]
    return gets, posts


def test_anonymous_visitors_are_sent_to_the_login_page(client, pages):
    gets, posts = pages
    for url, method in [*((u, client.get) for u in gets), *((u, client.post) for u in posts)]:
        response = method(url)
        assert response.status_code == 302, url
        assert response.url.startswith("/accounts/login/?next="), url


def test_moderators_get_403_on_every_training_url(client, alice, pages):
    client.force_login(alice)
    gets, posts = pages
    assert all(client.get(url).status_code == 403 for url in gets)
    assert all(client.post(url).status_code == 403 for url in posts)
    assert not TrainingRun.objects.filter(active=True).exists()


def test_admins_open_every_training_page(client, carol, pages):
    client.force_login(carol)
    gets, _ = pages
    assert [client.get(url).status_code for url in gets] == [200, 200, 200]


def test_only_admins_see_the_models_link(client, alice, carol):
    client.force_login(alice)
    assert reverse("training:runs") not in client.get(reverse("review:next")).text
    client.force_login(carol)
    assert reverse("training:runs") in client.get(reverse("review:next")).text
