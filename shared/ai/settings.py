"""Configuration of the AI adapter (read from the environment by `load_settings`)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from shared.config import Settings

__all__ = ["DEFAULT_CHEAP_MODEL", "DEFAULT_FALLBACK_MODEL", "DEFAULT_STRONG_MODEL", "AISettings"]

# Current models per the installed anthropic SDK (2.10.0): its model list
# (anthropic/types/model.py) puts claude-haiku-5-5 and claude-sonnet-5-5 first, and neither
# is in its DEPRECATED_MODELS table (anthropic/resources/messages/messages.py), whereas the
# original's claude-sonnet-4-5-20250929 is (end of life 2026-11-30) and Haiku 3.5
# (claude-3-5-haiku-*) is retired. Haiku-class for analysis, Sonnet-class for writing.
DEFAULT_CHEAP_MODEL = "claude-haiku-5-5"
DEFAULT_STRONG_MODEL = "claude-sonnet-5-5"
# A quality gate's last round goes to a second model: the strong one for cheap-model
# calls, this one (Opus-class, also current in the SDK's list) for strong-model calls.
DEFAULT_FALLBACK_MODEL = "claude-opus-5-5"


class AISettings(Settings, frozen=True, kw_only=True):
    """Env: ANTHROPIC_API_KEY (none → the offline stand-in), ANTHROPIC_BASE_URL,
    CLOUDFLARE_AI_GATEWAY_URL (+ optional CLOUDFLARE_AI_GATEWAY_TOKEN),
    ANTHROPIC_CHEAP_MODEL, ANTHROPIC_STRONG_MODEL, ANTHROPIC_FALLBACK_MODEL, ANTHROPIC_TIMEOUT,
    ANTHROPIC_PROMPT_CACHE (on) and ANTHROPIC_CACHE_TTL (5m or 1h), LLM_PRICES (pricing.py)."""

    anthropic_api_key: str | None = None
    # Wins over the gateway: it is how tests and staging point at a local server.
    anthropic_base_url: str | None = None
    # Calls go to `<url>/anthropic` (Cloudflare AI Gateway's Anthropic endpoint).
    cloudflare_ai_gateway_url: str | None = None
    cloudflare_ai_gateway_token: str | None = None
    anthropic_cheap_model: str = DEFAULT_CHEAP_MODEL
    anthropic_strong_model: str = DEFAULT_STRONG_MODEL
    anthropic_fallback_model: str = DEFAULT_FALLBACK_MODEL
    # Prompt caching of the long repeated prefix (system prompt, profile, resume text).
    # 1h costs 2x the input price to write instead of 1.25x; worth it when a user's
    # applications are spread over an hour rather than minutes.
    anthropic_prompt_cache: bool = True
    anthropic_cache_ttl: Literal["5m", "1h"] = "5m"
    llm_prices: str = ""
    anthropic_timeout: Annotated[float, Meta(gt=0)] = 180.0
    # The engine owns retrying; stacked SDK retries would multiply cost. Bounded if raised.
    anthropic_max_retries: Annotated[int, Meta(ge=0, le=5)] = 0
    # Delay asked of the engine on 429/529 when the answer carries no retry-after.
    anthropic_default_retry_after: Annotated[float, Meta(gt=0)] = 30.0
    analyze_max_tokens: Annotated[int, Meta(ge=1)] = 2048
    write_max_tokens: Annotated[int, Meta(ge=1)] = 8192
    parse_max_tokens: Annotated[int, Meta(ge=1)] = 8192

    @property
    def base_url(self) -> str:
        """Where Claude calls go: ANTHROPIC_BASE_URL, else the gateway, else the API."""
        if self.anthropic_base_url:
            return self.anthropic_base_url.rstrip("/")
        if self.cloudflare_ai_gateway_url:
            return self.cloudflare_ai_gateway_url.rstrip("/") + "/anthropic"
        return "https://api.anthropic.com"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.anthropic_api_key, self.cloudflare_ai_gateway_token) if s)
