"""An in-memory engine behind the real gateway app: HTTP-layer tests without a network."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from shared.catalog import routes
from shared.errors import InstanceNotFoundError, InvalidTransitionError, UnknownWorkflowError
from shared.workflow import EventEnvelope, InstanceState, Page, Started
from shared.workflow.control import event_internal_id, new_instance_id

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Ids the database would accept (UUIDs): the gateway refuses params with any other.
U1 = "00000000-0000-4000-8000-0000000000a1"
USER = U1.encode()
J1 = "00000000-0000-4000-8000-0000000000b1"
A1 = "00000000-0000-4000-8000-0000000000c1"
R1 = "00000000-0000-4000-8000-0000000000d1"


class FakeEngine:
    """The `Engine` protocol over dicts, recording every call that would reach NATS."""

    def __init__(self) -> None:
        self.routes = routes()
        self.instances: dict[tuple[str, str], InstanceState] = {}
        self.events: list[EventEnvelope] = []
        self.calls: list[str] = []
        self.fail_with: BaseException | None = None

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_with is not None:
            raise self.fail_with

    def _state(self, workflow: str, instance_id: str) -> InstanceState:
        if workflow not in self.routes:
            raise UnknownWorkflowError(workflow)
        try:
            return self.instances[(workflow, instance_id)]
        except KeyError:
            raise InstanceNotFoundError(instance_id) from None

    async def trigger(
        self,
        workflow: str,
        params: Any,
        instance_id: str | None = None,
    ) -> tuple[InstanceState, bool]:
        self._check("trigger")
        if workflow not in self.routes:
            raise UnknownWorkflowError(workflow)
        iid = instance_id or new_instance_id()
        if (workflow, iid) in self.instances:
            return self.instances[(workflow, iid)], False
        now = datetime.now(UTC)
        state = InstanceState(
            workflow=workflow,
            instance_id=iid,
            status="queued",
            params=params,
            created_at=now,
            updated_at=now,
        )
        self.instances[(workflow, iid)] = state
        return state, True

    async def send(self, events: Iterable[EventEnvelope]) -> list[tuple[str, list[Started]]]:
        self._check("send")
        out = []
        for event in events:
            internal = event_internal_id(event.id)
            self.events.append(event)
            started = [
                Started(wf, internal) for wf, names in self.routes.items() if event.name in names
            ]
            out.append((internal, started))
        return out

    async def get(self, workflow: str, instance_id: str) -> InstanceState:
        self._check("get")
        return self._state(workflow, instance_id)

    async def list(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
        user: str | None = None,
    ) -> Page:
        self._check("list")
        items = [
            s
            for s in self.instances.values()
            if (workflow is None or s.workflow == workflow)
            and (status is None or s.status == status)
            and (user is None or (s.params or {}).get("userId") == user)
        ]
        start = cursor or 0
        page = items[start : start + limit]
        more = start + limit < len(items)
        return Page(items=page, next_cursor=start + limit if more else None)

    async def _set(self, workflow: str, instance_id: str, status: str) -> InstanceState:
        state = self._state(workflow, instance_id)
        if state.status in ("complete", "errored", "terminated") and status != "queued":
            raise InvalidTransitionError(f"cannot change a {state.status} instance")
        state.status = status  # type: ignore[assignment]
        return state

    async def pause(self, workflow: str, instance_id: str) -> InstanceState:
        self._check("pause")
        return await self._set(workflow, instance_id, "paused")

    async def resume(self, workflow: str, instance_id: str) -> InstanceState:
        self._check("resume")
        return await self._set(workflow, instance_id, "queued")

    async def terminate(self, workflow: str, instance_id: str) -> InstanceState:
        self._check("terminate")
        return await self._set(workflow, instance_id, "terminated")

    async def restart(self, workflow: str, instance_id: str) -> InstanceState:
        self._check("restart")
        state = await self._set(workflow, instance_id, "queued")
        state.generation += 1
        return state

    async def send_event(
        self,
        workflow: str,
        instance_id: str,
        event_type: str,
        payload: Any,
        event_id: str | None = None,
    ) -> str:
        self._check("send_event")
        state = self._state(workflow, instance_id)
        if state.status in ("complete", "errored", "terminated"):
            raise InvalidTransitionError("finished")
        return event_id or "e1"

    async def ping(self, timeout: float = 2.0) -> None:
        if self.fail_with is not None:
            raise self.fail_with


def make_app(engine: FakeEngine, **overrides: Any) -> Litestar:
    values: dict[str, Any] = {"workflows_auth_token": TOKEN}
    values.update(overrides)

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[FakeEngine]:
        yield engine

    return create_app(GatewaySettings(**values), factory)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def client(engine: FakeEngine) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(make_app(engine)) as test_client:
        yield test_client
