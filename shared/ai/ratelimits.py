"""Organisation-wide Anthropic limits through the engine's shared rate limits.

LLM steps spend `anthropic_requests` (one per call) and `anthropic_tokens` (an estimate,
settled to the call's real input + output tokens) — limits the operator sizes to the
organisation's tier in RATE_LIMITS, e.g. `anthropic_requests=50/min,anthropic_tokens=
80000/min`; unnamed, they are not enforced. Every reply's `anthropic-ratelimit-*` headers
feed the same buckets (`HeaderFeed`, a response listener of ClaudeAI): no bucket holds
more than Anthropic says is left, and one Anthropic reports empty is drained until its
reset, for every replica. A 429 drains them by its `retry-after` (the engine does that).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.ai.schemas import Usage
from shared.workflow.ratelimit import OneLimit, RateLimiter, Spend

__all__ = ["REQUESTS", "TOKENS", "HeaderFeed", "org_limits", "read_headers"]

log = logging.getLogger(__name__)

REQUESTS = "anthropic_requests"
TOKENS = "anthropic_tokens"
_HEADERS = {REQUESTS: "requests", TOKENS: "tokens"}


def org_limits(estimated_tokens: float) -> list[OneLimit[Any]]:
    """What one LLM step spends of the org limits (tokens settled from its `usage`)."""
    return [
        Spend(REQUESTS, 1),
        Spend(TOKENS, max(1.0, estimated_tokens), settle=_tokens_used),
    ]


def _tokens_used(result: Any) -> float:
    usage = getattr(result, "usage", None)
    if usage is None:
        raise ValueError("the step's result carries no usage")
    return float(
        usage.input_tokens
        + usage.output_tokens
        + usage.cache_creation_input_tokens
        + usage.cache_read_input_tokens
    )


def read_headers(
    headers: Mapping[str, str], now: float | None = None
) -> dict[str, tuple[float, float]]:
    """limit name → (remaining, seconds until reset) from `anthropic-ratelimit-*` headers."""
    now = time.time() if now is None else now
    found: dict[str, tuple[float, float]] = {}
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, kind in _HEADERS.items():
        remaining = lowered.get(f"anthropic-ratelimit-{kind}-remaining")
        reset = lowered.get(f"anthropic-ratelimit-{kind}-reset")
        if remaining is None:
            continue
        try:
            left = float(remaining)
        except ValueError:
            continue
        wait = 60.0
        if reset:
            with contextlib.suppress(ValueError):
                wait = max(
                    0.0, datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp() - now
                )
        found[name] = (left, wait)
    return found


class HeaderFeed:
    """A ClaudeAI response listener that feeds the shared buckets from the headers."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, headers: Mapping[str, str], model: str, usage: Usage) -> None:
        for name, (remaining, reset_in) in read_headers(headers).items():
            await self.limiter.observe(name, remaining, reset_in)
