"""People for the training pages: carol is an admin, alice a moderator.

Fixtures here are imported by the test modules that need them (conftest.py is shared).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.moderation.review.conftest import PASSWORD, make_user

__all__ = ["PASSWORD", "make_user"]


@pytest.fixture
def carol(db) -> User:
    return make_user("carol", "admins")


@pytest.fixture
def alice(db) -> User:
    return make_user("alice", "moderators")


@pytest.fixture
def carol_client(client, carol) -> Client:
    client.force_login(carol)
    return client
