"""The OpenAPI document describes every route, its body and its answers."""

from __future__ import annotations

from services.gateway.openapi import operations
from tests.unit.gateway.conftest import AUTH, make_app


async def test_every_route_is_described(client, engine):
    """Each operation of the app appears in /openapi.json with a summary and responses."""
    response = await client.get("/openapi.json", headers=AUTH)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    described = {
        (path, method) for path, methods in document["paths"].items() for method in methods
    }
    app = make_app(engine)
    routed = {
        (
            path.replace("{instance_id}", "{instanceId}")
            .replace("{event_type}", "{eventType}")
            .replace("{event_key}", "{eventKey}")
            .replace("{user_id}", "{userId}"),
            method.lower(),
        )
        for path, method, _ in operations(app)
    }
    assert routed == described
    # 13 + the operator routes (dead letters, bulk) + /unsubscribe (GET, POST) + /schedules
    # + the step cache (2) and /rate-limits + /progress-tokens and /progress/{wf}/{id}
    # + DELETE /users/{userId}/data
    assert len(routed) == 29
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation["summary"], (path, method)
            assert operation["responses"], (path, method)
    trigger = document["paths"]["/trigger"]["post"]
    schema = trigger["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/TriggerRequest"}
    fields = document["components"]["schemas"]["TriggerRequest"]["properties"]
    assert set(fields) == {"workflow", "params", "instanceId"}
    assert document["paths"]["/health"]["get"]["security"] == []
