"""Settings Structs, filled from the environment by `load_settings` (never at import time)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import msgspec.inspect
from msgspec import Meta

from shared.errors import ConfigError

S = TypeVar("S", bound=msgspec.Struct)

# A field whose name has one of these words holds a secret: its value is never shown.
SECRET_WORDS = frozenset(
    {"key", "keys", "token", "tokens", "secret", "secrets", "password", "passwords", "credentials"}
)
# A password inside a URL (`postgresql://user:pw@host`, `nats://u:pw@a,nats://u:pw@b`) or a
# key=value DSN (`password=pw`) of a field that is not itself secret-named.
# Greedy to the segment's last `@`: a raw `@` inside the password is masked too.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s,]*:)[^\s,]*(?=@)")
_DSN_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def is_secret(name: str) -> bool:
    """Whether a settings field of this name holds a secret (`resend_api_key`, `…_token`)."""
    return not SECRET_WORDS.isdisjoint(name.lower().split("_"))


def mask(text: str) -> str:
    """`text` with any password inside a URL or a DSN replaced by `***`."""
    text = _URL_PASSWORD.sub(r"\g<head>***", text)
    return _DSN_PASSWORD.sub(r"\g<head>***", text)


def _shown(name: str, value: object) -> object:
    """What a settings repr shows of a field: `***` for a set secret, URLs masked."""
    if is_secret(name):
        return "***" if value else value
    return mask(value) if isinstance(value, str) else value


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every settings Struct: fields named after lower-cased env variables.

    - A field without a default is required: `load_settings` stops with a message naming
      its variable when it is missing or empty.
    - Ranges and choices are `msgspec.Meta` constraints and `Literal`s on the fields; they
      are checked when loading and when a test builds the Struct by hand (`ConfigError`
      naming the variable either way).
    - `repr` shows every field but a secret-named one's value (`***` when set) and hides
      passwords inside URLs, so a settings object is safe in a log line or a traceback.
    """

    def __post_init__(self) -> None:
        for name, check in _checks(type(self)):
            problem = check(getattr(self, name))
            if problem:
                raise ConfigError(f"{name.upper()} {problem}")

    def __repr__(self) -> str:
        shown = (f"{name}={_shown(name, getattr(self, name))!r}" for name in self.__struct_fields__)
        return f"{type(self).__name__}({', '.join(shown)})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own rich repr would bypass `__repr__`; keep the secrets out of it too.
        return [(name, _shown(name, getattr(self, name))) for name in self.__struct_fields__]


Check = Callable[[Any], str | None]
_check_cache: dict[type[Any], list[tuple[str, Check]]] = {}


def _checks(cls: type[Any]) -> list[tuple[str, Check]]:
    """Per field, a check of its declared constraints (from msgspec's own type info)."""
    found = _check_cache.get(cls)
    if found is None:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        found = []
        for field in info.fields:
            check = _check_for(field.type)
            if check is not None:
                found.append((field.name, check))
        _check_cache[cls] = found
    return found


def _check_for(kind: msgspec.inspect.Type) -> Check | None:
    if isinstance(kind, msgspec.inspect.UnionType):
        inner = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(inner) != 1 or (check := _check_for(inner[0])) is None:
            return None
        optional = len(inner) != len(kind.types)
        return lambda value: None if value is None and optional else check(value)
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        bounds: list[tuple[float | None, Callable[[Any, Any], bool], str]] = [
            (kind.ge, operator.ge, ">="),
            (kind.gt, operator.gt, ">"),
            (kind.le, operator.le, "<="),
            (kind.lt, operator.lt, "<"),
        ]
        rules = [(bound, test, op) for bound, test, op in bounds if bound is not None]
        if not rules:
            return None

        def number(value: Any) -> str | None:
            for bound, test, op in rules:
                if not test(value, bound):
                    return f"must be {op} {bound}, not {value!r}"
            return None

        return number
    if isinstance(kind, msgspec.inspect.StrType):
        low, high, pattern = kind.min_length, kind.max_length, kind.pattern
        if low is None and high is None and pattern is None:
            return None
        compiled = re.compile(pattern) if pattern is not None else None

        def text(value: Any) -> str | None:
            # Never echo the value: it may be a secret.
            if low is not None and len(value) < low:
                return f"must be at least {low} characters long"
            if high is not None and len(value) > high:
                return f"must be at most {high} characters long"
            if compiled is not None and not compiled.search(value):
                return f"must match {pattern}"
            return None

        return text
    if isinstance(kind, msgspec.inspect.LiteralType):
        values = kind.values
        allowed = " or ".join(repr(v) for v in values)
        return lambda value: None if value in values else f"must be {allowed}"
    return None


Positive = Annotated[float, Meta(gt=0)]
AtLeastOne = Annotated[int, Meta(ge=1)]


class EngineSettings(Settings, frozen=True, kw_only=True):
    """What every service that talks to NATS needs."""

    nats_url: str = "nats://127.0.0.1:4222"
    # Prefix of every stream, subject, bucket and consumer name: one NATS account can hold
    # several isolated deployments (and every test its own).
    howlerhire_namespace: str = "hh"
    # Concurrent workflow runs in this process (all workflows together).
    worker_concurrency: AtLeastOne = 16
    # Seconds JetStream waits for an ack before redelivering; heartbeats keep long steps alive.
    ack_wait: Positive = 30.0
    max_deliver: AtLeastOne = 8
    # Seconds a SIGTERM waits for in-flight runs before handing them back.
    shutdown_grace: Annotated[float, Meta(ge=0)] = 25.0
    # Stream storage ceiling; past it publishes are refused (discard new), never old data dropped.
    stream_max_bytes: AtLeastOne = 1024**3
    # Replicas of every stream and bucket: 1 on one host; 3 on three separate hosts (HA).
    # JetStream allows at most 5.
    nats_replicas: Annotated[int, Meta(ge=1, le=5)] = 1
    # How long JetStream remembers message ids for de-duplication.
    dedup_window: Positive = 24 * 3600.0
    # The server's monitoring endpoint, for the durability self-check at start.
    nats_monitor_url: str = ""
    # "sync-always": refuse a server that does not fsync before acknowledging (single-host
    # profile); "any": accept JetStream's default 2-minute fsync (a deliberate choice).
    durability: Literal["sync-always", "any"] = "sync-always"
    # Seconds a finished instance (complete, terminated) is kept, and an errored one; then
    # JetStream removes it (per-message TTL). Zero or less: kept for ever.
    instance_retention: float = 30 * 86400.0
    errored_retention: float = 90 * 86400.0
    # Shared rate limits, "name=amount/unit,…" (e.g. "resend=2/s,anthropic_tokens=400000/min").
    rate_limits: str = ""
    # The event loop a worker service runs on: "uvloop" (libuv: one worker process went
    # from ~0.55x to ~0.85-1.0x the raw JetStream floor, bench/README.md) or "asyncio".
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Master keys that wrap the per-user data keys sealing personal data (shared/crypto.py):
    # "kid:base64url-32-bytes,…", the first wraps. Empty: nothing is sealed and erasure
    # (DELETE /users/{id}/data) answers 503 naming this variable.
    data_master_keys: str = ""
    # Port of this process's Prometheus `/metrics` (0: not served). Compose and the
    # Kubernetes manifests set 9464 and scrape it; `howlerhire up` leaves it off.
    metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 0
    # Address `/metrics` listens on: 0.0.0.0 in a container, loopback on a shared host.
    metrics_host: str = "127.0.0.1"
    # Seconds between reads of each workflow's consumer (pending, ack pending) for /metrics.
    metrics_refresh: Positive = 15.0

    def __post_init__(self) -> None:
        super().__post_init__()
        from shared.crypto import parse_master_keys
        from shared.workflow.ratelimit import parse_limits

        parse_limits(self.rate_limits)  # ConfigError naming RATE_LIMITS, at start
        parse_master_keys(self.data_master_keys)  # ConfigError naming DATA_MASTER_KEYS


def load_settings(cls: type[S], environ: Mapping[str, str], required: tuple[str, ...] = ()) -> S:
    """Build `cls` from environment variables named after its fields (upper case).

    Every field without a default, and each one `required` names, must have a non-empty
    variable; a missing one raises ConfigError naming the variable. Values are never
    echoed back (they may be secrets).
    """
    info = msgspec.structs.fields(cls)
    for name in (*(f.name for f in info if f.required), *required):
        if not environ.get(name.upper(), "").strip():
            raise ConfigError(f"{name.upper()} is not set; it is required to start this service")
    fields = {f.name for f in info}
    values = {key.lower(): value for key, value in environ.items() if key.lower() in fields}
    values = {key: value for key, value in values.items() if value != ""}
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        # msgspec names the field as `$.field`; say which variable that is.
        message = str(exc)
        for name in fields:
            if f"$.{name}" in message:
                reason = message.split(" - ")[0]
                raise ConfigError(f"{name.upper()} has an invalid value: {reason}") from None
        raise ConfigError(f"invalid configuration: {message}") from None
