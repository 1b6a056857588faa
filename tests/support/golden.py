"""Golden step-logs: real runs of every catalog workflow on the offline stack, kept as JSON.

`python -m tests.support.golden record` starts `howlerhire up --demo` (the offline
stand-ins for GitHub, the job boards and the LLM; PostgreSQL with the demo's sample
user) on a nats-server of its own, runs each workflow of `shared.catalog` once with the
demo's parameters, and writes each finished instance record to
`tests/data/golden/<workflow>.json`. tests/unit/engine/test_golden_replay.py replays
every one against the current code (shared/workflow/replay.py). Re-record after changing
a workflow's step sequence on purpose; a change that was not on purpose fails that test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from shared.bus import Names, connect
from shared.catalog import CATALOG, routes
from shared.config import EngineSettings, load_settings
from shared.crypto import new_master_key
from shared.demo import USER_ID, examples
from shared.embedded import NatsServer, free_port
from shared.standin.server import BOARD_VARIABLES
from shared.workflow import Instances, Workflow
from shared.workflow.model import InstanceState, decode_state

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "golden"
REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "golden"
# One batch at a time: the week's summary reports the others' activity, and the daily
# discovery's own starts would race job-discovery's (as in tests/e2e/test_stack.py).
BATCHES: tuple[tuple[str, ...], ...] = (
    ("demo-greeting", "resume-generation", "resume-parsing", "profile-sync", "job-discovery"),
    ("weekly-summary", "daily-discovery"),
    ("email-unsubscribe",),
)


def golden_path(workflow: str) -> Path:
    return GOLDEN_DIR / f"{workflow}.json"


def load(workflow: str) -> InstanceState:
    """The golden record of `workflow`."""
    return decode_state(golden_path(workflow).read_bytes())


def _environment(nats_url: str, master_keys: str) -> dict[str, str]:
    cleared = [
        "DATABASE_URL",
        "SUPABASE_URL",
        "WORKFLOWS_AUTH_TOKEN",
        "ANTHROPIC_API_KEY",
        "RESEND_API_KEY",
        "EMAIL_OUTBOX_DIR",
        "GITHUB_API_URL",
        "GITHUB_TOKEN",
        "HOWLERHIRE_STANDIN",
        "DISCOVERY_SOURCES",
    ]
    return {
        **os.environ,
        **{var: "" for var in cleared},
        **{var: "" for var in BOARD_VARIABLES.values()},
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": NAMESPACE,
        "HOWLERHIRE_PG_PORT": str(free_port()),
        "GATEWAY_PORT": str(free_port()),
        # Our own key, so the records the store seals for the demo user can be opened here.
        "DATA_MASTER_KEYS": master_keys,
        "PYTHONUNBUFFERED": "1",
    }


async def _run(client: httpx.AsyncClient, workflow: str, params: Any) -> None:
    response = await client.post(
        "/trigger",
        json={"workflow": workflow, "params": params, "instanceId": f"golden-{workflow}"},
    )
    response.raise_for_status()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        body = (
            await client.post(
                "/status", json={"workflow": workflow, "instanceId": f"golden-{workflow}"}
            )
        ).json()
        if body.get("status") in ("complete", "errored", "terminated"):
            if body["status"] != "complete":
                raise RuntimeError(f"{workflow} ended {body['status']}: {body.get('error')}")
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{workflow} did not finish in 180 s")


async def record() -> list[Path]:
    """Run every catalog workflow once on the offline stack and write its golden record."""
    with tempfile.TemporaryDirectory(prefix="howlerhire-golden-") as tmp:
        base = Path(tmp)
        nats = NatsServer(base / "nats", log_file=base / "nats.log").start()
        master_keys = f"golden1:{new_master_key()}"
        env = _environment(nats.url, master_keys)
        log = open(base / "up.log", "wb")  # noqa: SIM115 - owned by the child
        stack = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "up", "--data-dir", str(base / "var"), "--demo"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            written = await _record_from(base, env, master_keys, stack)
        finally:
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(120)
            finally:
                log.close()
                nats.stop()
    return written


async def _record_from(
    base: Path, env: dict[str, str], master_keys: str, stack: subprocess.Popen[bytes]
) -> list[Path]:
    gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    token_file = base / "var" / "auth-token"
    deadline = time.monotonic() + 300
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        while True:
            if stack.poll() is not None:
                raise RuntimeError((base / "up.log").read_text()[-3000:])
            try:
                if token_file.exists() and (await client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the stack did not answer in 300 s")
            await asyncio.sleep(0.3)
        client.headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
        params = examples(f"/storage/v1/object/resumes/{USER_ID}/resume.docx")
        catalog = {spec.id for spec in CATALOG}
        missing = catalog - {name for batch in BATCHES for name in batch}
        if missing:
            raise RuntimeError(f"no golden run for {sorted(missing)}: add them to BATCHES")
        for batch in BATCHES:
            await asyncio.gather(*(_run(client, name, params[name]) for name in batch))
    nc = await connect(env["NATS_URL"], "golden-recorder", attempts=3)
    settings = load_settings(
        EngineSettings, {"HOWLERHIRE_NAMESPACE": NAMESPACE, "DATA_MASTER_KEYS": master_keys}
    )
    instances = Instances(nc, Names(NAMESPACE), routes(), settings=settings)
    written = []
    try:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for spec in CATALOG:
            state = await instances.get(spec.id, f"golden-{spec.id}")
            state.index, state.indexed_as = [], None  # the bucket's bookkeeping, not history
            path = golden_path(spec.id)
            path.write_bytes(msgspec.json.format(msgspec.json.encode(state), indent=2) + b"\n")
            written.append(path)
    finally:
        await instances.close()
        await nc.drain()
    return written


def main(argv: list[str]) -> int:
    if argv != ["record"]:
        print("usage: python -m tests.support.golden record", file=sys.stderr)
        return 2
    for path in asyncio.run(record()):
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def production_workflows() -> dict[str, Workflow]:
    """Every catalog workflow as its service registers it (default settings)."""
    from services.demo.workflows import greet
    from services.discovery.workflows import daily_discovery, job_discovery
    from services.notify.workflows import workflows as notify_workflows
    from services.parsing.workflows import profile_sync, resume_parsing
    from services.resume.workflows import resume_generation

    found = [
        greet,
        job_discovery(),
        daily_discovery,
        *notify_workflows(),
        resume_parsing(),
        profile_sync(),
        resume_generation,
    ]
    return {wf.id: wf for wf in found}


def replay_deps(workflow: str) -> Any:
    """What `workflow` reads between its steps, as the offline stack configures it (the
    default boards, the offline AI, no budgets); nothing that does I/O, since a replay
    calls no step function."""
    from services.discovery.steps import DiscoveryDeps
    from services.parsing.steps import ParsingDeps
    from services.resume.steps import ResumeDeps
    from shared.ai.offline import OfflineAI
    from shared.sources import BoardSettings, configured_boards

    offline: Any = None  # the I/O the steps would do: never reached on a replay
    service = {spec.id: spec.service for spec in CATALOG}[workflow]
    if service == "discovery":
        boards = configured_boards(load_settings(BoardSettings, {}))
        return DiscoveryDeps(
            repo=offline, boards=boards, fetcher=offline, snapshots=offline, usage=offline
        )
    if service == "parsing":
        return ParsingDeps(
            repo=offline, ai=OfflineAI(), storage=offline, github=offline, memo=offline
        )
    if service == "resume":
        return ResumeDeps(repo=offline, ai=OfflineAI(), mailer=offline)
    return None
