"""The worker: pulls messages from each workflow's durable consumer and executes them.

One pull loop per workflow, all sharing the process's concurrency, and one heartbeat
ticker. The one place an outcome becomes what JetStream hears: ack (done, parked,
halted), ack_sync (the instance ended), nak with a delay (NATS trouble: try later), term
plus a dead letter (cannot ever be processed). What a delivery does is `execution.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import datetime
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.bus import RECORD_HEADER, Names, publish
from shared.config import EngineSettings
from shared.crypto import UserKeys, parse_master_keys
from shared.metrics import metrics
from shared.workflow.cache import StepServices
from shared.workflow.context import INFRA_ERRORS, EngineUnavailable
from shared.workflow.deadletters import DeadLetters
from shared.workflow.definition import Registry, Workflow
from shared.workflow.execution import Delivery, Execution, Reject
from shared.workflow.model import RunMessage, encode
from shared.workflow.progress import ProgressPublisher
from shared.workflow.ratelimit import configured_rates
from shared.workflow.store import InstanceStore, open_store, retention_of
from shared.workflow.topology import ensure_consumers, ensure_topology

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
BUSY_FETCH_TIMEOUT = 1.0
TOP_UP_TIMEOUT = 0.05
MAX_BATCH = 16


def _redelivered(msg: Msg) -> bool:
    return (msg.metadata.num_delivered or 1) > 1


class NatsTimers:
    """Wake-ups as NATS message schedules on `<ns>.timers.<wf>.<instance>.<key>`."""

    def __init__(self, js: JetStreamContext, names: Names) -> None:
        self.js = js
        self.names = names

    async def schedule(
        self, workflow: str, instance_id: str, key: str, when: datetime, generation: int
    ) -> None:
        wake = RunMessage(kind="wake", instance_id=instance_id, generation=generation)
        # One schedule per (instance, step) subject: a newer schedule replaces an older one.
        await publish(
            self.js,
            self.names.timer_subject(workflow, instance_id, key),
            encode(wake),
            msg_id=None,
            headers={
                "Nats-Schedule": f"@at {when.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                "Nats-Schedule-Target": self.names.wake_subject(workflow),
                "Nats-Schedule-TTL": "1h",  # the work stream has its copy by then
            },
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
        self.keys: UserKeys | None = None
        self._execution: Execution | None = None
        # The step cache (its claims' lease tied to the ack wait: a holder that dies is
        # taken over once its message would be redelivered anyway) and the rate limits.
        self.services = StepServices(
            nc,
            self.names.namespace,
            lease=self.settings.ack_wait,
            replicas=self.settings.nats_replicas,
            rates=configured_rates(self.settings.rate_limits),
        )
        self._dead_letters: DeadLetters | None = None
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
        masters = parse_master_keys(self.settings.data_master_keys)
        self.keys = (
            await UserKeys.connect(
                self.nc, self.names, masters, replicas=self.settings.nats_replicas
            )
            if masters
            else None
        )
        self.store = await open_store(
            self.nc,
            self.names,
            replicas=self.settings.nats_replicas,
            retention=retention_of(self.settings),
            keys=self.keys,
        )
        await ensure_consumers(self.js, self.names, self.registry, self.settings)
        self._execution = Execution(
            self.store, NatsTimers(self.js, self.names), self.names, self.deps, self._maybe_crash
        )
        self._execution.services = self.services
        self._execution.progress = ProgressPublisher(self.nc, self.names)
        self._execution.keys = self.keys
        self._dead_letters = DeadLetters(
            self.js, self.names, [wf.id for wf in self.registry], self.store
        )

    async def start(self) -> None:
        await self.setup()
        assert self._dead_letters is not None
        for wf in self.registry:
            self._loops.append(asyncio.create_task(self._pull_loop(wf), name=f"pull:{wf.id}"))
        self._loops.append(
            asyncio.create_task(self._dead_letters.run(self._stopping), name="dead-letters")
        )
        if self.settings.metrics_port:
            self._loops.append(
                asyncio.create_task(self._consumer_metrics_loop(), name="consumer-metrics")
            )
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
        if self.keys is not None:
            await self.keys.close()
        log.info("worker stopped")

    # -- pulling -----------------------------------------------------------------------

    async def _pull_loop(self, wf: Workflow) -> None:
        durable = self.names.consumer(wf.id)
        sub = None
        reconnects = -1
        busy = False
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
                msgs = await self._fetch(sub, busy)
                busy = bool(msgs)
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
            if len(msgs) == 1 and _redelivered(msgs[0]):
                # A redelivery taken by an idle loop (a worker just started, say after a
                # crash) may be what crashed the last one: it runs alone for up to an ack
                # wait before this loop takes more, so that a message that kills its
                # process does not take fresh ones down with it delivery after delivery
                # until they too reach max_deliver (RELIABILITY R7).
                await asyncio.wait({task}, timeout=self.settings.ack_wait)

    async def _fetch(self, sub: Any, busy: bool) -> list[Msg]:
        """Fetch as many messages as there are free slots (at least one; waits for one).

        The pull loops of all workflows share the slots. An idle loop (its last poll was
        empty) waits holding one slot, with a one-message pull the server ends at the
        first message, then tops the batch up with a short poll: a loop that held every
        free slot over its 5 s poll kept the other workflows' loops from polling at all,
        so their events waited up to a poll per loop (RELIABILITY R10 wants < 1 s); and
        nats-py's batch fetch first sends a no-wait probe that the server keeps as a
        second waiting pull. A busy loop takes a batch, with a short poll so that it does
        not sit on the slots once the work runs out.

        Every slot taken here is either handed to a message's task (released when it ends)
        or released before returning, whatever happens.
        """
        await self._slots.acquire()
        batch = 1
        msgs: list[Msg] = []
        try:
            if not busy:
                msgs = await self._poll(sub, 1, FETCH_TIMEOUT)
                if not msgs or _redelivered(msgs[0]):
                    return msgs  # nothing; or a redelivery, to run alone first
            while batch < MAX_BATCH and not self._slots.locked():
                await self._slots.acquire()
                batch += 1
            if batch > len(msgs):
                timeout = BUSY_FETCH_TIMEOUT if busy else TOP_UP_TIMEOUT
                try:
                    msgs += await self._poll(sub, batch - len(msgs), timeout)
                except (nats.errors.Error, OSError):
                    if not msgs:
                        raise  # the pull loop reports it and binds afresh
                    # The message in hand runs; the loop's next fetch sees the trouble.
        finally:
            for _ in range(batch - len(msgs)):
                self._slots.release()
        return msgs

    @staticmethod
    async def _poll(sub: Any, batch: int, timeout: float) -> list[Msg]:
        try:
            got: list[Msg] = await sub.fetch(batch, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            return []  # an empty poll, not an error (nats.py#418)
        return got

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

    async def refresh_consumer_metrics(self) -> None:
        """Set the pending and ack-pending gauges from each workflow's consumer info."""
        m = metrics()
        for wf in self.registry:
            info = await self.js.consumer_info(
                self.names.stream, self.names.consumer(wf.id), timeout=5
            )
            m.consumer_pending.labels(wf.id).set(info.num_pending or 0)
            m.consumer_ack_pending.labels(wf.id).set(info.num_ack_pending or 0)

    async def _consumer_metrics_loop(self) -> None:
        """Refresh the consumer gauges every METRICS_REFRESH seconds: one small request per
        workflow, whatever the load; any trouble keeps the last values (and the worker)."""
        while True:
            try:
                await self.refresh_consumer_metrics()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the worker
                log.debug("consumer metrics not refreshed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.settings.metrics_refresh)

    # -- one message -------------------------------------------------------------------

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

    async def _process(self, msg: Msg, wf: Workflow) -> None:
        assert self._execution is not None
        assert self._dead_letters is not None
        md = msg.metadata
        delivery = Delivery(
            subject=msg.subject,
            data=msg.data,
            stream_seq=md.sequence.stream,
            delivered=md.num_delivered,
            record_written=bool((msg.headers or {}).get(RECORD_HEADER)),
            published=md.timestamp,
        )
        outcome = await self._execution.execute(wf, delivery)
        if outcome == "ack":
            await msg.ack()
        elif outcome == "finished":
            self._maybe_crash("before_ack")
            await msg.ack_sync()
            self._maybe_crash("after_ack_sync")
        elif isinstance(outcome, Reject):
            await self._dead_letters.reject(wf.id, delivery, outcome)
            await msg.term()

    def _maybe_crash(self, point: str) -> None:
        if self._crash_at and self._crash_at == point:
            log.error("WF_CRASH_AT=%s: exiting hard", point)
            os._exit(137)


__all__ = ["NatsTimers", "Worker"]
