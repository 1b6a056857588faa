"""Every recorded board answer parses into the expected postings (counts, clean titles,
salaries, UTC dates, canonical URLs, logos)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.sources import BoardMalformedError, BoardNotFoundError, Posting, Salary
from shared.sources.arbeitnow import parse_arbeitnow
from shared.sources.ashby import parse_ashby
from shared.sources.greenhouse import parse_greenhouse
from shared.sources.himalayas import parse_himalayas
from shared.sources.lever import parse_lever
from shared.sources.remoteok import parse_remoteok
from shared.sources.remotive import parse_remotive
from shared.sources.weworkremotely import parse_wwr_feed

ENTITY = re.compile(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)


def load(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / name).read_bytes())


def assert_clean(postings: list[Posting]) -> None:
    """What every posting of every board must look like."""
    assert postings
    for p in postings:
        assert p.title and p.title == p.title.strip()
        assert not ENTITY.search(p.title) and not ENTITY.search(p.company)
        assert "<" not in p.title and "<" not in p.company
        assert p.url.startswith(("https://", "http://")) and "utm_" not in p.url
        host = p.url.split("/")[2]
        assert host == host.lower()
        for marker in ("&lt;", "&gt;", "&amp;", "&nbsp;", "<p>", "<div", "<img", "<li>"):
            assert marker not in p.description, (p.title, marker)
        assert p.posted_at is None or p.posted_at.tzinfo == UTC
        if p.salary is not None:
            assert p.salary.min is None or p.salary.min > 0
            assert p.salary.max is None or p.salary.min is None or p.salary.max >= p.salary.min
        if p.company_logo is not None:
            assert p.company_logo.startswith("https://")
    assert len({p.url for p in postings}) == len(postings)


def test_remoteok_current(fixtures_dir: Path) -> None:
    """The legal notice and the one entry without a position are skipped; 17 salaries."""
    postings = parse_remoteok(load(fixtures_dir, "remoteok/remoteok_api_2026-03-17_trimmed60.json"))
    assert_clean(postings)
    assert len(postings) == 59
    assert sum(1 for p in postings if p.salary) == 17
    assert all(p.url.startswith("https://remoteok.com/remote-jobs/") for p in postings)
    assert all(p.is_remote and p.posted_at for p in postings)
    assert not any("\u00e2\u0080" in p.description for p in postings)
    assert not any(p.location in ("", "Orlando,") for p in postings)
    assert all(p.company_logo is None for p in postings)  # recorded as empty strings


def test_remoteok_legacy(fixtures_dir: Path) -> None:
    """The 2021 schema: string epochs, no salaries, some empty companies."""
    data = load(fixtures_dir, "remoteok/remoteok_api_2021-01-24_legacy_format_trimmed60.json")
    postings = parse_remoteok(data)
    assert_clean(postings)
    assert len(postings) == 60
    assert all(p.salary is None for p in postings)
    assert postings[0].posted_at == datetime.fromtimestamp(1611356746, tz=UTC)


def test_weworkremotely_feeds(fixtures_dir: Path) -> None:
    """All three feeds: "Company: Position" split, header block dropped, logos kept."""
    counts = {}
    for path in sorted((fixtures_dir / "weworkremotely").glob("*.rss")):
        postings = parse_wwr_feed(path.read_bytes())
        assert_clean(postings)
        counts[path.name.split("_")[1]] = len(postings)
        assert all(":" not in p.company for p in postings)
        assert not any("Headquarters:" in p.description for p in postings)
    assert counts == {
        "remote-programming-jobs": 25,
        "remote-back-end-programming-jobs": 59,
        "remote-devops-sysadmin-jobs": 30,
    }
    feed = fixtures_dir / "weworkremotely/wwr_remote-back-end-programming-jobs_2022-11-08.rss"
    findox = next(p for p in parse_wwr_feed(feed.read_bytes()) if p.company == "FinDox Inc")
    assert findox.title == "Senior C# and PostgreSQL Backend Developer"
    assert findox.location == "Anywhere in the World" and findox.employment_type == "Full-Time"
    assert findox.posted_at == datetime(2022, 11, 7, 16, 20, 50, tzinfo=UTC)
    assert findox.company_logo and findox.company_logo.endswith("logo.gif")


def test_remotive(fixtures_dir: Path) -> None:
    """35 jobs; free-text salaries parsed; naive dates read as UTC."""
    postings = parse_remotive(
        load(fixtures_dir, "remotive/remotive_remote-jobs_2026-07-27_35jobs.json")
    )
    assert_clean(postings)
    assert len(postings) == 35
    first = postings[0]
    assert first.title == "Data Labeling Specialists" and first.company == "Workada"
    assert first.salary == Salary(min=18, max=22, currency="USD", period="hour")
    assert first.posted_at == datetime(2026, 7, 26, 20, 49, 11, tzinfo=UTC)
    assert first.company_logo == "https://remotive.com/job/2090903/logo"
    salaries = {p.salary for p in postings if p.salary}
    assert Salary(min=31200, max=52000, currency="USD", period="year") in salaries
    assert Salary(min=25000, max=35000, currency="USD", period="year") in salaries
    assert Salary(min=12000, max=None, currency="USD", period="year") in salaries
    assert sum(1 for p in postings if p.salary is None) == 8  # the empty salary texts
    assert not any("blank.gif" in p.description for p in postings)


def test_greenhouse(fixtures_dir: Path) -> None:
    """Escaped (and double-escaped) content becomes text; offsets become UTC."""
    data = load(fixtures_dir, "greenhouse/greenhouse_stripe_jobs_content_2026-08-04_trimmed40.json")
    postings = parse_greenhouse(data, "stripe")
    assert_clean(postings)
    assert len(postings) == 40
    first = postings[0]
    assert (first.title, first.company, first.location) == (
        "Account Executive, Bridge",
        "Stripe",
        "London",
    )
    assert first.url == "https://stripe.com/jobs/search?gh_jid=8023928"
    assert first.posted_at == datetime(2026, 7, 30, 10, 59, 38, tzinfo=UTC)
    assert first.description.startswith("Who we are\n\nAbout Stripe")
    assert [p.salary for p in postings if p.salary] == [
        Salary(min=182208, max=236580, currency="USD", period="year")
    ]
    assert {p.board for p in postings} == {"greenhouse:stripe"}


def test_lever(fixtures_dir: Path) -> None:
    """A bare array; epoch-ms dates; 21 structured salary ranges; lists folded in."""
    data = load(fixtures_dir, "lever/lever_matchgroup_postings_2026-08-04_trimmed40.json")
    postings = parse_lever(data, "matchgroup")
    assert_clean(postings)
    assert len(postings) == 40
    assert sum(1 for p in postings if p.salary) == 21
    first = postings[0]
    assert first.title == "Android Engineer III"
    assert first.salary == Salary(min=150000, max=180000, currency="USD", period="year")
    assert first.posted_at == datetime(2026, 5, 19, 20, 38, 11, 267000, tzinfo=UTC)
    assert "Responsibilities" in first.description and "\n- " in first.description
    assert first.apply_url and first.apply_url.endswith("/apply")


def test_lever_unknown_site(fixtures_dir: Path) -> None:
    """An object instead of an array is Lever's "no such site", whatever the status."""
    with pytest.raises(BoardNotFoundError, match="Document not found"):
        parse_lever(load(fixtures_dir, "lever/lever_error_document_not_found.json"), "netflix")


def test_ashby(fixtures_dir: Path) -> None:
    """Titles trimmed, Salary components read, the job without pay has none."""
    data = load(fixtures_dir, "ashby/ashby_ramp_job_board_compensation_2026-08-04_trimmed40.json")
    raw_titles = [j["title"] for j in data["jobs"]]
    assert sum(1 for t in raw_titles if t != t.strip()) == 6
    postings = parse_ashby(data, "ramp")
    assert_clean(postings)
    assert len(postings) == 40
    first = postings[0]
    assert first.title == "Security Engineer, Cloud" and first.company == "Ramp"
    assert first.salary == Salary(min=211400, max=290600, currency="USD", period="year")
    assert first.posted_at == datetime(2026, 4, 7, 17, 12, 35, 753000, tzinfo=UTC)
    assert sum(1 for p in postings if p.salary is None) == 1
    etched = parse_ashby(
        load(fixtures_dir, "ashby/ashby_etched_job_board_no_compensation_10jobs.json"), "Etched"
    )
    assert_clean(etched)
    assert len(etched) == 10 and not any(p.is_remote or p.salary for p in etched)
    assert {p.company for p in etched} == {"Etched"}


def test_arbeitnow(fixtures_dir: Path) -> None:
    """Epoch seconds; the stray </a> and escaped HTML inside HTML are gone."""
    data = load(
        fixtures_dir, "arbeitnow/arbeitnow_job-board-api_2026-08-03_5jobs_envelope_stripped.json"
    )
    postings = parse_arbeitnow(data)
    assert_clean(postings)
    assert len(postings) == 5
    first = postings[0]
    assert (first.title, first.company, first.location) == (
        "ML Product Engineer",
        "kausable GmbH",
        "Heidelberg",
    )
    assert first.posted_at == datetime.fromtimestamp(1785792634, tz=UTC)
    assert all(p.description.endswith("Jobs in Germany on Arbeitnow") for p in postings)
    assert not any("<strong" in p.description or "</a>" in p.description for p in postings)


def test_himalayas(fixtures_dir: Path) -> None:
    """The placeholder company and logo are replaced by the slug and nothing."""
    data = load(
        fixtures_dir, "himalayas/himalayas_jobs_api_2026-08-15_3jobs_envelope_stripped.json"
    )
    postings = parse_himalayas(data)
    assert_clean(postings)
    assert len(postings) == 3
    first = postings[0]
    assert first.company == "Alignment Health" and first.company_logo is None
    assert first.salary == Salary(min=77905, max=116858, currency="USD", period="year")
    assert first.posted_at == datetime.fromtimestamp(1786813232, tz=UTC)
    assert all(p.company != "name" for p in postings)


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_remoteok, {"legal": "x"}),
        (parse_remotive, []),
        (lambda d: parse_greenhouse(d, "x"), {"error": "nope"}),
        (lambda d: parse_ashby(d, "x"), None),
        (parse_arbeitnow, "text"),
        (parse_himalayas, 3),
        (lambda d: parse_lever(d, "x"), {"unexpected": True}),
    ],
)
def test_wrong_shapes_are_malformed(parse: Any, body: Any) -> None:
    """A body of the wrong shape is BoardMalformedError naming the board."""
    with pytest.raises(BoardMalformedError):
        parse(body)


def test_wwr_not_a_feed() -> None:
    """HTML instead of RSS is malformed."""
    with pytest.raises(BoardMalformedError):
        parse_wwr_feed(b"<html><body>maintenance</body></html>")
