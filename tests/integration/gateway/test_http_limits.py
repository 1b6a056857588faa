"""The gateway's default HTTP parser (httptools) enforces the request-head limits h11 had."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from services.gateway.http import MAX_HEAD_BYTES, MAX_HEADERS, LimitedHttpTools
from shared.embedded import free_port


async def echo_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 with the number of body bytes it read."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        echo_length, host="127.0.0.1", port=port, http=LimitedHttpTools, log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await asyncio.wait_for(reader.readexactly(length), 10)


def request(extra_headers: list[bytes] | None = None, body: bytes = b"") -> bytes:
    lines = [b"POST /x HTTP/1.1", b"host: local", b"content-length: %d" % len(body)]
    return b"\r\n".join([*lines, *(extra_headers or [])]) + b"\r\n\r\n" + body


async def test_ordinary_requests_on_one_connection_pass_even_with_a_large_body() -> None:
    """Many small requests then a 300 KB body in one write: all answered 200 (a body is
    not head, however it is chunked)."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(50):
            writer.write(request(body=b'{"a":1}'))
            assert await read_response(reader) == (200, b"7")
        big = b"x" * 300_000
        writer.write(request([b"x-note: %s" % (b"n" * 1000)], big))
        assert await read_response(reader) == (200, b"300000")
        writer.close()


async def test_too_many_headers_get_431_and_the_connection_closed() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        headers = [b"x-h%d: v" % i for i in range(MAX_HEADERS + 1)]
        writer.write(request(headers))
        status, body = await read_response(reader)
        assert status == 431
        assert b"headers" in body
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request([b"x-h%d: v" % i for i in range(MAX_HEADERS - 10)]))
        assert (await read_response(reader))[0] == 200  # under the count: fine
        writer.close()


async def test_a_huge_header_sent_in_pieces_is_refused_before_it_completes() -> None:
    """A header that never ends is cut off once the bytes buffered pass the limit."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.1\r\nhost: local\r\nx-big: ")
        sent = 0
        with contextlib.suppress(ConnectionError):  # the server hangs up once it refuses
            for _ in range(4 * MAX_HEAD_BYTES // 4096):
                writer.write(b"a" * 4096)
                await writer.drain()
                sent += 4096
                await asyncio.sleep(0.005)
        assert sent < 4 * MAX_HEAD_BYTES, "the server kept reading an endless header"
        try:
            status, _ = await read_response(reader)
        except ConnectionError:
            # Closing with our bytes unread resets the connection, which can discard the
            # 431 in flight; the hang-up alone already refused the head.
            status = 431
        assert status == 431
        writer.close()


async def test_a_complete_head_over_the_size_limit_is_refused() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request([b"x-big: %s" % (b"b" * (MAX_HEAD_BYTES + 1))]))
        assert (await read_response(reader))[0] == 431
        writer.close()
