"""The stand-in's HTTP server: one stdlib threading server, routes by path prefix.

`/github/...` answers like api.github.com (users, their repositories with `per_page`/`page`
and `Link` headers, languages, READMEs base64-wrapped at 60 columns, a weak ETag on every
200 and a free 304 for a matching `If-None-Match`, GitHub's 404 body for unknown paths).
`/remoteok/api`, `/weworkremotely/categories/<feed>.rss`, `/remotive/api/remote-jobs`,
`/arbeitnow/api/job-board-api` and `/himalayas/jobs/api` answer the boards' samples.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import textwrap
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

log = logging.getLogger("howlerhire.standin")

GITHUB_PREFIX = "/github"
WWR_FEED = "remote-programming-jobs"
# Board → (path on the stand-in, sample file, content type). The default DISCOVERY_SOURCES.
BOARDS: dict[str, tuple[str, str, str]] = {
    "remoteok": ("/remoteok/api", "remoteok.json", "application/json"),
    "weworkremotely": (
        f"/weworkremotely/categories/{WWR_FEED}.rss",
        "weworkremotely.rss",
        "application/rss+xml; charset=utf-8",
    ),
    "remotive": ("/remotive/api/remote-jobs", "remotive.json", "application/json"),
    "arbeitnow": ("/arbeitnow/api/job-board-api", "arbeitnow.json", "application/json"),
    "himalayas": ("/himalayas/jobs/api", "himalayas.json", "application/json"),
}
# Which variable points each upstream at its URL (shared/sources/registry.py, github.py).
BOARD_VARIABLES = {
    "remoteok": "REMOTEOK_API_URL",
    "weworkremotely": "WWR_FEED_URLS",
    "remotive": "REMOTIVE_API_URL",
    "arbeitnow": "ARBEITNOW_API_URL",
    "himalayas": "HIMALAYAS_API_URL",
}
NOT_FOUND = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
RATE_LIMIT = 60  # what GitHub grants an unauthenticated client per hour


def upstream_env(base_url: str) -> dict[str, str]:
    """The variables that point GitHub and the default boards at a stand-in at `base_url`."""
    base = base_url.rstrip("/")
    env = {"GITHUB_API_URL": base + GITHUB_PREFIX}
    for board, variable in BOARD_VARIABLES.items():
        env[variable] = base + BOARDS[board][0]
    return env


def _data(name: str) -> bytes:
    return resources.files("shared.standin").joinpath("data", name).read_bytes()


class Samples:
    """The packaged samples, loaded once."""

    def __init__(self) -> None:
        github = json.loads(_data("github.json"))
        self.users: dict[str, dict[str, Any]] = {k.lower(): v for k, v in github["users"].items()}
        self.repos: dict[str, list[dict[str, Any]]] = {
            k.lower(): v for k, v in github["repos"].items()
        }
        self.languages: dict[str, dict[str, int]] = {
            k.lower(): v for k, v in github["languages"].items()
        }
        self.readmes: dict[str, str] = {k.lower(): v for k, v in github["readmes"].items()}
        self.boards = {path: (_data(name), kind) for path, name, kind in BOARDS.values()}


class Handler(BaseHTTPRequestHandler):
    server_version = "howlerhire-standin/1"
    samples: Samples  # set on the class by make_server

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = dict(urllib.parse.parse_qsl(url.query))
        if path == "/health":
            self._send(200, {"content-type": "application/json"}, b'{"status":"ok"}')
        elif path.startswith(GITHUB_PREFIX + "/"):
            self._github(path.removeprefix(GITHUB_PREFIX), query)
        elif path in self.samples.boards:
            body, kind = self.samples.boards[path]
            self._send(200, {"content-type": kind}, body)
        else:
            self._send(404, {"content-type": "text/html"}, b"<html>404 Not Found</html>")

    def do_HEAD(self) -> None:
        self._send(405, {"allow": "GET"}, b"")

    def do_POST(self) -> None:
        self._send(405, {"allow": "GET"}, b"")

    # ---- GitHub -------------------------------------------------------------------------------

    def _github(self, path: str, query: dict[str, str]) -> None:
        parts = path.strip("/").split("/")
        samples = self.samples
        if len(parts) == 2 and parts[0] == "users" and parts[1].lower() in samples.users:
            return self._github_json(samples.users[parts[1].lower()])
        if len(parts) == 3 and parts[0] == "users" and parts[2] == "repos":
            if parts[1].lower() not in samples.users:
                return self._github_json(NOT_FOUND, 404)
            return self._github_repos(parts[1], samples.repos.get(parts[1].lower(), []), query)
        if len(parts) == 4 and parts[0] == "repos":
            full_name = f"{parts[1]}/{parts[2]}".lower()
            if parts[3] == "languages" and full_name in samples.languages:
                return self._github_json(samples.languages[full_name])
            if parts[3] == "readme" and full_name in samples.readmes:
                return self._github_json(_readme(full_name, samples.readmes[full_name]))
        return self._github_json(NOT_FOUND, 404)

    def _github_repos(self, login: str, repos: list[dict[str, Any]], query: dict[str, str]) -> None:
        try:
            per_page = min(max(int(query.get("per_page", "30")), 1), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            return self._github_json({"message": "Invalid request"}, 422)
        wanted = query.get("type", "owner")
        chosen = [r for r in repos if wanted != "sources" or not r.get("fork")]
        if query.get("sort", "full_name") == "pushed":
            chosen.sort(key=lambda r: str(r.get("pushed_at") or ""), reverse=True)
        if query.get("direction") == "asc":
            chosen.reverse()
        last = max(1, -(-len(chosen) // per_page))
        headers: dict[str, str] = {}
        if last > 1:
            host = self.headers.get("host", "127.0.0.1")
            base = f"http://{host}{GITHUB_PREFIX}/users/{login}/repos"
            links = []
            for rel, number in (("prev", page - 1), ("next", page + 1), ("first", 1)):
                if 1 <= number <= last and not (rel == "first" and page == 1):
                    links.append(f'<{base}?{_query(query, number)}>; rel="{rel}"')
            if page < last:
                links.append(f'<{base}?{_query(query, last)}>; rel="last"')
            headers["link"] = ", ".join(links)
        start = (page - 1) * per_page
        return self._github_json(chosen[start : start + per_page], headers=headers)

    def _github_json(
        self, value: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(value, indent=2).encode()
        out = {"content-type": "application/json; charset=utf-8", **(headers or {})}
        out.update(
            {
                "x-ratelimit-limit": str(RATE_LIMIT),
                "x-ratelimit-remaining": str(RATE_LIMIT - 1),
                "x-ratelimit-reset": "0",
                "x-ratelimit-resource": "core",
            }
        )
        if status == 200:
            etag = f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'
            out["etag"] = etag
            if self.headers.get("if-none-match") == etag:
                # GitHub does not count a 304 against the limit, and sends no body.
                out["x-ratelimit-remaining"] = str(RATE_LIMIT)
                del out["content-type"]
                return self._send(304, out, b"")
        return self._send(status, out, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


def _query(query: dict[str, str], page: int) -> str:
    return urllib.parse.urlencode({**query, "page": str(page)})


def _readme(full_name: str, text: str) -> dict[str, Any]:
    """GitHub's README object: base64 content wrapped at 60 columns, as the API sends it."""
    encoded = base64.b64encode(text.encode()).decode()
    owner, repo = full_name.split("/")
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(text.encode()),
        "name": "README.md",
        "path": "README.md",
        "content": "\n".join(textwrap.wrap(encoded, 60)) + "\n",
        "html_url": f"https://github.com/{owner}/{repo}/blob/main/README.md",
    }


def make_server(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server bound (not yet serving) on host:port; port 0 picks a free one."""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise OSError(f"the offline stand-in listens on loopback only, not {host!r}")
    handler = type("StandinHandler", (Handler,), {"samples": Samples()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
