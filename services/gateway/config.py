"""The gateway's settings: one frozen Struct, filled from the environment by `__main__`."""

from __future__ import annotations

import msgspec

from shared.errors import ConfigError

# A record of an instance (params included) must fit one NATS message of 1 MiB.
MAX_BODY_CEILING = 900_000


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the HTTP side needs; NATS settings live in `shared.config.EngineSettings`."""

    # The bearer token every route but /health requires. No default: the gateway refuses
    # to start without one.
    workflows_auth_token: str
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8787
    # Comma-separated origins allowed to call from a browser; empty: no CORS headers.
    cors_origins: str = ""
    # Requests with a larger body are refused with 413 before they are read whole.
    max_body_bytes: int = 256 * 1024
    # Comma-separated Inngest event keys accepted in the path of `POST /e/{eventKey}`
    # (send-only credentials, for Inngest SDKs that cannot send a bearer header).
    # Empty: `/e/{eventKey}` needs the bearer token like every other route.
    event_keys: str = ""

    def __post_init__(self) -> None:
        token = self.workflows_auth_token
        if not token or token != token.strip():
            raise ConfigError(
                "WORKFLOWS_AUTH_TOKEN must be a non-empty token without spaces around it"
            )
        if not 1024 <= self.max_body_bytes <= MAX_BODY_CEILING:
            raise ConfigError(f"MAX_BODY_BYTES must be between 1024 and {MAX_BODY_CEILING}")
        if not 0 < self.gateway_port < 65536:
            raise ConfigError("GATEWAY_PORT must be a TCP port number")

    def __repr__(self) -> str:
        # Never the token or the event keys: settings end up in logs and tracebacks.
        return (
            f"GatewaySettings(gateway_host={self.gateway_host!r}, "
            f"gateway_port={self.gateway_port}, cors_origins={self.cors_origins!r}, "
            f"max_body_bytes={self.max_body_bytes}, workflows_auth_token='***', "
            f"event_keys={'***' if self.event_keys else ''!r})"
        )

    @property
    def origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def accepted_event_keys(self) -> list[str]:
        return [key.strip() for key in self.event_keys.split(",") if key.strip()]
