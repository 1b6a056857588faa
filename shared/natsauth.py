"""Who may do what on NATS: one declaration of every identity's subjects (RELIABILITY S5).

`identities()` derives, from the catalog and the naming in `shared.bus.Names`, one user
per service plus an admin. `howlerhire nats-config` renders it as the server's
`authorization` block, so the server's permissions cannot drift from what the services
use; anything not allowed is denied, and anonymous connections are refused.

- admin: creates and changes streams, buckets and consumers (`howlerhire nats setup`),
  backs up and restores. The only identity with topology rights; keep its password with
  the operator, not in any service.
- gateway: publishes events and runs of every workflow, reads and writes instance
  records (`queued`, pause, terminate…) and their list index, lists them; reads stream
  and consumer info; re-drives and deletes dead letters; keeps bulk jobs in the meta
  bucket.
- one user per worker service: pulls and acks its own workflows' consumers only,
  publishes their runs, trigger events, timers and dead letters, writes only its own
  workflows' instance records, and keeps its own buckets (plus the engine's shared step
  cache and rate limits), which it may create but never delete.
- scheduler: publishes cron events (and the `queued` records of what they start), keeps
  its schedule bucket.

No service identity may delete, update or purge a stream, create or delete a consumer of
the work stream, subscribe to `>`, or touch another service's subjects or buckets.

Every identity gets a private reply inbox, `_INBOX_<user>.>` (`shared.bus.connect` sets
it from the user in NATS_URL), so no service can read the replies another one receives.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.bus import Names, inbox_prefix
from shared.catalog import CATALOG, WorkflowSpec
from shared.config import EngineSettings

ADMIN = "admin"
GATEWAY = "gateway"
SCHEDULER = "scheduler"
API = "$JS.API"


@dataclass(frozen=True)
class Identity:
    """One NATS user and the subjects it may publish and subscribe to."""

    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    purpose: str


def password_variable(user: str) -> str:
    """The environment variable holding a user's password: NATS_PASSWORD_<USER>."""
    return "NATS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def worker_services(catalog: Iterable[WorkflowSpec] = CATALOG) -> dict[str, list[WorkflowSpec]]:
    """Service name → the workflows it runs, in catalog order."""
    services: dict[str, list[WorkflowSpec]] = {}
    for spec in catalog:
        services.setdefault(spec.service, []).append(spec)
    return services


# Buckets that services keep besides the instance records, by name without the namespace
# prefix. A service may create and use its own (and only those); the engine's step cache
# and rate limits are shared by every worker. Object stores likewise.
# `keys`: the per-user data keys sealing personal data (shared/crypto.py).
ENGINE_BUCKETS: tuple[str, ...] = ("step_cache", "rate_limits", "llm_budget", "keys")
SERVICE_BUCKETS: Mapping[str, tuple[str, ...]] = {
    "parsing": ("parsing_memo",),
    "discovery": ("discovery_usage", "board_claims"),
    SCHEDULER: ("schedules",),
}
SERVICE_OBJECT_STORES: Mapping[str, tuple[str, ...]] = {"discovery": ("board_snapshots",)}


def _inbox(user: str) -> str:
    return f"{inbox_prefix(user)}.>"


def _reads(names: Names) -> list[str]:
    """Read-only calls every service may make: stream and consumer information (no
    payloads, no changes), enough to check the topology at start."""
    streams = (
        names.stream,
        names.timer_stream,
        names.dlq_stream,
        f"{names.namespace}_advisories",
        f"KV_{names.state_bucket}",
        f"KV_{names.meta_bucket}",
        f"{names.namespace}_index",
        f"{names.namespace}_progress",
    )
    return [
        f"{API}.INFO",
        *(f"{API}.STREAM.INFO.{s}" for s in streams),
        f"{API}.CONSUMER.INFO.{names.stream}.*",
        f"{API}.CONSUMER.INFO.{names.namespace}_advisories.*",
    ]


def _records(names: Names, workflows: Iterable[str] | None) -> list[str]:
    """Read and write instance records: of every workflow (None), or of `workflows` only
    (a put is a publish to `$KV.<bucket>.<workflow>.<instance>`, a read a direct get by
    that subject). R3 buckets are read by sequence (`STREAM.MSG.GET`), which cannot be
    narrowed to keys."""
    bucket = names.state_bucket
    kv = f"KV_{bucket}"
    ns = names.namespace
    keys = [">"] if workflows is None else [f"{wf}.>" for wf in workflows]
    # The list index beside the records: `<ns>.ix.<workflow>.<group>` and
    # `<ns>.ixu.<user>.<workflow>` entries; stale ones are deleted by sequence (which
    # cannot be narrowed to subjects).
    index = (
        [f"{ns}.ix.>", f"{ns}.ixu.>"]
        if workflows is None
        else [s for wf in workflows for s in (f"{ns}.ix.{wf}.*", f"{ns}.ixu.*.{wf}")]
    )
    return [
        *(f"$KV.{bucket}.{key}" for key in keys),
        *(f"{API}.DIRECT.GET.{kv}.$KV.{bucket}.{key}" for key in keys),
        f"{API}.STREAM.MSG.GET.{kv}",
        *index,
        f"{API}.STREAM.MSG.DELETE.{ns}_index",
    ]


def _bucket(name: str) -> list[str]:
    """Create, read, write and list one KV bucket of the service's own (never delete it)."""
    stream = f"KV_{name}"
    return [
        f"$KV.{name}.>",
        f"{API}.STREAM.INFO.{stream}",
        f"{API}.STREAM.CREATE.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
        f"{API}.STREAM.MSG.GET.{stream}",
        # keys() and watches run a short-lived ordered consumer.
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.INFO.{stream}.*",
        f"{API}.CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",  # a watch's flow control
    ]


def _bucket_reads(name: str) -> list[str]:
    """Read and list another service's KV bucket (no writes): the gateway's GET /schedules."""
    stream = f"KV_{name}"
    return [
        f"{API}.STREAM.INFO.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.INFO.{stream}.*",
        f"{API}.CONSUMER.DELETE.{stream}.*",
    ]


def _object_store(name: str) -> list[str]:
    """An object store of the service's own: chunks and metadata; deleting an object
    purges its chunks (a purge of its own store's stream, nothing else)."""
    stream = f"OBJ_{name}"
    return [
        f"$O.{name}.>",
        f"{API}.STREAM.INFO.{stream}",
        f"{API}.STREAM.CREATE.{stream}",
        f"{API}.STREAM.PURGE.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.INFO.{stream}.*",
        f"{API}.CONSUMER.DELETE.{stream}.*",
    ]


def _own_state(names: Names, service: str, buckets: Iterable[str] = ()) -> list[str]:
    ns = names.namespace
    grants = []
    for bucket in (*buckets, *SERVICE_BUCKETS.get(service, ())):
        grants += _bucket(f"{ns}_{bucket}")
    for store in SERVICE_OBJECT_STORES.get(service, ()):
        grants += _object_store(f"{ns}_{store}")
    return grants


def identities(names: Names, catalog: Iterable[WorkflowSpec] = CATALOG) -> tuple[Identity, ...]:
    """Every identity of one namespace, derived from the catalog."""
    specs = list(catalog)
    ns = names.namespace
    kv = f"KV_{names.state_bucket}"
    adv = f"{ns}_advisories"
    admin = Identity(
        ADMIN,
        publish=(">",),
        subscribe=(">",),
        purpose="topology (streams, buckets, consumers), backups; the operator's identity",
    )
    gateway = Identity(
        GATEWAY,
        publish=(
            *_reads(names),
            f"{ns}.events.>",
            f"{ns}.runs.>",
            *_records(names, None),
            # Listing instances: the index and batched direct gets, or (R3 buckets) a
            # short-lived consumer.
            f"{API}.DIRECT.GET.{ns}_index",
            f"{API}.DIRECT.GET.{kv}",
            f"{API}.CONSUMER.CREATE.{kv}",
            f"{API}.CONSUMER.CREATE.{kv}.>",
            f"{API}.CONSUMER.INFO.{kv}.*",
            f"{API}.CONSUMER.MSG.NEXT.{kv}.*",
            f"{API}.CONSUMER.DELETE.{kv}.*",
            # The dashboard's change feed (shared/workflow/feed.py) is an ordered consumer
            # on the instance bucket's stream: it answers the server's flow control.
            f"$JS.FC.{kv}.>",
            # The scheduler's records, read (never written) for GET /schedules.
            *_bucket_reads(f"{ns}_{SERVICE_BUCKETS[SCHEDULER][0]}"),
            # Dead letters: read, re-driven (the original message read back from the work
            # stream and published again to its subject above) and deleted once re-driven
            # or purged.
            f"{API}.DIRECT.GET.{names.dlq_stream}",
            f"{API}.STREAM.MSG.GET.{names.dlq_stream}",
            f"{API}.STREAM.MSG.DELETE.{names.dlq_stream}",
            f"{API}.STREAM.MSG.GET.{names.stream}",
            # Bulk actions keep their jobs under `bulk.` in the meta bucket.
            f"$KV.{names.meta_bucket}.bulk.>",
            f"{API}.DIRECT.GET.KV_{names.meta_bucket}.$KV.{names.meta_bucket}.bulk.>",
            f"{API}.STREAM.MSG.GET.KV_{names.meta_bucket}",
            # End-user progress: read live (an ordered consumer per stream, its flow
            # control answered) and the last event by direct get; `terminated` published.
            f"{ns}.progress.>",
            f"{API}.CONSUMER.CREATE.{ns}_progress",
            f"{API}.CONSUMER.CREATE.{ns}_progress.>",
            f"{API}.CONSUMER.DELETE.{ns}_progress.*",
            f"{API}.CONSUMER.INFO.{ns}_progress.*",
            f"{API}.DIRECT.GET.{ns}_progress",
            f"{API}.DIRECT.GET.{ns}_progress.>",
            f"$JS.FC.{ns}_progress.>",
            # Sealing what it publishes for a user, and erasure (DELETE /users/{id}/data):
            # the data keys, and deleting what the engine made for the user.
            *_bucket(f"{ns}_keys"),
            *_bucket(f"{ns}_step_cache"),
            *_bucket(f"{ns}_llm_budget"),
            f"{API}.STREAM.PURGE.{ns}_index",
            f"{API}.STREAM.PURGE.{ns}_progress",
            f"$KV.{names.meta_bucket}.erasure.>",
        ),
        subscribe=(_inbox(GATEWAY),),
        purpose="HTTP API: publishes events and runs, reads and writes instance records",
    )
    workers = []
    for service, workflows in worker_services(specs).items():
        ids = [wf.id for wf in workflows]
        publish = [
            *_reads(names),
            *_records(names, ids),
            *_own_state(names, service, ENGINE_BUCKETS),
            # A dead letter's preview: the message the server gave up on.
            f"{API}.STREAM.MSG.GET.{names.stream}",
        ]
        for wf in workflows:
            consumer = names.consumer(wf.id)
            publish += [
                f"{API}.CONSUMER.MSG.NEXT.{names.stream}.{consumer}",
                f"$JS.ACK.{names.stream}.{consumer}.>",
                names.run_subject(wf.id),
                # Its own workflows' trigger events (a daily run fans out into per-user runs).
                *(names.event_subject(event) for event in wf.events),
                f"{ns}.timers.{wf.id}.>",
                names.dlq_subject(wf.id),
                f"{ns}.progress.{wf.id}.>",
            ]
        # Its own workflows' max-deliveries advisory consumers (dead letters of crashed runs).
        from shared.workflow.topology import dead_letter_consumer

        for wf in workflows:
            dead = dead_letter_consumer(names, wf.id)
            publish += [f"{API}.CONSUMER.MSG.NEXT.{adv}.{dead}", f"$JS.ACK.{adv}.{dead}.>"]
        workers.append(
            Identity(
                service,
                publish=tuple(publish),
                subscribe=(_inbox(service),),
                purpose="worker of " + ", ".join(ids),
            )
        )
    cron = [spec for spec in specs if any(e.startswith("cron/") for e in spec.events)]
    scheduler = Identity(
        SCHEDULER,
        publish=(
            *_reads(names),
            *sorted(
                {
                    names.event_subject(e)
                    for spec in cron
                    for e in spec.events
                    if e.startswith("cron/")
                }
            ),
            # The `queued` record of each instance a cron event starts, and its schedule state.
            *_records(names, [spec.id for spec in cron]),
            *_own_state(names, SCHEDULER),
            *_bucket(f"{ns}_keys"),  # its Instances seal what names a user (cron names none)
        ),
        subscribe=(_inbox(SCHEDULER),),
        purpose="publishes cron events only (and the queued records of what they start)",
    )
    return (admin, gateway, *workers, scheduler)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_block(
    idents: Iterable[Identity], password_hashes: Mapping[str, str], *, header: str = ""
) -> str:
    """The server's `authorization { users: [...] }` block, one user per identity.

    `password_hashes` maps user → bcrypt hash (nats-server verifies bcrypt, so the file
    holds no password). Anonymous clients are refused because users are configured and no
    `no_auth_user` is set.
    """
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines.append("authorization {")
    lines.append("  users: [")
    for ident in idents:
        if ident.user not in password_hashes:
            raise KeyError(f"no password hash for NATS user {ident.user!r}")
        lines.append(f"    # {ident.purpose}")
        lines.append(
            f"    {{ user: {_quote(ident.user)}, password: {_quote(password_hashes[ident.user])}"
        )
        lines.append("      permissions: {")
        lines.append(
            "        publish: { allow: [" + ", ".join(_quote(s) for s in ident.publish) + "] }"
        )
        lines.append(
            "        subscribe: { allow: [" + ", ".join(_quote(s) for s in ident.subscribe) + "] }"
        )
        lines.append("      } }")
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def hash_password(password: str, rounds: int = 11) -> str:
    import bcrypt

    hashed: bytes = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds))
    return hashed.decode()


def new_password() -> str:
    """A URL-safe password (it goes into NATS_URL as `nats://user:password@host`)."""
    return secrets.token_hex(24)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks skipped), as compose reads an env file."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def ensure_passwords(env_file: Path, users: Iterable[str]) -> dict[str, str]:
    """User → password from `env_file`, appending a generated one for each user without.

    The file is created 0600; existing passwords are never changed (rotation is an edit
    of the file followed by `nats-config` and a restart, see docs/runbooks.md).
    """
    existing = read_env_file(env_file)
    passwords: dict[str, str] = {}
    added: list[str] = []
    for user in users:
        variable = password_variable(user)
        if existing.get(variable):
            passwords[user] = existing[variable]
        else:
            passwords[user] = new_password()
            added.append(f"{variable}={passwords[user]}")
    if added:
        env_file.parent.mkdir(parents=True, exist_ok=True)
        new = not env_file.exists()
        with env_file.open("a") as out:
            if new:
                out.write("# NATS passwords, one per identity (howlerhire nats-config)\n")
            elif not env_file.read_text().endswith("\n"):
                out.write("\n")
            out.write("\n".join(added) + "\n")
        env_file.chmod(0o600)
    return passwords


def write_config(
    out: Path, env_file: Path, names: Names, catalog: Iterable[WorkflowSpec] = CATALOG
) -> tuple[tuple[Identity, ...], dict[str, str]]:
    """Write the authorization block for `names` to `out`; return identities and passwords."""
    idents = identities(names, catalog)
    passwords = ensure_passwords(env_file, [ident.user for ident in idents])
    block = authorization_block(
        idents,
        {user: hash_password(password) for user, password in passwords.items()},
        header=(
            "Generated by `howlerhire nats-config` from shared/natsauth.py: do not edit.\n"
            f"Namespace {names.namespace!r}; passwords in {env_file.name} (bcrypt here)."
        ),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(block)
    tmp.chmod(0o644)  # hashes only; the nats container's user must read it
    tmp.replace(out)
    return idents, passwords


def user_url(url: str, user: str, password: str) -> str:
    """`nats://host:4222` (or a comma-separated list) with the user's credentials."""
    parts = []
    for server in url.split(","):
        scheme, sep, rest = server.strip().partition("://")
        if not sep:
            scheme, rest = "nats", scheme
        rest = rest.rpartition("@")[2]
        parts.append(f"{scheme}://{user}:{password}@{rest}")
    return ",".join(parts)


async def setup_topology(settings: EngineSettings) -> list[str]:
    """As the admin (NATS_URL's user): create or update every stream, bucket and consumer
    of the namespace, for every workflow in the catalog. Returns what now exists."""
    from shared.bus import connect
    from shared.catalog import consumer_specs
    from shared.workflow.store import open_store
    from shared.workflow.topology import ensure_consumers, ensure_topology

    nc = await connect(settings.nats_url, "howlerhire-nats-setup", attempts=10)
    try:
        js = nc.jetstream()
        names = Names(settings.howlerhire_namespace)
        await ensure_topology(
            js,
            names,
            max_bytes=settings.stream_max_bytes,
            dedup_window=settings.dedup_window,
            replicas=settings.nats_replicas,
        )
        await ensure_consumers(js, names, consumer_specs(), settings)
        # The instance bucket's per-message TTLs and the list index stream.
        await open_store(nc, names, replicas=settings.nats_replicas)
        made = [
            names.stream,
            names.timer_stream,
            names.dlq_stream,
            f"{names.namespace}_advisories",
            f"KV_{names.state_bucket}",
            f"KV_{names.meta_bucket}",
            f"{names.namespace}_index",
        ]
        made += [f"{names.stream}/{names.consumer(wf)}" for wf, _, _ in consumer_specs()]
        return made
    finally:
        await nc.drain()
