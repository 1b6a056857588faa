"""A fake GitHub REST API replaying fixtures/github/ (200 recordings, routed by path + page).

Recorded headers are replayed (rate-limit headers, Link) with `https://api.github.com`
rewritten to this fake's URL, so pagination follows real Link headers. Unknown paths get
the recorded 404. Rate limits are scripted, e.g.
  {"replay": "github/errors/error_rate_limit_403", "headers": {"x-ratelimit-reset": "..."}}
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from tests.support.fakes.base import FakeApp, Reply, Request

REAL = "https://api.github.com"


class GitHubFake(FakeApp):
    name = "github"

    def __init__(self, fixtures_dir: Any) -> None:
        super().__init__(fixtures_dir)
        self.routes: dict[tuple[str, str], str] = {}
        root = self.fixtures_dir / "github"
        for meta_path in sorted(root.rglob("*.meta.json")):
            meta = json.loads(meta_path.read_text())
            if int(meta.get("status", 200)) != 200:
                continue
            url = urllib.parse.urlsplit(meta["request"]["url"])
            page = dict(urllib.parse.parse_qsl(url.query)).get("page", "1")
            stem = str(meta_path.relative_to(self.fixtures_dir)).removesuffix(".meta.json")
            self.routes[(url.path, page)] = stem
        for body_path in sorted(root.rglob("*_user.json")):
            login = body_path.name.removesuffix("_user.json")
            stem = str(body_path.relative_to(self.fixtures_dir)).removesuffix(".json")
            self.routes.setdefault((f"/users/{login}", "1"), stem)

    def rewrite(self, value: str) -> str:
        return value.replace(REAL, self.base_url)

    async def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return Reply.json({"message": "Not Found"}, 404)
        page = request.params.get("page", "1")
        stem = self.routes.get((request.path.rstrip("/"), page))
        if stem is None:
            status, headers, body = self.replay("github/errors/error_user_not_found_404")
            return Reply(status, headers, body)
        status, headers, body = self.replay(stem)
        return Reply(status, headers, body)
