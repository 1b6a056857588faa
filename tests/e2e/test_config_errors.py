"""A service missing required configuration stops at start, naming the variable."""

from __future__ import annotations

import asyncio

from tests.support.procs import spawn


async def test_resume_service_without_a_database_names_the_variables(tmp_path, nats_url):
    """No DATABASE_URL and no Supabase pair: exit 2 with a message naming them."""
    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": "",
        "SUPABASE_URL": "",
        "SUPABASE_SERVICE_ROLE_KEY": "",
    }
    proc = spawn("services.resume", env, tmp_path / "resume.log")
    code = await asyncio.to_thread(proc.wait, 60)
    assert code == 2, proc.output()
    assert "DATABASE_URL" in proc.output()
    assert "Traceback" not in proc.output()


async def test_gateway_without_a_token_names_the_variable(tmp_path, nats_url):
    """No WORKFLOWS_AUTH_TOKEN: the gateway exits 2 naming it."""
    proc = spawn(
        "services.gateway",
        {"NATS_URL": nats_url, "WORKFLOWS_AUTH_TOKEN": ""},
        tmp_path / "gateway.log",
    )
    code = await asyncio.to_thread(proc.wait, 60)
    assert code == 2, proc.output()
    assert "WORKFLOWS_AUTH_TOKEN" in proc.output()
