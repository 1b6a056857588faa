"""What a Claude call costs: `usage` x a per-model price table kept in configuration.

`LLM_PRICES="claude-sonnet-5-5=3/15,claude-haiku-5-5=1/5"` gives dollars per million input
and output tokens (optionally `/write/read` for the prompt-cache write and read prices;
by default 1.25x and 0.1x the input price, Anthropic's 5-minute cache rates). Entries
override and extend the defaults below. A model the table does not know is priced as the
dearest one it does (never cheaper than it may be), with a warning once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import ConfigError

__all__ = ["DEFAULT_PRICES", "Price", "PriceTable", "parse_prices"]

log = logging.getLogger(__name__)

VARIABLE = "LLM_PRICES"
# List prices (USD per million tokens) of the model classes the adapter uses by default;
# set LLM_PRICES to the organisation's contract.
DEFAULT_PRICES = (
    "claude-haiku-5-5=1/5,claude-sonnet-5-5=3/15,claude-opus-5-5=5/25,"
    "claude-haiku-4-5=1/5,claude-sonnet-4-5=3/15,claude-opus-4-5=5/25"
)
_NUMBER = r"\d+(?:\.\d+)?"
_ENTRY = re.compile(rf"^({_NUMBER})/({_NUMBER})(?:/({_NUMBER})/({_NUMBER}))?$")


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens: plain input, output, cache write and cache read."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_creation_input_tokens: int = 0,
        cache_read_input_tokens: int = 0,
    ) -> float:
        """USD for one call's usage (Anthropic's `input_tokens` excludes the cached parts)."""
        return (
            input_tokens * self.input
            + output_tokens * self.output
            + cache_creation_input_tokens * self.cache_write
            + cache_read_input_tokens * self.cache_read
        ) / 1_000_000


def parse_prices(text: str) -> dict[str, Price]:
    """`"model=in/out[/write/read],…"` → prices; ConfigError naming LLM_PRICES otherwise."""
    prices: dict[str, Price] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        model, sep, spec = part.partition("=")
        model, spec = model.strip(), spec.strip().replace(" ", "")
        match = _ENTRY.match(spec)
        if not sep or not model or match is None:
            raise ConfigError(
                f"{VARIABLE} has an invalid entry {part!r}: expected model=input/output "
                "(dollars per million tokens, e.g. claude-sonnet-5-5=3/15) or "
                "model=input/output/cache_write/cache_read"
            )
        base, out, write, read = match.groups()
        price_in = float(base)
        prices[model] = Price(
            input=price_in,
            output=float(out),
            cache_write=float(write) if write is not None else price_in * 1.25,
            cache_read=float(read) if read is not None else price_in * 0.1,
        )
    return prices


class PriceTable:
    """The configured prices, with the conservative fallback for unknown models."""

    def __init__(self, text: str = "") -> None:
        self.prices = {**parse_prices(DEFAULT_PRICES), **parse_prices(text)}
        self._warned: set[str] = set()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PriceTable:
        return cls(environ.get(VARIABLE, ""))

    def price(self, model: str) -> Price:
        found = self.prices.get(model)
        if found is not None:
            return found
        # Dated snapshots ("claude-sonnet-5-5-20261001") price as their family.
        for name, price in self.prices.items():
            if model.startswith(name + "-"):
                return price
        if model not in self._warned:
            self._warned.add(model)
            log.warning("no price for model %s in %s: priced as the dearest known", model, VARIABLE)
        return max(self.prices.values(), key=lambda p: p.output)

    def cost(self, model: str, usage: Mapping[str, int]) -> float:
        return self.price(model).cost(
            int(usage.get("input_tokens", 0)),
            int(usage.get("output_tokens", 0)),
            int(usage.get("cache_creation_input_tokens", 0)),
            int(usage.get("cache_read_input_tokens", 0)),
        )
