from tests.moderation.people import alice, bob, carol, carol_client, mallory  # noqa: F401
