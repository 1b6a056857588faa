"""The engine's domain errors become answers in one place (the app's exception handlers)."""

from __future__ import annotations

import pytest

from services.gateway.errors import DOMAIN_ERRORS
from shared.errors import (
    ConfigError,
    InstanceNotFoundError,
    InvalidEventError,
    InvalidTransitionError,
    UnknownWorkflowError,
)
from tests.unit.gateway.conftest import AUTH, U1

TRIGGER = b'{"workflow":"weekly-summary","params":{}}'
CREATE = ("POST", "/workflows/weekly-summary/instances", b"{}")
GET = ("GET", "/workflows/weekly-summary/instances/i1", b"")
STATUS = ("POST", "/status", b'{"workflow":"weekly-summary","instanceId":"i1"}')
PAUSE = ("PATCH", "/workflows/weekly-summary/instances/i1/status", b'{"status":"pause"}')
EVENT = ("POST", "/workflows/weekly-summary/instances/i1/events/approved", b"{}")


@pytest.mark.parametrize(
    ("error", "request_", "status", "field"),
    [
        (UnknownWorkflowError("gone"), ("POST", "/trigger", TRIGGER), 400, "workflow"),
        (UnknownWorkflowError("gone"), STATUS, 400, "workflow"),
        (UnknownWorkflowError("gone"), CREATE, 404, "workflow"),
        (InvalidEventError("bad instance id"), ("POST", "/trigger", TRIGGER), 422, "instanceId"),
        (InstanceNotFoundError("i1"), STATUS, 404, "instanceId"),
        (InstanceNotFoundError("i1"), GET, 404, "instanceId"),
        (InstanceNotFoundError("i1"), PAUSE, 404, "instanceId"),
        (InstanceNotFoundError("i1"), EVENT, 404, "instanceId"),
        (InvalidTransitionError("cannot pause a complete instance"), PAUSE, 409, "status"),
        (InvalidTransitionError("finished"), EVENT, 409, "instanceId"),
    ],
)
async def test_domain_errors_are_answered_by_the_table(
    client, engine, error, request_, status, field
):
    """Each domain error the engine raises gets its status and field, on every route."""
    method, path, body = request_
    engine.fail_with = error
    response = await client.request(method, path, content=body, headers=AUTH)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field
    expected = DOMAIN_ERRORS[type(error)][1]
    assert answer["error"] == (expected or str(error))
    assert "correlationId" not in answer


async def test_other_app_errors_are_a_500_with_a_correlation_id(client, engine):
    """An AppError the table does not name is a bug: 500, no internals, a correlation id."""
    engine.fail_with = ConfigError("SECRET_THING is wrong")
    body = f'{{"workflow":"job-discovery","params":{{"userId":"{U1}"}}}}'.encode()
    response = await client.post("/trigger", content=body, headers=AUTH)
    assert response.status_code == 500
    answer = response.json()
    assert answer["error"] == "internal error" and len(answer["correlationId"]) == 32
    assert "SECRET_THING" not in response.text
