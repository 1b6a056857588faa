"""The bodies the gateway encodes and the client decodes are one set of classes."""

from __future__ import annotations

import inspect

import msgspec

import shared.client
import shared.workflow.model
from services.gateway import schemas
from shared import wire


def test_gateway_and_client_share_the_wire_structs():
    """ErrorDetail, WorkflowStatus, TriggerResponse, StartedRun, the status literal: one each."""
    for name in ("ErrorDetail", "WorkflowStatus", "TriggerResponse", "StartedRun", "Status"):
        assert getattr(schemas, name) is getattr(wire, name), name
        assert getattr(shared.client, name) is getattr(wire, name), name
    assert shared.client.SendResult is schemas.EventsResponse is wire.EventsResponse
    assert shared.workflow.model.Status is wire.Status


def test_what_the_gateway_encodes_the_client_decodes():
    """A complete status with output and an errored one survive the round trip."""
    for status in (
        wire.WorkflowStatus(status="complete", output={"matchScore": 80}),
        wire.WorkflowStatus(status="errored", error=wire.ErrorDetail(name="E", message="m")),
    ):
        body = wire.TriggerResponse(success=True, instance_id="i-1", status=status)
        raw = msgspec.json.encode(body)
        assert b'"instanceId":"i-1"' in raw
        assert msgspec.json.decode(raw, type=shared.client.TriggerResponse) == body
    assert wire.STATUSES[0] == "queued" and "complete" in wire.STATUSES
    assert len(wire.STATUSES) == 7


def test_every_wire_struct_is_frozen_and_keyword_only():
    """msgspec's kw_only is per class, not inherited: each body says it (as the base does)."""
    for value in vars(wire).values():
        if isinstance(value, type) and issubclass(value, wire.Body) and value is not wire.Body:
            assert value.__struct_config__.frozen, value.__name__
            kinds = {p.kind for p in inspect.signature(value).parameters.values()}
            assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, value.__name__
