"""Per-user LLM budgets: reserve before a model call, settle after, never over the limit.

Each subscription tier has a budget in dollars per user per period (`LLM_BUDGETS`,
"free=2,pro=20,premium=100", the tier names of `subscription_tiers`; -1 = unlimited;
`LLM_BUDGET_PERIOD` day, week (from Monday 00:00 UTC, as the weekly generation limit),
month, or `<n>s`: fixed windows of n seconds from the epoch, for staging and tests). One
KV key per user and period in the bucket `<ns>_llm_budget` holds what was spent and what
is reserved; every change is a compare-and-set (kvcas.py), so replicas racing on one user
never reserve more than the limit between them.

A workflow wraps each LLM step:

    grant = await reserve(ctx, guard, "generate-resume", estimate_usd)   # its own step
    written = await ctx.step("generate-resume", ...)
    await settle(ctx, guard, "generate-resume", grant)                   # its own step

`reserve` takes the estimate (an upper bound: the whole `max_tokens`, every gate round);
when the budget cannot hold it, the workflow's policy decides — `wait`: sleep durably
(`ctx.sleep_until`) until the period resets and try again; `fail`: raise
BudgetExceededError, which the workflow turns into `{success: false, error:
'budget_exceeded'}`. `settle` books the step's real cost (the usage its calls reported,
every attempt included) and frees the reservation; both are idempotent by a reservation
id, so a replayed or redelivered run books once. A reservation whose run died lapses
after `HOLD_SECONDS`.

Settling also adds the call's usage to the day's totals per user and workflow (key
`usage.<day>.<user>`), and tells the listeners added with `add_usage_listener` (metrics).
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from shared.bus import ensure_bucket
from shared.config import Settings
from shared.errors import ConfigError
from shared.metrics import metrics
from shared.weeks import week_start
from shared.workflow import Context
from shared.workflow.cache import token
from shared.workflow.kvcas import cas_change, kv_read
from shared.workflow.retry import RetryPolicy

__all__ = [
    "BudgetExceededError",
    "BudgetGuard",
    "BudgetSettings",
    "Budgets",
    "Grant",
    "add_usage_listener",
    "bucket_name",
    "parse_budgets",
    "reserve",
    "settle",
]

log = logging.getLogger(__name__)

MICROS = 1_000_000  # amounts are kept in micro-dollars: integers add up exactly
HOLD_SECONDS = 2 * 3600.0
KEEP_SETTLED = 64  # reservation ids remembered per key, for idempotent settling
Policy = Literal["wait", "fail"]
_ENTRY = re.compile(r"^(-1|\d+(?:\.\d+)?)$")
BUDGET_RETRY = RetryPolicy(limit=5, delay=timedelta(seconds=1), backoff="exponential")


def bucket_name(namespace: str) -> str:
    return f"{namespace}_llm_budget"


def parse_budgets(text: str) -> dict[str, float]:
    """`"free=2,pro=20,premium=-1"` → USD per period by tier; ConfigError naming LLM_BUDGETS."""
    budgets: dict[str, float] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        tier, sep, amount = (p.strip() for p in part.partition("="))
        if not sep or not tier or not _ENTRY.match(amount):
            raise ConfigError(
                f"LLM_BUDGETS has an invalid entry {part!r}: expected tier=dollars per period "
                "(-1 for unlimited), e.g. free=2,pro=20,premium=100"
            )
        budgets[tier] = float(amount)
    return budgets


def parse_policies(text: str) -> dict[str, Policy]:
    """`"resume-generation=fail,profile-sync=wait"` → policy by workflow id."""
    policies: dict[str, Policy] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        workflow, _, policy = (p.strip() for p in part.partition("="))
        if policy not in ("wait", "fail") or not workflow:
            raise ConfigError(
                f"LLM_BUDGET_POLICY has an invalid entry {part!r}: expected workflow=wait "
                "or workflow=fail"
            )
        policies[workflow] = "wait" if policy == "wait" else "fail"
    return policies


class BudgetSettings(Settings, frozen=True, kw_only=True):
    """Env: LLM_BUDGETS, LLM_BUDGET_PERIOD, LLM_BUDGET_POLICY (per-workflow overrides)."""

    # Dollars per user per period by tier (the subscription_tiers names); -1 = unlimited.
    # A tier not named gets the smallest budget named (never more than configured).
    llm_budgets: str = "free=2,pro=20,premium=100"
    llm_budget_period: str = "week"
    llm_budget_policy: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.llm_budget_period not in ("day", "week", "month") and not re.fullmatch(
            r"[1-9]\d*s", self.llm_budget_period
        ):
            raise ConfigError(
                f"LLM_BUDGET_PERIOD is {self.llm_budget_period!r}: expected day, week, month "
                "or a number of seconds such as 3600s"
            )
        if not parse_budgets(self.llm_budgets):
            raise ConfigError("LLM_BUDGETS names no tier (e.g. free=2,pro=20,premium=100)")
        parse_policies(self.llm_budget_policy)


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    amount: int  # micro-dollars
    until: float  # unix seconds: a lapsed hold (its run died) no longer counts


class BudgetRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One user's budget in one period, as stored."""

    limit: int  # micro-dollars, -1 unlimited (the limit when last written)
    spent: int = 0
    reserved: dict[str, Hold] = msgspec.field(default_factory=dict)
    settled: list[str] = msgspec.field(default_factory=list)
    tokens: dict[str, int] = msgspec.field(default_factory=dict)

    def held(self, now: float) -> int:
        return sum(h.amount for h in self.reserved.values() if h.until > now)


class DayTotals(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One user's usage on one UTC day, per workflow: calls, tokens, cost (micro-dollars)."""

    workflows: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    settled: list[str] = msgspec.field(default_factory=list)


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a reservation (a step's JSON result)."""

    granted: bool
    reservation: str
    amount_usd: float
    limit_usd: float  # -1 unlimited
    spent_usd: float
    reserved_usd: float
    period: str
    resets_at: datetime
    unlimited: bool = False


class Settled(msgspec.Struct, frozen=True, kw_only=True):
    reservation: str
    cost_usd: float
    spent_usd: float
    applied: bool  # False: this reservation was settled before (a replay)


UsageListener = Callable[[str, str, str, Mapping[str, float]], None]
_listeners: list[UsageListener] = []


def add_usage_listener(listener: UsageListener) -> None:
    """Call `listener(user_id, workflow, day, usage)` for every settled LLM step: the hook
    for metrics (usage has input/output/cache tokens, calls and `cost_usd`)."""
    _listeners.append(listener)


def _micros(usd: float) -> int:
    return round(usd * MICROS)


def _usd(micros: int) -> float:
    return round(micros / MICROS, 6)


class Budgets:
    """The budget bucket of one namespace, with this process's configuration."""

    def __init__(self, kv: KeyValue, nc: NATS, settings: BudgetSettings) -> None:
        self.kv = kv
        self.nc = nc
        self.settings = settings
        self.limits = parse_budgets(settings.llm_budgets)
        self.policies = parse_policies(settings.llm_budget_policy)
        self.clock: Callable[[], float] = time.time

    @classmethod
    async def open(
        cls, nc: NATS, namespace: str, settings: BudgetSettings, *, replicas: int = 1
    ) -> Budgets:
        kv = await ensure_bucket(nc.jetstream(), bucket_name(namespace), replicas=replicas)
        return cls(kv, nc, settings)

    def policy(self, workflow: str, default: Policy) -> Policy:
        return self.policies.get(workflow, default)

    def limit_usd(self, tier: str) -> float:
        if tier in self.limits:
            return self.limits[tier]
        finite = [v for v in self.limits.values() if v >= 0]
        return min(finite) if finite else -1.0

    def period(self, now: float) -> tuple[str, datetime, datetime]:
        """(key, start, end) of the budget period holding `now`."""
        moment = datetime.fromtimestamp(now, UTC)
        kind = self.settings.llm_budget_period
        if kind == "day":
            start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
            end = start + timedelta(days=1)
        elif kind.endswith("s") and kind[:-1].isdigit():
            length = int(kind[:-1])
            first = now - now % length
            return (
                f"s{length}-{int(first)}",
                datetime.fromtimestamp(first, UTC),
                datetime.fromtimestamp(first + length, UTC),
            )
        elif kind == "week":
            start = week_start(moment)
            end = start + timedelta(days=7)
        else:
            start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            days = calendar.monthrange(start.year, start.month)[1]
            end = start + timedelta(days=days)
        return f"{kind[0]}{start.date().isoformat()}", start, end

    def _key(self, period: str, user_id: str) -> str:
        return f"{period}.{token(user_id)}"

    async def reserve(self, user_id: str, tier: str, reservation: str, amount_usd: float) -> Grant:
        """Hold `amount_usd` of the user's budget, if it fits; idempotent by `reservation`."""
        now = self.clock()
        period, _, end = self.period(now)
        limit = _micros(self.limit_usd(tier)) if self.limit_usd(tier) >= 0 else -1
        amount = _micros(amount_usd)

        def change(record: BudgetRecord | None) -> tuple[bytes | None, Grant]:
            record = record or BudgetRecord(limit=limit)
            record.limit = limit
            # Lapsed holds go; they were the reservations of runs that never settled.
            before = len(record.reserved)
            record.reserved = {k: h for k, h in record.reserved.items() if h.until > now}
            held = record.held(now)
            already = reservation in record.reserved or reservation in record.settled
            fits = limit < 0 or record.spent + held + amount <= limit
            granted = already or fits
            write = None
            if granted and not already:
                record.reserved[reservation] = Hold(amount=amount, until=now + HOLD_SECONDS)
                held += amount
                write = _encode(record)
            elif len(record.reserved) != before:
                write = _encode(record)
            return write, Grant(
                granted=granted,
                reservation=reservation,
                amount_usd=_usd(amount),
                limit_usd=_usd(limit) if limit >= 0 else -1.0,
                spent_usd=_usd(record.spent),
                reserved_usd=_usd(held),
                period=period,
                resets_at=end,
                unlimited=limit < 0,
            )

        return await cas_change(
            self.nc, self.kv, self._key(period, user_id), _decode_record, change
        )

    async def settle(
        self,
        user_id: str,
        reservation: str,
        period: str,
        usage: Mapping[str, Any] | None,
        workflow: str,
    ) -> Settled:
        """Book the real cost (`usage["cost_usd"]`) against the period the reservation was
        made in and free the hold; idempotent by `reservation`."""
        cost = _micros(float((usage or {}).get("cost_usd", 0.0)))
        tokens = {
            k: int(v)
            for k, v in (usage or {}).items()
            if k.endswith("_tokens") and isinstance(v, int | float)
        }

        def change(record: BudgetRecord | None) -> tuple[bytes | None, Settled]:
            record = record or BudgetRecord(limit=-1)
            if reservation in record.settled:
                return None, Settled(
                    reservation=reservation,
                    cost_usd=_usd(cost),
                    spent_usd=_usd(record.spent),
                    applied=False,
                )
            record.reserved.pop(reservation, None)
            record.spent += cost
            for name, value in tokens.items():
                record.tokens[name] = record.tokens.get(name, 0) + value
            record.settled = [*record.settled, reservation][-KEEP_SETTLED:]
            return _encode(record), Settled(
                reservation=reservation,
                cost_usd=_usd(cost),
                spent_usd=_usd(record.spent),
                applied=True,
            )

        outcome = await cas_change(
            self.nc, self.kv, self._key(period, user_id), _decode_record, change
        )
        if outcome.applied and usage:
            day = datetime.fromtimestamp(self.clock(), UTC).date().isoformat()
            await self._add_day(user_id, workflow, day, reservation, usage, cost)
            for listener in _listeners:
                try:
                    listener(user_id, workflow, day, {**usage, "cost_usd": _usd(cost)})
                except Exception as exc:  # noqa: BLE001 - metrics never fail a run
                    log.warning("LLM usage listener failed: %s", exc)
        return outcome

    async def _add_day(
        self,
        user_id: str,
        workflow: str,
        day: str,
        reservation: str,
        usage: Mapping[str, Any],
        cost: int,
    ) -> None:
        def change(totals: DayTotals | None) -> tuple[bytes | None, None]:
            totals = totals or DayTotals()
            if reservation in totals.settled:
                return None, None
            row = totals.workflows.setdefault(workflow, {})
            for name, value in usage.items():
                if name.endswith("_tokens") or name == "calls":
                    row[name] = row.get(name, 0) + int(value)
            row["cost_micros"] = row.get("cost_micros", 0) + cost
            totals.settled = [*totals.settled, reservation][-KEEP_SETTLED:]
            return msgspec.json.encode(totals), None

        await cas_change(self.nc, self.kv, f"usage.{day}.{token(user_id)}", _decode_day, change)

    async def record(self, user_id: str, when: float | None = None) -> BudgetRecord | None:
        """The user's budget record of the period holding `when` (now), for operators."""
        period, _, _ = self.period(self.clock() if when is None else when)
        raw, _ = await kv_read(self.kv, self._key(period, user_id))
        return _decode_record(raw)

    async def day_totals(self, user_id: str, day: str) -> DayTotals | None:
        """The user's usage on a UTC day (YYYY-MM-DD), per workflow."""
        raw, _ = await kv_read(self.kv, f"usage.{day}.{token(user_id)}")
        return _decode_day(raw)


def _encode(record: BudgetRecord) -> bytes:
    return msgspec.json.encode(record)


def _decode_record(raw: bytes | None) -> BudgetRecord | None:
    return msgspec.json.decode(raw, type=BudgetRecord) if raw else None


def _decode_day(raw: bytes | None) -> DayTotals | None:
    return msgspec.json.decode(raw, type=DayTotals) if raw else None


# ---- the workflow side --------------------------------------------------------------------


class BudgetExceededError(Exception):
    """The user's budget cannot hold this call (policy `fail`, or bigger than the budget)."""

    def __init__(self, grant: Grant) -> None:
        super().__init__(
            f"LLM budget exceeded: ${grant.amount_usd:.4f} needed, ${grant.spent_usd:.4f} spent "
            f"and ${grant.reserved_usd:.4f} reserved of ${grant.limit_usd:.2f} this period "
            f"(resets {grant.resets_at.isoformat()})"
        )
        self.grant = grant


@dataclass(frozen=True)
class BudgetGuard:
    """What `reserve`/`settle` need in one run: the budgets (None: not enforced), the user,
    how to read their tier, and the workflow's policy."""

    budgets: Budgets | None
    user_id: str
    tier_of: Callable[[str], Awaitable[str]]
    policy: Policy = "fail"

    async def _reserve(self, reservation: str, amount_usd: float) -> Grant:
        assert self.budgets is not None
        tier = await self.tier_of(self.user_id)
        return await self.budgets.reserve(self.user_id, tier, reservation, amount_usd)

    async def _settle(
        self, reservation: str, period: str, usage: dict[str, Any] | None, workflow: str
    ) -> Settled:
        assert self.budgets is not None
        return await self.budgets.settle(self.user_id, reservation, period, usage, workflow)


async def reserve(
    ctx: Context[Any], guard: BudgetGuard, name: str, amount_usd: float
) -> Grant | None:
    """Reserve `amount_usd` for step `name` (steps `budget:<name>`); per the policy wait
    durably for the period's reset or raise BudgetExceededError. None: no budgets."""
    if guard.budgets is None:
        return None
    policy = guard.budgets.policy(ctx.workflow_id, guard.policy)
    reservation = f"{ctx.workflow_id}/{ctx.instance_id}/{ctx.generation}/{name}"
    while True:
        grant = await ctx.step(
            f"budget:{name}",
            guard._reserve,
            reservation,
            amount_usd,
            retry=BUDGET_RETRY,
            result_type=Grant,
        )
        if grant.granted:
            return grant
        if policy == "fail" or grant.amount_usd > grant.limit_usd:
            raise BudgetExceededError(grant)
        log.info(
            "%s/%s: budget of %s full until %s; waiting",
            ctx.workflow_id,
            ctx.instance_id,
            guard.user_id,
            grant.resets_at.isoformat(),
        )
        # A moment past the reset, so the new period is surely the one read.
        await ctx.sleep_until(f"budget-wait:{name}", grant.resets_at + timedelta(seconds=1))


async def settle(ctx: Context[Any], guard: BudgetGuard, name: str, grant: Grant | None) -> None:
    """Book what step `name` really cost (step `settle:<name>`), freeing its reservation."""
    if guard.budgets is None or grant is None:
        return
    record = ctx.step_record(name)
    usage = record.usage if record is not None else None
    await ctx.step(
        f"settle:{name}",
        guard._settle,
        grant.reservation,
        grant.period,
        usage,
        ctx.workflow_id,
        retry=BUDGET_RETRY,
        result_type=Settled,
    )


def _export_usage(user_id: str, workflow: str, day: str, usage: Mapping[str, float]) -> None:
    metrics().llm_usage(user_id, workflow, day, usage)


add_usage_listener(_export_usage)  # /metrics: tokens and spend by workflow
