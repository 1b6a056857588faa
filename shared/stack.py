"""`howlerhire up`: the whole stack on one machine — embedded NATS and PostgreSQL, the
schema, and every service as its own process, restarted if it dies.

NATS runs with authorization: each service connects as its own user (shared/natsauth.py),
the topology is created as the admin before any service starts, anonymous clients are
refused. Everything started is stopped again on Ctrl-C / SIGTERM, and also when start-up
fails half-way (PostgreSQL that will not start leaves no nats-server behind). Data,
passwords and the token live in the data folder, so a second `up` reuses them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from shared.bus import Names
from shared.crypto import new_master_key
from shared.embedded import NatsServer, PostgresServer

log = logging.getLogger("howlerhire.up")

REPO_ROOT = Path(__file__).resolve().parent.parent
# Gateway first, so that every workflow's consumer exists before events arrive.
SERVICES = ("gateway", "resume", "parsing", "discovery", "notify", "scheduler", "demo")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was still starting."""


@dataclass
class Child:
    name: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)
    module: str = ""  # default services.<name>

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module or f"services.{self.name}"],
            cwd=REPO_ROOT,
            env=self.env,
            # Its own process group: a terminal's Ctrl-C reaches `up` only, which stops
            # the services in order (SIGTERM, grace, then SIGKILL).
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)


def available_services() -> list[str]:
    return [name for name in SERVICES if (REPO_ROOT / "services" / name / "__main__.py").exists()]


@dataclass
class Stack:
    """What `up` started, so that everything is stopped whatever happens."""

    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    children: list[Child] = field(default_factory=list)

    def stop(self) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 40
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.proc.kill()
                child.proc.wait()
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()


def run_stack(data_dir: str, *, demo: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s up: %(message)s")
    base = Path(data_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    stack = Stack()
    starting = True
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if starting:
            raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            children = _start(stack, base, demo)
            starting = False
        except Interrupted as exc:
            log.info("%s during start-up: stopping what was started", exc)
            return 130
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            log.error("could not start the stack: %s", exc)
            return 1
        _supervise(children, lambda: stopping)
        return 0
    finally:
        starting = False
        log.info("stopping services")
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")


def _start(stack: Stack, base: Path, demo: bool) -> list[Child]:
    env = {key: value for key, value in os.environ.items() if value != ""}
    namespace = env.get("HOWLERHIRE_NAMESPACE", "hh")
    rows: list[tuple[str, str]] = []
    service_urls: dict[str, str] = {}
    if "NATS_URL" not in env:
        from shared.natsauth import ADMIN, user_url, write_config

        auth = base / "nats-auth.conf"
        credentials = base / "nats-credentials.env"
        idents, passwords = write_config(auth, credentials, Names(namespace))
        # Recorded before it starts, so that an interrupted start still stops it.
        stack.nats = NatsServer(
            base / "nats",
            port=int(env.get("HOWLERHIRE_NATS_PORT", "4222")),
            monitor_port=int(env.get("HOWLERHIRE_NATS_MONITOR_PORT", "8222")),
            log_file=base / "nats.log",
            auth_file=auth,
        )
        stack.nats.start()
        env.setdefault("NATS_MONITOR_URL", stack.nats.monitor_url)
        admin_url = user_url(stack.nats.url, ADMIN, passwords[ADMIN])
        service_urls = {i.user: user_url(stack.nats.url, i.user, passwords[i.user]) for i in idents}
        _setup_topology(env, admin_url)
        rows += [
            ("NATS", f"{stack.nats.url}  (monitor {stack.nats.monitor_url})"),
            ("NATS users", f"{credentials}  (one per service; anonymous refused)"),
        ]
        log.info("NATS with JetStream at %s (data in %s)", stack.nats.url, base / "nats")
    else:
        rows.append(("NATS", f"{_safe(env['NATS_URL'])}  (yours)"))
    if not env.get("DATABASE_URL") and not env.get("SUPABASE_URL"):
        stack.postgres = PostgresServer(
            base / "postgres", port=int(env.get("HOWLERHIRE_PG_PORT", "54329"))
        )
        stack.postgres.start()
        env["DATABASE_URL"] = stack.postgres.dsn()
        where = (base / "postgres").resolve()
        rows.append(("database", f"{stack.postgres.dsn()}  (data in {where})"))
        log.info("PostgreSQL at %s (data in %s)", stack.postgres.dsn(), where)
    elif env.get("DATABASE_URL"):
        rows.append(("database", f"{_safe(env['DATABASE_URL'])}  (yours)"))
    else:
        rows.append(("database", f"Supabase at {env['SUPABASE_URL']}"))
    if env.get("DATABASE_URL") and _has_migrations():
        code = subprocess.call(
            [sys.executable, "-m", "shared.cli", "migrate"], cwd=REPO_ROOT, env=env
        )
        if code != 0:
            raise RuntimeError(f"migrations failed (exit {code})")
    token_file = base / "auth-token"
    if not env.get("WORKFLOWS_AUTH_TOKEN"):
        if not token_file.exists():
            token_file.write_text(secrets.token_hex(32))
            token_file.chmod(0o600)
        env["WORKFLOWS_AUTH_TOKEN"] = token_file.read_text().strip()
        rows.append(("token", f"{token_file}  (set WORKFLOWS_AUTH_TOKEN to choose your own)"))
    else:
        rows.append(("token", "WORKFLOWS_AUTH_TOKEN from your environment"))
    if not env.get("UNSUBSCRIBE_SECRET"):
        # Signs the one-click unsubscribe links notify puts in emails; the gateway checks them.
        secret_file = base / "unsubscribe-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_hex(32))
            secret_file.chmod(0o600)
        env["UNSUBSCRIBE_SECRET"] = secret_file.read_text().strip()
    # The master key sealing personal data (erasure) and the progress-token key: made once
    # in the data folder, as the secrets above, unless the environment chooses its own.
    for variable, name, fresh in (
        ("DATA_MASTER_KEYS", "data-master-keys", f"up1:{new_master_key()}"),
        ("PROGRESS_TOKEN_KEYS", "progress-token-keys", f"up1:{secrets.token_hex(32)}"),
    ):
        if not env.get(variable):
            key_file = base / name
            if not key_file.exists():
                key_file.write_text(fresh)
                key_file.chmod(0o600)
            env[variable] = key_file.read_text().strip()
    env.setdefault(
        "UNSUBSCRIBE_URL", f"http://127.0.0.1:{env.get('GATEWAY_PORT', '8787')}/unsubscribe"
    )
    env.setdefault("EMAIL_OUTBOX_DIR", str(base / "outbox"))
    if not env.get("SUPABASE_URL"):
        # Resume files for the parsing service: var/storage/resumes/<path> is fileUrl <path>.
        env.setdefault("STORAGE_DIR", str(base / "storage"))
        (Path(env["STORAGE_DIR"]) / "resumes").mkdir(parents=True, exist_ok=True)
    standin = _standin(env, demo, base)
    port = env.get("GATEWAY_PORT", "8787")
    gateway = f"http://127.0.0.1:{port}"
    # Where `howlerhire list`, `watch`, … find this stack's gateway (shared/cli/session.py).
    (base / "gateway-url").write_text(gateway + "\n")
    rows = [
        ("gateway", f"{gateway}  (GET /health, OpenAPI {gateway}/openapi.json)"),
        *rows,
        ("data", str(base)),
        ("outbox", env["EMAIL_OUTBOX_DIR"]),
        *_adapters(env, standin),
    ]
    demo_lines: list[str] = []
    if demo and env.get("DATABASE_URL"):
        from shared.demo import seed, try_it

        user = asyncio.run(seed(env["DATABASE_URL"], base))
        demo_lines = try_it(gateway, token_file, user)
    children = []
    for name in available_services():
        child_env = dict(env)
        if service_urls:
            if name not in service_urls:
                log.error("no NATS user is declared for %s (shared/natsauth.py); skipped", name)
                continue
            child_env["NATS_URL"] = service_urls[name]
        children.append(Child(name, child_env))
    if standin is not None:
        # First, and listening before any service can ask it for anything.
        children.insert(0, standin.child)
    stack.children = children
    for child in children:
        child.start()
        if standin is not None and child is standin.child:
            _wait_listening(child, standin.port)
    rows.append(("services", ", ".join(child.name for child in children)))
    print(_table(rows, demo_lines), flush=True)
    return children


def _setup_topology(env: dict[str, str], admin_url: str) -> None:
    from shared.config import EngineSettings, load_settings
    from shared.natsauth import setup_topology

    settings = load_settings(EngineSettings, {**env, "NATS_URL": admin_url})
    asyncio.run(setup_topology(settings))


@dataclass
class Standin:
    """The offline stand-in's process and the upstream variables it answers for."""

    child: Child
    port: int
    url: str
    variables: dict[str, str]


def _standin(env: dict[str, str], demo: bool, base: Path) -> Standin | None:
    """The offline stand-in for every upstream the user has not pointed anywhere.

    An upstream is the user's when its URL variable is set (GITHUB_API_URL, REMOTEOK_API_URL,
    WWR_FEED_URLS, …), and GitHub also when GITHUB_TOKEN is — except under --demo, whose
    user only the stand-in knows. HOWLERHIRE_STANDIN=off uses the public services instead.
    The chosen URLs go into `env`, so every service reads them.
    """
    if env.get("HOWLERHIRE_STANDIN", "").strip().lower() in ("0", "off", "no", "false"):
        return None
    from shared.embedded import free_port
    from shared.standin import upstream_env

    raw = env.get("HOWLERHIRE_STANDIN_PORT") or str(free_port())
    if not raw.isdigit():
        raise RuntimeError(f"HOWLERHIRE_STANDIN_PORT must be a port number, not {raw!r}")
    port = int(raw)
    url = f"http://127.0.0.1:{port}"
    variables = {
        var: value
        for var, value in upstream_env(url).items()
        if var not in env and not (var == "GITHUB_API_URL" and env.get("GITHUB_TOKEN") and not demo)
    }
    if not variables:
        return None
    env.update(variables)
    # Only what a Python process needs: the stand-in gets no database, NATS or secrets.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "PYTHONUNBUFFERED", "VIRTUAL_ENV")
    child_env = {k: env[k] for k in keep if k in env}
    # The data folder names the stack it belongs to (as the other children's env does).
    child_env.update(
        {"STANDIN_HOST": "127.0.0.1", "STANDIN_PORT": str(port), "HOWLERHIRE_DATA_DIR": str(base)}
    )
    log.info("offline stand-in at %s for %s", url, ", ".join(sorted(variables)))
    return Standin(Child("standin", child_env, module="shared.standin"), port, url, variables)


def _wait_listening(child: Child, port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.poll() is not None:
            raise RuntimeError(f"the offline stand-in exited at start ({child.proc.returncode})")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the offline stand-in did not listen on port {port} in {timeout:.0f}s")


def _adapters(env: dict[str, str], standin: Standin | None) -> list[tuple[str, str]]:
    """Each third-party adapter: the real one (its key is set) or the offline stand-in."""
    from shared.standin.server import BOARD_VARIABLES

    def which(var: str, real: str, standin: str) -> str:
        return f"real ({real})" if env.get(var) else f"offline stand-in: {standin}"

    served = standin.variables if standin is not None else {}
    if "GITHUB_API_URL" in served:
        github = (
            f"offline stand-in: {served['GITHUB_API_URL']}  (sample user; "
            "set GITHUB_API_URL or HOWLERHIRE_STANDIN=off for GitHub)"
        )
    else:
        where = env.get("GITHUB_API_URL", "https://api.github.com")
        github = f"real ({where}{' with a token' if env.get('GITHUB_TOKEN') else ', no token'})"
    boards = [board for board, var in BOARD_VARIABLES.items() if var in served]
    if boards and standin is not None:
        jobs = (
            f"offline stand-in: {standin.url}  (samples for {', '.join(boards)}; "
            "set their URLs or HOWLERHIRE_STANDIN=off for the real boards)"
        )
    else:
        jobs = "real (the public boards of DISCOVERY_SOURCES)"
    return [
        ("AI", which("ANTHROPIC_API_KEY", "Anthropic", "deterministic local model")),
        ("email", which("RESEND_API_KEY", "Resend", "files in the outbox folder")),
        ("GitHub", github),
        ("job boards", jobs),
        (
            "storage",
            which("SUPABASE_URL", "Supabase Storage", f"files in {env.get('STORAGE_DIR', '-')}"),
        ),
    ]


def _table(rows: list[tuple[str, str]], demo_lines: list[str]) -> str:
    width = max(len(name) for name, _ in rows)
    lines = ["", "HowlerHire is up. Ctrl-C stops everything.", ""]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    if demo_lines:
        lines += ["", *demo_lines]
    return "\n".join(lines) + "\n"


def _safe(url: str) -> str:
    import re

    return re.sub(r"//[^@/]*@", "//***@", url)


def _supervise(children: list[Child], stopping: Callable[[], bool]) -> None:
    while not stopping():
        now = time.monotonic()
        for child in children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                child.proc = None
                if code == 2:
                    log.error(
                        "%s stopped: configuration error (see above); not restarting", child.name
                    )
                    child.next_start = float("inf")
                    continue
                # Back off so that a crash loop is visible, not a busy loop.
                wait = min(30.0, 2.0 ** min(child.restarts, 5))
                if now - child.started_at > 60:
                    child.restarts = 0
                    wait = 1.0
                child.restarts += 1
                child.next_start = now + wait
                log.warning("%s exited with %s; restarting in %.0fs", child.name, code, wait)
            if child.proc is None and now >= child.next_start and not stopping():
                child.start()
        time.sleep(0.2)


def _has_migrations() -> bool:
    return (REPO_ROOT / "shared" / "db" / "migrate.py").exists()
