"""End-user progress for the browser: `POST /progress-tokens` and `GET /progress/{wf}/{id}`.

The web app's server (holding the bearer token) asks for a progress token scoped to one
workflow, instance and user; the browser connects with it (`?token=`), since an
EventSource cannot send headers and must never hold the operator's token. Tokens are
HMAC-SHA256 signed with a key from PROGRESS_TOKEN_KEYS (`kid:secret,kid:secret`, the
first signs, all verify: rotation is adding a new key first, and removing the old one
once the tokens it signed have expired). Without keys the gateway starts, warns, and
both routes answer 503 naming the variable.

`GET /progress/...` is Server-Sent Events with `Accept: text/event-stream` (pushed from
an ordered JetStream consumer on the instance's progress subject; `Last-Event-ID`, the
stream sequence, resumes; the final event closes the stream), JSON otherwise. Only the
`ProgressEvent` fields are ever sent: no params, step outputs or errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, SkipValidation
from litestar.response import Stream

from services.gateway.compat import BAD
from services.gateway.engine import EngineDep
from services.gateway.errors import ApiError
from services.gateway.schemas import ErrorBody, decode
from shared.errors import ConfigError
from shared.workflow.model import TERMINAL, encode
from shared.workflow.progress import ProgressEvent, current_of, final_of
from shared.workflow.store import user_of

PREFIX = "/progress/"
KEYS_VARIABLE = "PROGRESS_TOKEN_KEYS"
MIN_SECRET = 32
HEARTBEAT = 15.0  # seconds between keep-alive comments on a quiet stream
RECHECK_EVERY = 4  # heartbeats between reads of the record (an end that reported nothing)


class InvalidProgressToken(Exception):
    """A progress token that is malformed, tampered, expired, signed with an unknown key
    or for another instance."""


class TokenClaims(msgspec.Struct, frozen=True):
    w: str  # workflow
    i: str  # instance id
    u: str  # user id
    exp: int  # expiry, seconds since the epoch


_claims_decoder = msgspec.json.Decoder(TokenClaims)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(raw: str) -> list[tuple[str, bytes]]:
    """`kid:secret,kid:secret` → (kid, secret) pairs; the first signs. ConfigError names
    the variable and the problem (never the secret)."""
    keys: list[tuple[str, bytes]] = []
    for i, item in enumerate(part.strip() for part in raw.split(",")):
        if not item:
            continue
        kid, sep, secret = item.partition(":")
        if not sep or not kid or not kid.isalnum():
            raise ConfigError(
                f"{KEYS_VARIABLE}: entry {i + 1} must be `kid:secret` with an alphanumeric kid"
            )
        if len(secret) < MIN_SECRET:
            raise ConfigError(
                f"{KEYS_VARIABLE}: the secret of key {kid!r} must be at least "
                f"{MIN_SECRET} characters"
            )
        if any(kid == known for known, _ in keys):
            raise ConfigError(f"{KEYS_VARIABLE}: key id {kid!r} is listed twice")
        keys.append((kid, secret.encode()))
    return keys


@dataclass(frozen=True)
class ProgressTokens:
    """Signs and verifies progress tokens: `<kid>.<claims>.<signature>` (base64url)."""

    keys: Sequence[tuple[str, bytes]]
    ttl: int = 900

    def sign(self, workflow: str, instance_id: str, user_id: str, now: float) -> tuple[str, int]:
        kid, secret = self.keys[0]
        exp = int(now) + self.ttl
        claims = _b64(encode(TokenClaims(w=workflow, i=instance_id, u=user_id, exp=exp)))
        head = f"{kid}.{claims}"
        mac = hmac.new(secret, head.encode(), hashlib.sha256).digest()
        return f"{head}.{_b64(mac)}", exp

    def verify(self, token: str, workflow: str, instance_id: str, now: float) -> TokenClaims:
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidProgressToken("malformed progress token")
        kid, claims_b64, mac_b64 = parts
        secret = next((s for k, s in self.keys if hmac.compare_digest(k, kid)), None)
        if secret is None:
            raise InvalidProgressToken("progress token signed with an unknown or retired key")
        expected = hmac.new(secret, f"{kid}.{claims_b64}".encode(), hashlib.sha256).digest()
        try:
            given = _unb64(mac_b64)
            claims = _claims_decoder.decode(_unb64(claims_b64))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise InvalidProgressToken("malformed progress token") from None
        if _b64(given) != mac_b64:
            # A last character changed only in base64's unused bits decodes to the same
            # MAC: one token, one spelling, so a changed token never verifies (S6).
            raise InvalidProgressToken("malformed progress token")
        if not hmac.compare_digest(given, expected):
            raise InvalidProgressToken("progress token signature does not match")
        if claims.exp <= now:
            raise InvalidProgressToken("progress token expired")
        if claims.w != workflow or claims.i != instance_id:
            raise InvalidProgressToken("progress token is for another instance")
        return claims


TokensDep = NamedDependency[SkipValidation[ProgressTokens | None]]


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    workflow: str
    instance_id: str
    user_id: str


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    token: str
    expires_at: datetime
    url: str  # the path to give an EventSource (relative to the gateway)


def _require(tokens: ProgressTokens | None) -> ProgressTokens:
    if tokens is None:
        raise ApiError(503, f"progress tokens are not configured ({KEYS_VARIABLE})", None)
    return tokens


def _unauthorized(message: str) -> Response[ErrorBody]:
    return Response(
        ErrorBody(error=message, field="token"),
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="howlerhire-progress"'},
    )


@post(
    "/progress-tokens",
    status_code=201,
    opt={
        "summary": "A progress token for one instance of one user (for the browser)",
        "body": TokenRequest,
        "responses": {201: TokenResponse, 403: ErrorBody, 404: ErrorBody, **BAD},
    },
)
async def create_progress_token(
    request: Request[Any, Any, Any], engine: EngineDep, progress_tokens: TokensDep
) -> TokenResponse:
    """Sign a token that lets a browser follow one instance's progress (and nothing else).
    The instance must exist and belong to the user (`userId` in its params)."""
    tokens = _require(progress_tokens)
    body: TokenRequest = decode(await request.body(), TokenRequest)
    if not body.user_id:
        raise ApiError(422, "userId must be a non-empty string", "userId")
    state = await engine.get(body.workflow, body.instance_id)  # 404 when there is none
    if user_of(state.params) != body.user_id:
        raise ApiError(403, "the instance does not belong to that user", "userId")
    token, exp = tokens.sign(body.workflow, body.instance_id, body.user_id, time.time())
    return TokenResponse(
        token=token,
        expires_at=datetime.fromtimestamp(exp, UTC),
        url=f"{PREFIX}{body.workflow}/{body.instance_id}?token={token}",
    )


def _token_of(request: Request[Any, Any, Any]) -> str:
    token = request.query_params.get("token")
    if token:
        return str(token)
    header = request.headers.get("authorization", "")
    return header[len("Bearer ") :] if header.startswith("Bearer ") else ""


def _sse(event: ProgressEvent, seq: int | None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    kind = "final" if event.final else "progress"
    return f"{head}event: {kind}\ndata: ".encode() + encode(event) + b"\n\n"


def _last_event_id(request: Request[Any, Any, Any]) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "Last-Event-ID must be a stream sequence (an integer)") from None
    if value < 0:
        raise ApiError(400, "Last-Event-ID must not be negative")
    return value


@get(
    "/progress/{workflow:str}/{instance_id:str}",
    opt={
        "summary": "An instance's progress: SSE with Accept: text/event-stream, else JSON",
        "responses": {200: ProgressEvent, 404: ErrorBody, **BAD},
    },
)
async def get_progress(
    request: Request[Any, Any, Any],
    engine: EngineDep,
    progress_tokens: TokensDep,
    workflow: FromPath[str],
    instance_id: FromPath[str],
) -> Response[Any]:
    """The progress token (`?token=` or `Authorization: Bearer`) must be for this instance.
    JSON: the current `{status, step, label, done, total, pct}` (with `outcome`, and
    `summary` or `message`, once finished). SSE: `progress` events, then one `final`
    event, then the stream closes; each event's id is its stream sequence."""
    tokens = _require(progress_tokens)
    try:
        claims = tokens.verify(_token_of(request), workflow, instance_id, time.time())
    except InvalidProgressToken as exc:
        return _unauthorized(str(exc))
    state = await engine.get(workflow, instance_id)  # 404 when there is none
    if user_of(state.params) != claims.u:
        return _unauthorized("progress token is for another user")
    feed = engine.progress_feed()
    last = await feed.last(workflow, instance_id)
    wants_stream = "text/event-stream" in request.headers.get("accept", "")
    if not wants_stream:
        return Response(current_of(state, last[1] if last else None))
    after = _last_event_id(request)
    final = final_of(state, last[1] if last else None)

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        final_seq = last[0] if last is not None and last[1].final else None
        if final is not None and not (
            final_seq is not None and after is not None and after < final_seq
        ):
            # Finished (and nothing to resume to but the end): its final state, and close.
            yield _sse(final, final_seq)
            return
        quiet = 0
        async for item in feed.follow(workflow, instance_id, after, HEARTBEAT):
            if item is not None:
                quiet = 0
                seq, event = item
                yield _sse(event, seq)
                if event.final:
                    return
                continue
            yield b": keep-alive\n\n"
            quiet += 1
            if quiet % RECHECK_EVERY == 0:
                # An end no run reports (a max-deliveries dead letter): the record says.
                now = await engine.get(workflow, instance_id)
                if now.status in TERMINAL:
                    newest = await feed.last(workflow, instance_id)
                    ended = final_of(now, newest[1] if newest else None)
                    if ended is not None:
                        yield _sse(ended, None)
                    return

    return Stream(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
