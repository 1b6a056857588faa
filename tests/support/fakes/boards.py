"""Fake job boards: RemoteOK's `GET /api` and WeWorkRemotely's category RSS feeds.

RemoteOK answers with the current-schema recording by default (script a `fixture` for the
legacy one) and, like the real one, refuses requests without a real User-Agent.
WWR serves `/categories/<name>.rss` from fixtures/weworkremotely/wwr_<name>_<date>.rss.
"""

from __future__ import annotations

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
