"""Request parsers that refuse an oversized body before reading it.

DRF reads the request stream itself, around Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, so
without these a client could make the server parse a body of any size.
"""

from __future__ import annotations

import io
from typing import IO, Any

from django.conf import settings
from rest_framework.parsers import JSONParser, MultiPartParser

from moderation.media.api_errors import PayloadTooLarge


def _body_limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _check_declared_length(parser_context: dict[str, Any] | None) -> None:
    request = (parser_context or {}).get("request")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
    except ValueError:
        declared = 0
    if declared > _body_limit():
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {_body_limit()}")


class LimitedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        _check_declared_length(parser_context)
        # A chunked body declares no length: read one byte past the limit to find out.
        body = stream.read(_body_limit() + 1) if stream is not None else b""
        if len(body) > _body_limit():
            raise PayloadTooLarge(f"request body is larger than {_body_limit()} bytes")
        return super().parse(io.BytesIO(body), media_type, parser_context)


class LimitedMultiPartParser(MultiPartParser):
    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        _check_declared_length(parser_context)
        return super().parse(stream, media_type, parser_context)
