"""`howlerhire up`: the whole stack on one machine — embedded NATS and PostgreSQL, the
schema, and every service as its own process, restarted if it dies."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.embedded import NatsServer, PostgresServer

log = logging.getLogger("howlerhire.up")

REPO_ROOT = Path(__file__).resolve().parent.parent
# Gateway first, so that every workflow's consumer exists before events arrive.
SERVICES = ("gateway", "resume", "parsing", "discovery", "notify", "scheduler", "demo")


@dataclass
class Child:
    name: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"], cwd=REPO_ROOT, env=self.env
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)


def available_services() -> list[str]:
    return [name for name in SERVICES if (REPO_ROOT / "services" / name / "__main__.py").exists()]


def run_stack(data_dir: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s up: %(message)s")
    base = Path(data_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    nats_port = int(os.environ.get("HOWLERHIRE_NATS_PORT", "4222"))
    nats = NatsServer(
        base / "nats",
        port=nats_port,
        monitor_port=int(os.environ.get("HOWLERHIRE_NATS_MONITOR_PORT", "8222")),
        log_file=base / "nats.log",
    ).start()
    log.info("NATS with JetStream at %s (data in %s)", nats.url, base / "nats")
    env = {key: value for key, value in os.environ.items() if value != ""}
    if "NATS_URL" not in env:
        env["NATS_URL"] = nats.url
        env.setdefault("NATS_MONITOR_URL", nats.monitor_url)
    postgres: PostgresServer | None = None
    if not env.get("DATABASE_URL") and not env.get("SUPABASE_URL"):
        postgres = PostgresServer(
            base / "postgres", port=int(os.environ.get("HOWLERHIRE_PG_PORT", "54329"))
        ).start()
        env["DATABASE_URL"] = postgres.dsn()
        log.info("PostgreSQL at %s (data in %s)", postgres.dsn(), base / "postgres")
    if env.get("DATABASE_URL") and _has_migrations():
        code = subprocess.call(
            [sys.executable, "-m", "shared.cli", "migrate"], cwd=REPO_ROOT, env=env
        )
        if code != 0:
            log.error("migrations failed (exit %d)", code)
            _stop_servers(nats, postgres)
            return code
    if not env.get("WORKFLOWS_AUTH_TOKEN"):
        token_file = base / "auth-token"
        if not token_file.exists():
            token_file.write_text(secrets.token_hex(32))
            token_file.chmod(0o600)
        env["WORKFLOWS_AUTH_TOKEN"] = token_file.read_text().strip()
        log.info("local auth token in %s (set WORKFLOWS_AUTH_TOKEN to choose your own)", token_file)
    if not env.get("UNSUBSCRIBE_SECRET"):
        # Signs the one-click unsubscribe links notify puts in emails; the gateway checks them.
        secret_file = base / "unsubscribe-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_hex(32))
            secret_file.chmod(0o600)
        env["UNSUBSCRIBE_SECRET"] = secret_file.read_text().strip()
    env.setdefault(
        "UNSUBSCRIBE_URL", f"http://127.0.0.1:{env.get('GATEWAY_PORT', '8787')}/unsubscribe"
    )
    env.setdefault("EMAIL_OUTBOX_DIR", str(base / "outbox"))
    children = [Child(name, env) for name in available_services()]
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for child in children:
        child.start()
    try:
        while not stopping:
            now = time.monotonic()
            for child in children:
                if child.proc is not None and child.proc.poll() is not None:
                    code = child.proc.returncode
                    child.proc = None
                    if code == 2:
                        log.error(
                            "%s stopped: configuration error (see above); not restarting",
                            child.name,
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
                if child.proc is None and now >= child.next_start:
                    child.start()
            time.sleep(0.2)
    finally:
        log.info("stopping services")
        for child in children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in children:
            if child.proc is not None:
                try:
                    child.proc.wait(40)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
        _stop_servers(nats, postgres)
    return 0


def _has_migrations() -> bool:
    return (REPO_ROOT / "shared" / "db" / "migrate.py").exists()


def _stop_servers(nats: NatsServer, postgres: PostgresServer | None) -> None:
    if postgres is not None:
        postgres.stop()
    nats.stop()
    log.info("stopped")
