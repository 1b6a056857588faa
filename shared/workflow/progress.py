"""End-user progress: a workflow's declared step labels, and the events the engine emits.

A workflow declares its progress once (`@workflow(..., progress=Progress(...))`): a label
per step, in order, and which output keys make up its public summary. As a run advances,
the engine publishes one `ProgressEvent` per change on `<ns>.progress.<workflow>.<id>`
(stream `<ns>_progress`); the gateway pushes those to the browser. Nothing in an event
comes from params, step results or errors, except the summary's whitelisted numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from shared.bus import Names
from shared.workflow.model import TERMINAL, InstanceState, encode

log = logging.getLogger(__name__)

# Progress is for a person watching a page: kept a day, at most this many per instance.
PROGRESS_MAX_AGE = 24 * 3600.0
PROGRESS_PER_INSTANCE = 256
DEFAULT_FAILED = "Something went wrong. Please try again."
TERMINATED = "This was cancelled."

Outcome = Literal["complete", "failed", "terminated"]


@dataclass(frozen=True)
class Progress:
    """A workflow's user-facing progress.

    `steps`: (step name, label) in the order a run meets them. A name ending in `*`
    matches every step starting with the rest (`fetch-*`: one label for a step per job
    board); repeats of a step (`name#2`) count as the step. `summary`: the output keys
    a finished run shows the user, numbers and booleans only (strings may carry personal
    data, so they are never exposed). `failed`: the public message of a failed run.
    """

    steps: tuple[tuple[str, str], ...]
    summary: tuple[str, ...] = ()
    failed: str = DEFAULT_FAILED

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("progress needs at least one step label")
        seen = set()
        for name, label in self.steps:
            if not name or not label:
                raise ValueError("each progress step needs a step name and a label")
            if name in seen:
                raise ValueError(f"progress step {name!r} is declared twice")
            seen.add(name)

    @property
    def total(self) -> int:
        return len(self.steps)

    def position(self, step_name: str) -> int | None:
        """The declared position a recorded step name counts for, or None."""
        base = step_name.split("#", 1)[0]
        for i, (name, _) in enumerate(self.steps):
            if name.endswith("*"):
                if base.startswith(name[:-1]):
                    return i
            elif base == name:
                return i
        return None


def progress(
    steps: dict[str, str], *, summary: tuple[str, ...] = (), failed: str = DEFAULT_FAILED
) -> Progress:
    """`Progress` from a dict of step name → label (in order)."""
    return Progress(steps=tuple(steps.items()), summary=summary, failed=failed)


class ProgressEvent(msgspec.Struct, kw_only=True):
    """What the end user sees of one run at one moment (the gateway's payload)."""

    status: str
    step: str | None
    label: str
    done: int
    total: int
    pct: int
    outcome: Outcome | None = None
    summary: dict[str, float | int | bool] | None = None
    message: str | None = None

    @property
    def final(self) -> bool:
        return self.outcome is not None


_progress_decoder = msgspec.json.Decoder(ProgressEvent)


def decode_progress(data: bytes) -> ProgressEvent:
    return _progress_decoder.decode(data)


def public_summary(plan: Progress, output: Any) -> dict[str, float | int | bool]:
    """The whitelisted keys of an output that are numbers or booleans."""
    if not isinstance(output, dict):
        return {}
    found: dict[str, float | int | bool] = {}
    for key in plan.summary:
        value = output.get(key)
        if isinstance(value, bool | int | float):
            found[key] = value
    return found


def snapshot(plan: Progress, state: InstanceState) -> ProgressEvent:
    """The progress of a record: how many declared steps are behind it, and what is next."""
    done = 0
    for record in state.steps:
        if record.status == "complete":
            where = plan.position(record.name)
            if where is not None:
                done = max(done, where + 1)
    total = plan.total
    if state.status == "complete":
        done = total
    nxt = min(done, total - 1)
    step, label = plan.steps[nxt]
    event = ProgressEvent(
        status=state.status,
        step=step.rstrip("*").rstrip("-") if step.endswith("*") else step,
        label=label,
        done=done,
        total=total,
        pct=round(100 * done / total),
    )
    if state.status == "complete":
        output = state.output
        # A workflow that reports `success: false` did not succeed, whatever its status.
        if isinstance(output, dict) and output.get("success") is False:
            event.outcome, event.message = "failed", plan.failed
        else:
            event.outcome, event.summary = "complete", public_summary(plan, output)
    elif state.status == "errored":
        event.outcome, event.message = "failed", plan.failed
    elif state.status == "terminated":
        event.outcome, event.message = "terminated", TERMINATED
    return event


def progress_subject(names: Names, workflow: str, instance_id: str) -> str:
    return f"{names.namespace}.progress.{workflow}.{instance_id}"


def progress_stream(names: Names) -> str:
    return f"{names.namespace}_progress"


def progress_stream_config(names: Names, *, replicas: int = 1) -> StreamConfig:
    """`<ns>_progress`: a day of progress events, the latest few hundred per instance."""
    return StreamConfig(
        name=progress_stream(names),
        subjects=[f"{names.namespace}.progress.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=PROGRESS_MAX_AGE,
        max_msgs_per_subject=PROGRESS_PER_INSTANCE,
        num_replicas=replicas,
        allow_direct=True,
    )


class ProgressSink(Protocol):
    """Where the execution reports a run's progress (the worker's publisher, or a list)."""

    async def emit(self, plan: Progress, state: InstanceState) -> None: ...


class ProgressPublisher:
    """Publishes progress events to the progress stream, fire and forget.

    Progress is advisory: a lost event is superseded by the next, and the gateway reads
    the record for the final state. So a core publish (no ack round trip per step), with
    a `Nats-Msg-Id` naming the moment, which makes a replay's repeat a duplicate.
    """

    def __init__(self, nc: NATS, names: Names) -> None:
        self.nc = nc
        self.names = names

    async def emit(self, plan: Progress, state: InstanceState) -> None:
        event = snapshot(plan, state)
        msg_id = (
            f"progress:{state.workflow}:{state.instance_id}:{state.generation}:"
            f"{event.done}:{event.status}"
        )
        try:
            await self.nc.publish(
                progress_subject(self.names, state.workflow, state.instance_id),
                encode(event),
                headers={"Nats-Msg-Id": msg_id},
            )
        except Exception as exc:  # noqa: BLE001 - progress never fails a run
            log.warning(
                "progress of %s/%s not published: %s", state.workflow, state.instance_id, exc
            )


class ProgressList:
    """A `ProgressSink` that keeps events in a list (tests)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ProgressEvent]] = []

    async def emit(self, plan: Progress, state: InstanceState) -> None:
        self.events.append((state.instance_id, snapshot(plan, state)))


class ProgressFeed:
    """Reads the progress stream: the last event of an instance, and the live ones after it."""

    def __init__(self, nc: NATS, names: Names) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names

    async def last(self, workflow: str, instance_id: str) -> tuple[int, ProgressEvent] | None:
        """The latest event of an instance and its stream sequence; None when there is none."""
        try:
            msg = await self.js.get_last_msg(
                progress_stream(self.names),
                progress_subject(self.names, workflow, instance_id),
                direct=True,
            )
        except nats.js.errors.NotFoundError:
            return None
        if msg.data is None or msg.seq is None:
            return None
        return msg.seq, decode_progress(msg.data)

    async def follow(
        self, workflow: str, instance_id: str, after: int | None, heartbeat: float
    ) -> AsyncIterator[tuple[int, ProgressEvent] | None]:
        """Events of an instance as they are published: those after stream sequence `after`,
        or (None) the latest one and every one after it. Yields None when `heartbeat`
        seconds pass without one (the caller keeps its connection alive)."""
        if after is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1
            )
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
        sub = await self.js.subscribe(
            progress_subject(self.names, workflow, instance_id),
            stream=progress_stream(self.names),
            ordered_consumer=True,
            config=config,
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=heartbeat)
                except nats.errors.TimeoutError:
                    yield None
                    continue
                yield msg.metadata.sequence.stream, decode_progress(msg.data)
        finally:
            with contextlib.suppress(nats.errors.Error, OSError, asyncio.TimeoutError):
                await sub.unsubscribe()

    async def publish_terminated(self, workflow: str, instance_id: str, generation: int) -> None:
        """An operator ended the instance: its last event, marked terminated (no run will)."""
        last = await self.last(workflow, instance_id)
        event = (
            last[1]
            if last is not None
            else ProgressEvent(status="terminated", step=None, label="", done=0, total=0, pct=0)
        )
        event.status, event.outcome, event.message = "terminated", "terminated", TERMINATED
        event.summary = None
        await self.nc.publish(
            progress_subject(self.names, workflow, instance_id),
            encode(event),
            headers={"Nats-Msg-Id": f"progress:{workflow}:{instance_id}:{generation}:terminated"},
        )


def final_of(state: InstanceState, last: ProgressEvent | None) -> ProgressEvent | None:
    """The final event of a finished record: its last progress event when that is final,
    else one made from the record's status alone (no summary). None while it runs."""
    if state.status not in TERMINAL:
        return None
    if last is not None and last.final:
        return last
    base = last or ProgressEvent(status=state.status, step=None, label="", done=0, total=0, pct=0)
    event = msgspec.structs.replace(base, status=state.status, summary=None)
    if state.status == "complete":
        event.outcome = "complete"
        event.pct = 100
        event.done = event.total
    elif state.status == "errored":
        event.outcome, event.message = "failed", DEFAULT_FAILED
    else:
        event.outcome, event.message = "terminated", TERMINATED
    return event


def current_of(state: InstanceState, last: ProgressEvent | None) -> ProgressEvent:
    """What to show of a record now: its final event, or its last progress event (status
    as the record says), or a bare one when it has published none yet."""
    final = final_of(state, last)
    if final is not None:
        return final
    if last is not None:
        return msgspec.structs.replace(last, status=state.status)
    return ProgressEvent(status=state.status, step=None, label="", done=0, total=0, pct=0)
