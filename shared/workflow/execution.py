"""One delivery's execution: decode → record → replay → park or finish.

No NATS here: the record lives behind an `InstanceStore`, wake-ups go to a `Timers`, and
the result is an `Outcome` that the worker turns into what JetStream hears (ack, ack and
wait for the confirmation, or a dead letter and term). NATS trouble while recording
raises `EngineUnavailable` (or one of `INFRA_ERRORS`): the worker naks with a delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec

from shared.bus import INSTANCE_ID, Names
from shared.crypto import ErasedError, UserKeys, is_sealed
from shared.errors import StepResultTooLargeError
from shared.logs import RUN
from shared.metrics import metrics
from shared.workflow.cache import StepServices
from shared.workflow.context import (
    INFRA_ERRORS,
    Context,
    EngineUnavailable,
    Halt,
    Run,
    Suspend,
    Unchanged,
    ceil_second,
    error_info,
)
from shared.workflow.definition import Workflow
from shared.workflow.model import (
    TERMINAL,
    ErrorInfo,
    InboxEvent,
    InstanceState,
    RunMessage,
    Trigger,
    decode_event,
    decode_run,
    utcnow,
)
from shared.workflow.progress import ProgressSink
from shared.workflow.records import Conflict, InstanceStore

log = logging.getLogger(__name__)

# A run whose record keeps changing under it (events arriving) replays at most this often
# in one delivery before handing the message back.
MAX_REPLAYS = 20


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the execution needs of one JetStream message."""

    subject: str
    data: bytes
    stream_seq: int
    delivered: int = 1  # how often the server has delivered it (1 the first time)
    record_written: bool = False  # the publisher wrote the `queued` record itself
    published: datetime | None = None  # when the stream stored it (queue time of a start)


@dataclass(frozen=True, slots=True)
class Reject:
    """The message can never be processed: dead-letter it and term it."""

    reason: str
    error: ErrorInfo | None = None


# "ack": done with it (parked, halted, stale, or nothing to do); "finished": the instance
# ended, ack and wait for the server's confirmation before counting it done.
Outcome = Literal["ack", "finished"] | Reject


class Timers(Protocol):
    """Where a parked instance's wake-up is scheduled."""

    async def schedule(
        self, workflow: str, instance_id: str, key: str, when: datetime, generation: int
    ) -> None:
        """Deliver a `wake` run message for the instance at `when` (whole seconds); a
        newer schedule for the same (instance, key) replaces an older one."""
        ...


class Execution:
    """Executes deliveries of one service's workflows against one store."""

    def __init__(
        self,
        store: InstanceStore,
        timers: Timers,
        names: Names,
        deps: Any = None,
        crash_at: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.timers = timers
        self.names = names
        self.deps = deps
        # A fault hook for crash tests (WF_CRASH_AT): called at named points.
        self.crash_at = crash_at or (lambda point: None)
        # The step cache and rate limits (set by the worker), for `cache=` / `limit=`.
        self.services: StepServices | None = None
        # Where end-user progress goes (set by the worker); None: not reported.
        self.progress: ProgressSink | None = None
        # The per-user data keys that open sealed params and payloads (set by the worker).
        self.keys: UserKeys | None = None

    def _progress_of(self, wf: Workflow) -> Callable[[InstanceState], Awaitable[None]] | None:
        sink, plan = self.progress, wf.progress
        if sink is None or plan is None:
            return None

        async def report(state: InstanceState) -> None:
            await sink.emit(plan, state)

        return report

    async def execute(self, wf: Workflow, delivery: Delivery) -> Outcome:
        message = self.decode(wf, delivery)
        if isinstance(message, Reject):
            return message
        # Every line logged while this delivery runs names its run (shared.logs).
        token = RUN.set((wf.id, message.instance_id, message.generation))
        try:
            return await self._execute(wf, delivery, message)
        finally:
            RUN.reset(token)

    async def _execute(self, wf: Workflow, delivery: Delivery, message: RunMessage) -> Outcome:
        if is_sealed(message.params) or is_sealed(message.payload):
            if self.keys is None:
                return Reject(
                    "sealed message but no DATA_MASTER_KEYS",
                    ErrorInfo(name="ConfigError", message="DATA_MASTER_KEYS is not set"),
                )
            try:
                message.params = await self.keys.open(message.params)
                message.payload = await self.keys.open(message.payload)
            except ErasedError:
                log.info("%s/%s: its user's data was erased; dropped", wf.id, message.instance_id)
                return "ack"
        state, revision = await self._record(wf, message, delivery)
        if state is None or message.generation != state.generation:
            if message.kind != "start":
                log.info(
                    "%s/%s: %s message for an unknown or restarted instance; dropped",
                    wf.id,
                    message.instance_id,
                    message.kind,
                )
            return "ack"
        run = Run(self.store, wf, state, revision, self.crash_at)
        run.services = self.services
        run.progress = self._progress_of(wf)
        if message.kind == "event" and not await self._deliver_event(
            run, message, delivery.stream_seq
        ):
            return "ack"
        if run.state.status in TERMINAL or run.state.status == "paused":
            return "ack"
        if run.state.status != "running":
            first: list[InstanceState] = []

            def set_running(state: InstanceState) -> None:
                fresh = state.started_at is None
                _set_running(state)
                if fresh:
                    first.append(state)

            try:
                await run.commit(set_running)
            except Halt:
                return "ack"
            if first:
                _count_start(wf, first[-1], delivery)
        if run.progress is not None:
            # One per delivery; a repeat of the same moment is a duplicate (its msg id).
            await run.progress(run.state)
        return await self._replay(wf, run)

    # -- decode ------------------------------------------------------------------------

    def decode(self, wf: Workflow, delivery: Delivery) -> RunMessage | Reject:
        """The run message a delivery carries (an event is a start), or why it has none."""
        if delivery.subject.startswith(self.names.events_prefix):
            try:
                envelope = decode_event(delivery.data)
            except (msgspec.DecodeError, RecursionError) as exc:
                return Reject(
                    "undecodable event", ErrorInfo(name="InvalidEventError", message=str(exc))
                )
            iid = (
                envelope.id
                if envelope.id and INSTANCE_ID.match(envelope.id)
                else f"seq-{delivery.stream_seq}"
            )
            return RunMessage(
                kind="start",
                instance_id=iid,
                params=envelope.data,
                trigger=Trigger(event=envelope.name, event_id=envelope.id),
            )
        if delivery.subject not in (self.names.run_subject(wf.id), self.names.wake_subject(wf.id)):
            return Reject(f"unknown workflow for subject {delivery.subject}")
        try:
            message = decode_run(delivery.data)
        except (msgspec.DecodeError, RecursionError) as exc:
            return Reject(
                "undecodable run message", ErrorInfo(name="InvalidEventError", message=str(exc))
            )
        if not INSTANCE_ID.match(message.instance_id):
            return Reject("invalid instance id")
        return message

    # -- record ------------------------------------------------------------------------

    async def _record(
        self, wf: Workflow, message: RunMessage, delivery: Delivery
    ) -> tuple[InstanceState | None, int]:
        """The instance's record: read, or (for a start) created if missing."""
        if message.kind == "start" and delivery.delivered == 1 and not delivery.record_written:
            # Most first deliveries of a start find no record: create first and read only
            # when it exists (one round trip fewer than read-then-create).
            fresh = _fresh_state(wf, message)
            created = await self.store.create(fresh)
            if created is not None:
                _count_start(wf, fresh, delivery)
                return fresh, created
        current = await self.store.get(wf.id, message.instance_id)
        if current is not None:
            return current
        if message.kind != "start":
            return None, 0
        fresh = _fresh_state(wf, message)
        created = await self.store.create(fresh)
        if created is not None:
            _count_start(wf, fresh, delivery)
            return fresh, created
        current = await self.store.get(wf.id, message.instance_id)
        if current is None:
            raise EngineUnavailable("instance record vanished")
        return current

    async def _deliver_event(self, run: Run, message: RunMessage, stream_seq: int) -> bool:
        """Put an event in the instance's inbox; True when a waiting run should resume."""
        event_id = message.event_id or f"seq-{stream_seq}"  # stable across redeliveries

        def add(state: InstanceState) -> bool:
            if state.status in TERMINAL:
                raise Unchanged(False)
            if any(item.id == event_id for item in state.inbox):
                raise Unchanged(state.status == "waiting")
            state.inbox.append(
                InboxEvent(
                    id=event_id,
                    type=message.event_type or "",
                    payload=message.payload,
                    received_at=utcnow(),
                )
            )
            return state.status == "waiting"

        try:
            return bool(await run.commit_unchecked(add))
        except Halt:
            return False

    # -- replay ------------------------------------------------------------------------

    async def _replay(self, wf: Workflow, run: Run) -> Outcome:
        ctx: Context[Any] = Context(run, self.deps)
        for _ in range(MAX_REPLAYS):
            run.cursor = 0
            run.names.clear()
            try:
                params = run.state.params
                if wf.params_type is not None:
                    try:
                        params = msgspec.convert(params, wf.params_type)
                    except msgspec.ValidationError as exc:
                        await self._finish(
                            run,
                            error=ErrorInfo(
                                name="InvalidParamsError", message=f"invalid params: {exc}"
                            ),
                        )
                        return "finished"
                output = await wf.run(ctx, params)
            except Suspend as suspend:
                if await self._park(wf, run, suspend):
                    return "ack"
                continue  # the record changed under us (an event arrived): replay
            except Halt:
                return "ack"
            except (EngineUnavailable, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - the workflow's own failure ends it
                log.info(
                    "%s/%s errored: %s: %s", wf.id, run.state.instance_id, type(exc).__name__, exc
                )
                await self._finish(run, error=error_info(exc))
                return "finished"
            else:
                self.crash_at("after_last_step_before_ack")
                await self._finish(run, output=output)
                return "finished"
        raise EngineUnavailable("instance kept changing during replay")

    # -- park / finish -----------------------------------------------------------------

    async def _park(self, wf: Workflow, run: Run, suspend: Suspend) -> bool:
        """Mark the instance waiting and schedule its wake-up; False if the record moved."""
        revision = run.revision
        run.state.status = "waiting"
        run.state.updated_at = utcnow()
        try:
            run.revision = await self.store.update(run.state, revision)
        except Conflict:
            await run.reload()
            return False
        except INFRA_ERRORS as exc:
            raise EngineUnavailable(str(exc)) from exc
        await self.timers.schedule(
            wf.id,
            run.state.instance_id,
            suspend.key,
            ceil_second(suspend.until),
            run.state.generation,
        )
        if run.progress is not None:
            await run.progress(run.state)
        return True

    async def _finish(
        self,
        run: Run,
        *,
        output: Any = None,
        error: ErrorInfo | None = None,
    ) -> None:
        def finish(state: InstanceState) -> InstanceState:
            if state.status in TERMINAL or state.generation != run.generation:
                raise Unchanged(None)
            state.status = "errored" if error is not None else "complete"
            state.output = None if error is not None else output
            state.error = error
            state.ended_at = utcnow()
            return state

        try:
            ended = await run.commit_unchecked(finish)
        except StepResultTooLargeError as exc:
            await run.reload()
            await self._finish(run, error=error_info(exc))
            return
        if run.progress is not None and run.state.status in TERMINAL:
            await run.progress(run.state)
        if ended is not None:  # this delivery ended it (not a replica or a terminate)
            m = metrics().workflow(ended.workflow)
            m.finished[ended.status].inc()
            if ended.started_at is not None and ended.ended_at is not None:
                took = (ended.ended_at - ended.started_at).total_seconds()
                m.run_duration[ended.status].observe(max(0.0, took))


def _count_start(wf: Workflow, state: InstanceState, delivery: Delivery) -> None:
    """A run (generation) started: count it, and how long it was queued."""
    m = metrics().workflow(wf.id)
    m.started.inc()
    queued = delivery.published if delivery.published is not None else state.created_at
    if queued is not None and state.started_at is not None:
        m.queue_wait.observe(max(0.0, (state.started_at - queued).total_seconds()))


def _fresh_state(wf: Workflow, message: RunMessage) -> InstanceState:
    now = utcnow()
    return InstanceState(
        workflow=wf.id,
        instance_id=message.instance_id,
        status="running",
        params=message.params,
        created_at=now,
        started_at=now,
        updated_at=now,
        trigger=message.trigger,
        generation=message.generation,
    )


def _set_running(state: InstanceState) -> None:
    if state.status in TERMINAL or state.status == "paused":
        raise Unchanged(None)
    if state.status == "running":
        raise Unchanged(None)
    state.status = "running"
    state.started_at = state.started_at or utcnow()
