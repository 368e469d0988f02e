"""Roles (issue 7): every URL of the project against anonymous, an API token, a moderator
and an admin, and CSRF on every state-changing form.

The table below names, for every URL, the method it is tried with and the status each role
gets. A URL added to the project without a row fails `test_every_url_has_an_expectation`:
whoever adds it decides who may reach it.
"""

from __future__ import annotations

import pytest
from django.contrib.admin import site as admin_site
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from moderation.inference.models import ModelVersion, RatingDispatch
from moderation.media.models import ApiClient
from moderation.review.models import (
    GoldItem,
    Label,
    ModeratorHold,
    ReviewState,
    ReviewTask,
    Skip,
)
from moderation.training.models import TrainingRun
from tests.moderation.review.conftest import make_item

ROLES = ("anonymous", "token", "moderator", "admin")


def url_patterns() -> dict[str, str]:
    """Every URL of the project, as name -> route; admin/ only its index."""
    found: dict[str, str] = {}

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                if p.namespace == admin_site.name:
                    found["admin:index"] = route
                    continue
                walk(p.url_patterns, route, p.namespace or namespace)
            elif isinstance(p, URLPattern):
                name = p.name or "<catch-all>"
                found[f"{namespace}:{name}" if namespace else name] = route

    walk(get_resolver().url_patterns, "", None)
    return found


LOGIN = "login"  # a redirect that ends on the login page
ADMIN_LOGIN = "admin login"  # the Django admin's own login page (carol is not staff)

# url name -> method -> status for (anonymous, API token, moderator, admin).
EXPECTED: dict[str, dict[str, tuple]] = {
    "home": {"GET": (LOGIN, LOGIN, 302, 302)},
    # The site's icon, for pages that name none: a redirect to the static file, for anyone.
    "favicon": {"GET": (302, 302, 302, 302)},
    "admin:index": {"GET": (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN)},
    "login": {"GET": (200, 200, 302, 302)},
    "logout": {"POST": (302, 302, 302, 302)},
    "review:next": {"GET": (LOGIN, LOGIN, 200, 200)},
    "review:undo": {"POST": (LOGIN, LOGIN, 302, 302)},
    "review:claim": {"POST": (LOGIN, LOGIN, 200, 200)},
    "review:grid": {"GET": (LOGIN, LOGIN, 200, 200)},
    # The empty claim loads a page with no filters; the empty decision is refused (400).
    "review:grid_claim": {"POST": (LOGIN, LOGIN, 302, 302)},
    "review:grid_decide": {"POST": (LOGIN, LOGIN, 400, 400)},
    "review:grid_release": {"POST": (LOGIN, LOGIN, 302, 302)},
    "review:disagreements": {"GET": (LOGIN, LOGIN, 200, 200)},
    "review:decide": {"POST": (LOGIN, LOGIN, 302, 302)},
    "review:skip": {"POST": (LOGIN, LOGIN, 302, 302)},
    "review:history": {"GET": (LOGIN, LOGIN, 200, 200)},
    "review:image": {"GET": (LOGIN, LOGIN, 200, 200)},
    "review:mine": {"GET": (LOGIN, LOGIN, 200, 200)},
    # Gold is marked by admins; the item has no label, so the admin is told so and sent back.
    "review:gold": {"POST": (LOGIN, LOGIN, 403, 302)},
    "dashboards:overview": {"GET": (LOGIN, LOGIN, 403, 200)},
    "audit:events": {"GET": (LOGIN, LOGIN, 403, 200)},
    "audit:export": {"GET": (LOGIN, LOGIN, 403, 200)},
    "dashboards:trend_csv": {"GET": (LOGIN, LOGIN, 403, 200)},
    "dashboards:version": {"GET": (LOGIN, LOGIN, 403, 200)},
    # 404 for the admin: the version has no evaluation to export (past the role check).
    "dashboards:confusion_csv": {"GET": (LOGIN, LOGIN, 403, 404)},
    "dashboards:health": {"GET": (LOGIN, LOGIN, 403, 200)},
    "dashboards:health_days_csv": {"GET": (LOGIN, LOGIN, 403, 200)},
    "dashboards:health_moderators_csv": {"GET": (LOGIN, LOGIN, 403, 200)},
    # 302 for the admin: back to the health page, saying the item had not failed.
    "dashboards:health_retry": {"POST": (LOGIN, LOGIN, 403, 302)},
    "dashboards:quality_items": {"GET": (LOGIN, LOGIN, 403, 200)},
    "dashboards:quality_agreement_csv": {"GET": (LOGIN, LOGIN, 403, 200)},
    # No hold has this id: an admin gets 404.
    "dashboards:quality_hold_clear": {"POST": (LOGIN, LOGIN, 403, 404)},
    "dashboards:quality_hold_send_back": {"POST": (LOGIN, LOGIN, 403, 404)},
    "training:runs": {"GET": (LOGIN, LOGIN, 403, 200)},
    "training:start": {"POST": (LOGIN, LOGIN, 403, 302)},
    # 302 for the admin: back to the versions page, saying the champion has no α to set.
    "training:recalibrate": {"POST": (LOGIN, LOGIN, 403, 302)},
    "training:label_errors": {"POST": (LOGIN, LOGIN, 403, 302)},
    "training:run": {"GET": (LOGIN, LOGIN, 403, 200)},
    "training:cancel": {"POST": (LOGIN, LOGIN, 403, 302)},
    "training:versions": {"GET": (LOGIN, LOGIN, 403, 200)},
    "training:promote": {"POST": (LOGIN, LOGIN, 403, 302)},
    "training:rollback": {"POST": (LOGIN, LOGIN, 403, 302)},
    "training:retire": {"POST": (LOGIN, LOGIN, 403, 302)},
    "training:promotion": {"GET": (LOGIN, LOGIN, 403, 200)},
    # The model audit, for admins. An empty start form is 400; deciding or skipping an item
    # the admin holds no audit of sends them back to the audit page.
    "model_audit:index": {"GET": (LOGIN, LOGIN, 403, 200)},
    "model_audit:start": {"POST": (LOGIN, LOGIN, 403, 400)},
    "model_audit:audit": {"GET": (LOGIN, LOGIN, 403, 200)},
    "model_audit:claim": {"POST": (LOGIN, LOGIN, 403, 200)},
    "model_audit:decide": {"POST": (LOGIN, LOGIN, 403, 302)},
    "model_audit:skip": {"POST": (LOGIN, LOGIN, 403, 302)},
    "model_audit:figures": {"GET": (LOGIN, LOGIN, 403, 200)},
    "model_audit:counts_csv": {"GET": (LOGIN, LOGIN, 403, 200)},
    "model_audit:items_csv": {"GET": (LOGIN, LOGIN, 403, 200)},
    # The API takes tokens only: a moderator's or an admin's session is no credential there.
    # The token's POSTs get past authentication to validation: the empty body rates nothing.
    "api:items": {"GET": (401, 200, 401, 401), "POST": (401, 400, 401, 401)},
    "api:item": {"GET": (401, 200, 401, 401)},
    "api:rate": {"POST": (401, 400, 401, 401)},
    "api:schema": {"GET": (401, 200, 401, 401)},
    "api:<catch-all>": {"GET": (401, 404, 401, 401), "POST": (401, 404, 401, 401)},
}


@pytest.fixture
def world(alice, carol):
    """One of everything a URL can name, and a way to make a client per role."""
    champion = ModelVersion.objects.create(version="v1", path="/bundles/v1", status="champion")
    candidate = ModelVersion.objects.create(version="v2", path="/bundles/v2", status="candidate")
    run = TrainingRun.objects.create(state="succeeded", active=None, candidate=candidate)
    platform, token = ApiClient.issue("platform")
    item = make_item(image=True, client=platform)  # the platform's own: its token may read it
    ReviewState.objects.filter(item=item).update(state="claimed", claimed_by=alice)
    people = {"moderator": alice, "admin": carol}

    def client(role: str, **options) -> Client:
        if role == "token":
            return Client(HTTP_AUTHORIZATION=f"Bearer {token}", **options)
        made = Client(**options)
        if role in people:
            made.force_login(people[role])
        return made

    return {"item": item, "champion": champion, "version": candidate, "run": run, "client": client}


def url_for(name: str, route: str, world) -> str:
    if name == "api:<catch-all>":
        return "/api/v1/no-such-endpoint/"
    on_run = name in ("training:run", "training:cancel")
    pk = world["run"].pk if on_run else world["version"].pk
    return "/" + (
        route.replace("<uuid:uid>", str(world["item"].uid))
        .replace("<str:version>", world["version"].version)
        .replace("<int:pk>", str(pk))
        .replace("<int:hold_id>", "999999")
    )


def test_every_url_has_an_expectation():
    found = set(url_patterns())
    assert found - set(EXPECTED) == set(), "decide who may reach these URLs: add them to EXPECTED"
    assert set(EXPECTED) - found == set(), "these URLs are gone: remove them from EXPECTED"


@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_each_role_as_the_table_says(role, world):
    column = ROLES.index(role)
    wrong = []
    for name, route in url_patterns().items():
        url = url_for(name, route, world)
        for method, statuses in EXPECTED.get(name, {}).items():
            expected = statuses[column]
            client = world["client"](role)  # fresh each time: logout must not sign out the rest
            send = client.get if method == "GET" else client.post
            data = {"api": {"data": {}, "content_type": "application/json"}}.get(name[:3], {})
            follow = expected in (LOGIN, ADMIN_LOGIN)
            response = send(url, follow=follow, **data)
            if follow:
                target = "/accounts/login/" if expected == LOGIN else "/admin/login/"
                got = (response.redirect_chain, response.request["PATH_INFO"])
                ok = bool(response.redirect_chain) and got[1] == target
                ok = ok and response.status_code == 200
            else:
                got = response.status_code
                ok = got == expected
                # A signed-in role's redirect goes on in the app, never back to the login page
                # (only logging out does that).
                if got == 302 and role in ("moderator", "admin") and name != "logout":
                    got = (got, response["Location"])
                    ok = not got[1].startswith("/accounts/login/")
            if ok and name.startswith("api:"):
                ok = response["Content-Type"].startswith("application/")
            if not ok:
                wrong.append(f"{method} {url} ({name}): expected {expected}, got {got}")
    assert wrong == []


def test_a_moderator_changes_nothing_through_the_admin_actions(world):
    client = world["client"]("moderator")
    before = sorted(ModelVersion.objects.values_list("version", "status"))
    runs = sorted(TrainingRun.objects.values_list("pk", "state"))
    for name in ("start", "cancel", "promote", "rollback", "retire"):
        route = url_patterns()[f"training:{name}"]
        assert client.post(url_for(f"training:{name}", route, world)).status_code == 403
    assert sorted(ModelVersion.objects.values_list("version", "status")) == before
    assert sorted(TrainingRun.objects.values_list("pk", "state")) == runs


# Every state-changing form, and who would be allowed to send it.
FORMS = {
    "logout": "moderator",
    "review:decide": "moderator",
    "review:skip": "moderator",
    "review:undo": "moderator",
    "review:claim": "moderator",
    "review:grid_claim": "moderator",
    "review:grid_decide": "moderator",
    "review:grid_release": "moderator",
    "training:start": "admin",
    "training:recalibrate": "admin",
    "training:cancel": "admin",
    "training:promote": "admin",
    "training:rollback": "admin",
    "training:retire": "admin",
    "dashboards:health_retry": "admin",
    "review:gold": "admin",
    "training:label_errors": "admin",
    "dashboards:quality_hold_clear": "admin",
    "dashboards:quality_hold_send_back": "admin",
    "model_audit:start": "admin",
    "model_audit:claim": "admin",
    "model_audit:decide": "admin",
    "model_audit:skip": "admin",
}


def test_every_state_changing_form_is_a_post_in_the_table():
    posts = {name for name, methods in EXPECTED.items() if "POST" in methods}
    assert posts - {n for n in posts if n.startswith("api:")} == set(FORMS)


def snapshot(world) -> tuple:
    item = world["item"]
    return (
        Label.objects.count(),
        Skip.objects.count(),
        GoldItem.objects.count(),
        ReviewTask.objects.count(),
        list(ModeratorHold.objects.values_list("pk", "cleared_at")),
        list(ReviewState.objects.values_list("item_id", "state", "claimed_by_id")),
        sorted(ModelVersion.objects.values_list("version", "status")),
        sorted(TrainingRun.objects.values_list("pk", "state")),
        item.labels.count(),
        list(RatingDispatch.objects.values_list("item_id", "dispatched_at", "failed_at")),
    )


@pytest.mark.parametrize("name", sorted(FORMS))
def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(name, world):
    client = world["client"](FORMS[name], enforce_csrf_checks=True)
    before = snapshot(world)
    url = url_for(name, url_patterns()[name], world)
    data = {"level": "4"} if name == "review:decide" else {"mode": "mlp"}
    response = client.post(url, data)
    assert response.status_code == 403
    assert snapshot(world) == before
    # Still signed in: the refused logout did not sign anyone out.
    assert client.get("/review/").status_code == 200
