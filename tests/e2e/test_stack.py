"""`howlerhire up` runs the stack: embedded NATS and PostgreSQL, and the services."""

from __future__ import annotations

import asyncio
import signal

from shared.bus import Names, connect
from shared.catalog import routes
from shared.embedded import free_port
from shared.workflow import Instances
from tests.support.engine import wait_for


async def test_up_runs_the_demo_workflow_and_stops_cleanly(tmp_path):
    """The one-command stack runs a workflow end to end and shuts down on SIGTERM."""
    nats_port = free_port()
    env = {
        "HOWLERHIRE_NATS_PORT": str(nats_port),
        "HOWLERHIRE_NATS_MONITOR_PORT": str(free_port()),
        "HOWLERHIRE_PG_PORT": str(free_port()),
        "GATEWAY_PORT": str(free_port()),
        "NATS_URL": "",
        "DATABASE_URL": "",
        "WORKFLOWS_AUTH_TOKEN": "",
    }
    import subprocess
    import sys

    from tests.support.procs import REPO_ROOT, Proc

    log = tmp_path / "stack.log"
    out = open(log, "ab")  # noqa: SIM115
    import os

    popen = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--data-dir", str(tmp_path / "var")],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    stack = Proc(popen, log)
    try:
        nc = await connect(f"nats://127.0.0.1:{nats_port}", "test", attempts=60)
        try:
            instances = Instances(nc, Names("hh"), routes())
            for _ in range(300):
                if "worker started" in stack.output():
                    break
                await asyncio.sleep(0.1)
            await instances.trigger("demo-greeting", {"name": "Ada", "pause_seconds": 1}, "hello")
            done = await wait_for(instances, "demo-greeting", "hello", timeout=60)
        finally:
            await nc.drain()
        assert done.status == "complete", stack.output()
        assert done.output["greeting"].startswith("Hello, Ada!")
    finally:
        stack.popen.send_signal(signal.SIGTERM)
        code = stack.wait(90)
    assert code == 0, stack.output()
    assert "stopped" in stack.output()
