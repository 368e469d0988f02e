"""schemathesis against the API's own OpenAPI schema, through the WSGI app (no server).

Every operation gets a bounded, derandomised run of generated requests, valid and invalid:
no answer may be a server error, and every answer (status, content type, headers, body) must
be one the schema documents; the token must not be ignored and undocumented methods must
be refused. (Unknown query parameters are ignored, as HTTP APIs commonly do, so
schemathesis's `negative_data_rejection` check is left out.) A tiny champion is registered
so that the rate endpoint rates: its 503 without one is a documented answer, but schemathesis
counts any 5xx as a failure.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from moderation.media.models import ApiClient
from moderation.wsgi import application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,  # the same request without the token must be refused
    unsupported_method,  # an undocumented method must be 405
    missing_required_header,
]
EXAMPLES_PER_OPERATION = 25


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_documented_answers_and_no_server_error(champion, mode) -> None:
    _, token = ApiClient.issue("fuzzer")
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /api/v1/items/",
        "POST /api/v1/items/",
        "GET /api/v1/items/{uid}/",
        "POST /api/v1/rate/",
    }
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        call()
