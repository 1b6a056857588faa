"""A canary: a TCP port that counts every connection it accepts (SSRF tests want 0).

The trap port answers any connection with a tiny HTTP 200 and counts it. The count is read
in-process (`canary.connections`) or from another process through a separate control port
(GET /__fake__/stats → {"connections": n}), so reading the count never touches the trap.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from tests.support.fakes.base import FakeApp, Reply, Request, RunningFake


class Canary:
    def __init__(self, port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self._socket.listen(64)
        self.port = self._socket.getsockname()[1]
        self.host = "127.0.0.1"
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._count = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="canary")
        self._control = RunningFake(_CanaryControl(self))

    @property
    def connections(self) -> int:
        with self._lock:
            return self._count

    @property
    def control_url(self) -> str:
        return self._control.url

    def reset(self) -> None:
        with self._lock:
            self._count = 0

    def start(self) -> Canary:
        self._thread.start()
        self._control.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        try:
            # Wake accept() up; this connection is not counted.
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
        except OSError:
            pass
        self._thread.join(timeout=5)
        self._socket.close()
        self._control.stop()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            if self._stopped.is_set():
                conn.close()
                return
            with self._lock:
                self._count += 1
            try:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\ncanary"
                )
            except OSError:
                pass
            finally:
                conn.close()

    def __enter__(self) -> Canary:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _CanaryControl(FakeApp):
    name = "canary-control"

    def __init__(self, canary: Canary) -> None:
        super().__init__(".")
        self._canary = canary

    def stats(self) -> dict[str, Any]:
        return {"connections": self._canary.connections}

    def reset_state(self) -> None:
        self._canary.reset()

    async def handle(self, request: Request) -> Reply:
        return Reply.json({"error": "this is the canary's control port"}, 404)
