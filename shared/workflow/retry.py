"""Retry policies for steps: a leaf module that the definition and the context both use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Backoff = Literal["constant", "linear", "exponential"]


def seconds(value: timedelta | float) -> float:
    """A duration given as a timedelta or as seconds, in seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing step is retried.

    `limit` is the number of retries after the first attempt (Cloudflare's meaning), so a
    step runs at most `limit + 1` times. The wait before retry n (n = 1, 2, …) is `delay`
    (constant), `delay * n` (linear) or `delay * 2**(n-1)` (exponential), capped by
    `max_delay`.
    """

    limit: int = 4
    delay: timedelta | float = timedelta(seconds=2)
    backoff: Backoff = "exponential"
    max_delay: timedelta | float = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError("RetryPolicy.limit must be >= 0")
        if self.backoff not in ("constant", "linear", "exponential"):
            raise ValueError(f"unknown backoff {self.backoff!r}")

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        base = seconds(self.delay)
        if self.backoff == "constant":
            wait = base
        elif self.backoff == "linear":
            wait = base * retry
        else:
            wait = base * 2 ** (retry - 1)
        return min(wait, seconds(self.max_delay))


# LLM calls fail transiently (overload, rate limits) and cost money: a few patient retries.
DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(limit=0)
