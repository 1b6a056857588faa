"""Bulk actions: a dry run counts what a run acts on; a SIGKILLed run resumes exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shared.workflow import BulkFilter, Context, Instances, InstanceState, Registry, workflow
from shared.workflow.bulk import job_id
from shared.workflow.model import utcnow
from tests.support.engine import engine_settings, prepare
from tests.support.procs import spawn


@workflow("chain")
async def chain(ctx: Context[None], params: dict[str, object]) -> None:
    """Never run here: the instances are written as records."""


async def fill(instances: Instances, count: int, status: str, tag: str) -> list[str]:
    """`count` finished records, written through the store as a worker writes them."""
    store = await instances.store()
    ids = [f"{tag}{n:04d}" for n in range(count)]
    now = utcnow()

    async def one(iid: str) -> None:
        state = InstanceState(
            workflow="chain",
            instance_id=iid,
            status=status,  # type: ignore[arg-type]
            params={"n": iid, "userId": f"user-{iid[-1]}"},
            created_at=now,
            started_at=now,
            ended_at=now,
            updated_at=now,
        )
        assert await store.create(state) is not None

    for start in range(0, count, 50):
        await asyncio.gather(*(one(iid) for iid in ids[start : start + 50]))
    return ids


async def generations(instances: Instances, ids: list[str]) -> dict[str, int]:
    store = await instances.store()
    states = await store.get_many([("chain", iid) for iid in ids])
    return {iid: states[("chain", iid)].generation for iid in ids}


async def bulk_restart_killed_halfway(nc, nats_url, prefix, tmp_path: Path, count: int) -> None:
    settings = engine_settings(prefix)
    instances = await prepare(nc, Registry([chain]), settings)
    targets = await fill(instances, count, "complete", "c")
    others = await fill(instances, 10, "errored", "e")
    where = BulkFilter(workflow="chain", status="complete")

    preview = await instances.bulk("restart", where, dry_run=True)
    assert preview.total == count
    assert preview.phase == "preview"
    assert await instances.bulk_job(preview.id) is None  # a dry run writes nothing

    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "BULK_ACTION": "restart",
        "BULK_WORKFLOW": "chain",
        "BULK_STATUS": "complete",
        "BULK_RATE": str(count / 4),  # four seconds' worth: the kill lands mid-run
        "BULK_LEASE": "2",
    }
    first = spawn("tests.support.ops_bulk", env, tmp_path / "bulk-1.log")
    jid = job_id("restart", where)
    positions = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = await instances.bulk_job(jid)
        if job is not None and job.phase == "running":
            positions.append(job.position)
            if job.position >= count // 2:
                break
        assert first.alive(), first.output()
        await asyncio.sleep(0.05)
    first.kill()
    assert positions and positions[-1] >= count // 2, positions
    assert positions == sorted(positions)  # progress is readable and only moves forward
    halfway = await generations(instances, targets)
    assert set(halfway.values()) == {0, 1}  # some restarted, some not yet

    second = spawn("tests.support.ops_bulk", env, tmp_path / "bulk-2.log")
    assert second.wait(120) == 0, second.output()
    job = await instances.bulk_job(jid)
    assert job is not None
    assert job.phase == "done"
    assert (job.total, job.position, job.acted, job.skipped, job.failed) == (
        count,
        count,
        count,
        0,
        0,
    )
    assert preview.total == job.acted
    # Each target restarted exactly once: generation 1, and one start message each.
    assert set((await generations(instances, targets)).values()) == {1}
    assert set((await generations(instances, others)).values()) == {0}
    js = nc.jetstream()
    subject = instances.names.run_subject("chain")
    info = await js.stream_info(instances.names.stream, subjects_filter=subject)
    assert (info.state.subjects or {}).get(subject) == count
    # Asking again returns the finished job and acts on nothing.
    again = await instances.bulk("restart", where)
    assert again.acted == count
    assert set((await generations(instances, targets)).values()) == {1}


async def test_bulk_restart_of_500_killed_halfway_restarts_each_once(
    nc, nats_url, prefix, tmp_path
):
    """A bulk restart of 500 matching instances, SIGKILLed halfway and run again, restarts
    each exactly once; the dry run's count is what was acted on. (About 10 s on a loaded
    2-core box: in the normal suite.)"""
    await bulk_restart_killed_halfway(nc, nats_url, prefix, tmp_path, 500)


async def test_bulk_terminate_and_replay_by_user_and_time(nc, prefix):
    """Terminate acts only on unfinished instances of the filter; replay starts one new
    instance per match, none more when asked again, more under another key."""
    settings = engine_settings(prefix)
    instances = await prepare(nc, Registry([chain]), settings)
    queued = await fill(instances, 12, "queued", "q")
    done = await fill(instances, 6, "complete", "d")
    later = utcnow()
    await fill(instances, 3, "queued", "z")

    where = BulkFilter(workflow="chain", user="user-1", created_before=later)
    preview = await instances.bulk("terminate", where, dry_run=True)
    mine = [iid for iid in queued if iid.endswith("1")]
    assert preview.total == len(mine)
    job = await instances.bulk("terminate", where, rate=1000)
    assert (job.total, job.acted) == (len(mine), len(mine))
    for iid in queued:
        state = await instances.get("chain", iid)
        assert state.status == ("terminated" if iid in mine else "queued")

    complete = BulkFilter(workflow="chain", status="complete")
    replay = await instances.bulk("replay", complete)
    assert replay.acted == len(done)
    assert (await instances.bulk("replay", complete)).id == replay.id  # the same job, done

    def replayed(page: list[InstanceState]) -> list[InstanceState]:
        return [s for s in page if s.instance_id.startswith("rp")]

    page = (await instances.list("chain", status="queued", limit=200)).items
    assert sorted(s.params["n"] for s in replayed(page)) == sorted(done)
    # Another key is another job: the operator asked to replay them once more.
    await instances.bulk("replay", complete, key="once more")
    page = (await instances.list("chain", status="queued", limit=200)).items
    assert len(replayed(page)) == 2 * len(done)
