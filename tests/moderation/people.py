"""The people of the moderation tests: alice and bob moderate, carol is an admin, mallory has
no role. `tests/moderation/conftest.py` makes the fixtures available to every test below it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

PASSWORD = "correct horse battery staple"


def make_user(username: str, *groups: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD)
    for name in groups:
        # get_or_create: transactional tests flush the groups the migration made.
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def alice(db) -> User:
    return make_user("alice", "moderators")


@pytest.fixture
def bob(db) -> User:
    return make_user("bob", "moderators")


@pytest.fixture
def carol(db) -> User:
    return make_user("carol", "admins")


@pytest.fixture
def mallory(db) -> User:
    return make_user("mallory")


@pytest.fixture
def carol_client(client, carol) -> Client:
    client.force_login(carol)
    return client
