import pytest

from tests.moderation.people import make_user

URLS = [
    "/dashboards/",
    "/dashboards/?format=csv",
    "/dashboards/trend.csv",
    "/dashboards/versions/v1/",
    "/dashboards/versions/v1/?data=live&model=voter",
    "/dashboards/versions/v1/matrix.csv",
    "/dashboards/health/",
    "/dashboards/health/days.csv",
    "/dashboards/health/moderators.csv",
]


@pytest.fixture
def evaluated_champion(champion):
    from .conftest import make_evaluation

    make_evaluation(champion, [0, 1, 3], {"suggested": [0, 1, 1], "voter": [0, 1, 1]})
    return champion


@pytest.mark.parametrize("url", URLS)
def test_anonymous_visitors_are_sent_to_the_login_page(client, evaluated_champion, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", URLS)
def test_a_moderator_is_forbidden_every_dashboard(client, alice, evaluated_champion, url):
    client.force_login(alice)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", URLS)
def test_an_admin_opens_every_dashboard(admin_client, evaluated_champion, url):
    assert admin_client.get(url).status_code == 200


def test_a_superuser_in_no_group_is_an_admin(client, evaluated_champion):
    client.force_login(make_user("root"))
    root = make_user("boss")
    root.is_superuser = True
    root.save()
    client.force_login(root)
    assert client.get("/dashboards/").status_code == 200


def test_an_unknown_version_is_not_found(admin_client, db):
    assert admin_client.get("/dashboards/versions/nope/").status_code == 404


def test_the_nav_shows_dashboards_to_admins_only(client, alice, carol):
    client.force_login(alice)
    assert b">Dashboards</a>" not in client.get("/review/").content
    client.force_login(carol)
    assert b">Dashboards</a>" in client.get("/review/").content
