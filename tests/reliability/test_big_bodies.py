"""S2: 50 MB bodies (a wrong Content-Length, chunked) against the real gateway, both build paths."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from tests.reliability.gateway_proc import TOKEN, Gateway, running_gateway, stored_messages

BIG = 50 * 1024 * 1024
CHUNK = 256 * 1024
EVENT_KEY = "s2-event-key-3c9e71d0a4b2"
# Where each body goes: the original worker's /trigger (bearer) and Inngest's /e/{key}.
TARGETS = {
    "/trigger": {"Authorization": f"Bearer {TOKEN}"},
    f"/e/{EVENT_KEY}": {},
}
RSS_GROWTH_KB = 50 * 1024


def _body_start(path: str) -> bytes:
    """The valid opening of a body whose padding never ends within the limit."""
    if path == "/trigger":
        return b'{"workflow":"profile-sync","params":{"pad":"'
    return b'{"name":"test/s2.big","data":{"pad":"'


async def _send(url: str, path: str, headers: dict[str, str], mode: str) -> tuple[int, bytes, int]:
    """Send 50 MB to `path`, `mode` being "small length" (Content-Length: 1000),
    "true length" (50 MB declared) or "chunked". → (status, body, bytes sent)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    if mode == "chunked":
        head.append("Transfer-Encoding: chunked")
    else:
        head.append(f"Content-Length: {1000 if mode == 'small length' else BIG}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    first = _body_start(path)
    sent = 0

    async def pump() -> None:
        nonlocal sent
        if mode == "small length":
            # The declared 1,000 bytes first, and their answer, before the other 50 MB
            # (which the server then reads as a malformed next request).
            writer.write((first + b"x" * 1000)[:1000])
            await writer.drain()
            sent = 1000
            await answered.wait()
        while sent < BIG:
            piece = (first if sent == 0 else b"") + b"x" * (
                CHUNK - (len(first) if sent == 0 else 0)
            )
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if mode == "chunked" else piece)
            await writer.drain()
            sent += len(piece)
        if mode == "chunked":
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    received = bytearray()
    answered = asyncio.Event()

    async def read() -> None:
        # Read eagerly: a reset (the gateway closing on unread bytes) must not find the
        # answer still in the stream's buffer.
        with contextlib.suppress(ConnectionError):
            while not _complete(received) and (chunk := await reader.read(65536)):
                received.extend(chunk)
        answered.set()

    reading = asyncio.create_task(read())
    pumping = asyncio.create_task(pump())
    try:
        await asyncio.wait_for(answered.wait(), 120)
        if mode == "small length":
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(pumping, 120)
    finally:
        for task in (pumping, reading):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head_bytes, _, rest = bytes(received).partition(b"\r\n\r\n")
    lines = head_bytes.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"no answer to {mode} → {path}: {received[:200]!r}"
    status = int(lines[0].split()[1])
    length = next(
        int(v) for n, _, v in (h.partition(":") for h in lines[1:]) if n.lower() == "content-length"
    )
    body = rest[:length]
    return status, body, sent


def _complete(received: bytearray) -> bool:
    """Whether `received` holds a whole answer (its head and Content-Length bytes)."""
    head, found, rest = bytes(received).partition(b"\r\n\r\n")
    for line in head.decode(errors="replace").split("\r\n")[1:] if found else ():
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            return len(rest) >= int(value)
    return False


class RssPeak:
    """The gateway's highest VmRSS, sampled every 20 ms in a thread while the block runs."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.peak_kb = gateway.rss_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                self.peak_kb = max(self.peak_kb, self.gateway.rss_kb())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _big_bodies(nc: NATS, nats_url: str, prefix: str, tmp_path: Path, module: str) -> None:
    async with running_gateway(nats_url, prefix, tmp_path, module, EVENT_KEYS=EVENT_KEY) as gateway:
        before = await stored_messages(nc, prefix)
        baseline_kb = gateway.rss_kb()
        results: dict[str, tuple[int, bytes, int]] = {}
        with RssPeak(gateway) as rss:
            for path, headers in TARGETS.items():
                for mode in ("small length", "true length", "chunked"):
                    results[f"{mode} → {path}"] = await _send(gateway.url, path, headers, mode)
        after = await stored_messages(nc, prefix)
        assert gateway.proc.alive(), gateway.proc.output()
    growth_kb = rss.peak_kb - baseline_kb
    summary = {case: (status, body[:100], sent) for case, (status, body, sent) in results.items()}
    for case, (status, body, _) in results.items():
        # A body shorter than it is (Content-Length 1000) is cut there: invalid JSON, 400.
        expected = 400 if case.startswith("small length") else 413
        assert status == expected, f"{module}: {case}: {summary}"
        error = msgspec.json.decode(body)["error"]
        assert ("too large" if expected == 413 else "not valid JSON") in error, summary
    assert growth_kb < RSS_GROWTH_KB, (
        f"{module}: gateway RSS grew {growth_kb / 1024:.1f} MB (from {baseline_kb / 1024:.1f} MB)"
        f" over six 50 MB bodies; the bound is 50 MB"
    )
    assert after == before, f"{module}: {after - before} messages stored from refused bodies"
    print(f"S2 {module}: RSS growth {growth_kb / 1024:.1f} MB; {summary}")


@pytest.mark.parametrize("module", ["services.gateway", "tests.reliability.direct_gateway"])
async def test_big_bodies_are_refused_without_being_held(
    nc: NATS, nats_url: str, prefix: str, tmp_path: Path, module: str
) -> None:
    """Built by `Litestar.from_config` (the product) and by `Litestar(...)`."""
    await _big_bodies(nc, nats_url, prefix, tmp_path, module)
