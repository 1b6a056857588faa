"""What the engine stores and sends: the instance record and the run messages (msgspec)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from shared.wire import Status  # one literal for the records and the gateway's answers

TERMINAL: frozenset[str] = frozenset({"errored", "terminated", "complete"})
StepStatus = Literal["complete", "errored", "retrying", "sleeping", "waiting"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ErrorInfo(msgspec.Struct, frozen=True):
    """An error as the web app sees it: Cloudflare's `{name, message}`."""

    name: str
    message: str


class AttemptOutput(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One attempt of a gated step whose value the gate rejected, kept for a reviewer."""

    round: int  # 0 for the first attempt
    value: Any = None
    problems: list[str] = msgspec.field(default_factory=list)
    fallback: bool = False  # made on the step's fallback model
    usage: Any = None  # what this attempt's calls cost (StepMeter snapshot)
    at: datetime | None = None


class StepRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One step of one run: what it did, how often it tried and what it returned."""

    seq: int  # position in the run's step sequence (0-based)
    name: str  # the step's name as called (repeats get "#2", "#3", …)
    kind: Literal["do", "sleep", "wait"] = "do"
    status: StepStatus
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: ErrorInfo | None = None
    result: Any = None
    retry_at: datetime | None = None  # a failed attempt's next try, not before
    wake_at: datetime | None = None  # a sleep's end, or a wait's deadline
    event: str | None = None  # the event type a wait is for
    cached: bool = False  # the result came from the step cache; the function did not run
    # Gated steps (`validate=`): the rejected attempts, and whether the result is the best
    # of them rather than one that passed.
    outputs: list[AttemptOutput] = msgspec.field(default_factory=list)
    needs_review: bool = False
    usage: Any = None  # summed usage the step's calls reported (tokens, cost, models)


class InboxEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event sent to one instance, kept until a `wait_for_event` consumes it."""

    id: str
    type: str
    payload: Any = None
    received_at: datetime
    consumed_by: str | None = None


class Trigger(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How an instance was started: by an event (name and id) or by a direct trigger."""

    event: str | None = None
    event_id: str | None = None


class InstanceState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The whole durable record of one workflow instance: one KV value, one read."""

    workflow: str
    instance_id: str
    status: Status
    params: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    generation: int = 0  # bumped by restart; older messages are ignored
    trigger: Trigger | None = None
    steps: list[StepRecord] = msgspec.field(default_factory=list)
    inbox: list[InboxEvent] = msgspec.field(default_factory=list)
    # The list index's entries for this record (stream sequences in `<ns>_index`) and the
    # group they file it under; kept by `InstanceStore`, never by workflow code.
    index: list[int] = msgspec.field(default_factory=list)
    indexed_as: str | None = None
    # As stored only: the whole record sealed with its user's data key (shared/crypto.py);
    # the fields beside it are the readable header. Never set on a record in memory.
    sealed: bytes | None = None  # JSON: base64 (msgspec's, in C)

    @property
    def needs_review(self) -> bool:
        """A gated step kept an attempt its gate rejected: a person should look at it."""
        return any(step.needs_review for step in self.steps)

    def step_at(self, seq: int) -> StepRecord | None:
        steps = self.steps
        if seq < len(steps) and steps[seq].seq == seq:
            return steps[seq]
        for record in steps:
            if record.seq == seq:
                return record
        return None

    def put_step(self, record: StepRecord) -> None:
        for i, existing in enumerate(self.steps):
            if existing.seq == record.seq:
                self.steps[i] = record
                return
        self.steps.append(record)
        self.steps.sort(key=lambda r: r.seq)


class RunMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A message on `<ns>.runs.<workflow>`: start, wake, event, resume."""

    kind: Literal["start", "wake", "event", "resume"]
    instance_id: str
    generation: int = 0
    params: Any = None
    trigger: Trigger | None = None
    # kind == "event": an event sent to this instance
    event_type: str | None = None
    event_id: str | None = None
    payload: Any = None


class EventEnvelope(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An Inngest-style event as stored on `<ns>.events.<name>`."""

    name: str
    data: Any = msgspec.field(default_factory=dict)
    id: str | None = None  # the internal event id (also the instance id it starts)
    ts: int | None = None  # milliseconds since the epoch
    v: str | None = None
    user: Any = None


class DeadLetter(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What could not be processed, and why; published to `<ns>.dlq.<workflow>`."""

    workflow: str
    reason: str
    subject: str
    stream_seq: int | None = None
    deliveries: int | None = None
    instance_id: str | None = None
    error: ErrorInfo | None = None
    payload_preview: str = ""
    recorded_at: datetime


_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(InstanceState)
_run_decoder = msgspec.json.Decoder(RunMessage)
_event_decoder = msgspec.json.Decoder(EventEnvelope)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode_state(data: bytes) -> InstanceState:
    return _state_decoder.decode(data)


def decode_run(data: bytes) -> RunMessage:
    return _run_decoder.decode(data)


def decode_event(data: bytes) -> EventEnvelope:
    return _event_decoder.decode(data)
