"""Board snapshots shared by every run and replica, and the daily run ledger, in JetStream.

A snapshot is one board's whole listing for one period (`DISCOVERY_SNAPSHOT_TTL`),
stored once in the object store `<ns>_board_snapshots` under `<board>/<period>`; runs
read it there and filter it for their user, so instance records stay small (a board's
listing is megabytes). A claim key makes the fetch single-flight: when 200 runs start in
the same second, one fetches and the others wait for its snapshot. A failed fetch is
remembered for `failure_hold` seconds so the others report it instead of hammering a
board that is down.

The ledger (`<ns>_discovery_usage`) counts each user's runs per UTC day by instance id
(compare-and-set, so a replay or a race never counts one run twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from shared.errors import UpstreamError
from shared.sources import BoardUnavailableError, Listing, Posting

__all__ = ["SnapshotMissingError", "SnapshotRef", "SnapshotStore", "UsageLedger"]


class SnapshotRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where a board's listing for one period is stored (what the fetch step records)."""

    board: str
    period: str
    key: str
    total: int
    warnings: tuple[str, ...] = ()


class SnapshotMissingError(UpstreamError):
    """A recorded snapshot is no longer stored (older than the bucket keeps them)."""


class _Claim(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    failed: str | None = None  # "ErrorName: message" of the fetch that failed


def _token(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


class SnapshotStore:
    """`ensure` (fetch once per period, shared) and `postings` (read, cached in-process)."""

    def __init__(
        self,
        objects: ObjectStore,
        claims: KeyValue,
        *,
        wait: float = 60.0,
        failure_hold: float = 30.0,
        cache_size: int = 32,
    ) -> None:
        self._objects = objects
        self._claims = claims
        self._wait = wait
        self._failure_hold = failure_hold
        self._cache: OrderedDict[str, list[Posting]] = OrderedDict()
        self._cache_size = cache_size
        self._decoder = msgspec.json.Decoder(list[Posting])
        self._local: dict[str, asyncio.Lock] = {}

    @classmethod
    async def open(
        cls, js: JetStreamContext, namespace: str, *, replicas: int = 1, **options: float
    ) -> SnapshotStore:
        objects = await _object_store(js, f"{namespace}_board_snapshots", replicas)
        claims = await _bucket(js, f"{namespace}_board_claims", 3600.0, replicas)
        return cls(objects, claims, **options)  # type: ignore[arg-type]

    async def ensure(
        self, board: str, period: str, fetch: Callable[[], Awaitable[Listing]]
    ) -> SnapshotRef:
        """The snapshot of `board` for `period`, fetching it only if no run has."""
        key = f"{_token(board)}/{_token(period)}"
        lock = self._local.setdefault(key, asyncio.Lock())
        async with lock:  # runs in this process queue here instead of polling NATS
            ref = await self._stored(board, period, key)
            if ref is not None:
                return ref
            while True:
                claim_key = key.replace("/", ".")
                if await self._claim(claim_key):
                    return await self._fetch_and_store(board, period, key, claim_key, fetch)
                ref = await self._stored(board, period, key)
                if ref is not None:
                    return ref
                claim = await self._read_claim(claim_key)
                age = time.time() - claim.at if claim is not None else 0.0
                if claim is not None and claim.failed is not None:
                    if age < self._failure_hold:
                        raise BoardUnavailableError(f"{board}: {claim.failed} (fetched just now)")
                    await self._release(claim_key)
                elif claim is not None and age > self._wait:
                    # The run that claimed it died mid-fetch: take over.
                    await self._release(claim_key)
                else:
                    await asyncio.sleep(0.2)

    async def _fetch_and_store(
        self,
        board: str,
        period: str,
        key: str,
        claim_key: str,
        fetch: Callable[[], Awaitable[Listing]],
    ) -> SnapshotRef:
        try:
            listing = await fetch()
        except Exception as exc:
            failed = _Claim(at=time.time(), failed=f"{type(exc).__name__}: {exc}")
            await self._claims.put(claim_key, msgspec.json.encode(failed))
            raise
        except BaseException:
            await self._release(claim_key)
            raise
        data = zlib.compress(msgspec.json.encode(listing.postings), 6)
        ref = SnapshotRef(
            board=board,
            period=period,
            key=key,
            total=len(listing.postings),
            warnings=listing.warnings,
        )
        meta = nats.js.api.ObjectMeta(name=key, description=msgspec.json.encode(ref).decode())
        await self._objects.put(key, data, meta=meta)
        self._remember(key, listing.postings)
        return ref

    async def _stored(self, board: str, period: str, key: str) -> SnapshotRef | None:
        try:
            info = await self._objects.get_info(key)
        except nats.js.errors.ObjectNotFoundError:
            return None
        if info.deleted or not info.description:
            return None
        return msgspec.json.decode(info.description, type=SnapshotRef)

    async def _claim(self, claim_key: str) -> bool:
        try:
            await self._claims.create(claim_key, msgspec.json.encode(_Claim(at=time.time())))
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def _read_claim(self, claim_key: str) -> _Claim | None:
        try:
            entry = await self._claims.get(claim_key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return msgspec.json.decode(entry.value, type=_Claim) if entry.value else None

    async def _release(self, claim_key: str) -> None:
        with contextlib.suppress(nats.js.errors.Error):  # the bucket's max age removes it
            await self._claims.delete(claim_key)

    async def postings(self, ref: SnapshotRef) -> list[Posting]:
        """The postings a ref points to (each snapshot read once per process)."""
        cached = self._cache.get(ref.key)
        if cached is not None:
            self._cache.move_to_end(ref.key)
            return cached
        try:
            result = await self._objects.get(ref.key)
        except nats.js.errors.ObjectNotFoundError as exc:
            raise SnapshotMissingError(f"{ref.board}: snapshot {ref.period} is gone") from exc
        postings = self._decoder.decode(zlib.decompress(result.data or b""))
        self._remember(ref.key, postings)
        return postings

    def _remember(self, key: str, postings: list[Posting]) -> None:
        self._cache[key] = postings
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class UsageLedger:
    """Runs per user per UTC day, keyed by instance id."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, namespace: str, *, replicas: int = 1) -> UsageLedger:
        return cls(await _bucket(js, f"{namespace}_discovery_usage", 3 * 86400.0, replicas))

    async def admit(self, user_id: str, day: str, run_id: str, limit: int) -> tuple[bool, int]:
        """Count `run_id` against the user's `day` if under `limit`; (admitted, used).

        A run already counted is admitted again (a replay), never counted twice.
        """
        key = f"{_token(user_id)}.{day}"
        while True:
            try:
                entry = await self._kv.get(key)
                runs: list[str] = msgspec.json.decode(entry.value or b"[]", type=list[str])
                revision: int | None = entry.revision
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                runs, revision = [], None
            if run_id in runs:
                return True, len(runs)
            if len(runs) >= limit:
                return False, len(runs)
            value = msgspec.json.encode([*runs, run_id])
            try:
                if revision is None:
                    await self._kv.create(key, value)
                else:
                    await self._kv.update(key, value, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another run of this user won the write; read again
            return True, len(runs) + 1


async def _bucket(js: JetStreamContext, name: str, ttl: float, replicas: int) -> KeyValue:
    config = KeyValueConfig(
        bucket=name, history=1, ttl=ttl, storage=StorageType.FILE, replicas=replicas
    )
    try:
        return await js.create_key_value(config)
    except nats.js.errors.BadRequestError:
        return await js.key_value(name)


async def _object_store(js: JetStreamContext, name: str, replicas: int) -> ObjectStore:
    config = ObjectStoreConfig(
        bucket=name, ttl=2 * 86400.0, storage=StorageType.FILE, replicas=replicas
    )
    try:
        return await js.create_object_store(name, config=config)
    except nats.js.errors.BadRequestError:
        return await js.object_store(name)
