"""One shape for every API error: `{"error": message, "field": name or null}`.

Clients parse a single shape whatever went wrong: bad JSON, a wrong content type, an
oversized body, a refused image or a missing champion.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from moderation.inference.bundles import NoChampion
from moderation.media.validation import ValidationProblem


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body too large"
    default_code = "too_large"


def error_response(message: str, field: str | None, status_code: int) -> Response:
    return Response({"error": message, "field": field}, status=status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ValidationProblem):
        return error_response(exc.message, exc.field, exc.status)
    if isinstance(exc, NoChampion):
        return error_response(
            "no champion model: nothing can be rated until a bundle is promoted", None, 503
        )
    if isinstance(exc, RequestDataTooBig):
        return error_response("request body too large", None, 413)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent | SuspiciousOperation):
        return error_response(f"bad request: {exc}", None, 400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug, not bad input: let it be a logged 500
    field, message = _first_problem(getattr(exc, "detail", response.data))
    response.data = {"error": message, "field": field}
    return response


def _first_problem(detail: Any, field: str | None = None) -> tuple[str | None, str]:
    """The first (field, message) of a DRF error detail, however deeply it is nested."""
    if isinstance(detail, dict):
        if not detail:
            return field, "invalid request"
        key, value = next(iter(detail.items()))
        if key in ("non_field_errors", "detail"):
            return _first_problem(value, field)
        name = str(key) if field is None else f"{field}[{key}]"
        return _first_problem(value, name)
    if isinstance(detail, list):
        return _first_problem(detail[0], field) if detail else (field, "invalid request")
    return field, str(detail)
