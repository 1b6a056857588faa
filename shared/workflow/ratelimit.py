"""Shared rate limits: one token bucket per named limit, for every process of every service.

`RATE_LIMITS="resend=2/s,github=4500/h,anthropic_tokens=400000/min"` names the limits; a
step declares what it spends (`ctx.step(..., limit="resend")`, `limit=("anthropic_tokens",
2000)`, or `Spend(...)` with a `settle` hook that reads the actual amount off the step's
result). Each limit's bucket is one key of the KV bucket `<ns>_rate_limits`, changed only
by compare-and-set, so all replicas together stay under it: a bucket holds `amount`
tokens at most and refills at `amount / period`, so over any window of T seconds at most
`amount + rate * T` are spent.

A step that finds too few tokens waits — in the worker when the wait is short (it then
reserves its tokens, which may take the bucket below zero: later callers queue behind
it), parked durably when it is long (nothing reserved; it looks again when it wakes) —
and never fails for it. A `RetryAfterError` from a limited step drains the bucket until
the time the upstream gave, for every process.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from shared.bus import ensure_bucket
from shared.errors import ConfigError
from shared.workflow.kvcas import CasWriteError, cas_put

log = logging.getLogger(__name__)

T = TypeVar("T")

VARIABLE = "RATE_LIMITS"
LIMIT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
ENTRY = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)/(?P<count>\d+(?:\.\d+)?)?(?P<unit>[a-z]+)$")


def bucket_name(namespace: str) -> str:
    return f"{namespace}_rate_limits"


@dataclass(frozen=True)
class Rate:
    """A limit: at most `amount` per `period` seconds (also the burst a full bucket allows)."""

    name: str
    amount: float
    period: float

    @property
    def per_second(self) -> float:
        return self.amount / self.period

    def __str__(self) -> str:
        return f"{self.amount:g}/{self.period:g}s"


def parse_limits(text: str) -> dict[str, Rate]:
    """`"resend=2/s,github=4500/h,slow=1/10s"` → rates by name; ConfigError naming RATE_LIMITS
    and the entry on anything else (units: s, min, h, d, with an optional count: 10s)."""
    rates: dict[str, Rate] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, spec = part.partition("=")
        name, spec = name.strip(), spec.strip().lower().replace(" ", "")
        if not sep or not LIMIT_NAME.match(name):
            raise ConfigError(
                f"{VARIABLE} has an invalid entry {part!r}: expected name=amount/unit, the "
                "name 1-64 characters of [A-Za-z0-9_-] (e.g. resend=2/s)"
            )
        if name in rates:
            raise ConfigError(f"{VARIABLE} names the limit {name!r} twice")
        match = ENTRY.match(spec)
        if match is None or match["unit"] not in UNITS:
            raise ConfigError(
                f"{VARIABLE} has an invalid rate {spec!r} for {name!r}: expected amount/unit "
                f"with unit one of s, min, h, d (e.g. 2/s, 4500/h, 1/10s)"
            )
        amount = float(match["amount"])
        period = float(match["count"] or 1) * UNITS[match["unit"]]
        if amount <= 0 or period <= 0:
            raise ConfigError(f"{VARIABLE}: the rate of {name!r} must be above zero")
        rates[name] = Rate(name, amount, period)
    return rates


# The upstreams' own published limits, in force unless RATE_LIMITS names them otherwise:
# Resend allows 2 requests/s per team; GitHub 5,000/h per token (kept below it).
DEFAULT_RATE_LIMITS = "resend=2/s,github=4500/h"


def configured_rates(text: str) -> dict[str, Rate]:
    """The defaults overridden and extended by `text` (the RATE_LIMITS variable)."""
    return {**parse_limits(DEFAULT_RATE_LIMITS), **parse_limits(text)}


@dataclass(frozen=True)
class Spend(Generic[T]):
    """What one call of a step spends of a limit.

    `amount` is taken before the call (an estimate, for token limits). `settle`, given the
    step function's return value, says what the call really spent; the difference goes
    back to the bucket (or is taken on top) once the call returns:

        Spend("anthropic_tokens", 4000, settle=lambda reply: reply.usage.total_tokens)
    """

    limit: str
    amount: float = 1.0
    settle: Callable[[T], float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.limit, str) or not LIMIT_NAME.match(self.limit):
            raise ValueError(f"invalid limit name {self.limit!r}: use [A-Za-z0-9_-], at most 64")
        if not isinstance(self.amount, int | float) or self.amount < 0:
            raise ValueError(f"the amount spent of {self.limit!r} must be a number >= 0")


# What `ctx.step(..., limit=...)` accepts: a name (1 unit), (name, amount), a Spend, or a
# list of those for a call that spends several limits (requests and tokens).
# Generic in what the step function returns, so that a `settle` hook is type-checked
# against it: `ctx.step(..., limit=Spend("tokens", 900, settle=lambda r: r.usage))`.
OneLimit = str | tuple[str, float] | Spend[T]
StepLimit = OneLimit[T] | list[OneLimit[T]]


def spends_of(limit: StepLimit[Any]) -> tuple[Spend[Any], ...]:
    """Normalise a step's `limit=` argument; ValueError on anything else."""
    items: Sequence[Any] = limit if isinstance(limit, list) else [limit]
    spends: list[Spend[Any]] = []
    for item in items:
        if isinstance(item, Spend):
            spends.append(item)
        elif isinstance(item, str):
            spends.append(Spend(item))
        elif (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int | float)
        ):
            spends.append(Spend(item[0], float(item[1])))
        else:
            raise ValueError(
                f"limit= takes a name, (name, amount), Spend(...) or a list of them, not {item!r}"
            )
    names = [s.limit for s in spends]
    if len(set(names)) != len(names):
        raise ValueError(f"limit= names a limit twice: {names}")
    return tuple(spends)


class BucketRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One limit's bucket as stored: its tokens at time `at` (unix seconds), the rate the
    writer used (for readers that have no configuration), and a drain set by a 429."""

    tokens: float
    at: float
    amount: float
    period: float
    blocked_until: float = 0.0


@dataclass(frozen=True)
class LimitState:
    """A limit as an operator sees it now."""

    name: str
    rate: str  # "2/1s"
    capacity: float
    tokens: float  # available now (negative: reserved ahead by waiting calls)
    blocked_until: datetime | None  # drained after a 429 until then


_decoder = msgspec.json.Decoder(BucketRecord)
_encoder = msgspec.json.Encoder()


class LimitWriteError(nats.errors.Error):
    """JetStream refused a bucket write for a reason other than a lost race."""


@dataclass(frozen=True)
class Taken:
    """The outcome of `take`: go now (`wait` 0), go after sleeping `wait` (tokens
    reserved), or not taken at all (`wait` until it is worth looking again)."""

    taken: bool
    wait: float


class RateLimiter:
    """The shared buckets of one namespace, with this process's configured rates."""

    def __init__(self, kv: KeyValue, nc: NATS, rates: dict[str, Rate]) -> None:
        self.kv = kv
        self.nc = nc
        self.rates = rates
        self.prefix = f"$KV.{kv._name}."
        self._unknown: set[str] = set()

    @classmethod
    async def open(
        cls, nc: NATS, namespace: str, rates: dict[str, Rate], *, replicas: int = 1
    ) -> RateLimiter:
        kv = await ensure_bucket(nc.jetstream(), bucket_name(namespace), replicas=replicas)
        return cls(kv, nc, rates)

    def known(self, spends: Sequence[Spend[Any]]) -> list[Spend[Any]]:
        """The spends of configured limits; an unconfigured one is logged once and skipped."""
        found = []
        for spend in spends:
            if spend.limit in self.rates:
                found.append(spend)
            elif spend.limit not in self._unknown:
                self._unknown.add(spend.limit)
                log.warning(
                    "limit %r is not configured in %s: steps spending it are not limited",
                    spend.limit,
                    VARIABLE,
                )
        return found

    # -- reading and writing one bucket --------------------------------------------------

    async def _read(self, name: str) -> tuple[BucketRecord | None, int]:
        try:
            entry = await self.kv.get(name)
        except nats.js.errors.KeyNotFoundError as exc:
            return None, int(exc.entry.revision or 0) if exc.entry is not None else 0
        if not entry.value:
            return None, int(entry.revision or 0)
        try:
            return _decoder.decode(entry.value), int(entry.revision or 0)
        except msgspec.DecodeError:
            log.warning("rate-limit bucket %s is undecodable; starting it afresh", name)
            return None, int(entry.revision or 0)

    async def _write(self, name: str, record: BucketRecord, last: int) -> bool:
        try:
            written = await cas_put(self.nc, self.prefix + name, _encoder.encode(record), last)
        except CasWriteError as exc:
            raise LimitWriteError(f"rate-limit write refused: {exc}") from exc
        return written is not None

    def _now(self, rate: Rate, record: BucketRecord | None, now: float) -> BucketRecord:
        """The bucket refilled up to `now` (a missing one is full)."""
        if record is None:
            return BucketRecord(tokens=rate.amount, at=now, amount=rate.amount, period=rate.period)
        elapsed = max(0.0, now - record.at)
        tokens = min(rate.amount, record.tokens + elapsed * rate.per_second)
        return BucketRecord(
            tokens=tokens,
            at=max(now, record.at),
            amount=rate.amount,
            period=rate.period,
            blocked_until=record.blocked_until if record.blocked_until > now else 0.0,
        )

    async def _change(
        self, name: str, change: Callable[[BucketRecord, float], tuple[BucketRecord | None, T]]
    ) -> T:
        """Apply `change(refilled, now)` until its CAS write wins; a None record: no write."""
        rate = self.rates[name]
        while True:
            stored, revision = await self._read(name)
            now = time.time()
            updated, result = change(self._now(rate, stored, now), now)
            if updated is None or await self._write(name, updated, revision):
                return result

    # -- what steps do -------------------------------------------------------------------

    async def take(self, spends: Sequence[Spend[Any]], inline_max: float) -> Taken:
        """Take every spend's amount, all or nothing.

        Enough tokens: taken, go. Short of them by at most `inline_max` seconds of refill:
        reserved, go after `wait`. Otherwise (or while drained by a 429) nothing is taken
        and `wait` says when it is worth asking again.
        """
        taken: list[Spend[Any]] = []
        longest = 0.0
        for spend in spends:
            rate = self.rates[spend.limit]
            # A call bigger than the bucket waits for a full bucket, then goes into debt.
            need = min(spend.amount, rate.amount)

            def take_one(
                bucket: BucketRecord,
                now: float,
                spend: Spend[Any] = spend,
                need: float = need,
                rate: Rate = rate,
            ) -> tuple[BucketRecord | None, Taken]:
                if bucket.blocked_until > now:
                    wait = bucket.blocked_until - now + need / rate.per_second
                    return None, Taken(False, wait)
                wait = max(0.0, (need - bucket.tokens) / rate.per_second)
                if wait > inline_max:
                    return None, Taken(False, wait - inline_max / 2)
                bucket.tokens -= spend.amount
                return bucket, Taken(True, wait)

            outcome = await self._change(spend.limit, take_one)
            if not outcome.taken:
                await self.give_back(taken)
                return outcome
            taken.append(spend)
            longest = max(longest, outcome.wait)
        return Taken(True, longest)

    async def give_back(self, spends: Sequence[Spend[Any]]) -> None:
        """Return taken amounts (a reservation not used)."""
        for spend in spends:
            await self.adjust(spend.limit, spend.amount)

    async def adjust(self, name: str, delta: float) -> None:
        """Add `delta` tokens (negative: take more), never above a full bucket."""
        if delta == 0 or name not in self.rates:
            return
        cap = self.rates[name].amount

        def add(bucket: BucketRecord, now: float) -> tuple[BucketRecord | None, None]:
            bucket.tokens = min(cap, bucket.tokens + delta)
            return bucket, None

        await self._change(name, add)

    async def observe(self, name: str, remaining: float, reset_in: float) -> None:
        """An upstream reported its own count for this limit (rate-limit response headers):
        never hold more tokens than it has left, and with none left, drain until its reset."""
        if name not in self.rates:
            return
        if remaining <= 0:
            await self.drain([Spend(name)], max(0.0, reset_in))
            return

        def lower(bucket: BucketRecord, now: float) -> tuple[BucketRecord | None, None]:
            if bucket.tokens <= remaining:
                return None, None
            bucket.tokens = remaining
            return bucket, None

        await self._change(name, lower)

    async def blocked(self, spends: Sequence[Spend[Any]]) -> float:
        """Seconds until every spend's limit is undrained (0: none is drained)."""
        longest = 0.0
        now = time.time()
        for spend in spends:
            stored, _ = await self._read(spend.limit)
            if stored is not None and stored.blocked_until > now:
                longest = max(longest, stored.blocked_until - now)
        return longest

    async def drain(self, spends: Sequence[Spend[Any]], seconds: float) -> None:
        """An upstream said 429, retry after `seconds`: empty each bucket until then, for
        every process (the refill restarts from zero at that time)."""
        for spend in spends:

            def block(bucket: BucketRecord, now: float) -> tuple[BucketRecord | None, None]:
                until = now + seconds
                if bucket.blocked_until >= until:
                    return None, None
                bucket.blocked_until = until
                bucket.tokens = min(0.0, bucket.tokens)
                bucket.at = until
                return bucket, None

            await self._change(spend.limit, block)
            log.warning(
                "limit %r drained for %.1fs: the upstream asked to retry later",
                spend.limit,
                seconds,
            )

    # -- operators -----------------------------------------------------------------------

    async def states(self) -> list[LimitState]:
        return await read_states(self.kv, self.rates)


async def read_states(
    kv: KeyValue | None, rates: dict[str, Rate] | None = None
) -> list[LimitState]:
    """Every limit's state now: the configured ones (full when never used) and any other
    found in the bucket (with the rate its last writer used)."""
    names = set(rates or {})
    if kv is not None:
        # Stream info lists the keys in one request (kv.keys would create a consumer).
        prefix = f"$KV.{kv._name}."
        info = await kv._js.stream_info(f"KV_{kv._name}", subjects_filter=prefix + ">")
        names.update(subject[len(prefix) :] for subject in (info.state.subjects or {}))
    now = time.time()
    found: list[LimitState] = []
    for name in sorted(names):
        stored = None
        if kv is not None:
            with contextlib.suppress(nats.js.errors.KeyNotFoundError, msgspec.DecodeError):
                entry = await kv.get(name)
                stored = _decoder.decode(entry.value) if entry.value else None
        rate = (rates or {}).get(name) or (
            Rate(name, stored.amount, stored.period) if stored is not None else None
        )
        if rate is None:
            continue
        tokens = rate.amount
        blocked = None
        if stored is not None:
            elapsed = max(0.0, now - stored.at)
            tokens = min(rate.amount, stored.tokens + elapsed * rate.per_second)
            if stored.blocked_until > now:
                blocked = datetime.fromtimestamp(stored.blocked_until, UTC)
        found.append(
            LimitState(
                name=name,
                rate=str(rate),
                capacity=rate.amount,
                tokens=round(tokens, 3),
                blocked_until=blocked,
            )
        )
    return found


__all__ = [
    "DEFAULT_RATE_LIMITS",
    "LimitState",
    "OneLimit",
    "Rate",
    "RateLimiter",
    "Spend",
    "StepLimit",
    "Taken",
    "bucket_name",
    "configured_rates",
    "parse_limits",
    "read_states",
    "spends_of",
]
