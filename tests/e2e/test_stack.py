"""`howlerhire up`: the one-command stack, as a newcomer meets it.

It prints what is where, runs the workflows that exist, stops everything on Ctrl-C
(leaving no process behind), reuses its data on a second start, and when PostgreSQL
cannot start it stops the nats-server it had started.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.catalog import CATALOG
from shared.demo import APPLICATION_ID, GITHUB_HANDLE, USER_ID, examples
from shared.embedded import free_port
from shared.standin.server import BOARD_VARIABLES, BOARDS
from tests.support.procs import REPO_ROOT, Proc


def _start_up(data_dir: Path, log: Path, env: dict[str, str], *args: str) -> Proc:
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    popen = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--data-dir", str(data_dir), *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return Proc(popen, log)


@pytest.fixture
def pg_cache() -> Iterator[str]:
    """A cache folder of the test's own for PostgreSQL's stand-in data folder (the test's
    folders are private, as a home is), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="howlerhire-up-cache-"))
    folder.chmod(0o755)
    yield str(folder / "cache")
    shutil.rmtree(folder, ignore_errors=True)


def _ports() -> dict[str, str]:
    return {
        "HOWLERHIRE_NATS_PORT": str(free_port()),
        "HOWLERHIRE_NATS_MONITOR_PORT": str(free_port()),
        "HOWLERHIRE_PG_PORT": str(free_port()),
        "GATEWAY_PORT": str(free_port()),
        # The stack's own servers, not the suite's or a developer's.
        "NATS_URL": "",
        "DATABASE_URL": "",
        "SUPABASE_URL": "",
        "WORKFLOWS_AUTH_TOKEN": "",
        "ANTHROPIC_API_KEY": "",
        "RESEND_API_KEY": "",
        "EMAIL_OUTBOX_DIR": "",
        # The upstreams too: the offline stand-in, not a developer's settings.
        "GITHUB_API_URL": "",
        "GITHUB_TOKEN": "",
        "HOWLERHIRE_STANDIN": "",
        "DISCOVERY_SOURCES": "",
        **{var: "" for var in BOARD_VARIABLES.values()},
    }


def _processes_using(*paths: Path | str) -> list[tuple[int, str]]:
    """Live processes whose command line or environment mentions one of `paths`."""
    found = []
    needles = [str(path).encode() for path in paths]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if state != "Z" and any(n in cmdline or n in environ for n in needles):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def _wait_for_table(stack: Proc, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = stack.output()
        if "HowlerHire is up" in out and "services" in out.split("HowlerHire is up", 1)[1]:
            return out
        assert stack.alive(), out
        time.sleep(0.2)
    raise AssertionError("no what-is-where table:\n" + stack.output())


async def _run(client: httpx.AsyncClient, workflow: str, params: dict, instance: str) -> dict:
    response = await client.post(
        "/trigger", json={"workflow": workflow, "params": params, "instanceId": instance}
    )
    assert response.status_code in (200, 201, 202), response.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = await client.post("/status", json={"workflow": workflow, "instanceId": instance})
        body = status.json()
        if body.get("status") in ("complete", "errored", "terminated"):
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"{workflow} {instance} did not finish: {body}")


async def test_up_demo_prints_what_is_where_runs_workflows_stops_clean_and_reuses_data(
    tmp_path: Path, pg_cache: str
):
    data = tmp_path / "var"
    env = {**_ports(), "HOWLERHIRE_PG_CACHE": pg_cache}
    stack = _start_up(data, tmp_path / "up-1.log", env, "--demo")
    try:
        table = await asyncio.to_thread(_wait_for_table, stack)
        gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        token_file = data / "auth-token"
        for expected in (
            gateway,
            str(token_file),
            f"postgresql://postgres@127.0.0.1:{env['HOWLERHIRE_PG_PORT']}/postgres",
            f"nats://127.0.0.1:{env['HOWLERHIRE_NATS_PORT']}",
            str(data / "outbox"),
            str(data / "nats-credentials.env"),
            "offline stand-in",
        ):
            assert expected in table, f"{expected!r} missing from:\n{table}"
        rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("  ")}
        assert "offline stand-in: http://127.0.0.1:" in rows["GitHub"], table
        assert "offline stand-in: http://127.0.0.1:" in table.split("job boards", 1)[1], table
        for spec in CATALOG:  # one CLI and one curl command per workflow
            assert f"howlerhire trigger {spec.id} " in table, spec.id
            assert f'"workflow": "{spec.id}"' in table, spec.id
        if os.geteuid() == 0:  # the test's folders are private: the data's stand-in
            assert pg_cache in table, table
        token = token_file.read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=10) as client:
            for _ in range(300):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            greeting = await _run(
                client, "demo-greeting", {"name": "Ada", "pause_seconds": 1}, "up-hello"
            )
            assert greeting["status"] == "complete", greeting
            assert greeting["output"]["greeting"].startswith("Hello, Ada!")
            # The CLI finds this stack by itself: var/gateway-url and var/auth-token.
            cli_env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("HOWLERHIRE_URL", "WORKFLOWS_URL", "GATEWAY_URL")
                and k not in ("WORKFLOWS_AUTH_TOKEN", "GATEWAY_PORT")
            }
            listed = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "shared.cli",
                    "-o",
                    "json",
                    "show",
                    "demo-greeting",
                    "up-hello",
                ],
                cwd=tmp_path,
                env={**cli_env, "PYTHONPATH": str(REPO_ROOT)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert listed.returncode == 0, listed.stderr
            shown = json.loads(listed.stdout)
            assert (shown["status"], shown["instanceId"]) == ("complete", "up-hello"), shown
            # All six catalog workflows at once, with the demo's own parameters; GitHub and
            # the job boards are the offline stand-in (this machine needs no network).
            demo_params = examples(f"/storage/v1/object/resumes/{USER_ID}/resume.docx")
            six = (
                "resume-generation",
                "resume-parsing",
                "profile-sync",
                "job-discovery",
                # After those: the week's summary is of their activity (a week without
                # any sends nothing), and the discovery daily-discovery starts for the
                # demo user would race job-discovery's.
                "weekly-summary",
                "daily-discovery",
            )
            began = time.monotonic()
            results = []
            for batch in (six[:4], six[4:]):
                results += await asyncio.gather(
                    *(_run(client, name, demo_params[name], f"up-{name}") for name in batch)
                )
            elapsed = time.monotonic() - began
            done = dict(zip(six, results, strict=True))
            tail = stack.output()[-4000:]
            for name, body in done.items():
                assert body["status"] == "complete", (name, body, tail)
                assert body["output"]["success"] is True, (name, body)
            print(f"six workflows complete {elapsed:.1f}s after the stack answered")
            sync = done["profile-sync"]["output"]
            assert sync["projectsFound"] == 3, sync  # the fork is not a project
            assert {"Python", "PostgreSQL", "TypeScript"} <= set(sync["skills"]), sync
            assert (
                sync["projects"][0]["url"] == f"https://github.com/{GITHUB_HANDLE}/jetstream-jobs"
            )
            found = done["job-discovery"]["output"]
            assert sorted(found["sourcesSearched"]) == sorted(BOARDS), found
            assert [s["status"] for s in found["sources"]] == ["ok"] * len(BOARDS), found
            assert found["newJobs"] >= 5 and found["newJobs"] == len(found["jobs"]), found
            titles = {job["title"] for job in found["jobs"]}
            assert "Senior Python Engineer" in titles and "Product Designer" not in titles, found
            assert all(job["matchScore"] > 0 and job["matchedSkills"] for job in found["jobs"])
            daily = done["daily-discovery"]["output"]
            assert daily["usersFound"] >= 1 and daily["eventsSent"] == daily["usersFound"], daily
            summary = done["weekly-summary"]["output"]
            assert summary["sent"] >= 1 and summary["failed"] == 0, summary
            unsubscribe = await _run(
                client,
                "email-unsubscribe",
                demo_params["email-unsubscribe"],
                "up-email-unsubscribe",
            )
            assert unsubscribe["status"] == "complete", (unsubscribe, stack.output()[-3000:])
            assert unsubscribe["output"]["userFound"] is True, unsubscribe
        # The resume-ready and the weekly summary emails, at least.
        assert len(list((data / "outbox").glob("*.html"))) >= 2, list((data / "outbox").iterdir())
        started = _processes_using(data, pg_cache)
        names = " ".join(cmd for _, cmd in started)
        for expected in (
            "nats-server",
            "postgres",
            "services.gateway",
            "services.resume",
            "shared.standin",
        ):
            assert expected in names, started
    finally:
        stack.popen.send_signal(signal.SIGINT)  # Ctrl-C
        code = await asyncio.to_thread(stack.wait, 120)
    assert code == 0, stack.output()[-3000:]
    assert _processes_using(data, pg_cache) == []

    # A second start finds the same token, instances and database rows.
    stack = _start_up(data, tmp_path / "up-2.log", env)
    try:
        await asyncio.to_thread(_wait_for_table, stack)
        assert token_file.read_text().strip() == token
        async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=10) as client:
            for _ in range(300):
                try:
                    status = await client.post(
                        "/status", json={"workflow": "demo-greeting", "instanceId": "up-hello"}
                    )
                    if status.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            assert status.json()["status"] == "complete", status.text
        conn = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:{env['HOWLERHIRE_PG_PORT']}/postgres"
        )
        try:
            rows = await conn.fetchval("SELECT count(*) FROM profiles WHERE user_id = $1", USER_ID)
            status_row = await conn.fetchval(
                "SELECT status FROM job_applications WHERE id = $1", APPLICATION_ID
            )
        finally:
            await conn.close()
        assert rows == 1
        assert status_row == "ready"
    finally:
        stack.popen.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(stack.wait, 120)
    assert code == 0, stack.output()[-3000:]
    assert _processes_using(data, pg_cache) == []


def test_up_stops_its_nats_server_when_postgres_cannot_start(tmp_path: Path, pg_cache: str):
    data = tmp_path / "var"
    env = {**_ports(), "HOWLERHIRE_PG_CACHE": pg_cache}
    with socket.socket() as taken:  # PostgreSQL's port is in use: it exits at start
        taken.bind(("127.0.0.1", int(env["HOWLERHIRE_PG_PORT"])))
        taken.listen()
        stack = _start_up(data, tmp_path / "up.log", env)
        code = stack.wait(180)
    out = stack.output()
    assert code == 1, out
    assert "could not start the stack" in out and "postgres" in out, out
    assert _processes_using(data, pg_cache) == [], out
    with socket.socket() as probe:  # the nats-server is gone, not just unlisted
        assert probe.connect_ex(("127.0.0.1", int(env["HOWLERHIRE_NATS_PORT"]))) != 0


def test_ctrl_c_stops_everything_while_a_service_is_crash_looping(tmp_path: Path, pg_cache: str):
    data = tmp_path / "var"
    env = {**_ports(), "HOWLERHIRE_PG_CACHE": pg_cache}
    with socket.socket() as taken:  # the gateway's port is in use: it exits, is restarted…
        taken.bind(("127.0.0.1", int(env["GATEWAY_PORT"])))
        taken.listen()
        stack = _start_up(data, tmp_path / "up.log", env)
        deadline = time.monotonic() + 180
        while stack.output().count("gateway exited with") < 2:
            assert stack.alive() and time.monotonic() < deadline, stack.output()
            time.sleep(0.2)
        stack.popen.send_signal(signal.SIGINT)
        code = stack.wait(120)
    assert code == 0, stack.output()
    assert _processes_using(data, pg_cache) == [], stack.output()
