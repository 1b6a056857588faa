"""Erasure of one user's data (GDPR art. 17): what the engine keeps of a user, made gone.

`erase_user` (behind `DELETE /users/{userId}/data` and `howlerhire erase-user USER_ID`):

1. finds the user's instances through the list index (`<ns>.ixu.<user token>.*`);
2. terminates those still running, so that no run writes for the user afterwards;
3. deletes the user's data key (shared/crypto.py): every sealed copy of the user's
   personal data (event and run messages in `<ns>_work`, dead letters, the instance
   bucket's history) can no longer be read, whatever stream keeps it;
4. deletes what this system made for the user: the instance records and their index
   entries, the user's step-cache entries (values computed by the user's runs, such as
   a parsed resume), their progress events and dead letters, their LLM budget and usage
   records, and the offline outbox's emails to them;
5. leaves an audit record in `<ns>_meta` (`erasure.<id>`: who asked, when, how many of
   each; the user appears only as a digest of the id).

Idempotent: a second erasure finds nothing and says so. The web app's database rows
(Supabase) are the web app's to delete; the answer says that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import nats.errors
import nats.js.errors

from shared.crypto import MASTER_VARIABLE
from shared.email import OUTBOX_USER_HEADER
from shared.errors import ConfigError, InstanceNotFoundError, InvalidTransitionError
from shared.workflow.cache import StepCache
from shared.workflow.model import TERMINAL, utcnow
from shared.workflow.progress import progress_stream, progress_subject
from shared.workflow.store import IndexSubjects, state_key, user_token

if TYPE_CHECKING:
    from shared.workflow.control import Instances

log = logging.getLogger(__name__)

NOT_OURS = (
    "Database rows (Supabase: profiles, applications, resumes, jobs) are the web app's "
    "to delete; this system deleted only what it keeps itself."
)


class ErasureCounts(msgspec.Struct, kw_only=True, rename="camel"):
    """How many of each thing one erasure removed."""

    instances: int = 0  # instance records deleted
    terminated: int = 0  # of those, running ones terminated first
    index_entries: int = 0
    cache_entries: int = 0
    dead_letters: int = 0
    progress_streams: int = 0
    outbox_files: int = 0
    budget_entries: int = 0  # the user's LLM budget and usage records (shared/ai/budget.py)
    data_keys: int = 0  # 1 when the user's data key was deleted (crypto-shredding)


class ErasureReport(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to an erasure, and (with the user as a digest) its audit record."""

    erasure_id: str
    user: str  # the digest of the user id, as the index and the keys bucket name it
    requested_by: str
    at: datetime
    deleted: ErasureCounts
    already_erased: bool
    not_deleted: str = NOT_OURS


@dataclass
class _Found:
    instances: list[tuple[str, str]] = field(default_factory=list)
    user_entries: int = 0


async def _user_instances(instances: Instances, user_id: str) -> _Found:
    """Every (workflow, instance) the index files under the user, stale entries included."""
    store = await instances.store()
    subjects = IndexSubjects(instances.names)
    subject = subjects.user(user_id, None)
    found = _Found()
    seen: set[tuple[str, str]] = set()
    cursor = 1
    while True:
        chunk = await store.entries(subject, cursor, 256)
        if not chunk:
            return found
        for seq, entry, _ in chunk:
            found.user_entries += 1
            cursor = seq + 1
            if (entry.w, entry.i) not in seen:
                seen.add((entry.w, entry.i))
                found.instances.append((entry.w, entry.i))


def _outbox_files(outbox: Path | None, token: str) -> list[Path]:
    if outbox is None or not outbox.is_dir():
        return []
    marker = f"{OUTBOX_USER_HEADER}: {token}"
    matches = []
    for path in outbox.glob("*.html"):
        with contextlib.suppress(OSError):
            with path.open(encoding="utf-8", errors="replace") as handle:
                head = handle.read(8192)  # the header comment is at the top
            if marker in head:
                matches.append(path)
    return matches


async def erase_user(
    instances: Instances,
    user_id: str,
    *,
    requested_by: str,
    outbox: Path | None = None,
) -> ErasureReport:
    """Erase everything this system keeps of `user_id` (see the module's docstring)."""
    if not user_id or user_id != user_id.strip():
        raise ValueError("userId must be a non-empty id without spaces around it")
    keys = await instances.user_keys()
    if keys is None:
        raise ConfigError(
            f"erasure needs {MASTER_VARIABLE}: without it personal data is not sealed, and "
            "stream copies could not be made unreadable"
        )
    token = user_token(user_id)
    erasure_id = uuid.uuid4().hex
    counts = ErasureCounts()
    js = instances.js
    names = instances.names
    store = await instances.store()
    log.info("erasure %s of user %s: started by %s", erasure_id, token, requested_by)

    found = await _user_instances(instances, user_id)
    # 1. Terminate what still runs, while its record can still be read.
    records = {}
    for workflow, iid in found.instances:
        current = await store.get(workflow, iid)
        if current is None:
            continue
        state = current[0]
        if state.status not in TERMINAL:
            with contextlib.suppress(InstanceNotFoundError, InvalidTransitionError):
                state = await instances.terminate(workflow, iid)
                counts.terminated += 1
        records[(workflow, iid)] = state

    # 2. Crypto-shred: every sealed copy anywhere becomes unreadable.
    counts.data_keys = int(await keys.erase(user_id))

    # 3. What this system made for the user.
    owners = {f"{wf}/{iid}" for wf, iid in found.instances}
    cache = await StepCache.open(instances.nc, names.namespace, replicas=instances.replicas)
    for workflow in instances.routes:
        for key, entry in (await cache.entries(workflow)).items():
            if entry.owner.split(":", 1)[0] in owners:
                await cache.remove(key)
                counts.cache_entries += 1

    index = IndexSubjects(names)
    for state in records.values():
        for seq in state.index:
            with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.APIError):
                if await js.delete_msg(index.stream, seq):
                    counts.index_entries += 1
    for workflow, iid in found.instances:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await store.kv.purge(state_key(workflow, iid))
        if (workflow, iid) in records:
            counts.instances += 1
        with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.APIError):
            await js.purge_stream(
                progress_stream(names), subject=progress_subject(names, workflow, iid)
            )
            counts.progress_streams += 1
    if found.user_entries:
        await js.purge_stream(index.stream, subject=index.user(user_id, None))
        counts.index_entries += found.user_entries

    if found.instances:
        wanted = set(found.instances)
        cursor = None
        while True:
            page = await instances.dead_letters(limit=100, cursor=cursor)
            for seq, letter in page.items:
                if (letter.workflow, letter.instance_id or "") in wanted:
                    counts.dead_letters += int(await instances.purge_dead_letters(seq=seq) > 0)
            if page.next_cursor is None or not page.items:
                break
            cursor = page.next_cursor

    counts.budget_entries = await _erase_budget(instances, user_id)

    for path in await asyncio.to_thread(_outbox_files, outbox, token):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            counts.outbox_files += 1

    already = not found.instances and not counts.data_keys and not counts.outbox_files
    report = ErasureReport(
        erasure_id=erasure_id,
        user=token,
        requested_by=requested_by,
        at=utcnow(),
        deleted=counts,
        already_erased=already,
    )
    await _audit(instances, report)
    log.info(
        "erasure %s of user %s: done (%d instances, %d cache entries, key deleted: %s)",
        erasure_id,
        token,
        counts.instances,
        counts.cache_entries,
        bool(counts.data_keys),
    )
    return report


async def _erase_budget(instances: Instances, user_id: str) -> int:
    """Purge the user's LLM budget records (`<period>.<user>`, `usage.<day>.<user>`)."""
    from shared.workflow.cache import token as key_token

    bucket = f"{instances.names.namespace}_llm_budget"
    prefix = f"$KV.{bucket}."
    tok = key_token(user_id)
    found: set[str] = set()
    for pattern in (f"*.{tok}", f"*.*.{tok}", f"*.*.*.{tok}"):
        try:
            info = await instances.js.stream_info(f"KV_{bucket}", subjects_filter=prefix + pattern)
        except nats.js.errors.NotFoundError:
            return 0  # no budgets in this deployment
        found.update(s[len(prefix) :] for s in (info.state.subjects or {}))
    if not found:
        return 0
    kv = await instances.js.key_value(bucket)
    for key in sorted(found):
        await kv.purge(key)
    return len(found)


async def _audit(instances: Instances, report: ErasureReport) -> None:
    """The erasure's audit record: `erasure.<id>` in the meta bucket, kept for ever."""
    meta = await instances.js.key_value(instances.names.meta_bucket)
    await meta.put(f"erasure.{report.erasure_id}", msgspec.json.encode(report))


async def audit_records(instances: Instances) -> list[ErasureReport]:
    """Every erasure's audit record, oldest first."""
    meta = await instances.js.key_value(instances.names.meta_bucket)
    try:
        keys = await meta.keys()
    except (nats.js.errors.NoKeysError, nats.errors.Error):
        return []
    found = []
    for key in keys:
        if key.startswith("erasure."):
            entry = await meta.get(key)
            if entry.value:
                found.append(msgspec.json.decode(entry.value, type=ErasureReport))
    return sorted(found, key=lambda r: r.at)


def command(user_id: str, environ: dict[str, str] | None = None) -> int:
    """`howlerhire erase-user USER_ID`: erase through NATS (NATS_URL, DATA_MASTER_KEYS,
    EMAIL_OUTBOX_DIR); prints the report as JSON. Exit 2 on a configuration error."""
    import getpass
    import os
    import sys

    from shared.bus import Names, connect
    from shared.catalog import routes
    from shared.config import EngineSettings, load_settings
    from shared.workflow.control import Instances

    env = dict(os.environ if environ is None else environ)
    try:
        settings = load_settings(EngineSettings, env)
    except ConfigError as exc:
        print(f"erase-user: configuration error: {exc}", file=sys.stderr)
        return 2

    async def run() -> ErasureReport:
        nc = await connect(settings.nats_url, "erase-user", attempts=3)
        instances = Instances(nc, Names(settings.howlerhire_namespace), routes(), settings=settings)
        try:
            return await erase_user(
                instances,
                user_id,
                requested_by=f"cli:{getpass.getuser()}",
                outbox=Path(env.get("EMAIL_OUTBOX_DIR") or "var/outbox"),
            )
        finally:
            await instances.close()
            await nc.drain()

    try:
        report = asyncio.run(run())
    except (ConfigError, ValueError) as exc:
        print(f"erase-user: {exc}", file=sys.stderr)
        return 2
    print(msgspec.json.encode(report).decode())
    return 0
