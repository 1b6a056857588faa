"""Wiring a service's AI adapter to the shared LLM accounting: budgets and org limits.

`open_accounting(ai, environ)` — for a service whose workflows call Claude — opens its
own NATS connection, the per-user budgets (budget.py) and, when RATE_LIMITS names
`anthropic_requests` or `anthropic_tokens`, feeds those shared buckets from every reply's
`anthropic-ratelimit-*` headers (ratelimits.py). The offline stand-in costs nothing and
is not accounted: the result is None then.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from shared.ai.budget import Budgets, BudgetSettings
from shared.ai.claude import ClaudeAI
from shared.ai.offline import OfflineAI
from shared.ai.ratelimits import REQUESTS, TOKENS, HeaderFeed
from shared.bus import connect
from shared.config import EngineSettings, load_settings
from shared.workflow.ratelimit import RateLimiter, configured_rates

__all__ = ["open_accounting"]


@contextlib.asynccontextmanager
async def open_accounting(
    ai: ClaudeAI | OfflineAI, environ: Mapping[str, str], service: str
) -> AsyncIterator[Budgets | None]:
    budget_settings = load_settings(BudgetSettings, environ)  # ConfigError at start
    if not isinstance(ai, ClaudeAI):
        yield None
        return
    engine = load_settings(EngineSettings, environ)
    nc = await connect(engine.nats_url, f"{service}-llm-accounting")
    try:
        namespace = engine.howlerhire_namespace
        budgets = await Budgets.open(nc, namespace, budget_settings, replicas=engine.nats_replicas)
        rates = configured_rates(engine.rate_limits)
        if REQUESTS in rates or TOKENS in rates:
            limiter = await RateLimiter.open(nc, namespace, rates, replicas=engine.nats_replicas)
            ai.add_response_listener(HeaderFeed(limiter))
        yield budgets
    finally:
        await nc.drain()
