"""A fake GitHub REST API replaying fixtures/github/ (200 recordings, routed by path + page).

Recorded headers are replayed (rate-limit headers, Link) with `https://api.github.com`
rewritten to this fake's URL, so pagination follows real Link headers. Unknown paths get
the recorded 404. Rate limits are scripted, e.g.
  {"replay": "github/errors/error_rate_limit_403", "headers": {"x-ratelimit-reset": "..."}}

Like GitHub, every 200 carries an `ETag` (the recorded one, else a digest of the body) and
rate-limit headers; a request whose `If-None-Match` matches is answered 304 with no body
and, as GitHub documents, not counted against the limit (`stats()["rate_remaining"]`).
A user known only as the owner of recorded repositories (dstufft) is answered with that
owner object; a recorded user without recorded repositories has none (`[]`).
"""

from __future__ import annotations

import hashlib
import json
import time
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
        # Owners of recorded repositories, for users recorded only through their repos.
        self.owners: dict[str, dict[str, Any]] = {}
        for body_path in sorted(root.rglob("*_repos*.json")):
            if body_path.name.endswith(".meta.json"):
                continue
            for repo in json.loads(body_path.read_text()):
                owner = repo.get("owner") or {}
                if owner.get("login"):
                    self.owners.setdefault(owner["login"].lower(), owner)
        self.rate_limit = 5000
        self.rate_remaining = 5000
        self.rate_reset = int(time.time()) + 3600

    def reset_state(self) -> None:
        self.rate_remaining = self.rate_limit

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._lock:
            stats["rate_remaining"] = self.rate_remaining
        return stats

    def rewrite(self, value: str) -> str:
        return value.replace(REAL, self.base_url)

    def _lookup(self, path: str, page: str) -> tuple[int, dict[str, str], bytes]:
        stem = self.routes.get((path, page))
        if stem is not None:
            return self.replay(stem)
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "users" and parts[1].lower() in self.owners:
            return (
                200,
                {"content-type": "application/json"},
                json.dumps(self.owners[parts[1].lower()]).encode(),
            )
        if len(parts) == 3 and parts[0] == "users" and parts[2] == "repos":
            known = self.routes.get((f"/users/{parts[1]}", "1")) or parts[1].lower() in self.owners
            if known:
                return 200, {"content-type": "application/json"}, b"[]"
        return self.replay("github/errors/error_user_not_found_404")

    async def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return Reply.json({"message": "Not Found"}, 404)
        status, headers, body = self._lookup(
            request.path.rstrip("/"), request.params.get("page", "1")
        )
        return self.conditional(request, status, headers, body)

    def render(self, script: dict[str, Any], request: Request) -> Reply:
        reply = super().render(script, request)
        if reply.status == 200 and reply.stream is None:
            return self.conditional(request, reply.status, reply.headers, reply.body)
        return reply

    def conditional(
        self, request: Request, status: int, headers: dict[str, str], body: bytes
    ) -> Reply:
        """ETag, 304 for a matching If-None-Match (free), rate-limit headers otherwise."""
        headers = {k: v for k, v in headers.items() if not k.startswith("x-ratelimit")}
        if status == 200:
            etag = headers.get("etag") or f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'
            headers["etag"] = etag
            if request.headers.get("if-none-match") == etag:
                with self._lock:
                    remaining = self.rate_remaining
                return Reply(304, {"etag": etag, **self._rate_headers(remaining)}, b"")
        with self._lock:
            self.rate_remaining = max(self.rate_remaining - 1, 0)
            remaining = self.rate_remaining
        return Reply(status, {**headers, **self._rate_headers(remaining)}, body)

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(self.rate_reset),
            "x-ratelimit-resource": "core",
        }
