"""S4: the resume fetcher (`shared.storage`) connects to nothing but the configured origin."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import UpstreamError
from shared.http import create_http_client
from shared.storage import ForbiddenUrlError, ResumeStorage, StorageSettings
from tests.support.fakes import SERVICE_KEY, Canary, RunningFake
from tests.support.fakes.storage import StorageFake

OBJ = "/storage/v1/object/public/resumes/u/cv.pdf"


@pytest.fixture
def storage_fake(fixtures_dir: Path) -> Iterator[RunningFake]:
    with RunningFake(StorageFake(fixtures_dir)) as fake:
        yield fake


def _inputs(port: int, origin: str) -> list[str]:
    """URLs aiming the fetcher at `port` on this host, in the spellings SSRF uses."""
    host = origin.removeprefix("http://")
    return [
        f"http://127.0.0.1:{port}{OBJ}",
        f"http://localhost:{port}{OBJ}",
        f"http://[::1]:{port}{OBJ}",
        f"http://[::ffff:127.0.0.1]:{port}{OBJ}",
        f"http://0x7f000001:{port}{OBJ}",
        f"http://2130706433:{port}{OBJ}",
        f"http://evil.test:{port}{OBJ}",
        f"http://a@127.0.0.1:{port}{OBJ}",
        f"{origin}@127.0.0.1:{port}{OBJ}",
        f"http://127.0.0.1:{port}#@{host}{OBJ}",
        f"nats://127.0.0.1:{port}",
        f"postgresql://127.0.0.1:{port}/postgres",
        f"http://{host.split(':')[0]}:{port}{OBJ}",  # the origin's host, another port
    ]


async def test_no_connection_to_the_database_or_broker_ports(
    storage_fake: RunningFake, nats_url: str, database_url: str
) -> None:
    """Listeners standing for PostgreSQL and NATS count accepts: 0, every input refused;
    the session's real PostgreSQL and NATS ports are refused the same way."""
    pg, nats = Canary().start(), Canary().start()
    settings = StorageSettings(supabase_url=storage_fake.url, supabase_service_role_key=SERVICE_KEY)
    refused: list[str] = []
    try:
        async with create_http_client() as client:
            fetcher = ResumeStorage(settings, client)
            real_ports = [
                int(nats_url.rsplit(":", 1)[1]),
                int(database_url.split("@")[1].split("/")[0].rsplit(":", 1)[1]),
            ]
            urls = [
                u
                for port in (pg.port, nats.port, *real_ports)
                for u in _inputs(port, storage_fake.url)
            ]
            for url in urls:
                with pytest.raises(ForbiddenUrlError):
                    await fetcher.download(url, file_type="pdf")
                refused.append(url)
    finally:
        pg.stop()
        nats.stop()
    assert len(refused) == len(urls) == 52
    assert (pg.connections, nats.connections) == (0, 0), "the fetcher connected to a listener"
    assert storage_fake.control.requests() == [], "a refused URL reached the storage origin"


async def test_slow_drip_body_is_cut_at_the_timeout(storage_fake: RunningFake) -> None:
    """A body trickling 1 byte per 0.3 s (60 s whole) ends at the 3 s total timeout."""
    storage_fake.control.script(
        trickle={"chunk": 1, "interval": 0.3, "count": 200},
        headers={"content-type": "application/pdf"},
    )
    settings = StorageSettings(
        supabase_url=storage_fake.url, supabase_service_role_key=SERVICE_KEY, storage_timeout=3.0
    )
    async with create_http_client() as client:
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="longer than 3s"):
            await ResumeStorage(settings, client).download("u/slow.pdf", file_type="pdf")
        took = time.monotonic() - started
    # RELIABILITY: ≤ timeout + 1 s; +2 s here for a loaded box (the whole body is 60 s).
    assert took <= 5.0, f"the slow body took {took:.2f}s against a 3 s timeout"
    print(f"S4 slow drip: {took:.2f}s")
