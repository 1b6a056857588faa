"""Request and response bodies of the gateway (msgspec), and strict decoding of requests.

JSON keys are camelCase, as the web app and the original Cloudflare worker use them. The
bodies the Python client decodes too (`WorkflowStatus`, `TriggerResponse`, …) live in
`shared.wire` and are re-exported here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec
from msgspec import Meta

from shared.bus import EVENT_NAME, INSTANCE_ID
from shared.events import PARAMS, PATTERN_MEANINGS
from shared.wire import (
    Body,
    ErrorDetail,
    EventsResponse,
    StartedRun,
    Status,
    TriggerResponse,
    WorkflowStatus,
)
from shared.workflow import InstanceState, StepRecord
from shared.workflow.gates import add_usage

# Params and event data deeper than this are refused: they would only ever be a mistake or
# an attack, and a worker must be able to decode every record it is given.
MAX_DEPTH = 64
MAX_EVENTS = 500

WorkflowId = Annotated[str, Meta(min_length=1, max_length=64)]


def whole(pattern: re.Pattern[str]) -> str:
    """`pattern` anchored at the very end: a final `$` also matches before a trailing
    newline, which would let `"name\\n"` through into a NATS subject or a KV key."""
    return pattern.pattern.removesuffix("$") + r"\Z"


InstanceId = Annotated[str, Meta(pattern=whole(INSTANCE_ID), max_length=100)]
EventName = Annotated[str, Meta(pattern=whole(EVENT_NAME), max_length=256)]
# What each pattern means, so that an error says so instead of quoting a regex.
MEANINGS = {
    **PATTERN_MEANINGS,
    whole(INSTANCE_ID): "1-100 letters, digits, '_' or '-', not starting with '-'",
    whole(EVENT_NAME): "an event name like 'resume/generation.requested'",
}
JsonObject = dict[str, Any]


# -- the original worker's API (/trigger, /status) ----------------------------------------


class TriggerRequest(Body, frozen=True, kw_only=True):
    """`POST /trigger`: start `workflow` with `params`; the same `instanceId` twice is one run."""

    workflow: WorkflowId
    params: JsonObject | None = None
    instance_id: InstanceId | None = None


class StatusRequest(Body, frozen=True, kw_only=True):
    """`POST /status`: the status of one instance."""

    workflow: WorkflowId
    instance_id: Annotated[str, Meta(min_length=1, max_length=100)]


# -- Inngest's Event API (/e/{eventKey}, /events) ------------------------------------------


class EventIn(Body, frozen=True, kw_only=True):
    """One Inngest event. An `id` makes sending it idempotent (24 h and more)."""

    name: EventName
    data: JsonObject | None = None
    id: Annotated[str, Meta(max_length=256)] | None = None
    ts: Annotated[int, Meta(ge=0)] | None = None
    v: Annotated[str, Meta(max_length=64)] | None = None
    user: JsonObject | None = None


# -- the instance resource -----------------------------------------------------------------


class CreateInstanceRequest(Body, frozen=True, kw_only=True):
    params: JsonObject | None = None
    instance_id: InstanceId | None = None


class StepRef(Body, frozen=True, kw_only=True):
    """A step by its recorded name (a repeated name's later calls are `name#2`, …)."""

    name: Annotated[str, Meta(min_length=1, max_length=256)]


class InstanceAction(Body, frozen=True, kw_only=True):
    """`PATCH …/status`: Cloudflare's instance status change; `restart` takes `from`
    (`{"name": step}`) to keep the results of the steps before that one."""

    status: Literal["pause", "resume", "terminate", "restart"]
    from_: StepRef | None = msgspec.field(default=None, name="from")


class TriggerInfo(Body, frozen=True, kw_only=True, omit_defaults=True):
    event: str | None = None
    event_id: str | None = None


class StepDetail(Body, frozen=True, kw_only=True, omit_defaults=True):
    seq: int
    name: str
    kind: str
    status: str
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    error: ErrorDetail | None = None
    retry_at: datetime | None = None
    wake_at: datetime | None = None
    event: str | None = None
    output: Any = None
    cached: bool = False  # the output came from the step cache
    # A quality gate's rejected attempts (value, problems, fallback, usage), for review.
    attempt_outputs: list[Any] | None = None
    needs_review: bool = False
    usage: dict[str, Any] | None = None


class InboxDetail(Body, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    type: str
    received_at: datetime
    consumed_by: str | None = None


class InstanceSummary(Body, frozen=True, kw_only=True, omit_defaults=True):
    workflow: str
    instance_id: str
    status: Status
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    error: ErrorDetail | None = None


class InstanceDetail(Body, frozen=True, kw_only=True, omit_defaults=True):
    workflow: str
    instance_id: str
    status: Status
    created_at: datetime
    generation: int = 0
    params: Any = None
    output: Any = None
    error: ErrorDetail | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    trigger: TriggerInfo | None = None
    needs_review: bool = False
    steps: list[StepDetail] = msgspec.field(default_factory=list)
    events: list[InboxDetail] = msgspec.field(default_factory=list)


class InstancePage(Body, frozen=True, kw_only=True):
    instances: list[InstanceSummary]
    next_cursor: str | None = None


class EventAccepted(Body, frozen=True, kw_only=True):
    workflow: str
    instance_id: str
    type: str
    event_id: str


class WorkflowInfo(Body, frozen=True, kw_only=True):
    id: str
    events: list[str]


class WorkflowList(Body, frozen=True, kw_only=True):
    workflows: list[WorkflowInfo]


# -- health and errors ---------------------------------------------------------------------


class NatsHealth(Body, frozen=True, kw_only=True, omit_defaults=True):
    connected: bool
    error: str | None = None


class Health(Body, frozen=True, kw_only=True):
    status: Literal["ok", "unavailable"]
    timestamp: str
    nats: NatsHealth


class ErrorBody(Body, frozen=True, kw_only=True, omit_defaults=True):
    """Every error: what went wrong and, when one field is to blame, which."""

    error: str
    field: str | None = None
    correlation_id: str | None = None


# -- conversions ---------------------------------------------------------------------------


def _error(info: Any) -> ErrorDetail | None:
    return None if info is None else ErrorDetail(name=info.name, message=info.message)


def status_of(state: InstanceState) -> WorkflowStatus:
    review = [step.name for step in state.steps if step.needs_review] or None
    usage = None
    for step in state.steps:
        usage = add_usage(usage, step.usage)
    extra: dict[str, Any] = {"needs_review": bool(review), "review_steps": review, "usage": usage}
    if state.status == "complete":
        return WorkflowStatus(status=state.status, output=state.output, **extra)
    return WorkflowStatus(status=state.status, error=_error(state.error), **extra)


def summary_of(state: InstanceState) -> InstanceSummary:
    return InstanceSummary(
        workflow=state.workflow,
        instance_id=state.instance_id,
        status=state.status,
        created_at=state.created_at,
        started_at=state.started_at,
        ended_at=state.ended_at,
        updated_at=state.updated_at,
        error=_error(state.error),
    )


def _step(record: StepRecord) -> StepDetail:
    duration = None
    if record.started_at is not None and record.ended_at is not None:
        duration = int((record.ended_at - record.started_at).total_seconds() * 1000)
    return StepDetail(
        seq=record.seq,
        name=record.name,
        kind=record.kind,
        status=record.status,
        attempts=record.attempts,
        started_at=record.started_at,
        ended_at=record.ended_at,
        duration_ms=duration,
        error=_error(record.error),
        retry_at=record.retry_at,
        wake_at=record.wake_at,
        event=record.event,
        output=record.result,
        cached=record.cached,
        attempt_outputs=[msgspec.to_builtins(o) for o in record.outputs] or None,
        needs_review=record.needs_review,
        usage=record.usage,
    )


def detail_of(state: InstanceState) -> InstanceDetail:
    trigger = None
    if state.trigger is not None and (state.trigger.event or state.trigger.event_id):
        trigger = TriggerInfo(event=state.trigger.event, event_id=state.trigger.event_id)
    return InstanceDetail(
        workflow=state.workflow,
        instance_id=state.instance_id,
        status=state.status,
        created_at=state.created_at,
        generation=state.generation,
        params=state.params,
        output=state.output,
        error=_error(state.error),
        started_at=state.started_at,
        ended_at=state.ended_at,
        updated_at=state.updated_at,
        trigger=trigger,
        needs_review=state.needs_review,
        steps=[_step(record) for record in state.steps],
        events=[
            InboxDetail(
                id=item.id,
                type=item.type,
                received_at=item.received_at,
                consumed_by=item.consumed_by,
            )
            for item in state.inbox
        ],
    )


# -- decoding ------------------------------------------------------------------------------


class BodyError(Exception):
    """A request body that cannot be used: `status` 400 (not JSON) or 422 (wrong shape)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        # msgspec quotes offending values in some messages: keep the answer small.
        self.message = message if len(message) <= 200 else message[:197] + "..."
        self.field = field


_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<pattern>.*)'$")
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _field_name(path: str) -> str | None:
    """msgspec's `$.a[0].b` → `a[0].b`; `$` → None; `$.data[...]` (inside a mapping) → `data`."""
    path = path.split("[...]", 1)[0].removeprefix(".")
    return path or None


def _explain(message: str) -> tuple[str, str | None]:
    """msgspec's validation message → (a message for the caller, the field to blame)."""
    path = None
    if match := _PATH.search(message):
        path = _field_name(match.group("path"))
        message = message[: match.start()]
    if match := _MISSING.match(message):
        name = match.group("name")
        path = f"{path}.{name}" if path else name
        message = f"missing required field `{name}`"
    elif match := _REGEX.match(message):
        # Say what the value must be rather than quoting the pattern.
        meaning = MEANINGS.get(match.group("pattern").replace("\\\\", "\\"))
        if meaning is not None:
            message = f"must be {meaning}"
    return message, path


def decode(raw: bytes, type_: Any, *, allow_empty: bool = False) -> Any:
    """Decode a JSON body into `type_`, or raise BodyError naming the field to blame."""
    if not raw.strip():
        if allow_empty:
            raw = b"null"
        else:
            raise BodyError(400, "the request body is empty; a JSON object is expected")
    try:
        # msgspec skips a field the type does not declare without checking its bytes:
        # a body is refused whole if any of it is not UTF-8 (RFC 8259 §8.1).
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, "the request body is not valid UTF-8") from None
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message, path = _explain(str(exc))
        raise BodyError(422, message, path) from None
    except msgspec.DecodeError as exc:
        raise BodyError(400, f"the request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise BodyError(400, "the request body is not valid UTF-8") from None
    except RecursionError:
        raise BodyError(400, "the request body is nested too deeply") from None
    return value


def check_params(workflow: str, params: JsonObject, field: str = "params") -> None:
    """Refuse params that do not decode into the workflow's Struct (`shared.events.PARAMS`):
    400 naming the field (`params.userId`), before anything is stored. A workflow without
    a Struct there (the demo, tests' own) takes any JSON object, as before."""
    struct = PARAMS.get(workflow)
    if struct is None:
        return
    try:
        msgspec.convert(params, struct)
    except msgspec.ValidationError as exc:
        message, path = _explain(str(exc))
        if message.startswith("Invalid enum value") and path is not None:
            choices = _choices(struct, path)
            if choices:
                message = f"{message}; must be one of {', '.join(map(repr, choices))}"
        raise BodyError(400, message, f"{field}.{path}" if path else field) from None


def _choices(struct: type[msgspec.Struct], name: str) -> tuple[Any, ...]:
    """The values a top-level `Literal` field of `struct` allows (by its wire name)."""
    for info in msgspec.structs.fields(struct):
        if info.encode_name == name and get_origin(info.type) is Literal:
            return get_args(info.type)
    return ()


def check_depth(value: Any, field: str, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` levels (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise BodyError(422, f"nested deeper than {limit} levels", field)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


__all__ = [
    "Body",
    "ErrorDetail",
    "EventsResponse",
    "StartedRun",
    "Status",
    "TriggerResponse",
    "WorkflowStatus",
]
