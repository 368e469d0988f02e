import pytest
from django.contrib.auth.models import Group

from tests.moderation.people import PASSWORD, make_user

from .conftest import make_item


def test_the_migration_creates_the_moderators_and_admins_groups(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {"moderators", "admins"}


@pytest.mark.parametrize("url", ["/review/", "/review/disagreements/"])
def test_anonymous_visitors_are_sent_to_the_login_page(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={url}"


def test_a_user_in_no_group_is_forbidden(client, mallory):
    client.force_login(mallory)
    assert client.get("/review/").status_code == 403


def test_admins_can_review(client, db):
    client.force_login(make_user("carol", "admins"))
    assert client.get("/review/").status_code == 200


def test_the_home_page_leads_to_the_review_queue(client, db):
    assert client.get("/").url == "/review/"


def test_alice_logs_in_with_her_password_and_lands_on_the_queue(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.url == "/review/"


def test_the_image_is_served_only_to_moderators(client, alice, mallory):
    item = make_item(image=True)
    client.force_login(mallory)
    assert client.get(f"/review/items/{item.uid}/image/").status_code == 403
    client.force_login(alice)
    response = client.get(f"/review/items/{item.uid}/image/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_a_prompt_only_item_has_no_image_to_serve(alice_client):
    item = make_item()
    assert alice_client.get(f"/review/items/{item.uid}/image/").status_code == 404
