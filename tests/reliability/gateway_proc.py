"""A real gateway process for the security tests, and the stream-message count they assert on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from shared.embedded import free_port
from tests.support.engine import all_streams
from tests.support.procs import Proc, spawn, wait_http

TOKEN = "rel-gateway-token-5f0c2a9d7e41b3c8"


@dataclass
class Gateway:
    proc: Proc
    url: str

    def rss_kb(self) -> int:
        """VmRSS of the gateway process, in KiB (from /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for pid {self.proc.pid}")


@asynccontextmanager
async def running_gateway(
    nats_url: str, prefix: str, tmp_path: Path, module: str = "services.gateway", **extra: str
) -> AsyncIterator[Gateway]:
    """The gateway (`module`: `python -m` it) on a free port, SIGKILLed on exit."""
    port = free_port()
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "WORKFLOWS_AUTH_TOKEN": TOKEN,
        "GATEWAY_PORT": str(port),
        **extra,
    }
    proc = spawn(module, env, tmp_path / f"gateway-{port}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_http(url, proc)
        yield Gateway(proc, url)
    finally:
        proc.kill()


async def stored_messages(nc: NATS, prefix: str) -> int:
    """Messages in every stream of the namespace `prefix` (events, runs, timers, DLQ)."""
    js = nc.jetstream()
    total = 0
    try:
        streams = await all_streams(js)
    except NotFoundError:
        return 0
    for info in streams:
        if info.config.name and info.config.name.startswith(prefix):
            total += info.state.messages
    return total
