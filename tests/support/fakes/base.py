"""The machinery every fake third-party server shares.

A fake is a small ASGI app served by uvicorn on 127.0.0.1 in a thread of its own (so a
test's event loop can block without starving it, and sync code can use it too). Every
fake:

- records each request (method, path, query, headers, body);
- answers from a queue of scripted replies first ("the next 3 requests to /v1/messages get
  429 with retry-after 2"), else with its own wire-format behaviour;
- is commanded through `/__fake__/...` control endpoints, so a test can drive a fake that
  runs in another process exactly as it drives one in-process (`FakeControl`).

Script entries are plain JSON objects:
  {"times": 1, "method": "POST", "path": "regex", "status": 200, "headers": {...},
   "json": ..., "body": "text", "fixture": "dir/file.json", "replay": "dir/file",
   "delay": 0.0, "trickle": {"chunk": 1, "interval": 0.5, "count": 60},
   "stream": {"size": 50000000, "prefix": "%PDF-"}}
plus keys a particular fake understands (e.g. the Anthropic fake's "tool_input").
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

Headers = dict[str, str]
CONTROL = "/__fake__"
# Recorded headers that describe the original transfer, not the content we replay.
HOP_HEADERS = {"content-encoding", "transfer-encoding", "content-length", "connection", "status"}


class Request:
    """One request as the fake saw it."""

    def __init__(self, method: str, path: str, query: str, headers: Headers, body: bytes) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.time = time.time()

    @property
    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.query))

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def record(self) -> dict[str, Any]:
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": text,
            "body_b64": None if text is not None else base64.b64encode(self.body).decode(),
            "time": self.time,
        }


class Reply:
    """What to send back: status, headers, and a body (bytes or an async chunk stream)."""

    def __init__(
        self,
        status: int = 200,
        headers: Headers | None = None,
        body: bytes = b"",
        stream: Callable[[], AsyncIterator[bytes]] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.stream = stream
        self.delay = delay

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: Headers | None = None) -> Reply:
        merged = {"content-type": "application/json", **(headers or {})}
        return cls(status, merged, json.dumps(value).encode())


class FakeApp:
    """Base ASGI app: recording, scripting, control endpoints. Subclasses implement `handle`."""

    name = "fake"

    def __init__(self, fixtures_dir: Path | str) -> None:
        self.fixtures_dir = Path(fixtures_dir).resolve()
        self.base_url = ""  # set by the runner once the port is known
        self._lock = threading.Lock()
        self._scripts: list[dict[str, Any]] = []
        self._requests: list[Request] = []

    # ---- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request = Request(
            scope["method"], scope["path"], scope.get("query_string", b"").decode(), headers, body
        )
        if request.path.startswith(CONTROL + "/"):
            reply = self._control(request)
        else:
            with self._lock:
                self._requests.append(request)
                script = self._take_script(request)
            reply = (
                self.render(script, request) if script is not None else await self.handle(request)
            )
        await self._send(reply, send)

    async def _send(self, reply: Reply, send: Any) -> None:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
        if reply.stream is None:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if reply.stream is None:
            await send({"type": "http.response.body", "body": reply.body})
            return
        async for chunk in reply.stream():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    # ---- behaviour ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Reply:
        return Reply.json({"error": "not found"}, 404)

    def render(self, script: dict[str, Any], request: Request) -> Reply:
        """A scripted reply. Subclasses add their own keys and call this for the rest."""
        status = int(script.get("status", 200))
        headers: Headers = {}
        body = b""
        if "replay" in script:
            status, headers, body = self.replay(
                script["replay"], status if "status" in script else None
            )
        if "fixture" in script:
            body = self.fixture_bytes(script["fixture"])
            headers.setdefault("content-type", _guess_type(script["fixture"]))
        if "json" in script:
            body = json.dumps(script["json"]).encode()
            headers["content-type"] = "application/json"
        if "body" in script:
            body = str(script["body"]).encode()
            headers.setdefault("content-type", "text/plain")
        headers.update({k.lower(): str(v) for k, v in (script.get("headers") or {}).items()})
        stream = None
        if "trickle" in script:
            stream = _trickle(body, **script["trickle"])
        elif "stream" in script:
            stream = _big(**script["stream"])
        return Reply(status, headers, body, stream, float(script.get("delay", 0.0)))

    def fixture_path(self, relative: str) -> Path:
        path = (self.fixtures_dir / relative).resolve()
        if not path.is_relative_to(self.fixtures_dir) or not path.is_file():
            raise FileNotFoundError(f"no fixture {relative!r}")
        return path

    def fixture_bytes(self, relative: str) -> bytes:
        return self.fixture_path(relative).read_bytes()

    def replay(self, stem: str, status: int | None = None) -> tuple[int, Headers, bytes]:
        """A recorded exchange: `<stem>.json` body with the status/headers of `<stem>.meta.json`."""
        body = self.fixture_bytes(stem + ".json")
        meta_path = self.fixtures_dir / (stem + ".meta.json")
        headers: Headers = {"content-type": "application/json"}
        recorded_status = 200
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            recorded_status = int(meta.get("status", 200))
            for key, value in (meta.get("headers") or {}).items():
                if key.lower() not in HOP_HEADERS:
                    headers[key.lower()] = self.rewrite(str(value))
        return status or recorded_status, headers, body

    def rewrite(self, value: str) -> str:
        """Recorded absolute URLs of the real service → this fake's URL. Subclasses set it."""
        return value

    # ---- scripting and control ----------------------------------------------------------------

    def _take_script(self, request: Request) -> dict[str, Any] | None:
        for script in self._scripts:
            if script.get("method") and script["method"].upper() != request.method:
                continue
            if script.get("path") and not re.search(script["path"], request.path):
                continue
            script["times"] = int(script.get("times", 1)) - 1
            if script["times"] <= 0:
                self._scripts.remove(script)
            return script
        return None

    def add_script(self, script: dict[str, Any]) -> None:
        with self._lock:
            self._scripts.append(dict(script))

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._requests.clear()
            self.reset_state()

    def reset_state(self) -> None:
        """Subclass state to clear on reset."""

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self._requests),
                "by_path": dict(Counter(r.path for r in self._requests)),
                "pending_scripts": sum(int(s.get("times", 1)) for s in self._scripts),
            }

    def control(self, action: str, request: Request) -> Reply | None:
        """Subclass control actions; None if unknown."""
        return None

    def _control(self, request: Request) -> Reply:
        action = request.path[len(CONTROL) + 1 :]
        if action == "reset" and request.method == "POST":
            self.reset()
            return Reply.json({"ok": True})
        if action == "script" and request.method == "POST":
            payload = request.json()
            for script in payload if isinstance(payload, list) else [payload]:
                self.add_script(script)
            return Reply.json({"ok": True})
        if action == "requests":
            return Reply.json([r.record() for r in self.requests()])
        if action == "stats":
            return Reply.json(self.stats())
        reply = self.control(action, request)
        return reply or Reply.json({"error": f"unknown control action {action!r}"}, 404)


def _guess_type(name: str) -> str:
    if name.endswith(".json"):
        return "application/json"
    if name.endswith((".rss", ".xml")):
        return "application/rss+xml; charset=utf-8"
    if name.endswith(".pdf"):
        return "application/pdf"
    return "application/octet-stream"


def _trickle(
    body: bytes, chunk: int = 1, interval: float = 0.5, count: int = 120
) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        data = body or b"%PDF-" + b"x" * count * chunk
        for start in range(0, min(len(data), count * chunk), chunk):
            yield data[start : start + chunk]
            await asyncio.sleep(interval)

    return stream


def _big(size: int, prefix: str = "", chunk: int = 65536) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        sent = 0
        first = prefix.encode()
        while sent < size:
            piece = (first + b"\0" * (chunk - len(first)))[: min(chunk, size - sent)]
            first = b""
            sent += len(piece)
            yield piece
            await asyncio.sleep(0)

    return stream


# ---- running a fake -------------------------------------------------------------------------


class FakeControl:
    """Commands a running fake over HTTP (works across processes)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + CONTROL, timeout=10.0, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, action: str, **kwargs: Any) -> Any:
        response = self._http.request(method, "/" + action, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.call("POST", "reset")

    def script(self, times: int = 1, **reply: Any) -> None:
        """Answer the next `times` matching requests with `reply` (see the module docstring)."""
        self.call("POST", "script", json={"times": times, **reply})

    def fail_next(
        self, times: int, status: int, *, retry_after: float | None = None, **reply: Any
    ) -> None:
        """E.g. `fail_next(3, 429, retry_after=2)`."""
        headers = dict(reply.pop("headers", {}) or {})
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        self.script(times=times, status=status, headers=headers, **reply)

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        records = self.call("GET", "requests")
        return [r for r in records if path is None or re.search(path, r["path"])]

    def last_request(self, path: str | None = None) -> dict[str, Any]:
        records = self.requests(path)
        if not records:
            raise AssertionError(f"the fake received no request{f' to {path}' if path else ''}")
        return records[-1]

    def stats(self) -> dict[str, Any]:
        return self.call("GET", "stats")


class RunningFake:
    """A fake served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: FakeApp, port: int = 0) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        app.base_url = self.url
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name=app.name
        )
        self.control = FakeControl(self.url)

    def start(self) -> RunningFake:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.app.name} fake did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.control.close()
        self._socket.close()

    def __enter__(self) -> RunningFake:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
