"""Which job boards exist and how `DISCOVERY_SOURCES` names the ones to read.

A board is one module under `shared/sources/` with a class decorated `@register(kind)`
(`per_company=True` for services that host one board per employer: Greenhouse, Lever,
Ashby), imported once in `shared/sources/__init__.py`.
`DISCOVERY_SOURCES=remoteok,weworkremotely,greenhouse:stripe,lever:matchgroup` then
picks them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import msgspec

from shared.config import Settings
from shared.errors import ConfigError
from shared.sources.fetch import BoardMalformedError, PoliteFetcher
from shared.sources.postings import Posting

__all__ = [
    "DEFAULT_SOURCES",
    "REGISTRY",
    "Board",
    "BoardKind",
    "BoardSettings",
    "Listing",
    "configured_boards",
    "decode_json",
    "register",
]

DEFAULT_SOURCES = "remoteok,weworkremotely,remotive,arbeitnow,himalayas"
DEFAULT_WWR_FEEDS = (
    "https://weworkremotely.com/categories/remote-programming-jobs.rss",
    "https://weworkremotely.com/categories/remote-back-end-programming-jobs.rss",
    "https://weworkremotely.com/categories/remote-full-stack-programming-jobs.rss",
    "https://weworkremotely.com/categories/remote-devops-sysadmin-jobs.rss",
)
_COMPANY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class BoardSettings(Settings, frozen=True, kw_only=True):
    """Where each board lives (env: REMOTEOK_API_URL, WWR_FEED_URLS, …) and which to read."""

    discovery_sources: str = DEFAULT_SOURCES
    remoteok_api_url: str = "https://remoteok.com/api"
    wwr_feed_urls: str = ",".join(DEFAULT_WWR_FEEDS)
    remotive_api_url: str = "https://remotive.com/api/remote-jobs"
    arbeitnow_api_url: str = "https://www.arbeitnow.com/api/job-board-api"
    himalayas_api_url: str = "https://himalayas.app/jobs/api"
    greenhouse_api_url: str = "https://boards-api.greenhouse.io"
    lever_api_url: str = "https://api.lever.co"
    ashby_api_url: str = "https://api.ashbyhq.com"

    @property
    def wwr_feeds(self) -> list[str]:
        return [url.strip() for url in self.wwr_feed_urls.split(",") if url.strip()]


class Listing(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one board lists right now; `warnings` names parts that failed."""

    postings: list[Posting]
    warnings: tuple[str, ...] = ()


class Board(Protocol):
    """One configured board: `name` is how outputs and cache keys call it."""

    kind: ClassVar[str]
    name: str

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        """The board's whole listing, normalised; raises a Board*Error when unreadable."""
        ...


@dataclass(frozen=True)
class BoardKind:
    kind: str
    factory: Callable[[BoardSettings, str | None], Board]
    per_company: bool


REGISTRY: dict[str, BoardKind] = {}

B = TypeVar("B")


def register(kind: str, *, per_company: bool = False) -> Callable[[type[B]], type[B]]:
    """Class decorator: make a board kind available to `DISCOVERY_SOURCES`."""

    def decorate(cls: type[B]) -> type[B]:
        if kind in REGISTRY:
            raise ValueError(f"board kind {kind!r} is registered twice")
        REGISTRY[kind] = BoardKind(kind, cls, per_company)  # type: ignore[arg-type]
        return cls

    return decorate


def configured_boards(settings: BoardSettings) -> list[Board]:
    """The boards `DISCOVERY_SOURCES` names, in its order, duplicates dropped.

    An unknown kind, a per-company kind without its company, or a company on a board that
    has none is a ConfigError naming the entry.
    """
    boards: dict[str, Board] = {}
    for raw in settings.discovery_sources.split(","):
        entry = raw.strip()
        if not entry:
            continue
        kind, sep, company = entry.partition(":")
        kind = kind.strip().lower()
        spec = REGISTRY.get(kind)
        if spec is None:
            known = ", ".join(sorted(REGISTRY))
            raise ConfigError(f"DISCOVERY_SOURCES: unknown board {kind!r} (known: {known})")
        if spec.per_company and not company.strip():
            raise ConfigError(
                f"DISCOVERY_SOURCES: {kind} needs a company board, e.g. {kind}:stripe"
            )
        if not spec.per_company and sep:
            raise ConfigError(f"DISCOVERY_SOURCES: {kind} takes no company ({entry!r})")
        if sep and not _COMPANY.match(company.strip()):
            raise ConfigError(f"DISCOVERY_SOURCES: {company!r} is not a board name")
        board = spec.factory(settings, company.strip() or None)
        boards.setdefault(board.name, board)
    if not boards:
        raise ConfigError("DISCOVERY_SOURCES names no board")
    return list(boards.values())


def decode_json(body: bytes, name: str) -> Any:
    """The JSON of a board's answer; a body that is not JSON is BoardMalformedError."""
    try:
        return msgspec.json.decode(body.removeprefix(b"\xef\xbb\xbf"))
    except msgspec.DecodeError as exc:
        snippet = body[:80].decode("utf-8", "replace")
        raise BoardMalformedError(f"{name}: the answer is not JSON: {snippet!r}") from exc
