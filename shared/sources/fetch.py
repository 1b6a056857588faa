"""Polite fetching from job boards: one request at a time per host, Retry-After honoured,
bounded time and size, and every failure mapped to one error of our tree.

The boards are free public APIs run by other people; we ask each for its whole listing
at most once per snapshot period (the engine's step cache), and never hammer a host:
requests to one host queue behind each other in this process, and a host that answered
429/503 with `Retry-After` is not asked again before that time by any run here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from shared.http import PROVIDERS, classify, raise_for_status

__all__ = [
    "BoardMalformedError",
    "BoardNotFoundError",
    "BoardUnavailableError",
    "PoliteFetcher",
]

MAX_BODY_BYTES = 16 * 1024 * 1024
JOB_BOARD = PROVIDERS["job-board"]
# A Retry-After up to this long is waited out here (the fetch is shared by many runs);
# a longer one is handed to the engine, which parks the run durably.
INLINE_WAIT_MAX = 5.0


class BoardUnavailableError(UpstreamError):
    """The board timed out, refused the connection or answered 5xx: worth retrying."""


class BoardNotFoundError(NonRetryableError):
    """The board (company) does not exist on that service: retrying will not help."""


class BoardMalformedError(UpstreamError):
    """The board answered 200 with a body that is not what its API returns."""


class PoliteFetcher:
    """GETs over the process's shared httpx client (which carries our User-Agent)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._not_before: dict[str, float] = {}

    async def get(
        self,
        url: str,
        name: str,
        *,
        accept: str = "application/json",
        not_found: Callable[[int, bytes], bool] | None = None,
    ) -> bytes:
        """The body of a 200 answer to GET `url`; `name` (the board) goes in every error.

        429, or 503 with Retry-After → RetryAfterError (the headers' delay, else 60 s);
        404/410 → BoardNotFoundError; other 4xx → NonRetryableError; 5xx, timeouts and
        connection failures → BoardUnavailableError. `not_found(status, body)` lets a
        board say which other answers mean "no such board" (Greenhouse's legacy 400).
        """
        host = urlsplit(url).netloc.lower()
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            wait = self._not_before.get(host, 0.0) - self._clock()
            if wait > INLINE_WAIT_MAX:
                raise RetryAfterError(f"{name}: the host asked us to wait", wait)
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._get(url, name, accept, host, not_found)
            except TimeoutError as exc:
                raise BoardUnavailableError(
                    f"{name}: no complete answer within {self._timeout:g} s"
                ) from exc

    async def _get(
        self,
        url: str,
        name: str,
        accept: str,
        host: str,
        not_found: Callable[[int, bytes], bool] | None,
    ) -> bytes:
        try:
            async with self._client.stream(
                "GET", url, headers={"Accept": accept}, follow_redirects=False
            ) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    if not_found is not None and not_found(response.status_code, body):
                        raise BoardNotFoundError(f"{name}: no such board ({response.status_code})")
                    self._classify(response, name, host)
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > MAX_BODY_BYTES:
                        raise BoardMalformedError(
                            f"{name}: the answer is larger than {MAX_BODY_BYTES} bytes"
                        )
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise BoardUnavailableError(f"{name}: the request timed out") from exc
        except httpx.TransportError as exc:
            raise BoardUnavailableError(
                f"{name}: could not connect ({type(exc).__name__})"
            ) from exc
        return b"".join(chunks)

    def _classify(self, response: httpx.Response, name: str, host: str) -> None:
        status = response.status_code
        if status in (404, 410):
            raise BoardNotFoundError(f"{name}: no such board ({status})")
        verdict = classify(status, response.headers, JOB_BOARD)
        if verdict.outcome == "ok":
            return
        if verdict.outcome == "retry_after" and verdict.delay is not None:
            # Every later request to this host waits too, whichever run makes it.
            self._not_before[host] = self._clock() + verdict.delay
        try:
            raise_for_status(response, name, provider=JOB_BOARD)
        except UpstreamError as exc:
            raise BoardUnavailableError(str(exc)) from exc
