"""The cross-run step cache: one computation of a step per (workflow, step, key, version).

A step called with `cache=CachePolicy(key=..., ttl=...)` looks in the bucket
`<ns>_step_cache` before it runs. Each entry is one KV key,

    <workflow>.<step>.<version>.<key>        (tokens escaped, see `token`)

holding either a *claim* (someone is computing it) or the *value*. The first run to find
no entry claims it with a create (`Nats-Expected-Last-Subject-Sequence: 0`); every other
run waits for the value, and takes the claim over with a compare-and-set once the claim
has lapsed (its holder died). A holder renews its claim while it computes, so the lease
(the worker's ack wait: the time after which the holder's message would be redelivered
anyway) bounds how long a dead holder blocks the others. Each write carries a per-message
TTL (NATS ≥ 2.11) so the server itself removes lapsed claims and expired values; readers
also check the expiry stored in the entry, so they never depend on when that happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared.bus import ensure_bucket
from shared.errors import RetryAfterError
from shared.metrics import metrics
from shared.workflow.kvcas import CasWriteError, kv_publish
from shared.workflow.model import utcnow
from shared.workflow.ratelimit import Rate, RateLimiter, Spend

log = logging.getLogger(__name__)

T = TypeVar("T")

SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
NO_VERSION = "="  # never produced by `token`: an escape is always "=" and two hex digits
MAX_KEY_CHARS = 400  # escaped; a subject must stay well inside a NATS control line
POLL_FIRST, POLL_MAX = 0.05, 0.5


def bucket_name(namespace: str) -> str:
    return f"{namespace}_step_cache"


def token(text: str) -> str:
    """One subject token for any text: [A-Za-z0-9_-] kept, every other byte `=XX`.

    The mapping is per byte, so it is injective and keeps prefixes: the token of a prefix
    of a key is a prefix of the key's token (what invalidation by prefix relies on).
    """
    return "".join(chr(b) if b in SAFE else f"={b:02X}" for b in text.encode())


@dataclass(frozen=True)
class CachePolicy:
    """Share a step's result across runs: `ctx.step(..., cache=CachePolicy(key=..., ttl=...))`.

    Any run of the same workflow and step name with the same `key` (and `version`) within
    `ttl` gets the stored value without calling the function. Bump `version` when the
    step's code changes what it returns; old entries are then never read again.
    """

    key: str
    ttl: timedelta
    version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("CachePolicy.key must be a non-empty string")
        if not isinstance(self.ttl, timedelta) or self.ttl < timedelta(seconds=1):
            raise ValueError("CachePolicy.ttl must be a timedelta of at least one second")
        if self.version is not None and (not isinstance(self.version, str) or not self.version):
            raise ValueError("CachePolicy.version must be None or a non-empty string")
        if len(token(self.key)) > MAX_KEY_CHARS:
            raise ValueError(
                f"CachePolicy.key is too long ({len(self.key)} characters): pass a digest "
                "of the content (sha256) instead"
            )


class CacheEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One cache key's current value: a claim being computed, or the stored result."""

    state: Literal["claimed", "done"]
    owner: str  # "<workflow>/<instance>:<claim id>" of the run that claimed or computed it
    key: str
    version: str | None = None
    until: datetime  # a claim's lease end, a value's expiry
    stored_at: datetime
    value: Any = None

    def live(self, now: datetime) -> bool:
        return self.until > now


_entry_decoder = msgspec.json.Decoder(CacheEntry)
_encoder = msgspec.json.Encoder()


class CacheWriteError(nats.errors.Error):
    """JetStream refused a cache write for a reason other than a lost race."""


@dataclass(frozen=True)
class Hit:
    """The step's value was found in the cache."""

    value: Any
    owner: str


class Claim:
    """This run holds the right to compute an entry; renewed until stored or released."""

    def __init__(self, cache: StepCache, key: str, entry: CacheEntry, revision: int) -> None:
        self.cache = cache
        self.key = key
        self.entry = entry
        self.revision = revision
        self.lost = False
        self.done = False
        self._lock = asyncio.Lock()
        self._renewer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._renewer = asyncio.create_task(self._renew(), name=f"cache-claim:{self.key}")

    async def _renew(self) -> None:
        interval = max(0.2, self.cache.lease / 3)
        while not self.done and not self.lost:
            await asyncio.sleep(interval)
            async with self._lock:
                if self.done or self.lost:
                    return
                now = utcnow()
                renewed = msgspec.structs.replace(
                    self.entry, until=now + timedelta(seconds=self.cache.lease), stored_at=now
                )
                try:
                    revision = await self.cache._write(
                        self.key, renewed, self.revision, self.cache.lease
                    )
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    log.warning("cache claim %s not renewed (%s); trying again", self.key, exc)
                    continue
                if revision is None:
                    log.warning("cache claim %s was taken over (its lease lapsed)", self.key)
                    self.lost = True
                    return
                self.entry, self.revision = renewed, revision

    async def store(self, value: Any, ttl: timedelta) -> bool:
        """Replace the claim with the value; False if the claim was lost meanwhile."""
        async with self._lock:
            self.done = True
            if self.lost:
                return False
            now = utcnow()
            entry = CacheEntry(
                state="done",
                owner=self.entry.owner,
                key=self.entry.key,
                version=self.entry.version,
                until=now + ttl,
                stored_at=now,
                value=value,
            )
            try:
                revision = await self.cache._write(
                    self.key, entry, self.revision, ttl.total_seconds()
                )
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                # The run keeps its value; the next run with this key computes it again.
                log.warning("cache value %s not stored: %s", self.key, exc)
                return False
            if revision is None:
                self.lost = True  # invalidated or taken over meanwhile: not ours to write
                return False
            self.entry, self.revision = entry, revision
            return True

    async def close(self) -> None:
        """Stop renewing; a claim that holds no value is released for the others."""
        self.done = True
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        async with self._lock:
            if self.lost or self.entry.state == "done":
                return
            self.lost = True
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await self.cache._release(self.key, self.revision)


class StepCache:
    """The step cache of one namespace (one KV bucket)."""

    def __init__(self, kv: KeyValue, nc: NATS, lease: float) -> None:
        self.kv = kv
        self.nc = nc
        self.lease = max(1.0, float(lease))
        self.bucket = kv._name
        self.stream = f"KV_{self.bucket}"
        self.prefix = f"$KV.{self.bucket}."

    @classmethod
    async def open(
        cls, nc: NATS, namespace: str, *, lease: float = 30.0, replicas: int = 1
    ) -> StepCache:
        kv = await ensure_bucket(nc.jetstream(), bucket_name(namespace), replicas=replicas)
        return cls(kv, nc, lease)

    @staticmethod
    def entry_key(workflow: str, step: str, policy: CachePolicy) -> str:
        version = NO_VERSION if policy.version is None else token(policy.version)
        return f"{workflow}.{token(step)}.{version}.{token(policy.key)}"

    # -- raw reads and writes ------------------------------------------------------------

    async def _read(self, key: str) -> tuple[CacheEntry | None, int]:
        """The entry and the key's last revision (a delete marker: None and its revision;
        no message at all: None and 0)."""
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError as exc:
            revision = int(exc.entry.revision or 0) if exc.entry is not None else 0
            return None, revision
        if not entry.value:
            return None, int(entry.revision or 0)
        try:
            return _entry_decoder.decode(entry.value), int(entry.revision or 0)
        except msgspec.DecodeError:
            log.warning("cache entry %s is undecodable; it will be replaced", key)
            return None, int(entry.revision or 0)

    async def _write(self, key: str, entry: CacheEntry, last: int, ttl: float) -> int | None:
        """Write `entry` if the key's last revision is `last` (0: no message); None if not."""
        return await self._publish(
            key,
            _encoder.encode(entry),
            {
                "Nats-Expected-Last-Subject-Sequence": str(last),
                "Nats-TTL": f"{max(1, int(ttl + 0.999))}s",
            },
        )

    async def _release(self, key: str, last: int) -> None:
        """Delete the key if it is still at `last` (a marker that expires by itself)."""
        await self._publish(
            key,
            b"",
            {
                "Nats-Expected-Last-Subject-Sequence": str(last),
                "KV-Operation": "DEL",
                "Nats-TTL": f"{max(1, int(self.lease + 0.999))}s",
            },
        )

    async def _publish(self, key: str, data: bytes, headers: dict[str, str]) -> int | None:
        try:
            return await kv_publish(self.nc, self.prefix + key, data, headers)
        except CasWriteError as exc:
            raise CacheWriteError(f"cache write refused: {exc}") from exc

    # -- the single-flight protocol ------------------------------------------------------

    async def acquire(
        self, workflow: str, step: str, policy: CachePolicy, owner: str
    ) -> Hit | Claim:
        """The stored value, or the claim to compute it (waiting while another run holds it).

        A claim returned here is being renewed; the caller must `store` or `close` it.
        """
        key = self.entry_key(workflow, step, policy)
        wait = POLL_FIRST
        while True:
            entry, revision = await self._read(key)
            now = utcnow()
            if entry is not None and entry.live(now):
                if entry.state == "done":
                    return Hit(entry.value, entry.owner)
                # Someone is computing it: wait for the value, or for the claim to lapse.
                await asyncio.sleep(min(wait, max(0.0, (entry.until - now).total_seconds())))
                wait = min(POLL_MAX, wait * 1.5)
                continue
            mine = CacheEntry(
                state="claimed",
                owner=f"{owner}:{uuid.uuid4().hex[:8]}",
                key=policy.key,
                version=policy.version,
                until=now + timedelta(seconds=self.lease),
                stored_at=now,
            )
            # Nothing there, a lapsed claim, an expired value or a delete marker: take it
            # with a compare-and-set on what we saw. Losing the race means someone else
            # just claimed it; look again.
            written = await self._write(key, mine, revision, self.lease)
            if written is not None:
                if entry is not None and entry.state == "claimed":
                    log.info("cache %s: took over a lapsed claim of %s", key, entry.owner)
                claim = Claim(self, key, mine, written)
                claim.start()
                return claim

    # -- operators -----------------------------------------------------------------------

    async def keys(self, workflow: str, step: str | None = None) -> list[str]:
        """The keys (entries, claims and delete markers) of a workflow or of one step."""
        pattern = f"{workflow}.>" if step is None else f"{workflow}.{token(step)}.*.*"
        # Stream info lists a filter's subjects in one request (nats-py's `kv.keys` filters
        # by substring and would not honour a wildcard).
        js: JetStreamContext = self.nc.jetstream()
        info = await js.stream_info(self.stream, subjects_filter=self.prefix + pattern)
        return sorted(subject[len(self.prefix) :] for subject in (info.state.subjects or {}))

    async def entries(self, workflow: str, step: str | None = None) -> dict[str, CacheEntry]:
        """The values and claims held now, by key (markers and undecodable ones left out)."""
        found = {}
        for key in await self.keys(workflow, step):
            entry, _ = await self._read(key)
            if entry is not None:
                found[key] = entry
        return found

    async def remove(self, key: str) -> None:
        """Purge one entry (a value or a claim) and every revision of it (erasure)."""
        await self._publish(
            key,
            b"",
            {
                "KV-Operation": "PURGE",
                "Nats-Rollup": "sub",
                "Nats-TTL": f"{max(60, int(self.lease * 2))}s",
            },
        )

    async def invalidate(
        self, workflow: str, step: str | None = None, prefix: str | None = None
    ) -> int:
        """Remove the entries of a workflow (one step's, those whose key starts with
        `prefix`); returns how many values or claims went. A run computing one of them
        meanwhile still gets its value, but does not store it."""
        keys = await self.keys(workflow, step)
        if prefix:
            wanted = token(prefix)
            keys = [k for k in keys if k.split(".", 3)[3].startswith(wanted)]
        removed = 0
        for key in keys:
            entry, _ = await self._read(key)
            if entry is None:
                continue  # a delete marker already
            # A KV purge (a publish, like a put: no stream-admin right needed) that leaves
            # one marker, itself gone after a while; a holder's later CAS on its claim fails.
            await self._publish(
                key,
                b"",
                {
                    "KV-Operation": "PURGE",
                    "Nats-Rollup": "sub",
                    "Nats-TTL": f"{max(60, int(self.lease * 2))}s",
                },
            )
            removed += 1
        return removed


class StepServices:
    """What `ctx.step(..., cache=..., limit=...)` needs from its worker: the step cache and
    the shared rate limits, each opened on first use (a service whose workflows cache
    nothing never creates the cache bucket)."""

    def __init__(
        self,
        nc: NATS,
        namespace: str,
        *,
        lease: float,
        replicas: int = 1,
        rates: dict[str, Rate] | None = None,
    ) -> None:
        self.nc = nc
        self.namespace = namespace
        self.lease = lease
        self.replicas = replicas
        self.rates = rates or {}
        self._cache: StepCache | None = None
        self._limiter: RateLimiter | None = None
        self._opening = asyncio.Lock()

    async def cache(self) -> StepCache:
        if self._cache is None:
            async with self._opening:
                if self._cache is None:
                    self._cache = await StepCache.open(
                        self.nc, self.namespace, lease=self.lease, replicas=self.replicas
                    )
        return self._cache

    async def limiter(self) -> RateLimiter:
        if self._limiter is None:
            async with self._opening:
                if self._limiter is None:
                    self._limiter = await RateLimiter.open(
                        self.nc, self.namespace, self.rates, replicas=self.replicas
                    )
        return self._limiter

    async def run_step(
        self,
        workflow: str,
        instance_id: str,
        step: str,
        cache: CachePolicy | None,
        spends: Sequence[Spend[Any]],
        fn: Callable[..., Any],
        attempt: Callable[[Callable[..., Any]], Awaitable[Any]],
        park: Callable[[float], BaseException],
    ) -> tuple[Any, bool]:
        """One attempt of a step under its cache policy and limits: (value, from cache).

        `attempt(f)` calls `f` as the step would; `park(seconds)` is the exception that
        suspends the run for that long. The order: cache hit (nothing spent) → claim →
        tokens (wait) → the call → store; a long wait for tokens releases the claim.
        """
        settled: dict[str, float] = {}
        call = _metered(fn, spends, settled) if any(s.settle for s in spends) else fn

        async def limited() -> Any:
            if not spends:
                return await attempt(call)
            limiter = await self._engine_call(self.limiter())
            active = limiter.known(spends)
            if not active:
                return await attempt(call)
            await self._throttle(limiter, active, park)
            try:
                return await attempt(call)
            except RetryAfterError as exc:
                await self._engine_call(limiter.drain(active, exc.delay.total_seconds()))
                raise
            finally:
                # Settled whenever the function returned, even if its value was then
                # refused (a quality gate): the call was made and spent what it spent.
                for spend in active:
                    if spend.limit in settled:
                        actual = settled[spend.limit]
                        await self._engine_call(limiter.adjust(spend.limit, spend.amount - actual))

        if cache is None:
            return await limited(), False
        return await self.run_cached(workflow, instance_id, step, cache, limited)

    async def _throttle(
        self,
        limiter: RateLimiter,
        spends: Sequence[Spend[Any]],
        park: Callable[[float], BaseException],
    ) -> None:
        """Wait until the spends are taken: short waits here, long ones parked."""
        from shared.workflow.context import INLINE_RETRY_MAX

        while True:
            got = await self._engine_call(limiter.take(spends, INLINE_RETRY_MAX))
            if got.taken:
                if got.wait <= 0:
                    return
                _count_wait(spends, "inline", got.wait)
                await asyncio.sleep(got.wait)
                # A 429 drained the limit while we slept: the reservation is void.
                if await self._engine_call(limiter.blocked(spends)) <= 0:
                    return
                continue
            if got.wait > INLINE_RETRY_MAX:
                _count_wait(spends, "parked", got.wait)
                # Parked callers wake spread out, not all in the same second.
                raise park(got.wait + random.uniform(0.0, 1.0))
            pause = got.wait * random.uniform(1.0, 1.25)
            _count_wait(spends, "inline", pause)
            await asyncio.sleep(pause)

    @staticmethod
    async def _engine_call(call: Awaitable[T]) -> T:
        """NATS trouble in the engine's own bookkeeping: the message is redelivered later
        (EngineUnavailable), never counted as the step's failure."""
        from shared.workflow.context import INFRA_ERRORS, EngineUnavailable

        try:
            return await call
        except INFRA_ERRORS as exc:
            raise EngineUnavailable(f"step services: {exc}") from exc

    async def run_cached(
        self,
        workflow: str,
        instance_id: str,
        step: str,
        policy: CachePolicy,
        attempt: Callable[[], Awaitable[Any]],
    ) -> tuple[Any, bool]:
        """(value, True) from the cache, or (value, False) from `attempt()` under a claim.

        The step's own errors pass through unchanged (the claim is released for others).
        """
        cache = await self._engine_call(self.cache())
        got = await self._engine_call(
            cache.acquire(workflow, step, policy, f"{workflow}/{instance_id}")
        )
        if isinstance(got, Hit):
            metrics().workflow(workflow).cached.inc()
            return got.value, True
        try:
            value = await attempt()
            await got.store(value, policy.ttl)
            return value, False
        finally:
            await got.close()


def _count_wait(spends: Sequence[Spend[Any]], mode: str, seconds: float) -> None:
    """A wait for the shared rate limits (only on the slow path: no cost when tokens are there)."""
    m = metrics()
    for spend in spends:
        m.ratelimit_waits.labels(spend.limit, mode).inc()
        m.ratelimit_wait_seconds.labels(spend.limit, mode).inc(max(0.0, seconds))


def _metered(
    fn: Callable[..., Any], spends: Sequence[Spend[Any]], settled: dict[str, float]
) -> Callable[..., Any]:
    """`fn`, noting what each `Spend.settle` reads off its return value."""

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        for spend in spends:
            if spend.settle is None:
                continue
            try:
                settled[spend.limit] = float(spend.settle(result))
            except Exception as exc:  # noqa: BLE001 - a bad hook keeps the estimate
                log.warning("settle hook of limit %r failed (%s); estimate kept", spend.limit, exc)
        return result

    return call


__all__ = [
    "CacheEntry",
    "CachePolicy",
    "Claim",
    "Hit",
    "StepCache",
    "StepServices",
    "bucket_name",
    "token",
]
