"""Per-client token authentication for the ingestion API: `Authorization: Bearer <token>`."""

from __future__ import annotations

from time import monotonic

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from moderation.media.models import ApiClient


class ClientTokenAuthentication(BaseAuthentication):
    """Finds the active ApiClient whose token digest matches; `request.user` is that client.

    Only the digest is stored, so a leaked database does not leak usable tokens. A client
    deactivated in the admin is refused within API_TOKEN_CACHE_SECONDS.
    """

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None  # no credentials: IsAuthenticated answers 401
        if len(parts) != 2:
            raise AuthenticationFailed("malformed Authorization header: use 'Bearer <token>'")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("invalid API token") from None
        client = _active_client(ApiClient.digest(token))
        if client is None:
            raise AuthenticationFailed("invalid or inactive API token")
        return client, None

    def authenticate_header(self, request: Request) -> str:
        # Without a WWW-Authenticate challenge DRF would answer 403 instead of 401.
        return 'Bearer realm="api"'


# digest -> (active client, monotonic time until which it is trusted). Only tokens that
# matched an active client are kept, so the dict holds at most one entry per platform.
_trusted: dict[str, tuple[ApiClient, float]] = {}


def _active_client(digest: str) -> ApiClient | None:
    """The active client with this token digest, looked up at most once every
    API_TOKEN_CACHE_SECONDS per process: a platform sends every request with the same token,
    and looking it up again was one query more for every item ingested."""
    now = monotonic()
    trusted = _trusted.get(digest)
    if trusted is not None and now < trusted[1]:
        return trusted[0]
    client = ApiClient.objects.filter(token_sha256=digest, active=True).first()
    if client is None or settings.API_TOKEN_CACHE_SECONDS <= 0:
        _trusted.pop(digest, None)
    else:
        _trusted[digest] = (client, now + settings.API_TOKEN_CACHE_SECONDS)
    return client


class ClientTokenScheme(OpenApiAuthenticationExtension):
    """Documents the scheme in the OpenAPI schema."""

    target_class = "moderation.media.api_auth.ClientTokenAuthentication"
    name = "clientToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A client token issued with `manage.py api_client NAME`.",
        }
