"""Operations on instances from outside a worker: trigger, read, list, pause, resume,
terminate, restart, send an event; and publishing Inngest-style events.

The gateway, the scheduler and tests use this; it needs only a NATS connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncGenerator, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.bus import INSTANCE_ID, RECORD_HEADER, Names, ensure_bucket, event_token, publish
from shared.errors import (
    InstanceNotFoundError,
    InvalidEventError,
    InvalidTransitionError,
    UnknownWorkflowError,
)
from shared.workflow.cache import StepCache
from shared.workflow.cache import bucket_name as cache_bucket
from shared.workflow.model import (
    TERMINAL,
    EventEnvelope,
    InstanceState,
    RunMessage,
    Trigger,
    decode_state,
    encode,
    utcnow,
)
from shared.workflow.ratelimit import LimitState, Rate, read_states
from shared.workflow.ratelimit import bucket_name as limits_bucket
from shared.workflow.store import InstanceStore

log = logging.getLogger(__name__)

LimitStates = list[LimitState]  # named here: inside Instances, `list` is its method


# Tells the worker that this start's `queued` record is written alongside: it reads the
# record first instead of trying to create it.
RECORD_WRITTEN = {RECORD_HEADER: "queued"}

# Events of one batch published concurrently.
SEND_WINDOW = 64


def new_instance_id() -> str:
    return uuid.uuid4().hex


def event_internal_id(user_id: str | None) -> str:
    """The internal id of an event: random, or derived from the sender's idempotency id so
    that the same `id` always maps to the same event and the same instances."""
    if user_id is None:
        return f"ev{uuid.uuid4().hex}"
    return "ev" + hashlib.sha256(user_id.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Started:
    """A workflow instance an event started (or would have, if it already existed)."""

    workflow: str
    instance_id: str


@dataclass(frozen=True)
class Page:
    items: list[InstanceState]
    next_cursor: int | None


class Instances:
    """Instance operations against one namespace. `routes` maps event names to workflows."""

    def __init__(self, nc: NATS, names: Names, routes: dict[str, tuple[str, ...]]) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names
        self.routes = routes  # workflow id -> trigger event names
        self._store: InstanceStore | None = None
        # The rate limits the deployment configures (RATE_LIMITS), shown even when unused.
        self.rates: dict[str, Rate] = {}
        self._direct: bool | None = None

    async def store(self) -> InstanceStore:
        if self._store is None:
            self._store = InstanceStore(
                await ensure_bucket(self.js, self.names.state_bucket), self.nc
            )
        return self._store

    def _check_workflow(self, workflow: str) -> None:
        if workflow not in self.routes:
            raise UnknownWorkflowError(f"unknown workflow {workflow!r}")

    def workflows_for(self, event: str) -> list[str]:
        return [wf for wf, events in self.routes.items() if event in events]

    # -- starting ----------------------------------------------------------------------

    async def trigger(
        self,
        workflow: str,
        params: Any,
        instance_id: str | None = None,
    ) -> tuple[InstanceState, bool]:
        """Start an instance; the same `instance_id` twice gives the same instance.

        Returns the instance record and whether this call created it. The run message is
        published before the record is created, so a failed publish leaves nothing behind.
        """
        self._check_workflow(workflow)
        iid = instance_id or new_instance_id()
        if not INSTANCE_ID.match(iid):
            raise InvalidEventError(
                "instanceId must be 1-100 characters of [A-Za-z0-9_-], not starting with '-'"
            )
        store = await self.store()
        existing = await store.get(workflow, iid)
        if existing is not None:
            return existing[0], False
        message = RunMessage(kind="start", instance_id=iid, params=params)
        await publish(
            self.js,
            self.names.run_subject(workflow),
            encode(message),
            msg_id=f"start:{workflow}:{iid}:0",
            headers=RECORD_WRITTEN,
        )
        now = utcnow()
        state = InstanceState(
            workflow=workflow,
            instance_id=iid,
            status="queued",
            params=params,
            created_at=now,
            updated_at=now,
        )
        if await store.create(state) is None:
            current = await store.get(workflow, iid)
            if current is not None:
                return current[0], False
        return state, True

    async def send(self, events: Iterable[EventEnvelope]) -> list[tuple[str, list[Started]]]:
        """Publish events (Inngest semantics): each is stored, and starts the workflows that
        listen to it. Returns, per event, its internal id and the instances it starts.
        The instance id of a workflow started by an event is the event's internal id.

        Once an event is stored, each instance it starts gets its `queued` record at once
        (best effort: the worker creates it anyway), so its status can be read right away.
        """
        stored = []
        for event in events:
            event_token(event.name)  # validates every name before anything is published
            internal = event_internal_id(event.id)
            stored.append(
                EventEnvelope(
                    name=event.name,
                    data=event.data,
                    id=internal,
                    ts=event.ts,
                    v=event.v,
                    user=event.user,
                )
            )
        results: list[tuple[str, list[Started]]] = []
        # Publishes of a batch go out together (each still awaits its own ack), a window at
        # a time, instead of one round trip after another.
        for start in range(0, len(stored), SEND_WINDOW):
            window = stored[start : start + SEND_WINDOW]
            await asyncio.gather(
                *(
                    publish(
                        self.js,
                        self.names.event_subject(env.name),
                        encode(env),
                        msg_id=f"event:{env.id}",
                        headers=RECORD_WRITTEN,
                    )
                    for env in window
                )
            )
            creates: list[Coroutine[Any, Any, None]] = []
            for env in window:
                assert env.id is not None
                started = [Started(wf, env.id) for wf in self.workflows_for(env.name)]
                trigger = Trigger(event=env.name, event_id=env.id)
                creates.extend(self._create_queued(run, env.data, trigger) for run in started)
                results.append((env.id, started))
            await asyncio.gather(*creates)
        return results

    async def _create_queued(self, run: Started, params: Any, trigger: Trigger) -> None:
        """The `queued` record of an instance an event starts, unless it exists already.

        The event is durable by now, so a NATS failure here is not the caller's problem:
        the worker creates the record when it takes the event.
        """
        now = utcnow()
        state = InstanceState(
            workflow=run.workflow,
            instance_id=run.instance_id,
            status="queued",
            params=params,
            created_at=now,
            updated_at=now,
            trigger=trigger,
        )
        try:
            await (await self.store()).create(state)
        except (TimeoutError, nats.errors.Error, ConnectionError) as exc:
            log.warning(
                "queued record of %s/%s not written (%s); the worker will write it",
                run.workflow,
                run.instance_id,
                type(exc).__name__,
            )

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise unless NATS and JetStream answer within `timeout` seconds (health checks)."""
        if not self.nc.is_connected:
            state = "reconnecting" if self.nc.is_reconnecting else "closed"
            raise ConnectionError(f"not connected to NATS ({state})")
        await asyncio.wait_for(self.js.account_info(), timeout)

    # -- reading -----------------------------------------------------------------------

    async def get(self, workflow: str, instance_id: str) -> InstanceState:
        self._check_workflow(workflow)
        if not INSTANCE_ID.match(instance_id):
            raise InstanceNotFoundError(f"no instance {instance_id!r} of {workflow!r}")
        found = await (await self.store()).get(workflow, instance_id)
        if found is None:
            raise InstanceNotFoundError(f"no instance {instance_id!r} of {workflow!r}")
        return found[0]

    async def list(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
        scan_limit: int = 5000,
    ) -> Page:
        """Instances in order of last change, `limit` at a time; `next_cursor` pages on.

        Reads the bucket's stream from `cursor` (each key holds one revision, so every
        message is a current record); a status filter scans at most `scan_limit` records
        per call and returns a cursor to continue from. The cost of a page does not grow
        with the number of instances.
        """
        if workflow is not None:
            self._check_workflow(workflow)
        await self.store()  # the bucket exists before its stream is read
        stream = f"KV_{self.names.state_bucket}"
        subject = f"$KV.{self.names.state_bucket}." + (f"{workflow}.>" if workflow else ">")
        wanted = limit if status is None else scan_limit
        scan = self._scan_direct if await self._direct_allowed(stream) else self._scan_consumer
        items: list[InstanceState] = []
        scanned = 0
        last_seq = 0
        remaining = 0
        async with contextlib.aclosing(scan(stream, subject, cursor or 1, wanted)) as records:
            async for seq, data, left in records:
                remaining = left
                scanned += 1
                last_seq = seq
                if data:
                    state = decode_state(data)
                    if status is None or state.status == status:
                        items.append(state)
                if len(items) >= limit or scanned >= scan_limit:
                    break
        return Page(items=items, next_cursor=last_seq + 1 if remaining > 0 else None)

    async def _direct_allowed(self, stream: str) -> bool:
        if self._direct is None:
            info = await self.js.stream_info(stream)
            self._direct = bool(info.config.allow_direct)
        return self._direct

    async def _scan_direct(
        self, stream: str, subject: str, start: int, wanted: int
    ) -> AsyncGenerator[tuple[int, bytes, int], None]:
        """(sequence, record, records left after it) by batched direct gets: each batch is
        one request answered with up to 256 messages and an end-of-batch marker."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        try:
            seq, left = start, wanted
            while left > 0:
                batch = min(256, left)
                request = {"seq": seq, "next_by_subj": subject, "batch": batch}
                await self.nc.publish(
                    f"$JS.API.DIRECT.GET.{stream}", msgspec.json.encode(request), reply=inbox
                )
                got = 0
                pending = 0
                while True:
                    msg = await sub.next_msg(timeout=5.0)
                    headers = msg.headers or {}
                    pending = int(headers.get("Nats-Num-Pending", 0) or 0)
                    if headers.get("Status"):  # 204 end of batch, 404 nothing (more)
                        break
                    got += 1
                    seq = int(headers["Nats-Sequence"]) + 1
                    yield seq - 1, msg.data, pending
                left -= got
                if got == 0 or pending == 0:
                    return
        finally:
            await sub.unsubscribe()

    async def _scan_consumer(
        self, stream: str, subject: str, start: int, wanted: int
    ) -> AsyncGenerator[tuple[int, bytes, int], None]:
        """The same through an ephemeral consumer (streams without direct gets, as R3
        buckets are configured)."""
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            filter_subject=subject,
            inactive_threshold=10.0,
            mem_storage=True,
            max_deliver=1,
        )
        sub = await self.js.pull_subscribe(subject, durable=None, stream=stream, config=config)
        try:
            pending = int((await sub.consumer_info()).num_pending or 0)
            while pending > 0 and wanted > 0:
                try:
                    msgs = await sub.fetch(min(pending, wanted, 256), timeout=2.0)
                except nats.errors.TimeoutError:
                    return
                for msg in msgs:
                    pending -= 1
                    wanted -= 1
                    yield msg.metadata.sequence.stream, msg.data, pending
        finally:
            await sub.unsubscribe()

    # -- changing ----------------------------------------------------------------------

    async def _mutate(self, workflow: str, instance_id: str, change: Any) -> InstanceState:
        self._check_workflow(workflow)
        if not INSTANCE_ID.match(instance_id):
            raise InstanceNotFoundError(f"no instance {instance_id!r} of {workflow!r}")
        result = await (await self.store()).mutate(workflow, instance_id, change)
        if result is None:
            raise InstanceNotFoundError(f"no instance {instance_id!r} of {workflow!r}")
        return result[0]

    async def pause(self, workflow: str, instance_id: str) -> InstanceState:
        """Stop the instance at its next step boundary; `resume` continues it."""

        def change(state: InstanceState) -> bool:
            if state.status == "paused":
                return False
            if state.status in TERMINAL:
                raise InvalidTransitionError(f"cannot pause a {state.status} instance")
            state.status = "paused"
            state.updated_at = utcnow()
            return True

        return await self._mutate(workflow, instance_id, change)

    async def resume(self, workflow: str, instance_id: str) -> InstanceState:
        """Continue a paused instance from where it stopped."""
        resumed = False

        def change(state: InstanceState) -> bool:
            nonlocal resumed
            if state.status != "paused":
                if state.status in TERMINAL:
                    raise InvalidTransitionError(f"cannot resume a {state.status} instance")
                return False
            state.status = "queued"
            state.updated_at = utcnow()
            resumed = True
            return True

        state = await self._mutate(workflow, instance_id, change)
        if resumed:
            message = RunMessage(
                kind="resume", instance_id=instance_id, generation=state.generation
            )
            await publish(
                self.js,
                self.names.run_subject(workflow),
                encode(message),
                msg_id=f"resume:{workflow}:{instance_id}:{uuid.uuid4().hex}",
            )
        return state

    async def terminate(self, workflow: str, instance_id: str) -> InstanceState:
        """End the instance now; a run in flight stops at its next step boundary."""

        def change(state: InstanceState) -> bool:
            if state.status in TERMINAL:
                if state.status == "terminated":
                    return False
                raise InvalidTransitionError(f"cannot terminate a {state.status} instance")
            state.status = "terminated"
            state.ended_at = state.updated_at = utcnow()
            return True

        return await self._mutate(workflow, instance_id, change)

    async def restart(self, workflow: str, instance_id: str) -> InstanceState:
        """Run the instance again from the start with the same params (a new generation)."""

        def change(state: InstanceState) -> bool:
            state.generation += 1
            state.status = "queued"
            state.steps = []
            state.inbox = []
            state.output = None
            state.error = None
            state.started_at = state.ended_at = None
            state.updated_at = utcnow()
            return True

        state = await self._mutate(workflow, instance_id, change)
        message = RunMessage(
            kind="start",
            instance_id=instance_id,
            params=state.params,
            generation=state.generation,
            trigger=state.trigger or Trigger(),
        )
        await publish(
            self.js,
            self.names.run_subject(workflow),
            encode(message),
            msg_id=f"start:{workflow}:{instance_id}:{state.generation}",
        )
        return state

    async def send_event(
        self,
        workflow: str,
        instance_id: str,
        event_type: str,
        payload: Any,
        event_id: str | None = None,
    ) -> str:
        """Send an event to one instance (for its `wait_for_event`); returns the event id."""
        state = await self.get(workflow, instance_id)
        if state.status in TERMINAL:
            raise InvalidTransitionError(f"cannot send an event to a {state.status} instance")
        eid = event_id or uuid.uuid4().hex
        message = RunMessage(
            kind="event",
            instance_id=instance_id,
            generation=state.generation,
            event_type=event_type,
            event_id=eid,
            payload=payload,
        )
        await publish(
            self.js,
            self.names.run_subject(workflow),
            encode(message),
            msg_id=f"signal:{workflow}:{instance_id}:{eid}",
        )
        return eid

    # -- the step cache ------------------------------------------------------------------

    async def invalidate_cache(
        self, workflow: str, step: str | None = None, prefix: str | None = None
    ) -> int:
        """Remove a workflow's cached step results (one step's; those whose key starts
        with `prefix`); returns how many entries went. Later runs compute them again."""
        self._check_workflow(workflow)
        try:
            kv = await self.js.key_value(cache_bucket(self.names.namespace))
        except nats.js.errors.BucketNotFoundError:
            return 0  # nothing was ever cached in this namespace
        return await StepCache(kv, self.nc, lease=1.0).invalidate(workflow, step, prefix)

    # -- shared rate limits --------------------------------------------------------------

    async def rate_limits(self, rates: dict[str, Rate] | None = None) -> LimitStates:
        """Each rate limit's state now: tokens available (negative: reserved by waiting
        steps) and any drain after a 429. The limits steps have used, with the rate their
        workers configured, plus `rates` (default: `self.rates`; never used: full)."""
        try:
            kv = await self.js.key_value(limits_bucket(self.names.namespace))
        except nats.js.errors.BucketNotFoundError:
            return await read_states(None, rates or self.rates)
        return await read_states(kv, rates or self.rates)


__all__ = ["Instances", "Page", "Started", "event_internal_id", "new_instance_id"]
