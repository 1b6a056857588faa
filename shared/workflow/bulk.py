"""Bulk actions by filter: cancel, terminate, restart or replay every matching instance.

A job's id is derived from what it does (action, filter, restart step, an optional key),
so asking twice is one job. Its state lives in the meta bucket: the job record (phase,
counts, the position reached, a lease) and the matching instances frozen at selection,
in chunks. A job interrupted anywhere is resumed by asking again: selection starts over
if it had not finished; acting goes on from the recorded position, and the few instances
acted on after the last progress write are recognised (restart: the generation already
moved on; terminate: already terminated; replay: the derived instance exists), so every
instance is acted on exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, get_args

import msgspec
import nats.js.errors
from nats.js.kv import KeyValue

from shared.bus import ensure_bucket
from shared.errors import InstanceNotFoundError, InvalidTransitionError, StepNotFoundError
from shared.workflow.model import TERMINAL, InstanceState, utcnow

if TYPE_CHECKING:
    from shared.workflow.control import Instances

BulkAction = Literal["cancel", "terminate", "restart", "replay"]
ACTIONS: tuple[str, ...] = get_args(BulkAction)
CHUNK = 1000  # instances per stored chunk of a job's selection (≈ 60 KB)
PROGRESS_EVERY = 25  # instances between progress writes (also at least once a second)
DEFAULT_RATE = 50.0  # instances per second
DEFAULT_LEASE = 15.0  # seconds a runner holds a job without writing progress


class BulkFilter(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Which instances: a workflow, a status, a user (`userId` in the params) and a
    creation time range `[created_after, created_before)`; unset fields match all."""

    workflow: str | None = None
    status: str | None = None
    user: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class BulkItem(msgspec.Struct, frozen=True, array_like=True):
    workflow: str
    instance_id: str
    generation: int


class BulkJob(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A bulk action's progress, as stored and as reported."""

    id: str
    action: BulkAction
    filter: BulkFilter
    from_step: str | None = None
    phase: Literal["preview", "selecting", "running", "done"]
    rate: float = DEFAULT_RATE
    total: int = 0  # instances selected
    position: int = 0  # selected instances handled so far (in selection order)
    acted: int = 0  # of those, changed by this job
    skipped: int = 0  # no longer eligible when their turn came (finished, gone, moved on)
    failed: int = 0
    errors: list[str] = msgspec.field(default_factory=list)  # the first few, for the operator
    chunks: int = 0
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    owner: str | None = None
    lease_until: datetime | None = None


_job_decoder = msgspec.json.Decoder(BulkJob)
_chunk_decoder = msgspec.json.Decoder(list[BulkItem])


def job_id(
    action: str, where: BulkFilter, from_step: str | None = None, key: str | None = None
) -> str:
    """The job's id: the same request (and `key`) is the same job, whoever asks."""
    text = msgspec.json.encode([action, where, from_step, key])
    return "b" + hashlib.sha256(text).hexdigest()[:31]


def eligible(action: str, state: InstanceState) -> bool:
    """Cancel and terminate apply to unfinished instances; restart and replay to any."""
    return state.status not in TERMINAL if action in ("cancel", "terminate") else True


def replay_id(job: str, instance_id: str) -> str:
    return "rp" + hashlib.sha256(f"{job}\n{instance_id}".encode()).hexdigest()[:30]


class BulkActions:
    """Runs and reports bulk jobs for one `Instances`."""

    def __init__(self, instances: Instances, *, lease: float = DEFAULT_LEASE) -> None:
        self.instances = instances
        self.lease = lease
        self.owner = uuid.uuid4().hex
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await ensure_bucket(
                self.instances.js,
                self.instances.names.meta_bucket,
                replicas=self.instances.replicas,
            )
        return self._kv

    def check(self, action: str, where: BulkFilter, from_step: str | None, rate: float) -> None:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if where.workflow is not None:
            self.instances._check_workflow(where.workflow)
        if from_step is not None and action != "restart":
            raise ValueError("from_step applies to restart only")
        if not rate > 0:
            raise ValueError("rate must be a positive number of instances per second")

    async def matching(self, action: str, where: BulkFilter) -> AsyncIterator[InstanceState]:
        """Every instance the job would act on, in index order."""
        cursor: int | None = None
        while True:
            page = await self.instances.list(
                where.workflow,
                where.status,
                limit=200,
                cursor=cursor,
                user=where.user,
                created_after=where.created_after,
                created_before=where.created_before,
            )
            for state in page.items:
                if eligible(action, state):
                    yield state
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def preview(
        self, action: BulkAction, where: BulkFilter, from_step: str | None = None
    ) -> BulkJob:
        """The dry run: how many instances the job would act on now; nothing is written."""
        self.check(action, where, from_step, DEFAULT_RATE)
        total = 0
        async for _ in self.matching(action, where):
            total += 1
        now = utcnow()
        return BulkJob(
            id=job_id(action, where, from_step),
            action=action,
            filter=where,
            from_step=from_step,
            phase="preview",
            total=total,
            created_at=now,
            updated_at=now,
        )

    async def get(self, id: str) -> BulkJob | None:
        found = await self._load(id)
        return None if found is None else found[0]

    async def _load(self, id: str) -> tuple[BulkJob, int] | None:
        kv = await self.kv()
        try:
            entry = await kv.get(f"bulk.{id}")
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if not entry.value:
            return None
        return _job_decoder.decode(entry.value), int(entry.revision or 0)

    async def run(
        self,
        action: BulkAction,
        where: BulkFilter,
        *,
        from_step: str | None = None,
        rate: float = DEFAULT_RATE,
        key: str | None = None,
    ) -> BulkJob:
        """Start the job, or resume it, and run it to the end; returns its final record.

        A job already done is returned as it is. One held by a live runner elsewhere is
        waited for: this call takes it over if that runner stops writing progress.
        """
        self.check(action, where, from_step, rate)
        id = job_id(action, where, from_step, key)
        kv = await self.kv()
        while True:
            found = await self._load(id)
            if found is None:
                now = utcnow()
                job = BulkJob(
                    id=id,
                    action=action,
                    filter=where,
                    from_step=from_step,
                    phase="selecting",
                    rate=rate,
                    created_at=now,
                    updated_at=now,
                )
                with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                    await kv.create(f"bulk.{id}", msgspec.json.encode(job))
                continue  # read it back: ours, or that of a runner that raced us
            job, revision = found
            if job.phase == "done":
                return job
            now = utcnow()
            if job.owner not in (None, self.owner) and job.lease_until and job.lease_until > now:
                await asyncio.sleep(min(1.0, (job.lease_until - now).total_seconds() + 0.05))
                continue
            job.owner = self.owner
            job.lease_until = now + timedelta(seconds=self.lease)
            job.updated_at = now
            try:
                revision = await kv.update(f"bulk.{id}", msgspec.json.encode(job), revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another runner moved first: look again
            return await self._drive(job, revision)

    async def _save(self, job: BulkJob, revision: int) -> int:
        """Write progress and renew the lease; raise if another runner took the job."""
        now = utcnow()
        job.updated_at = now
        job.lease_until = now + timedelta(seconds=self.lease)
        kv = await self.kv()
        try:
            return await kv.update(f"bulk.{job.id}", msgspec.json.encode(job), revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise InvalidTransitionError(
                f"bulk job {job.id} was taken over by another runner"
            ) from None

    async def _drive(self, job: BulkJob, revision: int) -> BulkJob:
        kv = await self.kv()
        if job.phase == "selecting":
            chunk: list[BulkItem] = []
            job.total = job.chunks = 0
            async for state in self.matching(job.action, job.filter):
                chunk.append(BulkItem(state.workflow, state.instance_id, state.generation))
                job.total += 1
                if len(chunk) == CHUNK:
                    await kv.put(f"bulk.{job.id}.{job.chunks}", msgspec.json.encode(chunk))
                    job.chunks += 1
                    chunk = []
                    revision = await self._save(job, revision)
            if chunk:
                await kv.put(f"bulk.{job.id}.{job.chunks}", msgspec.json.encode(chunk))
                job.chunks += 1
            job.phase = "running"
            job.position = job.acted = job.skipped = job.failed = 0
            revision = await self._save(job, revision)
        loop = asyncio.get_running_loop()
        began, paced = loop.time(), 0
        last_save = began
        while job.position < job.total:
            number, offset = divmod(job.position, CHUNK)
            entry = await kv.get(f"bulk.{job.id}.{number}")
            items = _chunk_decoder.decode(entry.value or b"[]")
            for item in items[offset:]:
                wait = began + paced / job.rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                paced += 1
                outcome = await self._act(job, item)
                if outcome == "acted":
                    job.acted += 1
                elif outcome == "skipped":
                    job.skipped += 1
                else:
                    job.failed += 1
                    if len(job.errors) < 10:
                        job.errors.append(f"{item.workflow}/{item.instance_id}: {outcome}")
                job.position += 1
                now = loop.time()
                if job.position % PROGRESS_EVERY == 0 or now - last_save >= 1.0:
                    revision = await self._save(job, revision)
                    last_save = now
        job.phase = "done"
        job.finished_at = utcnow()
        job.owner = None
        await self._save(job, revision)
        return job

    async def _act(self, job: BulkJob, item: BulkItem) -> str:
        """One instance: "acted", "skipped" or the error that failed it."""
        instances = self.instances
        try:
            if job.action == "restart":
                await instances.restart(
                    item.workflow,
                    item.instance_id,
                    job.from_step,
                    expect_generation=item.generation,
                )
            elif job.action in ("cancel", "terminate"):
                state = await instances.get(item.workflow, item.instance_id)
                if state.generation != item.generation:
                    return "skipped"
                await instances.terminate(item.workflow, item.instance_id)
            else:
                state = await instances.get(item.workflow, item.instance_id)
                await instances.trigger(
                    item.workflow, state.params, replay_id(job.id, item.instance_id)
                )
        except InstanceNotFoundError:
            return "skipped"
        except StepNotFoundError as exc:
            return str(exc)
        except InvalidTransitionError:
            return "skipped"
        return "acted"


__all__ = ["ACTIONS", "BulkAction", "BulkActions", "BulkFilter", "BulkJob", "job_id"]
