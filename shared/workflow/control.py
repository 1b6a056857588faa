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
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.bus import INSTANCE_ID, RECORD_HEADER, Names, event_token, publish
from shared.config import EngineSettings
from shared.crypto import UserKeys, parse_master_keys
from shared.errors import (
    DeadLetterNotFoundError,
    InstanceNotFoundError,
    InvalidEventError,
    InvalidTransitionError,
    StepNotFoundError,
    UnknownWorkflowError,
)
from shared.metrics import metrics
from shared.workflow.bulk import BulkAction, BulkActions, BulkFilter, BulkJob
from shared.workflow.cache import StepCache
from shared.workflow.cache import bucket_name as cache_bucket
from shared.workflow.model import (
    TERMINAL,
    DeadLetter,
    EventEnvelope,
    InstanceState,
    RunMessage,
    StepRecord,
    Trigger,
    decode_state,
    encode,
    utcnow,
)
from shared.workflow.progress import ProgressFeed
from shared.workflow.ratelimit import LimitState, Rate, configured_rates, read_states
from shared.workflow.ratelimit import bucket_name as limits_bucket
from shared.workflow.store import (
    InstanceStore,
    index_group,
    open_store,
    retention_of,
    user_of,
)

if TYPE_CHECKING:
    from shared.erasure import ErasureReport

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


@dataclass(frozen=True)
class DeadLetterPage:
    """Dead letters by their sequence in `<ns>_dlq`, oldest first."""

    items: list[tuple[int, DeadLetter]]
    next_cursor: int | None


_letter_decoder = msgspec.json.Decoder(DeadLetter)
NO_MESSAGE = 10057  # JetStream: no message found (deleted already)


class Instances:
    """Instance operations against one namespace. `routes` maps event names to workflows."""

    def __init__(
        self,
        nc: NATS,
        names: Names,
        routes: dict[str, tuple[str, ...]],
        *,
        settings: EngineSettings | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names
        self.routes = routes  # workflow id -> trigger event names
        settings = settings or EngineSettings()
        self.replicas = settings.nats_replicas
        self.retention = retention_of(settings)
        self._store: InstanceStore | None = None
        self._progress: ProgressFeed | None = None
        # Personal data is sealed per user when master keys are configured (shared/crypto.py).
        self._masters = parse_master_keys(settings.data_master_keys)
        self._keys: UserKeys | None = None
        self.bulk_actions = BulkActions(self)
        # The rate limits the deployment configures (RATE_LIMITS), shown even when unused.
        self.rates: dict[str, Rate] = configured_rates(settings.rate_limits)

    async def store(self) -> InstanceStore:
        if self._store is None:
            self._store = await open_store(
                self.nc,
                self.names,
                replicas=self.replicas,
                retention=self.retention,
                keys=await self.user_keys(),
            )
        return self._store

    async def user_keys(self) -> UserKeys | None:
        """The per-user data keys (None when DATA_MASTER_KEYS is not set)."""
        if self._keys is None and self._masters:
            self._keys = await UserKeys.connect(
                self.nc, self.names, self._masters, replicas=self.replicas
            )
        return self._keys

    async def close(self) -> None:
        """Stop the data keys' watch (before the connection is drained)."""
        if self._keys is not None:
            await self._keys.close()

    async def _sealed(self, value: Any, owner: Any) -> Any:
        """`value` sealed for the user `owner` (params) names, when there are keys and one."""
        user = user_of(owner)
        keys = await self.user_keys() if user is not None else None
        if keys is None or value is None or user is None:
            return value
        return await keys.seal(user, value)

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
        message = RunMessage(
            kind="start", instance_id=iid, params=await self._sealed(params, params)
        )
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
        # What is published: each event's data and user sealed for the user it names.
        sealed = [
            msgspec.structs.replace(
                env,
                data=await self._sealed(env.data, env.data),
                user=await self._sealed(env.user, env.data),
            )
            for env in stored
        ]
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
                    for env in sealed[start : start + SEND_WINDOW]
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
        user: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page:
        """Instances in the order they entered their index group (started, finished),
        `limit` at a time; `next_cursor` pages on.

        A page reads the list index (`<ns>_index`): one subject per workflow and group
        (active, complete, errored, terminated), one per user (`userId` in the params), so
        its cost does not grow with the number of instances. Filters the index does not
        resolve (a non-finished status, a user with a status, a creation time range) read
        at most `scan_limit` entries per call and return a cursor to continue from.
        """
        if workflow is not None:
            self._check_workflow(workflow)
        store = await self.store()
        assert store.index is not None
        if user is not None:
            subject = store.index.user(user, workflow)
        else:
            subject = store.index.group(workflow, None if status is None else index_group(status))

        def keep(state: InstanceState) -> bool:
            if status is not None and state.status != status:
                return False
            if created_after is not None and state.created_at < created_after:
                return False
            return created_before is None or state.created_at < created_before

        items, next_cursor = await store.scan_index(
            subject, cursor or 1, limit, max(scan_limit, limit), keep
        )
        return Page(items=items, next_cursor=next_cursor)

    async def reindex(self, workflow: str | None = None) -> int:
        """File every record that has no index entry (written before the index existed);
        returns how many. Idempotent; safe while workers run (each is a CAS write)."""
        store = await self.store()
        stream = f"KV_{self.names.state_bucket}"
        subject = f"$KV.{self.names.state_bucket}." + (f"{workflow}.>" if workflow else ">")
        missing: list[tuple[str, str]] = []
        async with contextlib.aclosing(self._scan_consumer(stream, subject, 1, 1 << 62)) as rows:
            async for _, data, _ in rows:
                if data:
                    state = decode_state(data)
                    if not state.index:
                        missing.append((state.workflow, state.instance_id))

        def file(state: InstanceState) -> bool:
            return not state.index

        for wf, iid in missing:
            await store.mutate(wf, iid, file)
        return len(missing)

    async def _scan_consumer(
        self, stream: str, subject: str, start: int, wanted: int
    ) -> AsyncGenerator[tuple[int, bytes, int], None]:
        """(sequence, message, messages left) of a stream through an ephemeral consumer."""
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

        ended: list[InstanceState] = []

        def change(state: InstanceState) -> bool:
            ended.clear()  # a CAS retry sees the record afresh
            if state.status in TERMINAL:
                if state.status == "terminated":
                    return False
                raise InvalidTransitionError(f"cannot terminate a {state.status} instance")
            state.status = "terminated"
            state.ended_at = state.updated_at = utcnow()
            ended.append(state)
            return True

        state = await self._mutate(workflow, instance_id, change)
        if ended:  # counted where it happens (the gateway, a bulk job), once
            metrics().workflow(workflow).finished["terminated"].inc()
        # No run reports a terminated instance's progress: say so for whoever watches.
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError, OSError):
            await self.progress_feed().publish_terminated(workflow, instance_id, state.generation)
        return state

    async def erase_user(
        self, user_id: str, *, requested_by: str, outbox: str | None = None
    ) -> ErasureReport:
        """Erase what this system keeps of one user (shared/erasure.py)."""
        from shared.erasure import erase_user

        return await erase_user(
            self, user_id, requested_by=requested_by, outbox=Path(outbox) if outbox else None
        )

    def progress_feed(self) -> ProgressFeed:
        """The end-user progress stream of this namespace (shared/workflow/progress.py)."""
        if self._progress is None:
            self._progress = ProgressFeed(self.nc, self.names)
        return self._progress

    async def restart(
        self,
        workflow: str,
        instance_id: str,
        from_step: str | None = None,
        *,
        expect_generation: int | None = None,
    ) -> InstanceState:
        """Run the instance again (a new generation) with the same params: from the start,
        or `from_step` on, keeping the recorded results of the steps before it (they are
        not run again). A run of the old generation still in flight records nothing more.

        `expect_generation` makes the call idempotent (bulk actions): it restarts only an
        instance still at that generation; one already restarted from it is left as it is
        and its start message published again (the same message id: stored once).
        """
        if from_step is not None and (not isinstance(from_step, str) or not from_step):
            raise InvalidTransitionError("the step to restart from needs a non-empty name")

        def change(state: InstanceState) -> bool:
            if expect_generation is not None and state.generation != expect_generation:
                if state.generation == expect_generation + 1:
                    return False
                raise InvalidTransitionError(
                    f"instance is at generation {state.generation}, not {expect_generation}"
                )
            kept: list[StepRecord] = []
            if from_step is not None:
                cut = next((r.seq for r in state.steps if r.name == from_step), None)
                if cut is None:
                    recorded = ", ".join(r.name for r in state.steps) or "none"
                    raise StepNotFoundError(
                        f"no step {from_step!r} is recorded for this instance "
                        f"(recorded: {recorded})"
                    )
                kept = [r for r in state.steps if r.seq < cut]
            names = {r.name for r in kept}
            state.generation += 1
            state.status = "queued"
            state.steps = kept
            # Events consumed by a step that runs again are gone with it; unread ones stay.
            state.inbox = [item for item in state.inbox if item.consumed_by in (None, *names)]
            state.output = None
            state.error = None
            state.started_at = state.ended_at = None
            state.updated_at = utcnow()
            return True

        state = await self._mutate(workflow, instance_id, change)
        message = RunMessage(
            kind="start",
            instance_id=instance_id,
            params=await self._sealed(state.params, state.params),
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

    # -- bulk actions --------------------------------------------------------------------

    async def bulk(
        self,
        action: BulkAction,
        where: BulkFilter,
        *,
        dry_run: bool = False,
        from_step: str | None = None,
        rate: float = 50.0,
        key: str | None = None,
    ) -> BulkJob:
        """Cancel, terminate, restart (optionally `from_step`) or replay every instance
        `where` matches, at most `rate` a second; `dry_run` only counts them. Asking again
        resumes (or returns) the same job: its id is derived from the request and `key`."""
        if dry_run:
            return await self.bulk_actions.preview(action, where, from_step)
        return await self.bulk_actions.run(action, where, from_step=from_step, rate=rate, key=key)

    async def bulk_job(self, job_id: str) -> BulkJob | None:
        """A bulk job's progress (None: no such job)."""
        return await self.bulk_actions.get(job_id)

    # -- dead letters --------------------------------------------------------------------

    def _dlq_subject(self, workflow: str | None) -> str:
        return self.names.dlq_subject(workflow) if workflow else f"{self.names.namespace}.dlq.>"

    async def dead_letters(
        self,
        workflow: str | None = None,
        reason: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> DeadLetterPage:
        """Dead letters (workflow, reason, time, instance), `limit` at a time. They stay
        until re-driven or purged."""
        subject = self._dlq_subject(workflow)
        items: list[tuple[int, DeadLetter]] = []
        seq = cursor or 1
        scanned = 0
        while len(items) < limit and scanned < 10 * limit + 100:
            try:
                raw = await self.js.get_msg(self.names.dlq_stream, seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return DeadLetterPage(items=items, next_cursor=None)
            scanned += 1
            assert raw.seq is not None
            seq = raw.seq + 1
            try:
                letter = _letter_decoder.decode(raw.data or b"")
            except msgspec.DecodeError:
                continue
            if reason is None or letter.reason == reason:
                items.append((raw.seq, letter))
        return DeadLetterPage(items=items, next_cursor=seq)

    async def dead_letter(self, seq: int) -> DeadLetter:
        """One dead letter by its sequence."""
        try:
            raw = await self.js.get_msg(self.names.dlq_stream, seq)
        except nats.js.errors.NotFoundError:
            raise DeadLetterNotFoundError(
                f"no dead letter {seq} (already re-driven or purged?)"
            ) from None
        try:
            return _letter_decoder.decode(raw.data or b"")
        except msgspec.DecodeError:
            raise DeadLetterNotFoundError(f"dead letter {seq} is not a dead letter") from None

    async def redrive(self, seq: int) -> DeadLetter:
        """Send a dead letter's message through its workflow again (after a fix), once.

        An instance the engine gave up on (errored with MaxDeliveriesExceeded) is put back
        to `queued` with its recorded steps, so the message continues it. The message goes
        out under an id derived from the letter, and the letter is deleted after: asking
        twice, even at once, sends it once; a letter already re-driven is not found.
        """
        letter = await self.dead_letter(seq)
        if letter.instance_id and letter.workflow in self.routes:

            def requeue(state: InstanceState) -> bool:
                if state.status != "errored" or state.error is None:
                    return False
                if state.error.name != "MaxDeliveriesExceeded":
                    return False
                state.status = "queued"
                state.error = None
                state.ended_at = None
                state.updated_at = utcnow()
                return True

            await (await self.store()).mutate(letter.workflow, letter.instance_id, requeue)
        msg_id = f"redrive:{self.names.dlq_stream}:{seq}"
        original = None
        if letter.stream_seq is not None:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                original = await self.js.get_msg(self.names.stream, letter.stream_seq)
        if original is not None and original.subject:
            headers = {
                k: v for k, v in (original.headers or {}).items() if not k.startswith("Nats-")
            }
            await publish(
                self.js, original.subject, original.data or b"", msg_id=msg_id, headers=headers
            )
        elif letter.instance_id and letter.workflow in self.routes:
            # The work stream aged the message out: a resume carries the instance on.
            state = await self.get(letter.workflow, letter.instance_id)
            message = RunMessage(
                kind="resume", instance_id=letter.instance_id, generation=state.generation
            )
            await publish(
                self.js, self.names.run_subject(letter.workflow), encode(message), msg_id=msg_id
            )
        else:
            raise DeadLetterNotFoundError(
                f"dead letter {seq}: its message is no longer in the work stream"
            )
        await self._delete_letter(seq)
        return letter

    async def _delete_letter(self, seq: int) -> bool:
        """Delete a dead letter; False when it was gone already (a racing re-drive)."""
        try:
            return await self.js.delete_msg(self.names.dlq_stream, seq)
        except nats.js.errors.APIError as exc:
            if exc.code == 404 or exc.err_code == NO_MESSAGE:
                return False
            raise

    async def redrive_all(self, workflow: str | None = None, reason: str | None = None) -> int:
        """Re-drive every dead letter of `workflow` (and `reason`); returns how many."""
        count = 0
        cursor = None
        while True:
            page = await self.dead_letters(workflow, reason, limit=100, cursor=cursor)
            for seq, _ in page.items:
                with contextlib.suppress(DeadLetterNotFoundError):
                    await self.redrive(seq)
                    count += 1
            if page.next_cursor is None or not page.items:
                return count
            cursor = page.next_cursor

    async def purge_dead_letters(
        self, workflow: str | None = None, reason: str | None = None, seq: int | None = None
    ) -> int:
        """Delete one dead letter (`seq`) or every one matching; returns how many."""
        if seq is not None:
            await self.dead_letter(seq)
            return int(await self._delete_letter(seq))
        count = 0
        cursor = None
        while True:
            page = await self.dead_letters(workflow, reason, limit=100, cursor=cursor)
            for found, _ in page.items:
                count += await self._delete_letter(found)
            if page.next_cursor is None or not page.items:
                return count
            cursor = page.next_cursor

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
            payload=await self._sealed(payload, state.params),
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


__all__ = ["DeadLetterPage", "Instances", "Page", "Started", "event_internal_id", "new_instance_id"]
