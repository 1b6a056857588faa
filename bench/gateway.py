"""Gateway intake against raw JetStream publishes, interleaved — `python -m bench.gateway`.

The gateway runs as it is deployed (`python -m services.gateway`, its own process) on
the benchmark's nats-server. Clients (httpx.AsyncClient, keep-alive) POST one event per
request to `/events` with the bearer token; the gateway answers 200 only once JetStream
has acknowledged the event. Measured: accepted events per second and request latency at
1 and at 64 concurrent clients, next to the same events published straight to the same
stream from this process (`js.publish` with a message id): the raw publish rate.

Two event kinds: one no workflow listens to (intake only: one publish per request) and
one that starts a workflow (the gateway also writes the instance's `queued` record).
Gateway processes side by side (`VARIANTS`, lean client): the defaults (httptools,
uvloop, one process), h11 + asyncio (before), asyncio alone (full runs), and
`GATEWAY_WORKERS=2`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors

from bench.harness import (
    One,
    Plan,
    Results,
    emit,
    environment,
    namespace,
    nats_servers,
    parser,
    progress,
    ratio,
    run_plan,
    summarise_all,
)
from bench.report import ratio_lines
from shared.bus import Names, publish
from shared.embedded import free_port
from shared.workflow.model import EventEnvelope, encode

REPO_ROOT = Path(__file__).resolve().parents[1]
INTAKE_EVENT = "bench/intake.measured"  # no workflow listens: the request only publishes
STARTING_EVENT = "demo/greeting.requested"  # starts demo-greeting: a queued record too
LEVELS = {"c1": 1, "c64": 64}


@dataclass
class GatewayProcess:
    """One gateway process for the whole run, on its own namespace."""

    url: str
    # Environment on top of the bench's (GATEWAY_HTTP_PARSER, GATEWAY_WORKERS).
    extra_env: dict[str, str] = field(default_factory=dict)
    token: str = ""
    base: str = ""
    ns: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @contextlib.asynccontextmanager
    async def lifetime(self) -> AsyncIterator[None]:
        self.ns = namespace("bg")
        self.token = secrets.token_urlsafe(32)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        log = Path(tempfile.mkdtemp(prefix="bench-gateway-")) / "gateway.log"
        env = {
            **os.environ,
            "NATS_URL": self.url,
            "HOWLERHIRE_NAMESPACE": self.ns,
            "WORKFLOWS_AUTH_TOKEN": self.token,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "STREAM_MAX_BYTES": str(2 * 1024**3),
            **self.extra_env,
        }
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.gateway"],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            await self._wait_healthy(log)
            yield
        finally:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            nc = await nats.connect(self.url)
            for stream in (f"{self.ns}_work", f"{self.ns}_timers", f"{self.ns}_dlq"):
                with contextlib.suppress(nats.js.errors.Error):
                    await nc.jetstream().delete_stream(stream)
            for stream in (f"KV_{self.ns}_instances", f"KV_{self.ns}_meta"):
                with contextlib.suppress(nats.js.errors.Error):
                    await nc.jetstream().delete_stream(stream)
            with contextlib.suppress(nats.js.errors.Error):
                await nc.jetstream().delete_stream(f"{self.ns}_advisories")
            await nc.close()

    async def _wait_healthy(self, log: Path) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited: {log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base}/health", timeout=1.0)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError("the gateway did not become healthy in 30 s")


def _event(name: str) -> bytes:
    return encode({"name": name, "data": {"n": 1, "source": "bench"}, "id": uuid.uuid4().hex})


@dataclass
class GatewayIntake:
    """Authenticated POST /events, one event per request, each client on its own connection.

    `client="httpx"`: an httpx.AsyncClient per concurrent client (one shared client with
    64 requests in flight spends its time in its own connection pool: ~60 requests/s on
    this machine, so it would measure httpx, not the gateway). `client="lean"`: a minimal
    HTTP/1.1 keep-alive client on asyncio streams, which leaves the CPU to the gateway.
    """

    gateway: GatewayProcess
    name: str
    event: str = INTAKE_EVENT
    client: str = "httpx"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[One]:
        headers = {
            "Authorization": f"Bearer {self.gateway.token}",
            "Content-Type": "application/json",
        }
        free: asyncio.Queue[Any] = asyncio.Queue()
        opened: list[Any] = []

        async def connection() -> Any:
            if not free.empty():
                return free.get_nowait()
            if self.client == "httpx":
                conn: Any = httpx.AsyncClient(
                    base_url=self.gateway.base,
                    headers=headers,
                    limits=httpx.Limits(max_connections=1),
                    timeout=30.0,
                )
            else:
                conn = _LeanClient(self.gateway.base, headers)
            opened.append(conn)
            return conn

        async def one() -> None:
            conn = await connection()
            status, text = await _post(conn, _event(self.event))
            if status != 200:
                raise RuntimeError(f"POST /events: {status} {text}")
            free.put_nowait(conn)

        try:
            yield one
        finally:
            for conn in opened:
                await conn.aclose()


async def _post(conn: Any, body: bytes) -> tuple[int, str]:
    if isinstance(conn, httpx.AsyncClient):
        response = await conn.post("/events", content=body)
        return response.status_code, response.text
    return await conn.post("/events", body)


class _LeanClient:
    """HTTP/1.1 POSTs on one keep-alive connection: just enough for the benchmark."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, str]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(request.encode() + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        text = (await reader.readexactly(length)).decode()
        return int(lines[0].split(" ", 2)[1]), text

    async def aclose(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


@dataclass
class RawPublish:
    """The same event envelopes published straight to the gateway's stream, with an id."""

    gateway: GatewayProcess
    name: str

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[One]:
        nc = await nats.connect(self.gateway.url, name="bench-raw-publish")
        js = nc.jetstream()
        names = Names(self.gateway.ns)
        subject = names.event_subject(INTAKE_EVENT)

        async def one() -> None:
            internal = f"ev{uuid.uuid4().hex}"
            envelope = EventEnvelope(
                name=INTAKE_EVENT, data={"n": 1, "source": "bench"}, id=internal
            )
            await publish(js, subject, encode(envelope), msg_id=f"event:{internal}")

        try:
            yield one
        finally:
            await nc.close()


# The lean-client gateways besides the default (httptools, uvloop, one process): the
# parser and loop before (h11, asyncio), and two processes sharing the port.
VARIANTS = {
    "gateway-lean-client": {},
    "gateway-lean-client-h11-asyncio": {
        "GATEWAY_HTTP_PARSER": "h11",
        "GATEWAY_EVENT_LOOP": "asyncio",
    },
    "gateway-lean-client-asyncio": {"GATEWAY_EVENT_LOOP": "asyncio"},
    "gateway-lean-client-2workers": {"GATEWAY_WORKERS": "2"},
}


def gateway_ratios(results: Results, profiles: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in profiles:
        for variant in VARIANTS:
            key = variant.replace("-", "_")
            out[f"{key}_over_raw_publish_c64/{p}"] = ratio(
                results, f"{variant}/{p}", f"raw-publish/{p}", "c64"
            )
            out[f"{key}_p50_over_raw_publish_p50_c1/{p}"] = ratio(
                results, f"{variant}/{p}", f"raw-publish/{p}", "c1", "p50_ms"
            )
        for level in LEVELS:
            out[f"gateway_over_raw_publish_{level}/{p}"] = ratio(
                results, f"gateway/{p}", f"raw-publish/{p}", level
            )
            out[f"gateway_starting_over_raw_publish_{level}/{p}"] = ratio(
                results, f"gateway-starting/{p}", f"raw-publish/{p}", level
            )
    return {k: v for k, v in out.items() if v is not None}


def table(configs: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| configuration | c1 events/s | c1 p50 ms | c1 p99 ms "
        "| c64 events/s | c64 p50 ms | c64 p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]

    def fig(level: dict[str, Any] | None, key: str, digits: int) -> str:
        if not level or key not in level:
            return "-"
        low, high = level["range"][key]
        return f"{level[key]:,.{digits}f} ({low:,.{digits}f}..{high:,.{digits}f})"

    for name, levels in configs.items():
        c1, c64 = levels.get("c1"), levels.get("c64")
        lines.append(
            f"| {name} | {fig(c1, 'workflows_per_s', 0)} | {fig(c1, 'p50_ms', 2)} | "
            f"{fig(c1, 'p99_ms', 2)} | {fig(c64, 'workflows_per_s', 0)} | "
            f"{fig(c64, 'p50_ms', 1)} | {fig(c64, 'p99_ms', 1)} |"
        )
    return "\n".join(lines)


def _events(figures: dict[str, Any]) -> dict[str, Any]:
    """`workflows_per_s` of the harness is events per second here."""
    out = {("events_per_s" if k == "workflows_per_s" else k): v for k, v in figures.items()}
    out.pop("steps_per_s", None)
    if "range" in out:
        out["range"] = {
            ("events_per_s" if k == "workflows_per_s" else k): v
            for k, v in out["range"].items()
            if k != "steps_per_s"
        }
    return out


async def main_async(args: Any) -> dict[str, Any]:
    rounds = args.rounds or (3 if args.quick else 5)
    duration = args.duration or (0.8 if args.quick else 5.0)
    profiles = ["sync-always"] if args.quick else ["sync-default", "sync-always"]
    with nats_servers(args.nats_url, profiles) as urls:
        gateways: list[GatewayProcess] = []
        contenders: list[Any] = []
        for p, url in urls.items():
            for variant, extra in VARIANTS.items():
                if args.quick and variant == "gateway-lean-client-asyncio":
                    continue  # under a minute: the parser-and-loop pair before/after only
                gw = GatewayProcess(url, extra)
                gateways.append(gw)
                contenders.append(GatewayIntake(gw, f"{variant}/{p}", client="lean"))
                if not extra:
                    contenders += [
                        GatewayIntake(gw, f"gateway/{p}"),
                        RawPublish(gw, f"raw-publish/{p}"),
                    ]
                    if not args.quick:
                        contenders.append(
                            GatewayIntake(gw, f"gateway-starting/{p}", STARTING_EVENT)
                        )
        async with contextlib.AsyncExitStack() as stack:
            for gw in gateways:
                await stack.enter_async_context(gw.lifetime())
            results = await run_plan(Plan(contenders, LEVELS, duration, rounds), progress)
        used = list(urls)
    configs = summarise_all(results)
    ratios = gateway_ratios(results, used)
    print(table(configs))
    print(ratio_lines(ratios))
    main = used[-1]
    targets = {}
    for p in used:  # the issue's: measured with the lean client
        r = ratios.get(f"gateway_lean_client_over_raw_publish_c64/{p}")
        if r:
            targets[f"gateway (lean client) >= 0.7 x raw publish at c64 ({p})"] = {
                "value": r["median"],
                "met": r["median"] >= 0.7,
            }
        r = ratios.get(f"gateway_lean_client_p50_over_raw_publish_p50_c1/{p}")
        if r:
            targets[f"gateway (lean client) p50 <= 2 x raw publish p50 at c1 ({p})"] = {
                "value": r["median"],
                "met": r["median"] <= 2.0,
            }
    return {
        "bench": "gateway",
        "quick": args.quick,
        **{level: _events(figs) for level, figs in configs[f"gateway/{main}"].items()},
        "configs": {
            name: {level: _events(f) for level, f in levels.items()}
            for name, levels in configs.items()
        },
        "ratios": ratios,
        "targets": targets,
        "env": environment(),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    emit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
