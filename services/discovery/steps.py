"""The I/O of job discovery: plain async functions over `DiscoveryDeps`, no engine imports.

Each returns JSON-friendly values the engine records, and is safe to run again on a
redelivery: snapshots are keyed by board and period, the ledger by instance id, inserts
by (user_id, source_url), events by `daily-discovery:<userId>:<day>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import msgspec

from services.discovery.matching import Criteria, dedup_keys, fits, match_skills
from services.discovery.snapshots import SnapshotRef, SnapshotStore, UsageLedger
from shared.db import NewJob, Repository
from shared.errors import NonRetryableError
from shared.events import SearchCriteria
from shared.sources import Board, PoliteFetcher, Posting
from shared.sources.normalise import canonical_url

log = logging.getLogger(__name__)

# How far back a user's saved jobs are compared by title + company.
SAVED_WINDOW = timedelta(days=90)


def _now() -> datetime:
    return datetime.now(UTC)


class DiscoverySender(Protocol):
    """Publishes `job/discovery.requested` events (the engine's Instances, in __main__)."""

    async def send_discovery_requests(self, user_ids: Sequence[str], day: str) -> int:
        """One event per user with id `daily-discovery:<userId>:<day>`; returns how many."""
        ...


@dataclass
class DiscoveryDeps:
    """What discovery's steps use, built in `__main__` (or by hand in tests)."""

    repo: Repository
    boards: list[Board]
    fetcher: PoliteFetcher
    snapshots: SnapshotStore
    usage: UsageLedger
    sender: DiscoverySender | None = None
    clock: Callable[[], datetime] = field(default=_now)
    snapshot_ttl: timedelta = timedelta(hours=1)
    max_per_source: int = 50
    page_size: int = 500

    def board(self, name: str) -> Board:
        for board in self.boards:
            if board.name == name:
                return board
        raise NonRetryableError(f"board {name!r} is not configured here")


# ---- job-discovery ---------------------------------------------------------------------------


class LimitCheck(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    used: int
    limit: int  # -1 = unlimited
    day: str  # the UTC day counted against, YYYY-MM-DD
    period: str  # the snapshot period this run reads


def period_of(when: datetime, ttl: timedelta) -> str:
    """The snapshot period containing `when`: its start, as a compact UTC timestamp."""
    seconds = max(int(ttl.total_seconds()), 1)
    start = int(when.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(start, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


async def check_discovery_limit(deps: DiscoveryDeps, user_id: str, run_id: str) -> LimitCheck:
    """Count this run against the user's tier's daily limit (-1 = unlimited)."""
    now = deps.clock()
    day = now.strftime("%Y-%m-%d")
    period = period_of(now, deps.snapshot_ttl)
    tier = await deps.repo.get_tier(user_id)
    limit = tier.job_discovery_limit_daily
    if limit < 0:
        return LimitCheck(allowed=True, used=0, limit=-1, day=day, period=period)
    allowed, used = await deps.usage.admit(user_id, day, run_id, limit)
    return LimitCheck(allowed=allowed, used=used, limit=limit, day=day, period=period)


async def get_user_profile(
    deps: DiscoveryDeps, user_id: str, search: SearchCriteria | None
) -> Criteria:
    """Keywords, locations and remote preference from the criteria, else the profile."""
    profile = await deps.repo.get_profile(user_id)
    if profile is None and (search is None or not search.keywords):
        raise NonRetryableError(f"user {user_id} has no profile and no search keywords")
    roles = profile.preferred_roles if profile else []
    keywords = list(search.keywords) if search and search.keywords else list(roles)
    if search and search.location and search.location.strip():
        locations = [search.location.strip()]
    else:
        locations = list(profile.preferred_locations) if profile else []
    if search and search.remote is not None:
        remote_only = search.remote
    else:
        remote_only = (profile.remote_preference if profile else None) == "remote"
    return Criteria(
        keywords=[k for k in keywords if k.strip()],
        locations=[loc for loc in locations if loc.strip() and loc.strip().lower() != "remote"],
        remote_only=remote_only,
        skills=list(profile.skills) if profile else [],
    )


async def fetch_board(deps: DiscoveryDeps, board_name: str, period: str) -> SnapshotRef:
    """The board's snapshot for `period`: fetched now by this run, or by another run."""
    board = deps.board(board_name)
    return await deps.snapshots.ensure(board.name, period, lambda: board.fetch(deps.fetcher))


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """A posting that fits the user, small enough to record (its text stays in the
    snapshot until `save-jobs`)."""

    board: str
    url: str
    title: str
    company: str
    posted_at: datetime | None = None


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    board: str
    total: int
    matches: list[Match]


async def search_board(deps: DiscoveryDeps, ref: SnapshotRef, criteria: Criteria) -> SearchResult:
    """The snapshot's postings that fit the criteria, newest first, at most
    `max_per_source`."""
    postings = await deps.snapshots.postings(ref)
    fitting = [p for p in postings if fits(p, criteria)]
    oldest = datetime.min.replace(tzinfo=UTC)
    fitting.sort(key=lambda p: p.posted_at or oldest, reverse=True)
    return SearchResult(
        board=ref.board,
        total=ref.total,
        matches=[
            Match(
                board=ref.board, url=p.url, title=p.title, company=p.company, posted_at=p.posted_at
            )
            for p in fitting[: deps.max_per_source]
        ],
    )


class Combined(msgspec.Struct, frozen=True, kw_only=True):
    found: int  # matches across all boards, before de-duplication
    duplicates: int  # the same job on another board or twice on one
    already_saved: int  # the user has it already
    new: list[Match]


async def combine_jobs(deps: DiscoveryDeps, user_id: str, results: list[SearchResult]) -> Combined:
    """One entry per job: across boards by URL and by title + company, then without the
    jobs the user already has (same URL, or same title + company in the last 90 days)."""
    saved_keys: set[str] = set()
    for key in await deps.repo.recent_job_keys(user_id, deps.clock() - SAVED_WINDOW):
        saved_keys.update(
            dedup_keys(key.title, key.company, canonical_url(key.source_url) or key.source_url)
        )
    seen: set[str] = set()
    new: list[Match] = []
    found = duplicates = already = 0
    for result in results:
        for match in result.matches:
            found += 1
            keys = set(dedup_keys(match.title, match.company, match.url))
            if keys & seen:
                duplicates += 1
                continue
            seen |= keys
            if keys & saved_keys:
                already += 1
                continue
            new.append(match)
    return Combined(found=found, duplicates=duplicates, already_saved=already, new=new)


class SavedJob(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    title: str
    company: str
    source: str
    url: str
    match_score: int
    matched_skills: list[str]


class Saved(msgspec.Struct, frozen=True, kw_only=True):
    inserted: int
    jobs: list[SavedJob]


def new_job(posting: Posting, score: int, matched: list[str]) -> NewJob:
    salary = posting.salary
    reasons: dict[str, object] = {"matchedSkills": matched, "board": posting.board}
    if salary is not None and salary.period is not None:
        reasons["salaryPeriod"] = salary.period  # jobs has no column for it
    return NewJob(
        source=posting.source,
        source_url=posting.url,
        title=posting.title,
        company=posting.company or None,
        external_id=posting.external_id,
        company_logo=posting.company_logo,
        location=posting.location,
        is_remote=posting.is_remote,
        description=posting.description or None,
        salary_min=salary.min if salary else None,
        salary_max=salary.max if salary else None,
        salary_currency=salary.currency if salary else None,
        employment_type=posting.employment_type,
        match_score=score,
        match_reasons=reasons,
        matched_skills=matched,
        posted_at=posting.posted_at,
    )


async def save_jobs(
    deps: DiscoveryDeps,
    user_id: str,
    refs: list[SnapshotRef],
    new: list[Match],
    skills: list[str],
) -> Saved:
    """Score each new job against the user's skills and insert it (status 'new'); the
    database skips any (user_id, source_url) another run saved meanwhile."""
    by_board: dict[str, dict[str, Posting]] = {}
    for ref in refs:
        by_board[ref.board] = {p.url: p for p in await deps.snapshots.postings(ref)}
    rows: list[NewJob] = []
    saved: list[SavedJob] = []
    for match in new:
        posting = by_board.get(match.board, {}).get(match.url)
        if posting is None:
            continue  # not in the snapshot it was found in: cannot happen unless edited
        score, matched = match_skills(posting, skills)
        rows.append(new_job(posting, score, matched))
        saved.append(
            SavedJob(
                title=posting.title,
                company=posting.company,
                source=posting.board,
                url=posting.url,
                match_score=score,
                matched_skills=matched,
            )
        )
    inserted = await deps.repo.insert_new_jobs(user_id, rows) if rows else 0
    saved.sort(key=lambda job: job.match_score, reverse=True)
    return Saved(inserted=inserted, jobs=saved)


# ---- daily-discovery -------------------------------------------------------------------------


async def today(deps: DiscoveryDeps) -> str:
    """The UTC day of this firing (YYYY-MM-DD): part of every event id it sends."""
    return deps.clock().strftime("%Y-%m-%d")


class PageSent(msgspec.Struct, frozen=True, kw_only=True):
    users: int
    last: str | None  # the cursor for the next page; None when this page was the last


async def send_page(deps: DiscoveryDeps, day: str, after: str | None) -> PageSent:
    """List one page of active users after `after` and send each a discovery request.

    Re-running it (a crash midway) lists the same page and re-sends the same event ids,
    which JetStream and the engine de-duplicate: nobody is skipped or served twice.
    """
    if deps.sender is None:
        raise NonRetryableError("daily-discovery needs an event sender")
    users = [str(u) for u in await deps.repo.list_active_users(after=after, limit=deps.page_size)]
    if users:
        await deps.sender.send_discovery_requests(users, day)
    last = users[-1] if len(users) == deps.page_size else None
    return PageSent(users=len(users), last=last)
