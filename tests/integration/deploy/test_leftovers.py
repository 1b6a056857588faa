"""A process that started embedded servers and then failed leaves none of them running
(they run in sessions of their own, so only their starter can stop them)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support.procs import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    from shared.embedded import NatsServer, PostgresServer
    nats = NatsServer(Path(tempfile.mkdtemp(prefix="howlerhire-leftover-"))).start()
    pg = PostgresServer().start()
    print(nats.proc.pid, pg.proc.pid, flush=True)
    raise SystemExit("a failing test run: nobody calls stop()")
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except OSError:
        return False
    return state != "Z"


def test_servers_do_not_outlive_a_process_that_failed():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stderr
    nats_pid, pg_pid = (int(x) for x in done.stdout.split())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_alive(nats_pid) or _alive(pg_pid)):
        time.sleep(0.1)
    assert not _alive(nats_pid), "nats-server left running"
    assert not _alive(pg_pid), "postgres left running"
