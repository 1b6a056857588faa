"""Service processes for tests: started with an environment, killed for real."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    """A child process whose output goes to a log file the test can read."""

    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup, no acks, no drain — a real crash."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)


def spawn(module: str, env: dict[str, str], log: Path) -> Proc:
    """`python -m module` from the repository root with `env` added to ours."""
    full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    popen = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=REPO_ROOT,
        env=full,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return Proc(popen, log)


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s")


async def wait_http(url: str, proc: Proc) -> None:
    """Wait until the gateway at `url` answers /health (30 s), failing if `proc` dies."""
    import httpx

    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert proc.alive(), proc.output()
            await asyncio.sleep(0.1)
    raise AssertionError(f"gateway did not come up: {proc.output()}")
