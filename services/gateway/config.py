"""The gateway's settings: one frozen Struct, filled from the environment by `__main__`."""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta

from shared.config import Settings
from shared.errors import ConfigError

# A record of an instance (params included) must fit one NATS message of 1 MiB.
MAX_BODY_CEILING = 900_000
UI_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


class GatewaySettings(Settings, frozen=True, kw_only=True):
    """What the HTTP side needs; NATS settings live in `shared.config.EngineSettings`."""

    # The bearer token every route but /health requires. No default: the gateway refuses
    # to start without one.
    workflows_auth_token: str
    gateway_host: str = "127.0.0.1"
    gateway_port: Annotated[int, Meta(ge=1, le=65535)] = 8787
    # Comma-separated origins allowed to call from a browser; empty: no CORS headers.
    cors_origins: str = ""
    # Requests with a larger body are refused with 413 before they are read whole.
    max_body_bytes: Annotated[int, Meta(ge=1024, le=MAX_BODY_CEILING)] = 256 * 1024
    # Comma-separated Inngest event keys accepted in the path of `POST /e/{eventKey}`
    # (send-only credentials, for Inngest SDKs that cannot send a bearer header).
    # Empty: `/e/{eventKey}` needs the bearer token like every other route.
    event_keys: str = ""
    # Progress-token keys, `kid:secret,kid:secret` (secrets of 32+ characters): the first
    # signs, every one verifies (rotation: add the new key first; drop the old one after
    # PROGRESS_TOKEN_TTL). Empty: GET /progress and POST /progress-tokens answer 503.
    progress_token_keys: str = ""
    # The offline email outbox (as the services' EMAIL_OUTBOX_DIR): erasure deletes a
    # user's emails from it.
    email_outbox_dir: str = "var/outbox"
    # How long a progress token is valid, in seconds (default 15 minutes).
    progress_token_ttl: Annotated[int, Meta(ge=30, le=86400)] = 900
    # The path the dashboard (/ui) is reached under behind a reverse proxy, e.g. `/jobs`
    # for https://host/jobs/ui/. Works whether the proxy strips the prefix or keeps it.
    ui_base_path: str = ""

    def __post_init__(self) -> None:
        token = self.workflows_auth_token
        if not token or token != token.strip():
            raise ConfigError(
                "WORKFLOWS_AUTH_TOKEN must be a non-empty token without spaces around it"
            )
        if self.ui_base_path and not UI_BASE_PATH.fullmatch(self.ui_base_path):
            raise ConfigError(
                "UI_BASE_PATH must be empty or a path like /jobs (segments of "
                "[A-Za-z0-9._~-], a leading slash, no trailing slash)"
            )
        super().__post_init__()  # the ranges declared above
        from services.gateway.progress import parse_keys

        parse_keys(self.progress_token_keys)  # ConfigError naming PROGRESS_TOKEN_KEYS

    @property
    def origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def accepted_event_keys(self) -> list[str]:
        return [key.strip() for key in self.event_keys.split(",") if key.strip()]
