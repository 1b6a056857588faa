"""Fake job boards: RemoteOK, WeWorkRemotely's RSS feeds, Remotive, Arbeitnow, Himalayas,
Greenhouse, Lever and Ashby, each answering its recorded listing in its wire format.

RemoteOK answers with the current-schema recording by default (script a `fixture` for the
legacy one) and, like the real one, refuses requests without a real User-Agent.
WWR serves `/categories/<name>.rss` from fixtures/weworkremotely/wwr_<name>_<date>.rss.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.fakes.base import FakeApp, Reply, Request

REMOTEOK_CURRENT = "remoteok/remoteok_api_2026-03-17_trimmed60.json"
REMOTEOK_LEGACY = "remoteok/remoteok_api_2021-01-24_legacy_format_trimmed60.json"
GENERIC_AGENTS = ("python-httpx", "python-requests", "python-urllib", "curl", "go-http-client")


class RemoteOKFake(FakeApp):
    name = "remoteok"

    async def handle(self, request: Request) -> Reply:
        agent = request.headers.get("user-agent", "").lower()
        if not agent or agent.startswith(GENERIC_AGENTS):
            return Reply(
                403,
                {"content-type": "text/html"},
                b"<html><body>Forbidden: set a User-Agent</body></html>",
            )
        if request.path.rstrip("/") != "/api":
            return Reply(404, {"content-type": "text/html"}, b"<html>404</html>")
        return Reply(
            200, {"content-type": "application/json"}, self.fixture_bytes(REMOTEOK_CURRENT)
        )


class WeWorkRemotelyFake(FakeApp):
    name = "weworkremotely"

    def __init__(self, fixtures_dir: Any) -> None:
        super().__init__(fixtures_dir)
        self.feeds = {
            path.name.removeprefix("wwr_").rsplit("_", 1)[0]: path
            for path in sorted((self.fixtures_dir / "weworkremotely").glob("wwr_*.rss"))
        }

    def feed_urls(self) -> list[str]:
        return [f"{self.base_url}/categories/{name}.rss" for name in self.feeds]

    async def handle(self, request: Request) -> Reply:
        name = request.path.removeprefix("/categories/").removesuffix(".rss")
        path = self.feeds.get(name)
        if path is None or not request.path.endswith(".rss"):
            return Reply(404, {"content-type": "text/html"}, b"<html>404</html>")
        return Reply(200, {"content-type": "application/rss+xml; charset=utf-8"}, path.read_bytes())


class _ListingFake(FakeApp):
    """A board API answering recorded listings by path; unknown boards as the real one."""

    #: (path regex, fixture); a match group names the board, looked up in `boards`.
    route = r"^$"
    boards: dict[str, str] = {}
    listing = ""
    unknown: tuple[int, bytes] = (404, b'{"error":"not found"}')

    async def handle(self, request: Request) -> Reply:
        match = re.match(self.route, request.path)
        if match is None:
            return Reply(404, {"content-type": "text/html"}, b"<html>404</html>")
        fixture = self.boards.get(match.group(1)) if match.groups() else self.listing
        if fixture is None:
            status, body = self.unknown
            return Reply(status, {"content-type": "application/json"}, body)
        return Reply(200, {"content-type": "application/json"}, self.fixture_bytes(fixture))


class RemotiveFake(_ListingFake):
    name = "remotive"
    route = r"^/api/remote-jobs/?$"
    listing = "remotive/remotive_remote-jobs_2026-07-27_35jobs.json"


class ArbeitnowFake(_ListingFake):
    name = "arbeitnow"
    route = r"^/api/job-board-api/?$"
    listing = "arbeitnow/arbeitnow_job-board-api_2026-08-03_5jobs_envelope_stripped.json"


class HimalayasFake(_ListingFake):
    name = "himalayas"
    route = r"^/jobs/api/?$"
    listing = "himalayas/himalayas_jobs_api_2026-08-15_3jobs_envelope_stripped.json"


class GreenhouseFake(_ListingFake):
    """`/v1/boards/{token}/jobs`: stripe recorded; others the current 404 answer."""

    name = "greenhouse"
    route = r"^/v1/boards/([^/]+)/jobs/?$"
    boards = {"stripe": "greenhouse/greenhouse_stripe_jobs_content_2026-08-04_trimmed40.json"}
    unknown = (404, b'{"status":404,"error":"Job board not found"}')


class LeverFake(_ListingFake):
    """`/v0/postings/{site}`: matchgroup recorded; others Lever's "Document not found"."""

    name = "lever"
    route = r"^/v0/postings/([^/]+)/?$"
    boards = {"matchgroup": "lever/lever_matchgroup_postings_2026-08-04_trimmed40.json"}
    unknown = (404, b'{"ok":false,"error":"Document not found"}')


class AshbyFake(_ListingFake):
    """`/posting-api/job-board/{name}` (case-sensitive): ramp and Etched recorded."""

    name = "ashby"
    route = r"^/posting-api/job-board/([^/]+)/?$"
    boards = {
        "ramp": "ashby/ashby_ramp_job_board_compensation_2026-08-04_trimmed40.json",
        "Etched": "ashby/ashby_etched_job_board_no_compensation_10jobs.json",
    }
    unknown = (404, b'{"success":false,"error":"Job board not found"}')
