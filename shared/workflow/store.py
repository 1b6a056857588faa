"""Instance records in a KV bucket, written only by create or compare-and-set, with the
list index kept beside them and their retention set on every finished record."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from shared.bus import Names, ensure_bucket
from shared.config import EngineSettings
from shared.crypto import USER_FIELD, ErasedError, UserKeys
from shared.errors import StepResultTooLargeError
from shared.workflow.kvcas import BucketFullError, CasWriteError, kv_publish
from shared.workflow.model import TERMINAL, InstanceState, decode_state, encode

log = logging.getLogger(__name__)

# One record must fit one NATS message (1 MiB by default) with room for headers.
MAX_RECORD_BYTES = 1_000_000

Mutation = Callable[[InstanceState], bool]

# Index groups: a finished status is a group of its own; every other status is "active".
# Transitions among queued, running, waiting and paused (every step, sleep and wake) then
# write no index entry: an instance gets one when it is created and one when it finishes.
ACTIVE = "active"
GROUPS: tuple[str, ...] = (ACTIVE, "complete", "errored", "terminated")
# A stale index entry younger than this may belong to a write still in flight: readers
# skip it but leave it alone.
STALE_GRACE = timedelta(seconds=60)
DAY = 86400.0


def state_key(workflow: str, instance_id: str) -> str:
    return f"{workflow}.{instance_id}"


def index_group(status: str) -> str:
    return status if status in TERMINAL else ACTIVE


def user_of(params: Any) -> str | None:
    """The user an instance belongs to: `userId` in its params, where it has one."""
    if isinstance(params, dict):
        user = params.get("userId")
        if isinstance(user, str) and user:
            return user
        if isinstance(user, int) and not isinstance(user, bool):
            return str(user)
    return None


def user_token(user_id: str) -> str:
    """A subject-safe, fixed-size token for a user id (ids may hold dots or spaces)."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Retention:
    """How long finished records are kept (seconds): complete and terminated ones, and
    errored ones (kept longer, to be looked into). Zero or less keeps them for ever."""

    finished: float = 30 * DAY
    errored: float = 90 * DAY

    def ttl(self, status: str) -> int | None:
        if status not in TERMINAL:
            return None
        seconds = self.errored if status == "errored" else self.finished
        return max(1, int(seconds)) if seconds > 0 else None


@dataclass(frozen=True)
class IndexSubjects:
    """Subjects of the list index stream `<ns>_index`.

    `<ns>.ix.<workflow>.<group>` orders one workflow's instances of one group by the time
    they entered it; `<ns>.ixu.<user token>.<workflow>` orders a user's instances. A page
    reads one subject (or a wildcard over a handful) from a sequence: its cost does not
    depend on how many other instances exist.
    """

    names: Names

    @property
    def stream(self) -> str:
        return f"{self.names.namespace}_index"

    def group(self, workflow: str | None, group: str | None) -> str:
        return f"{self.names.namespace}.ix.{workflow or '*'}.{group or '*'}"

    def user(self, user_id: str, workflow: str | None) -> str:
        return f"{self.names.namespace}.ixu.{user_token(user_id)}.{workflow or '*'}"


class IndexEntry(msgspec.Struct, frozen=True):
    """One index entry: which instance (the record says whether it still applies)."""

    w: str
    i: str


class Conflict(Exception):
    """Someone else wrote the record first (internal: the caller reloads)."""


class StoreWriteError(nats.errors.Error):
    """JetStream refused a record write for a reason other than a lost race."""


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    seq: int = 0
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)
_entry_decoder = msgspec.json.Decoder(IndexEntry)
WRITE_TIMEOUT = 5.0
INDEX_RETRIES = 20
READ_TIMEOUT = 5.0


def retention_of(settings: EngineSettings) -> Retention:
    return Retention(finished=settings.instance_retention, errored=settings.errored_retention)


def index_stream_config(names: Names, *, replicas: int = 1) -> StreamConfig:
    """The list index stream. Entries leave by delete or by their TTL."""
    return StreamConfig(
        name=IndexSubjects(names).stream,
        subjects=[f"{names.namespace}.ix.>", f"{names.namespace}.ixu.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        allow_direct=True,
        allow_msg_ttl=True,
    )


async def ensure_index(js: JetStreamContext, names: Names, *, replicas: int = 1) -> None:
    """The index stream, created or brought up to date when it is not as wanted. Read
    first: no write when it is (a service's NATS user may not change topology; the
    admin's `howlerhire nats setup` makes it)."""
    from shared.workflow.topology import config_matches, explicit_fields

    config = index_stream_config(names, replicas=replicas)
    try:
        info = await js.stream_info(config.name or "")
        if config_matches(explicit_fields(config), info.config.as_dict()):
            return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != 10058:  # exists with another configuration
            raise
        await js.update_stream(config)


async def ensure_msg_ttl(js: JetStreamContext, names: Names) -> bool:
    """Allow per-message TTLs on the instance bucket (buckets made by older clients do
    not); False when it is not allowed and may not be changed by this user."""
    info = await js.stream_info(f"KV_{names.state_bucket}")
    if info.config.allow_msg_ttl:
        return True
    info.config.allow_msg_ttl = True
    try:
        await js.update_stream(info.config)
    except (nats.errors.Error, TimeoutError) as exc:
        log.error(
            "instance bucket KV_%s does not allow message TTLs and could not be changed "
            "(%s): finished instances are kept until `howlerhire nats setup` runs",
            names.state_bucket,
            type(exc).__name__,
        )
        return False
    return True


async def open_store(
    nc: NATS,
    names: Names,
    *,
    replicas: int = 1,
    retention: Retention | None = None,
    keys: UserKeys | None = None,
) -> InstanceStore:
    """The instance bucket and its index (created if missing, as the topology does).
    With `keys`, records of a user are sealed with the user's data key (shared/crypto.py)."""
    js = nc.jetstream()
    bucket = await ensure_bucket(js, names.state_bucket, replicas=replicas)
    await ensure_index(js, names, replicas=replicas)
    if not await ensure_msg_ttl(js, names):
        retention = Retention(finished=0, errored=0)
    return InstanceStore(
        bucket, nc, names=names, retention=retention, direct=replicas == 1, keys=keys
    )


class InstanceStore:
    """Reads and writes instance records; every write is a create or a CAS update.

    Writes are one request each to the bucket's subject with
    `Nats-Expected-Last-Subject-Sequence` (0 for a create): the server's compare-and-set,
    without the client library's extra work (its create re-reads the key on a conflict to
    look for a delete marker; records are never deleted, they expire). Reads go through
    the KV API.

    With `names`, every write that moves a record into another index group first appends
    its index entries and, once the record is written, deletes the old ones. A finished
    record and its entries carry a per-message TTL (`Nats-TTL`, NATS >= 2.11): JetStream
    removes them when the retention runs out, with no sweeper of ours.
    """

    def __init__(
        self,
        kv: KeyValue,
        nc: NATS,
        *,
        names: Names | None = None,
        retention: Retention | None = None,
        direct: bool = True,
        keys: UserKeys | None = None,
    ) -> None:
        self.kv = kv
        self.keys = keys
        self.nc = nc
        self.prefix = f"$KV.{kv._name}."
        self.stream = f"KV_{kv._name}"
        self.index = IndexSubjects(names) if names is not None else None
        self.retention = retention or Retention()
        self.direct = direct
        self._sink = nc.new_inbox()  # replies to fire-and-forget requests go nowhere

    async def _request(self, subject: str, data: bytes, headers: dict[str, str]) -> _PubAck:
        reply = await self.nc.request(subject, data, timeout=WRITE_TIMEOUT, headers=headers)
        return _ack_decoder.decode(reply.data)

    async def _write(self, key: str, data: bytes, last: int, ttl: int | None = None) -> int | None:
        """Publish `data` if the key's last revision is `last`; None if it is not."""
        headers = {"Nats-Expected-Last-Subject-Sequence": str(last)}
        if ttl is not None:
            headers["Nats-TTL"] = str(ttl)
        try:
            return await kv_publish(self.nc, self.prefix + key, data, headers)
        except BucketFullError as exc:
            # A redelivery meets the same wall: the step fails for good now instead of a
            # nak storm up to max_deliver (R17).
            raise StepResultTooLargeError(
                f"instance record of {len(data)} bytes does not fit: the instance bucket "
                f"is full ({exc})"
            ) from exc
        except CasWriteError as exc:
            raise StoreWriteError(f"record write refused: {exc}") from exc

    async def _written(self, state: InstanceState, last: int) -> int | None:
        """Write the record (and its index entries when its group changes)."""
        key = state_key(state.workflow, state.instance_id)
        ttl = self.retention.ttl(state.status)
        group = index_group(state.status)
        if self.index is None or (state.indexed_as == group and state.index):
            return await self._write(key, await self._encoded(state), last, ttl)
        old, old_group = state.index, state.indexed_as
        state.index = await self._append_entries(state, group, ttl)
        state.indexed_as = group
        try:
            data = await self._encoded(state)
            written = await self._write(key, data, last, ttl)
        except BaseException:
            self.forget(state.index)
            state.index, state.indexed_as = old, old_group
            raise
        if written is None:
            self.forget(state.index)  # lost the race: these entries point at nothing
            state.index, state.indexed_as = old, old_group
            return None
        self.forget(old)
        return written

    async def _append_entries(self, state: InstanceState, group: str, ttl: int | None) -> list[int]:
        assert self.index is not None
        entry = encode(IndexEntry(w=state.workflow, i=state.instance_id))
        headers = {"Nats-TTL": str(ttl)} if ttl is not None else {}
        subjects = [self.index.group(state.workflow, group)]
        user = user_of(state.params)
        if user is not None:
            subjects.append(self.index.user(user, state.workflow))
        acks = list(await asyncio.gather(*(self._request(s, entry, headers) for s in subjects)))
        for n, ack in enumerate(acks):
            # A refused append stored nothing, so it is safe to send again. A clustered
            # (R3) leader refuses some while earlier proposals are in flight ("expected
            # stream sequence does not match", seen with 100 concurrent creates): retry
            # those briefly, as kv_publish does for records.
            for attempt in range(INDEX_RETRIES):
                if ack.error is None:
                    break
                await asyncio.sleep(min(0.2, 0.005 * (attempt + 1)))
                ack = acks[n] = await self._request(subjects[n], entry, headers)
            if ack.error is not None:
                raise StoreWriteError(f"index write refused: {ack.error.description}")
        return [ack.seq for ack in acks]

    async def _encoded(self, state: InstanceState) -> bytes:
        """The record as stored: sealed for its user when there are keys and a user."""
        user = user_of(state.params) if self.keys is not None else None
        if user is None or self.keys is None:
            return _checked(state)
        plain = encode(state)
        header = InstanceState(
            workflow=state.workflow,
            instance_id=state.instance_id,
            status=state.status,
            params={USER_FIELD: user},
            created_at=state.created_at,
            started_at=state.started_at,
            ended_at=state.ended_at,
            updated_at=state.updated_at,
            generation=state.generation,
            trigger=state.trigger,
            index=state.index,
            indexed_as=state.indexed_as,
            sealed=await self.keys.seal_raw(user, plain),
        )
        return _checked(header)

    async def decoded(self, data: bytes) -> InstanceState:
        """A stored record as the engine works with it: opened when sealed. A record whose
        user was erased reads as its header (status, times) with an `ErasedError`."""
        state = decode_state(data)
        if state.sealed is None:
            return state
        user = user_of(state.params)
        if self.keys is not None and user is not None:
            try:
                return decode_state(await self.keys.open_raw(user, state.sealed))
            except ErasedError:
                pass
        state.sealed = None
        state.error = ErasedError.info()
        return state

    def forget(self, seqs: Iterable[int]) -> None:
        """Delete index entries, fire and forget: one left behind is skipped by readers
        (the record does not list it) and deleted by the next one that meets it."""
        if self.index is None:
            return
        subject = f"$JS.API.STREAM.MSG.DELETE.{self.index.stream}"
        for seq in seqs:
            payload = b'{"seq":%d,"no_erase":true}' % seq
            task = asyncio.ensure_future(self.nc.publish(subject, payload, reply=self._sink))
            task.add_done_callback(_quiet)

    async def get(self, workflow: str, instance_id: str) -> tuple[InstanceState, int] | None:
        try:
            entry = await self.kv.get(state_key(workflow, instance_id))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if entry.value is None:
            return None
        return await self.decoded(entry.value), int(entry.revision or 0)

    async def create(self, state: InstanceState) -> int | None:
        """Create the record; None when it already exists."""
        return await self._written(state, 0)

    async def update(self, state: InstanceState, revision: int) -> int:
        """Write `state` if the record is still at `revision`; raise Conflict otherwise."""
        written = await self._written(state, revision)
        if written is None:
            raise Conflict
        return written

    async def mutate(
        self,
        workflow: str,
        instance_id: str,
        change: Mutation,
    ) -> tuple[InstanceState, int] | None:
        """Apply `change` (which edits the record in place and says whether it changed
        anything) until the CAS write wins. None when the instance does not exist."""
        while True:
            current = await self.get(workflow, instance_id)
            if current is None:
                return None
            state, revision = current
            if not change(state):
                return state, revision
            try:
                return state, await self.update(state, revision)
            except Conflict:
                continue

    # -- the index -----------------------------------------------------------------------

    async def _direct_batch(self, stream: str, request: dict[str, Any]) -> tuple[list[Msg], int]:
        """One batched direct get: its messages, and how many more match after them.

        Collected by a subscription callback, not `next_msg` per message (each of those
        costs a timer): a page's 50-100 messages are one wait."""
        msgs: list[Msg] = []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()

        async def collect(msg: Msg) -> None:
            headers = msg.headers or {}
            if headers.get("Status"):  # 204 end of batch, 404 nothing (more)
                if not done.done():
                    done.set_result(int(headers.get("Nats-Num-Pending", 0) or 0))
            else:
                msgs.append(msg)

        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, cb=collect)
        try:
            await self.nc.publish(
                f"$JS.API.DIRECT.GET.{stream}", msgspec.json.encode(request), reply=inbox
            )
            pending = await asyncio.wait_for(done, READ_TIMEOUT)
        finally:
            await sub.unsubscribe()
        return msgs, pending

    async def entries(
        self, subject: str, start: int, wanted: int
    ) -> list[tuple[int, IndexEntry, datetime]]:
        """(sequence, entry, time written) of up to `wanted` (at most 256) entries of an
        index subject from `start`: one batched direct get."""
        assert self.index is not None
        request = {"seq": start, "next_by_subj": subject, "batch": min(256, wanted)}
        msgs, _ = await self._direct_batch(self.index.stream, request)
        found = []
        for msg in msgs:
            headers = msg.headers or {}
            found.append(
                (int(headers["Nats-Sequence"]), _entry_decoder.decode(msg.data), _stamp(headers))
            )
        return found

    async def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], InstanceState]:
        """Current records of (workflow, instance) pairs: one direct multi-get when the
        bucket allows direct gets, else one KV get each (concurrently)."""
        if not keys:
            return {}
        found: dict[tuple[str, str], InstanceState] = {}
        if not self.direct:
            states = await asyncio.gather(*(self.get(wf, iid) for wf, iid in keys))
            for key, got in zip(keys, states, strict=True):
                if got is not None:
                    found[key] = got[0]
            return found
        subjects = [self.prefix + state_key(wf, iid) for wf, iid in keys]
        msgs, _ = await self._direct_batch(
            self.stream, {"multi_last": subjects, "batch": len(subjects)}
        )
        for msg in msgs:
            if (msg.headers or {}).get("KV-Operation") or not msg.data:
                continue  # a delete or purge marker
            state = await self.decoded(msg.data)
            found[(state.workflow, state.instance_id)] = state
        return found

    async def scan_index(
        self,
        subject: str,
        start: int,
        limit: int,
        scan_limit: int,
        keep: Callable[[InstanceState], bool],
    ) -> tuple[list[InstanceState], int | None]:
        """Up to `limit` current records filed under `subject` from sequence `start` that
        `keep` accepts, reading at most `scan_limit` entries; and the cursor to go on from
        (None: nothing more). Entries whose record no longer lists them are skipped, and
        deleted once they are old enough not to be a write in flight."""
        items: list[InstanceState] = []
        scanned = 0
        cursor = start
        more = True
        now = datetime.now(UTC)
        while len(items) < limit and scanned < scan_limit and more:
            want = min(scan_limit - scanned, max(limit - len(items), 16), 255)
            # One entry more than needed says whether there is a next page.
            chunk = await self.entries(subject, cursor, want + 1)
            if not chunk:
                more = False
                break
            more = len(chunk) > want
            chunk = chunk[:want]
            records = await self.get_many(list(dict.fromkeys((e.w, e.i) for _, e, _ in chunk)))
            stale: list[int] = []
            for n, (seq, entry, stamp) in enumerate(chunk):
                scanned += 1
                cursor = seq + 1
                state = records.get((entry.w, entry.i))
                if state is None or seq not in state.index:
                    if now - stamp > STALE_GRACE:
                        stale.append(seq)
                elif keep(state):
                    items.append(state)
                if len(items) >= limit or scanned >= scan_limit:
                    more = more or n < len(chunk) - 1
                    break
            self.forget(stale)
        return items, cursor if more else None


def _stamp(headers: dict[str, str]) -> datetime:
    raw = headers.get("Nats-Time-Stamp", "")
    try:
        # RFC 3339 with nanoseconds: keep microseconds for fromisoformat.
        head, _, frac = raw.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    except ValueError:
        return datetime.now(UTC)


def _quiet(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed delete only leaves a stale entry


def _checked(state: InstanceState) -> bytes:
    data = encode(state)
    if len(data) > MAX_RECORD_BYTES:
        raise StepResultTooLargeError(
            f"instance record would be {len(data)} bytes, over the {MAX_RECORD_BYTES}-byte limit"
        )
    return data
