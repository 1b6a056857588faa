"""uvicorn's C HTTP parser (httptools) with the request-head limits it lacks: size and count.

h11 (pure Python) was the default only because it caps a request's head; it cost 17 % of
the gateway's CPU. httptools buffers a header until it is complete and takes any number
of them, so without a cap one client could make the gateway hold an unbounded head.
`LimitedHttpTools` answers 431 and closes the connection once a request's head (request
line and headers) grows past `MAX_HEAD_BYTES`, counting bytes still being buffered, or
holds more than `MAX_HEADERS` headers. It also sets TCP_NODELAY on every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # what h11 was configured with (h11_max_incomplete_event_size)
MAX_HEADERS = 100


class HeadTooLarge(Exception):
    """A request head over the limits (raised inside a parser callback)."""


class LimitedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol answering 431 to a request head over MAX_HEAD_BYTES / MAX_HEADERS."""

    max_head_bytes: ClassVar[int] = MAX_HEAD_BYTES
    max_headers: ClassVar[int] = MAX_HEADERS

    # Bytes of the current head: counted exactly from the parser's callbacks, plus the
    # bytes fed while the head is still incomplete (what httptools may be buffering).
    _head_bytes = 0
    _pending_bytes = 0
    _header_count = 0
    _in_head = True
    _tail = False  # this chunk ended a request: the bytes fed were not all head

    _refusal: str | None = None  # why a callback stopped the parser (HeadTooLarge)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # a parser error, ours included, ends in send_400_response
        if self._refusal is not None or self.transport.is_closing():
            return
        if self._tail:
            self._tail = False
        elif self._in_head and self.parser is not None:
            self._pending_bytes += len(data)
            if self._pending_bytes > self.max_head_bytes:
                self._refusal = "request head too large"
                self._refuse(self._refusal)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; the socket
        # uvicorn binds for GATEWAY_WORKERS > 1 has proto 0, so there Nagle held every
        # response's second write for the client's delayed ACK: ~40 ms per request.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(self._refusal)
        else:
            super().send_400_response(msg)

    def _refuse(self, reason: str) -> None:
        self.logger.warning("refused a request: %s", reason)
        body = reason.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = f"more than {self.max_headers} headers"
            raise HeadTooLarge(self._refusal)
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._pending_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next request on this connection starts its head
        self._pending_bytes = 0
        self._tail = True

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._refusal = "request head too large"
            raise HeadTooLarge(self._refusal)


__all__ = ["MAX_HEADERS", "MAX_HEAD_BYTES", "HeadTooLarge", "LimitedHttpTools"]
