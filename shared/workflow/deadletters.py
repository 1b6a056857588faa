"""Dead letters: messages that can never be processed, and those the server gave up on.

A letter goes to `<ns>.dlq.<workflow>` with `Nats-Msg-Id: dlq:<stream seq>`, so one
message makes one letter however often it is recorded. Rejected messages are termed by
the worker; max-deliveries advisories (captured in `<ns>_advisories`) also error the
instance, since no worker will ever finish it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.bus import Names, publish
from shared.metrics import metrics, reason_label
from shared.workflow.execution import Delivery, Reject
from shared.workflow.model import (
    TERMINAL,
    DeadLetter,
    ErrorInfo,
    InstanceState,
    decode_event,
    decode_run,
    encode,
    utcnow,
)
from shared.workflow.records import InstanceStore
from shared.workflow.topology import advisory_stream, dead_letter_consumer

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
PREVIEW_BYTES = 200


class DeadLetters:
    """Records dead letters of one service's workflows (`workflows`)."""

    def __init__(
        self,
        js: JetStreamContext,
        names: Names,
        workflows: Iterable[str],
        store: InstanceStore,
    ) -> None:
        self.js = js
        self.names = names
        self.workflow_ids = tuple(workflows)
        self.workflows = frozenset(self.workflow_ids)
        self.store = store

    async def publish(self, letter: DeadLetter) -> None:
        await publish(
            self.js,
            self.names.dlq_subject(letter.workflow),
            encode(letter),
            msg_id=f"dlq:{letter.stream_seq}",
        )
        metrics().dead_letters.labels(letter.workflow, reason_label(letter.reason)).inc()
        log.warning("dead letter %s seq=%s: %s", letter.workflow, letter.stream_seq, letter.reason)

    async def reject(self, workflow: str, delivery: Delivery, reject: Reject) -> None:
        """Record a message the execution rejected (the caller terms it)."""
        await self.publish(
            DeadLetter(
                workflow=workflow,
                reason=reject.reason,
                subject=delivery.subject,
                stream_seq=delivery.stream_seq,
                deliveries=delivery.delivered,
                error=reject.error,
                payload_preview=_preview(delivery.data),
                recorded_at=utcnow(),
            )
        )

    async def run(self, stopping: asyncio.Event) -> None:
        """Record the advisories of messages the server gave up on, until `stopping`:
        one pull loop per workflow of this service, each on that workflow's consumer."""
        await asyncio.gather(*(self._run_one(wf_id, stopping) for wf_id in self.workflow_ids))

    async def _run_one(self, wf_id: str, stopping: asyncio.Event) -> None:
        sub = await self.js.pull_subscribe_bind(
            durable=dead_letter_consumer(self.names, wf_id), stream=advisory_stream(self.names)
        )
        try:
            while not stopping.is_set():
                try:
                    msgs = await sub.fetch(8, timeout=FETCH_TIMEOUT)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except (nats.errors.Error, OSError) as exc:
                    log.warning("dead-letter loop of %s: %s", wf_id, exc)
                    await asyncio.sleep(1.0)
                    continue
                for adv in msgs:
                    await self.record_max_deliveries(adv)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def record_max_deliveries(self, adv: Msg) -> None:
        """One max-deliveries advisory → a dead letter, and the instance errored."""
        info = msgspec.json.decode(adv.data)
        consumer = str(info.get("consumer", ""))
        wf_id = consumer.removeprefix(f"{self.names.namespace}_")
        if wf_id not in self.workflows:
            # Not ours (each consumer is filtered to its workflow, so only a changed
            # filter gets here): leave it for the service that owns the workflow.
            await adv.nak(delay=5.0)
            return
        seq = int(info.get("stream_seq", 0))
        preview, instance_id, subject = "", None, ""
        with contextlib.suppress(Exception):
            raw = await self.js.get_msg(self.names.stream, seq)
            subject = raw.subject or ""
            preview = _preview(raw.data or b"")
            if subject.startswith(self.names.events_prefix):
                instance_id = decode_event(raw.data or b"").id
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
        await self.publish(letter)
        if instance_id:
            message = (
                f"gave up after {letter.deliveries} deliveries "
                "(the worker kept crashing or timing out on this instance)"
            )

            ended: list[InstanceState] = []

            def fail(state: InstanceState) -> bool:
                ended.clear()  # a CAS retry sees the record afresh
                if state.status in TERMINAL:
                    return False
                state.status = "errored"
                state.error = ErrorInfo(name="MaxDeliveriesExceeded", message=message)
                state.ended_at = utcnow()
                ended[:] = [state]
                return True

            await self.store.mutate(wf_id, instance_id, fail)
            if ended:  # a run the engine gave up on ended errored: the error rate counts it
                metrics().workflow(wf_id).finished["errored"].inc()
        await adv.ack()


def _preview(data: bytes) -> str:
    return data[:PREVIEW_BYTES].decode("utf-8", "replace")
