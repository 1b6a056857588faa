"""Sealing and erasure on the real nats-server: records, messages and the step cache."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

import nats.js.errors
import pytest
from nats.aio.client import Client as NATS

from shared.ai.budget import Budgets, BudgetSettings
from shared.bus import Names, connect
from shared.config import EngineSettings
from shared.erasure import audit_records
from shared.workflow import CachePolicy, Context, EventEnvelope, Instances, Registry, workflow
from tests.support.engine import all_streams, engine_settings, prepare, running_worker, wait_for

MASTER = "m1:" + base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
ADA = {"userId": "user-ada", "email": "ada@example.org", "name": "Ada Lovelace"}
BOB = {"userId": "user-bob", "email": "bob@example.net", "name": "Bob Builder"}
RESUME = {
    "user-ada": "Ada Lovelace wrote the first program for the Analytical Engine",
    "user-bob": "Bob Builder renovated forty schools across Yorkshire",
}


async def greet(name: str, email: str) -> dict[str, str]:
    return {"line": f"Dear {name} <{email}>"}


async def parse(text: str) -> dict[str, str]:
    return {"text": text, "skills": "engines"}


@workflow("profile", on="profile/requested")
async def profile(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    line = await ctx.step("greet", greet, params["name"], params["email"])
    resume = RESUME[params["userId"]]
    digest = hashlib.sha256(resume.encode()).hexdigest()
    parsed = await ctx.step(
        "parse", parse, resume, cache=CachePolicy(key=digest, ttl=timedelta(hours=1))
    )
    if params.get("wait"):
        got = await ctx.wait_for_event("confirm", "confirmed", timedelta(minutes=5))
        return {"confirmedBy": got}
    return {"line": line["line"], "resume": parsed["text"]}


REGISTRY = Registry([profile])


@pytest.fixture
def settings(prefix: str) -> EngineSettings:
    return engine_settings(prefix, data_master_keys=MASTER)


async def _scan(nc: NATS, prefix: str, needles: list[bytes]) -> dict[bytes, list[str]]:
    """Every message of every stream of the test's namespace (KV buckets are streams too),
    headers and data, searched for each needle: where each was found."""
    js = nc.jetstream()
    found: dict[bytes, list[str]] = {n: [] for n in needles}
    for info in await all_streams(js):
        name = info.config.name or ""
        if not name.startswith((prefix, f"KV_{prefix}")):
            continue
        for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(name, seq)
            except nats.js.errors.NotFoundError:
                continue
            blob = (msg.data or b"") + repr(msg.headers or {}).encode()
            for needle in needles:
                if needle in blob:
                    found[needle].append(f"{name}#{seq} {msg.subject}")
    return found


async def test_erasure_leaves_no_readable_copy_and_spares_the_other_user(
    nats_url: str, settings: EngineSettings, prefix: str
) -> None:
    nc = await connect(nats_url, "test", attempts=3)
    try:
        instances = await prepare(nc, REGISTRY, settings)
        instances = Instances(
            nc, Names(prefix), {"profile": ("profile/requested",)}, settings=settings
        )
        async with running_worker(nats_url, REGISTRY, settings):
            for who in (ADA, BOB):
                uid = who["userId"]
                await instances.trigger("profile", who, f"{uid}-1")
                await instances.send(
                    [EventEnvelope(name="profile/requested", data=who, id=f"{uid}-ev")]
                )
                await instances.trigger("profile", {**who, "wait": True}, f"{uid}-wait")
            for who in (ADA, BOB):
                uid = who["userId"]
                done = await wait_for(instances, "profile", f"{uid}-1")
                assert done.status == "complete", done
                assert done.output["line"] == f"Dear {who['name']} <{who['email']}>"
                await wait_for(instances, "profile", f"{uid}-wait", lambda s: s.status == "waiting")
            await instances.send_event(
                "profile", "user-bob-wait", "confirmed", {"by": BOB["email"]}
            )
            bob_wait = await wait_for(instances, "profile", "user-bob-wait")
            assert bob_wait.output == {"confirmedBy": {"by": BOB["email"]}}

            # Their LLM spend (shared/ai/budget.py): a budget record and a day's usage each.
            budgets = await Budgets.open(nc, prefix, BudgetSettings())
            for uid in ("user-ada", "user-bob"):
                grant = await budgets.reserve(uid, "pro", f"r-{uid}", 0.5)
                await budgets.settle(uid, f"r-{uid}", grant.period, {"cost_usd": 0.1}, "profile")

            ada = [ADA["email"].encode(), ADA["name"].encode(), RESUME["user-ada"].encode()]
            before = await _scan(nc, prefix, ada)
            # Sealed everywhere but the step cache (shared across users by its key; the
            # resume, which holds the name, is in it): erasure deletes the user's entries.
            assert before[ADA["email"].encode()] == [], before
            for needle in ada[1:]:
                assert before[needle], needle
                assert all("_step_cache" in where for where in before[needle]), before

            report = await instances.erase_user("user-ada", requested_by="test")
            assert report.deleted.terminated == 1  # the waiting instance
            assert report.deleted.instances == 3  # two runs and the event's
            assert report.deleted.data_keys == 1
            assert report.deleted.cache_entries == 1
            assert report.deleted.budget_entries == 2  # the period's record and the day's
            assert await budgets.record("user-ada") is None
            bob_spend = await budgets.record("user-bob")
            assert bob_spend is not None and bob_spend.spent == 100_000
            assert not report.already_erased
            assert "web app" in report.not_deleted

            after = await _scan(nc, prefix, ada)
            assert after == {n: [] for n in ada}, after

            # The other user: intact, and their new runs complete.
            bob = await instances.get("profile", "user-bob-1")
            assert bob.output["resume"] == RESUME["user-bob"]
            await instances.trigger("profile", BOB, "user-bob-2")
            again = await wait_for(instances, "profile", "user-bob-2")
            assert again.status == "complete" and again.output["line"].endswith("<bob@example.net>")
            page = await instances.list(user="user-ada")
            assert page.items == []

            # Idempotent, and audited without personal data.
            repeat = await instances.erase_user("user-ada", requested_by="test")
            assert repeat.already_erased and repeat.deleted.instances == 0
            audits = await audit_records(instances)
            assert [a.erasure_id for a in audits] == [report.erasure_id, repeat.erasure_id]
            assert all("user-ada" not in str(a) and "ada@" not in str(a) for a in audits)

            # The erased user may come back: a new key, a new run.
            await instances.trigger("profile", ADA, "user-ada-new")
            back = await wait_for(instances, "profile", "user-ada-new")
            assert back.status == "complete", back
        await instances.close()
    finally:
        await nc.drain()
