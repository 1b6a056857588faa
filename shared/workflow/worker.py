"""The worker: pulls run messages from durable consumers and executes workflows durably.

One pull loop per workflow, all sharing the process's concurrency. One place maps an
outcome to what JetStream hears: ack (done, parked, halted), nak with a delay (NATS
trouble: try later), term plus a dead letter (cannot ever be processed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from shared.bus import INSTANCE_ID, RECORD_HEADER, Names, ensure_bucket, ensure_topology, publish
from shared.config import EngineSettings
from shared.errors import StepResultTooLargeError
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
from shared.workflow.definition import Registry, Workflow
from shared.workflow.model import (
    TERMINAL,
    DeadLetter,
    ErrorInfo,
    InboxEvent,
    InstanceState,
    RunMessage,
    Trigger,
    decode_event,
    decode_run,
    encode,
    utcnow,
)
from shared.workflow.ratelimit import configured_rates
from shared.workflow.store import Conflict, InstanceStore

log = logging.getLogger(__name__)

DEFAULT_MAX_ACK_PENDING = 256
FETCH_TIMEOUT = 5.0
MAX_BATCH = 16


def consumer_config(
    names: Names, wf: Workflow | tuple[str, tuple[str, ...], int | None], settings: EngineSettings
) -> ConsumerConfig:
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
    workflows: Iterable[Workflow | tuple[str, tuple[str, ...], int | None]],
    settings: EngineSettings,
    *,
    create_only: bool = False,
) -> None:
    """Create (and, unless `create_only`, update) the durable consumers. Idempotent.

    Workers own their workflows' consumers and bring them up to date (a changed
    concurrency limit, say); the gateway only makes sure they exist before it accepts
    events, without undoing a worker's settings (`create_only=True`).
    """
    for wf in workflows:
        config = consumer_config(names, wf, settings)
        if create_only:
            try:
                await js.consumer_info(names.stream, config.durable_name or "")
                continue
            except nats.js.errors.NotFoundError:
                pass
        await js.add_consumer(names.stream, config)
    # Max-deliveries advisories are captured in a stream of their own, so that dead letters
    # are recorded even when no worker is listening at the moment the server gives up.
    adv_subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{names.stream}.*"
    adv = StreamConfig(
        name=f"{names.namespace}_advisories",
        subjects=[adv_subject],
        storage=StorageType.FILE,
        max_age=7 * 24 * 3600.0,
    )
    with contextlib.suppress(nats.js.errors.BadRequestError):
        await js.add_stream(adv)
    await js.add_consumer(
        f"{names.namespace}_advisories",
        ConsumerConfig(
            durable_name=f"{names.namespace}_dead_letters",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=20,
            deliver_policy=DeliverPolicy.ALL,
        ),
    )


class Worker:
    """Runs the registered workflows of one service from their durable consumers."""

    def __init__(
        self, nc: NATS, registry: Registry, deps: Any = None, settings: EngineSettings | None = None
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.registry = registry
        self.deps = deps
        self.settings = settings or EngineSettings()
        self.names = Names(self.settings.howlerhire_namespace)
        self.store: InstanceStore | None = None
        # The step cache (its claims' lease tied to the ack wait: a holder that dies is
        # taken over once its message would be redelivered anyway) and the rate limits.
        self.services = StepServices(
            nc,
            self.names.namespace,
            lease=self.settings.ack_wait,
            replicas=self.settings.nats_replicas,
            rates=configured_rates(self.settings.rate_limits),
        )
        self._slots = asyncio.Semaphore(self.settings.worker_concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._subs: dict[str, Any] = {}
        # In-flight messages and when they were taken, for the heartbeat ticker.
        self._leases: dict[int, tuple[Msg, float]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._crash_at = os.environ.get("WF_CRASH_AT", "")
        self.processed = 0

    async def setup(self) -> None:
        await ensure_topology(
            self.js,
            self.names,
            max_bytes=self.settings.stream_max_bytes,
            dedup_window=self.settings.dedup_window,
            replicas=self.settings.nats_replicas,
        )
        bucket = await ensure_bucket(
            self.js, self.names.state_bucket, replicas=self.settings.nats_replicas
        )
        self.store = InstanceStore(bucket, self.nc)
        await ensure_consumers(self.js, self.names, self.registry, self.settings)

    async def start(self) -> None:
        await self.setup()
        for wf in self.registry:
            self._loops.append(asyncio.create_task(self._pull_loop(wf), name=f"pull:{wf.id}"))
        self._loops.append(asyncio.create_task(self._dead_letter_loop(), name="dead-letters"))
        # Outside `_loops`: it must keep running while a shutdown waits for in-flight runs.
        self._ticker = asyncio.create_task(self._heartbeat_loop(), name="heartbeats")
        log.info(
            "worker started: workflows=%s concurrency=%d",
            ",".join(wf.id for wf in self.registry),
            self.settings.worker_concurrency,
        )

    async def run(self) -> None:
        """Start, then serve until `stop()`; a crash of any pull loop is loud."""
        await self.start()
        stopper = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait([stopper, *self._loops], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                stopper.cancel()
                raise task.exception()  # type: ignore[misc]
        await self.shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def shutdown(self) -> None:
        """Stop fetching, give in-flight runs `shutdown_grace` seconds, hand back the rest."""
        self._stopping.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for sub in self._subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self._inflight:
            log.info(
                "waiting up to %.0fs for %d in-flight runs",
                self.settings.shutdown_grace,
                len(self._inflight),
            )
            _, pending = await asyncio.wait(self._inflight, timeout=self.settings.shutdown_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        log.info("worker stopped")

    # -- pulling -----------------------------------------------------------------------

    async def _pull_loop(self, wf: Workflow) -> None:
        durable = self.names.consumer(wf.id)
        sub = None
        reconnects = -1
        while not self._stopping.is_set():
            try:
                if sub is None or self.nc.stats["reconnects"] != reconnects:
                    # A pull subscription can go deaf after a server restart (nats.py#504):
                    # bind afresh after every reconnect.
                    if sub is not None:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()
                    reconnects = self.nc.stats["reconnects"]
                    sub = await self.js.pull_subscribe_bind(
                        durable=durable, stream=self.names.stream
                    )
                    self._subs[wf.id] = sub
                msgs = await self._fetch(sub)
            except asyncio.CancelledError:
                raise
            except (nats.errors.Error, OSError) as exc:
                log.warning("pull loop %s: %s: %s; retrying", wf.id, type(exc).__name__, exc)
                sub = None
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg, wf))
                self._inflight.add(task)
                task.add_done_callback(self._done)

    async def _fetch(self, sub: Any) -> list[Msg]:
        """Fetch as many messages as there are free slots (at least one; waits for one).

        Every slot taken here is either handed to a message's task (released when it ends)
        or released before returning, whatever happens.
        """
        await self._slots.acquire()
        batch = 1
        while batch < MAX_BATCH and not self._slots.locked():
            await self._slots.acquire()
            batch += 1
        msgs: list[Msg] = []
        try:
            msgs = await sub.fetch(batch, timeout=FETCH_TIMEOUT)
        except (nats.errors.TimeoutError, TimeoutError):
            msgs = []  # an empty poll, not an error (nats.py#418)
        finally:
            for _ in range(batch - len(msgs)):
                self._slots.release()
        return msgs

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("run handler failed", exc_info=task.exception())

    async def _heartbeat_loop(self) -> None:
        """Keep every in-flight message alive: one ticker for the whole worker.

        Each message older than a tick gets an `in_progress()` (a fire-and-forget
        publish), so a long step never outlives its ack wait while its worker lives.
        """
        interval = max(0.2, self.settings.ack_wait / 3)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for msg, since in list(self._leases.values()):
                if now - since >= interval * 0.9:
                    with contextlib.suppress(nats.errors.Error):
                        await msg.in_progress()

    async def _handle(self, msg: Msg, wf: Workflow) -> None:
        key = id(msg)
        self._leases[key] = (msg, asyncio.get_running_loop().time())
        try:
            await self._process(msg, wf)
            self.processed += 1
        except asyncio.CancelledError:
            # Shutdown: hand the message back at once for another replica.
            with contextlib.suppress(Exception):
                await msg.nak(delay=0.5)
            raise
        except (EngineUnavailable, *INFRA_ERRORS) as exc:
            delivered = msg.metadata.num_delivered or 1
            delay = min(60.0, 2.0**delivered)
            log.warning("%s: NATS trouble (%s); redelivering in %.0fs", wf.id, exc, delay)
            with contextlib.suppress(Exception):
                await msg.nak(delay=delay)
        finally:
            self._leases.pop(key, None)

    # -- processing --------------------------------------------------------------------

    async def _process(self, msg: Msg, wf: Workflow) -> None:
        assert self.store is not None
        message = await self._decode(msg, wf)
        if message is None:
            return
        state: InstanceState | None = None
        revision = 0
        first_start = (
            message.kind == "start"
            and msg.metadata.num_delivered == 1
            and not (msg.headers or {}).get(RECORD_HEADER)
        )
        if first_start:
            # Most first deliveries of a start find no record: create first and read only
            # when it exists (one round trip fewer than read-then-create).
            fresh = self._fresh_state(wf, message)
            created = await self.store.create(fresh)
            if created is not None:
                state, revision = fresh, created
        if state is None:
            current = await self.store.get(wf.id, message.instance_id)
            if current is not None:
                state, revision = current
        if message.kind == "start":
            if state is None:
                fresh = self._fresh_state(wf, message)
                created = await self.store.create(fresh)
                if created is None:
                    current = await self.store.get(wf.id, message.instance_id)
                    if current is None:
                        raise EngineUnavailable("instance record vanished")
                    state, revision = current
                else:
                    state, revision = fresh, created
            if message.generation != state.generation:
                await msg.ack()
                return
        elif state is None or message.generation != state.generation:
            log.info(
                "%s/%s: %s message for an unknown or restarted instance; dropped",
                wf.id,
                message.instance_id,
                message.kind,
            )
            await msg.ack()
            return
        run = Run(self.store, wf, state, revision, self._maybe_crash)
        run.services = self.services
        if message.kind == "event":
            wake = await self._deliver_event(run, message, msg.metadata.sequence.stream)
            if not wake:
                await msg.ack()
                return
        if run.state.status in TERMINAL or run.state.status == "paused":
            await msg.ack()
            return
        if run.state.status != "running":
            try:
                await run.commit(_set_running)
            except Halt:
                await msg.ack()
                return
        await self._replay(msg, wf, run)

    @staticmethod
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

    async def _decode(self, msg: Msg, wf: Workflow) -> RunMessage | None:
        if msg.subject.startswith(self.names.events_prefix):
            try:
                envelope = decode_event(msg.data)
            except (msgspec.DecodeError, RecursionError) as exc:
                await self._dead_letter(
                    msg,
                    wf,
                    "undecodable event",
                    ErrorInfo(name="InvalidEventError", message=str(exc)),
                )
                return None
            iid = (
                envelope.id
                if envelope.id and INSTANCE_ID.match(envelope.id)
                else f"seq-{msg.metadata.sequence.stream}"
            )
            return RunMessage(
                kind="start",
                instance_id=iid,
                params=envelope.data,
                trigger=Trigger(event=envelope.name, event_id=envelope.id),
            )
        if msg.subject not in (self.names.run_subject(wf.id), self.names.wake_subject(wf.id)):
            await self._dead_letter(msg, wf, f"unknown workflow for subject {msg.subject}")
            return None
        try:
            message = decode_run(msg.data)
        except (msgspec.DecodeError, RecursionError) as exc:
            await self._dead_letter(
                msg,
                wf,
                "undecodable run message",
                ErrorInfo(name="InvalidEventError", message=str(exc)),
            )
            return None
        if not INSTANCE_ID.match(message.instance_id):
            await self._dead_letter(msg, wf, "invalid instance id")
            return None
        return message

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

    async def _replay(self, msg: Msg, wf: Workflow, run: Run) -> None:
        ctx: Context[Any] = Context(run, self.deps)
        for _ in range(20):
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
                        await msg.ack_sync()
                        return
                output = await wf.run(ctx, params)
            except Suspend as suspend:
                if await self._park(run, suspend):
                    await msg.ack()
                    return
                continue  # the record changed under us (an event arrived): replay
            except Halt:
                await msg.ack()
                return
            except (EngineUnavailable, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - the workflow's own failure ends it
                log.info(
                    "%s/%s errored: %s: %s", wf.id, run.state.instance_id, type(exc).__name__, exc
                )
                await self._finish(run, error=error_info(exc))
                await self._ack_final(msg)
                return
            else:
                self._maybe_crash("after_last_step_before_ack")
                await self._finish(run, output=output)
                await self._ack_final(msg)
                return
        raise EngineUnavailable("instance kept changing during replay")

    async def _ack_final(self, msg: Msg) -> None:
        self._maybe_crash("before_ack")
        await msg.ack_sync()
        self._maybe_crash("after_ack_sync")

    async def _park(self, run: Run, suspend: Suspend) -> bool:
        """Mark the instance waiting and schedule its wake-up; False if the record moved."""
        revision = run.revision
        run.state.status = "waiting"
        run.state.updated_at = utcnow()
        assert self.store is not None
        try:
            run.revision = await self.store.update(run.state, revision)
        except Conflict:
            await run.reload()
            return False
        except INFRA_ERRORS as exc:
            raise EngineUnavailable(str(exc)) from exc
        when = ceil_second(suspend.until)
        wake = RunMessage(
            kind="wake", instance_id=run.state.instance_id, generation=run.state.generation
        )
        subject = self.names.timer_subject(run.wf.id, run.state.instance_id, suspend.key)
        # One schedule per (instance, step) subject: a newer schedule replaces an older one.
        await publish(
            self.js,
            subject,
            encode(wake),
            msg_id=None,
            headers={
                "Nats-Schedule": f"@at {when.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                "Nats-Schedule-Target": self.names.wake_subject(run.wf.id),
                "Nats-Schedule-TTL": "1h",  # the work stream has its copy by then
            },
        )
        return True

    async def _finish(
        self,
        run: Run,
        *,
        output: Any = None,
        error: ErrorInfo | None = None,
    ) -> None:
        def finish(state: InstanceState) -> None:
            if state.status in TERMINAL or state.generation != run.generation:
                raise Unchanged(None)
            state.status = "errored" if error is not None else "complete"
            state.output = None if error is not None else output
            state.error = error
            state.ended_at = utcnow()

        try:
            await run.commit_unchecked(finish)
        except StepResultTooLargeError as exc:
            await run.reload()
            await self._finish(run, error=error_info(exc))

    def _maybe_crash(self, point: str) -> None:
        if self._crash_at and self._crash_at == point:
            log.error("WF_CRASH_AT=%s: exiting hard", point)
            os._exit(137)

    # -- dead letters ------------------------------------------------------------------

    async def _dead_letter(
        self,
        msg: Msg,
        wf: Workflow,
        reason: str,
        error: ErrorInfo | None = None,
        instance_id: str | None = None,
    ) -> None:
        md = msg.metadata
        letter = DeadLetter(
            workflow=wf.id,
            reason=reason,
            subject=msg.subject,
            stream_seq=md.sequence.stream,
            deliveries=md.num_delivered,
            instance_id=instance_id,
            error=error,
            payload_preview=msg.data[:200].decode("utf-8", "replace"),
            recorded_at=utcnow(),
        )
        await publish(
            self.js,
            self.names.dlq_subject(wf.id),
            encode(letter),
            msg_id=f"dlq:{md.sequence.stream}",
        )
        log.warning("dead letter %s seq=%s: %s", wf.id, md.sequence.stream, reason)
        await msg.term()

    async def _dead_letter_loop(self) -> None:
        """Record messages the server gave up on (max deliveries) as dead letters."""
        stream = f"{self.names.namespace}_advisories"
        sub = await self.js.pull_subscribe_bind(
            durable=f"{self.names.namespace}_dead_letters", stream=stream
        )
        self._subs["dead-letters"] = sub
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(8, timeout=FETCH_TIMEOUT)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except (nats.errors.Error, OSError) as exc:
                log.warning("dead-letter loop: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for adv in msgs:
                await self._record_max_deliveries(adv)

    async def _record_max_deliveries(self, adv: Msg) -> None:
        info = msgspec.json.decode(adv.data)
        consumer = str(info.get("consumer", ""))
        wf_id = consumer.removeprefix(f"{self.names.namespace}_")
        if wf_id not in self.registry:
            await adv.ack()  # another service's workflow: that service records it
            return
        seq = int(info.get("stream_seq", 0))
        preview, instance_id, subject = "", None, ""
        with contextlib.suppress(Exception):
            raw = await self.js.get_msg(self.names.stream, seq)
            subject = raw.subject or ""
            preview = (raw.data or b"")[:200].decode("utf-8", "replace")
            if subject.startswith(self.names.events_prefix):
                envelope = decode_event(raw.data or b"")
                instance_id = envelope.id
            else:
                instance_id = decode_run(raw.data or b"").instance_id
        letter = DeadLetter(
            workflow=wf_id,
            reason="max deliveries exceeded",
            subject=subject,
            stream_seq=seq,
            deliveries=int(info.get("deliveries", 0)),
            instance_id=instance_id,
            payload_preview=preview,
            recorded_at=utcnow(),
        )
        await publish(self.js, self.names.dlq_subject(wf_id), encode(letter), msg_id=f"dlq:{seq}")
        if instance_id and self.store is not None:
            message = (
                f"gave up after {letter.deliveries} deliveries "
                "(the worker kept crashing or timing out on this instance)"
            )

            def fail(state: InstanceState) -> bool:
                if state.status in TERMINAL:
                    return False
                state.status = "errored"
                state.error = ErrorInfo(name="MaxDeliveriesExceeded", message=message)
                state.ended_at = utcnow()
                return True

            await self.store.mutate(wf_id, instance_id, fail)
        log.warning("dead letter %s seq=%s: max deliveries exceeded", wf_id, seq)
        await adv.ack()


def _set_running(state: InstanceState) -> None:
    if state.status in TERMINAL or state.status == "paused":
        raise Unchanged(None)
    if state.status == "running":
        raise Unchanged(None)
    state.status = "running"
    state.started_at = state.started_at or utcnow()


__all__ = ["Worker", "consumer_config", "ensure_consumers"]
