"""Which postings fit a user, their match score, and when two postings are one job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.discovery.matching import Criteria, dedup_keys, fits, match_skills, normalised_key
from services.discovery.steps import period_of
from shared.sources import Posting


def posting(**fields: object) -> Posting:
    base: dict[str, object] = {
        "source": "remotive",
        "board": "remotive",
        "external_id": "1",
        "title": "Senior Backend Engineer",
        "company": "Acme",
        "url": "https://example.com/jobs/1",
        "description": "We use Python, PostgreSQL and C++. Good communication.",
        "location": "Berlin, Germany",
        "is_remote": False,
    }
    base.update(fields)
    return Posting(**base)  # type: ignore[arg-type]


def test_keywords_whole_words_and_plurals() -> None:
    """ "Go" does not match "Good"; "engineer" matches "Engineers"; no keywords = all."""
    assert fits(posting(), Criteria(keywords=["engineer"]))
    assert fits(posting(title="Engineers wanted"), Criteria(keywords=["ENGINEER"]))
    assert not fits(posting(), Criteria(keywords=["go"]))
    assert fits(posting(), Criteria(keywords=["c++"]))
    assert fits(posting(tags=("golang",)), Criteria(keywords=["golang"]))
    assert fits(posting(), Criteria())
    assert not fits(posting(), Criteria(keywords=["nurse", "designer"]))
    for title in ("Full-Stack Developer", "Fullstack developer", "Full stack developers"):
        assert fits(posting(title=title), Criteria(keywords=["full stack developer"]))


def test_remote_and_locations() -> None:
    """Remote-only drops on-site jobs; a location matches its text or an open remote job."""
    assert not fits(posting(), Criteria(remote_only=True))
    assert fits(posting(is_remote=True), Criteria(remote_only=True))
    assert fits(posting(), Criteria(locations=["berlin"]))
    assert not fits(posting(), Criteria(locations=["London"]))
    assert fits(
        posting(is_remote=True, location="Anywhere in the World"), Criteria(locations=["London"])
    )
    assert not fits(posting(is_remote=True, location="USA Only"), Criteria(locations=["London"]))


def test_match_score_is_the_share_of_skills() -> None:
    """3 of 4 skills named → 75, matched in the user's order; none → 0."""
    score, matched = match_skills(posting(), ["PostgreSQL", "Python", "Go", "C++", "python"])
    assert (score, matched) == (75, ["PostgreSQL", "Python", "C++"])
    assert match_skills(posting(), []) == (0, [])


def test_dedup_keys() -> None:
    """Case, accents, punctuation and legal suffixes do not make two jobs different."""
    assert normalised_key("Senior  Backend Engineer!", "Acme, Inc.") == normalised_key(
        "senior backend engineer", "ACME"
    )
    assert normalised_key("Café Lead", "Zürich GmbH") == normalised_key("Cafe lead", "zurich")
    assert set(dedup_keys("Engineer", "", "https://a/1")) == {"url:https://a/1"}
    assert len(set(dedup_keys("Engineer", "Acme", "https://a/1"))) == 2


def test_snapshot_periods() -> None:
    """Times within one TTL share a period; the next TTL starts another."""
    hour = timedelta(hours=1)
    at = datetime(2026, 12, 1, 6, 0, 5, tzinfo=UTC)
    assert period_of(at, hour) == period_of(at + timedelta(minutes=59), hour) == "20261201T060000Z"
    assert period_of(at + hour, hour) == "20261201T070000Z"
