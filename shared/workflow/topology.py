"""The engine's JetStream topology: streams, buckets and durable consumers (idempotent)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)

from shared.bus import Names, ensure_bucket
from shared.config import EngineSettings
from shared.workflow.definition import Workflow
from shared.workflow.progress import progress_stream_config
from shared.workflow.store import ensure_msg_ttl, index_stream_config

DEFAULT_MAX_ACK_PENDING = 256
STREAM_NAME_IN_USE = 10058  # a stream of that name exists with another configuration

# A consumer's spec without its Workflow (the gateway knows workflows only by catalog).
ConsumerSpec = Workflow | tuple[str, tuple[str, ...], int | None]


async def ensure_topology(
    js: JetStreamContext,
    names: Names,
    *,
    max_bytes: int = 1024**3,
    dedup_window: float = 24 * 3600.0,
    replicas: int = 1,
) -> None:
    """Create (or bring up to date) the streams and buckets of one namespace.

    - work: events and run messages; `discard: new`, so a full disk refuses publishes
      (the gateway answers 503) instead of dropping unprocessed messages.
    - timers: one scheduled message per pending timer (NATS 2.12 message schedules, which
      cannot live in a discard-new stream); at its time the server emits a wake message,
      which the work stream sources, so a workflow's consumer sees it like any other.
    - dead letters, and the instance and meta buckets.
    - the list index (`<ns>_index`) of the instance bucket, whose records may expire.
    """
    ns = names.namespace
    timers = StreamConfig(
        name=names.timer_stream,
        subjects=[f"{ns}.timers.>", f"{ns}.wake.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        allow_msg_schedules=True,
        allow_msg_ttl=True,
    )
    work = StreamConfig(
        name=names.stream,
        subjects=[f"{ns}.events.>", f"{ns}.runs.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_bytes=max_bytes,
        max_age=30 * 24 * 3600.0,
        duplicate_window=dedup_window,
        num_replicas=replicas,
        sources=[StreamSource(name=names.timer_stream, filter_subject=f"{ns}.wake.>")],
    )
    dlq = StreamConfig(
        name=names.dlq_stream,
        subjects=[f"{ns}.dlq.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_bytes=max(8 * 1024**2, max_bytes // 16),
        num_replicas=replicas,
    )
    await _ensure_stream(js, timers)  # first: the work stream sources it
    # End-user progress (shared/workflow/progress.py): a day of it, a few hundred each.
    for config in (work, dlq, progress_stream_config(names, replicas=replicas)):
        await _ensure_stream(js, config)
    for bucket in (names.state_bucket, names.meta_bucket):
        await ensure_bucket(js, bucket, replicas=replicas)
    # The list index and per-message TTLs on records (retention): shared.workflow.store.
    await _ensure_stream(js, index_stream_config(names, replicas=replicas))
    await ensure_msg_ttl(js, names)


def explicit_fields(config: Any) -> dict[str, Any]:
    """The API fields of a nats-py config that differ from its class's defaults: what we
    chose, as opposed to what the server may fill in (a 2-minute duplicate window)."""
    defaults = type(config)().as_dict()
    return {k: v for k, v in config.as_dict().items() if defaults.get(k) != v}


def config_matches(wanted: Any, actual: Any) -> bool:
    """Whether every field set in `wanted` (an API dict) has that value in `actual`."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            config_matches(value, actual.get(key)) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(wanted) == len(actual)
            and all(config_matches(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return bool(wanted == actual)


# Every ensure_* below reads first and writes only what is missing or different, so a
# service whose NATS user may not change topology (shared/natsauth.py) starts once the
# admin has made it (`howlerhire nats setup`).


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        info = await js.stream_info(config.name or "")
    except nats.js.errors.NotFoundError:
        info = None
    if info is not None and config_matches(explicit_fields(config), info.config.as_dict()):
        return
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)


def consumer_config(names: Names, wf: ConsumerSpec, settings: EngineSettings) -> ConsumerConfig:
    """The durable consumer of one workflow: its run subject plus its trigger events.

    `max_ack_pending` is the workflow's concurrency limit: the server enforces it across
    every replica. Redelivery waits back off after crashes; `max_deliver` bounds them.
    """
    if isinstance(wf, Workflow):
        wf_id, events, concurrency = wf.id, wf.on, wf.concurrency
    else:
        wf_id, events, concurrency = wf
    backoff = []
    wait = settings.ack_wait
    for _ in range(max(1, settings.max_deliver - 1)):
        backoff.append(wait)
        wait = min(wait * 2, 600.0)
    return ConsumerConfig(
        durable_name=names.consumer(wf_id),
        filter_subjects=[
            names.run_subject(wf_id),
            names.wake_subject(wf_id),
            *(names.event_subject(e) for e in events),
        ],
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW,
        ack_wait=settings.ack_wait,
        max_deliver=settings.max_deliver,
        backoff=backoff,
        max_ack_pending=concurrency or DEFAULT_MAX_ACK_PENDING,
        max_waiting=512,
    )


async def ensure_consumers(
    js: JetStreamContext,
    names: Names,
    workflows: Iterable[ConsumerSpec],
    settings: EngineSettings,
    *,
    create_only: bool = False,
) -> None:
    """Create (and, unless `create_only`, update) the durable consumers. Idempotent.

    Workers own their workflows' consumers and bring them up to date (a changed
    concurrency limit, say); the gateway only makes sure they exist before it accepts
    events, without undoing a worker's settings (`create_only=True`).
    """
    workflows = list(workflows)
    for wf in workflows:
        config = consumer_config(names, wf, settings)
        try:
            info = await js.consumer_info(names.stream, config.durable_name or "")
            if create_only or config_matches(explicit_fields(config), info.config.as_dict()):
                continue
        except nats.js.errors.NotFoundError:
            pass
        await js.add_consumer(names.stream, config)
    await ensure_advisories(
        js, names, [wf.id if isinstance(wf, Workflow) else wf[0] for wf in workflows]
    )


def advisory_stream(names: Names) -> str:
    return f"{names.namespace}_advisories"


def dead_letter_consumer(names: Names, workflow_id: str) -> str:
    return f"{names.namespace}_dead_letters_{workflow_id}"


def advisory_subject(names: Names, workflow_id: str) -> str:
    """The server's "gave up on a message" advisory for one workflow's consumer."""
    return (
        f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{names.stream}.{names.consumer(workflow_id)}"
    )


async def ensure_advisories(
    js: JetStreamContext, names: Names, workflow_ids: Iterable[str]
) -> None:
    """Max-deliveries advisories are captured in a stream of their own, so that dead
    letters are recorded even when no worker is listening at the moment the server gives
    up. Each workflow has its own durable consumer, filtered to its advisories: with one
    shared consumer, a worker of one service took (and acked) another service's
    advisories, and those instances were never marked errored."""
    adv = StreamConfig(
        name=advisory_stream(names),
        subjects=[f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{names.stream}.*"],
        storage=StorageType.FILE,
        max_age=7 * 24 * 3600.0,
    )
    try:
        await js.stream_info(advisory_stream(names))
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await js.add_stream(adv)
    for wf_id in workflow_ids:
        dead_letters = ConsumerConfig(
            durable_name=dead_letter_consumer(names, wf_id),
            filter_subject=advisory_subject(names, wf_id),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=20,
            deliver_policy=DeliverPolicy.ALL,
        )
        try:
            info = await js.consumer_info(advisory_stream(names), dead_letters.durable_name or "")
            if config_matches(explicit_fields(dead_letters), info.config.as_dict()):
                continue
        except nats.js.errors.NotFoundError:
            pass
        await js.add_consumer(advisory_stream(names), dead_letters)
