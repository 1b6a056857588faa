"""The normaliser on the class of input real boards send, beyond the recorded fixtures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.sources import Salary
from shared.sources.normalise import (
    canonical_url,
    clean_text,
    html_to_text,
    looks_remote,
    parse_posted,
    parse_salary,
    salary_from_amounts,
    salary_in_text,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Senior Engineer  ", "Senior Engineer"),
        ("R&amp;D Lead", "R&D Lead"),
        ("R&amp;amp;D Lead", "R&D Lead"),  # double-escaped
        ("AT&amp;amp;amp;T", "AT&T"),  # triple
        ("Data&nbsp;Engineer", "Data Engineer"),
        ("Data&amp;nbsp;Engineer", "Data Engineer"),
        ("<b>Backend</b> Developer<br/>", "Backend Developer"),
        ("&lt;strong&gt;Staff&lt;/strong&gt; SRE", "Staff SRE"),
        ("Caf\u00c3\u00a9 Manager", "Caf\u00e9 Manager"),  # UTF-8 read as Latin-1
        ("Engineer \u2013 Platform\u200b", "Engineer \u2013 Platform"),
        ("Acme,\n\t Inc.", "Acme, Inc."),
        (None, ""),
        (42, ""),
    ],
)
def test_clean_text(raw: object, expected: str) -> None:
    """Titles and companies come out unescaped, untagged and trimmed."""
    assert clean_text(raw) == expected


def test_html_to_text_escaped_and_stray() -> None:
    """Escaped HTML, escaped HTML inside real HTML, stray tags and pixels become text."""
    assert html_to_text("&lt;h2&gt;About&lt;/h2&gt;&lt;p&gt;We &amp;amp; you&lt;/p&gt;") == (
        "About\n\nWe & you"
    )
    mixed = '<p>Hi &lt;strong&gt;there&lt;/strong&gt;</p><p>Find <a href="x">Jobs</a> on us</a></p>'
    assert html_to_text(mixed) == "Hi there\n\nFind Jobs on us"
    text = html_to_text(
        "<ul><li>Python</li><li>Go</li></ul><script>alert(1)</script>"
        '<img src="https://x/blank.gif?source=public_api">&amp;nbsp;done'
    )
    assert text == "- Python\n- Go\n\ndone"
    assert html_to_text(None) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "HTTPS://Jobs.Example.COM:443/a//b?utm_source=x&gh_jid=12&ref=abc#apply",
            "https://jobs.example.com/a/b?gh_jid=12",
        ),
        (
            "https://remoteOK.com/remote-jobs/1?ref=rss&utm_medium=feed",
            "https://remoteok.com/remote-jobs/1",
        ),
        ("http://example.com:8080/x?b=2&a=1&fbclid=z", "http://example.com:8080/x?b=2&a=1"),
        ("https://example.com/jobs?id=1&amp;utm_campaign=x", "https://example.com/jobs?id=1"),
        ("//cdn.example.com/logo.png", "https://cdn.example.com/logo.png"),
        ("thumbnail_url", ""),
        ("javascript:alert(1)", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_canonical_url(raw: object, expected: str) -> None:
    """Lower-cased host, tracking parameters dropped, other parameters kept in order."""
    assert canonical_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$120k \u2013 $150k", Salary(min=120000, max=150000, currency="USD", period="year")),
        (
            "\u20ac60,000 - \u20ac80,000 a year",
            Salary(min=60000, max=80000, currency="EUR", period="year"),
        ),
        ("$18 - $22/hr", Salary(min=18, max=22, currency="USD", period="hour")),
        ("$31,2k- $52k", Salary(min=31200, max=52000, currency="USD", period="year")),
        ("OTE $25k - $35k", Salary(min=25000, max=35000, currency="USD", period="year")),
        ("$12K", Salary(min=12000, max=None, currency="USD", period="year")),
        (
            "$211.4K \u2013 $290.6K \u2022 Offers Equity",
            Salary(min=211400, max=290600, currency="USD", period="year"),
        ),
        (
            "USD 100,000\u2013120,000 per year",
            Salary(min=100000, max=120000, currency="USD", period="year"),
        ),
        ("\u00a345k-\u00a355k pa", Salary(min=45000, max=55000, currency="GBP", period="year")),
        ("CHF 120 000 - 140 000", Salary(min=120000, max=140000, currency="CHF", period="year")),
        ("60.000 - 75.000 EUR", Salary(min=60000, max=75000, currency="EUR", period="year")),
        ("$4,000 - $6,000 per month", Salary(min=4000, max=6000, currency="USD", period="month")),
        ("Up to $80/hour", Salary(min=None, max=80, currency="USD", period="hour")),
        ("$120 - 150k", Salary(min=120000, max=150000, currency="USD", period="year")),
        ("", None),
        ("Competitive", None),
        (None, None),
    ],
)
def test_parse_salary(raw: object, expected: Salary | None) -> None:
    """Free-text pay: ranges, single figures, k/K, decimal commas, currencies, periods."""
    assert parse_salary(raw) == expected


def test_salary_structured_and_in_text() -> None:
    """RemoteOK's 0 is "not stated"; swapped bounds are put right; a range in prose is read
    only with a currency sign."""
    assert salary_from_amounts(0, 0) is None
    assert salary_from_amounts("150000", 120000, "usd") == Salary(
        min=120000, max=150000, currency="USD", period="year"
    )
    assert salary_in_text("The range is $182,208 - $236,580/yr plus equity.") == Salary(
        min=182208, max=236580, currency="USD", period="year"
    )
    assert salary_in_text("Founded 2010 - 2024, 500 - 1000 employees") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1611356746, datetime(2021, 1, 22, 23, 5, 46, tzinfo=UTC)),
        ("1611356746", datetime(2021, 1, 22, 23, 5, 46, tzinfo=UTC)),
        (1779223091267, datetime(2026, 5, 19, 20, 38, 11, 267000, tzinfo=UTC)),
        ("2026-08-04T07:02:31-04:00", datetime(2026, 8, 4, 11, 2, 31, tzinfo=UTC)),
        ("2026-04-07T17:12:35.753+00:00", datetime(2026, 4, 7, 17, 12, 35, 753000, tzinfo=UTC)),
        ("2026-07-26T20:49:11", datetime(2026, 7, 26, 20, 49, 11, tzinfo=UTC)),  # no zone
        ("2026-07-26T20:49:11Z", datetime(2026, 7, 26, 20, 49, 11, tzinfo=UTC)),
        ("2026-07-26 20:49:11+0200", datetime(2026, 7, 26, 18, 49, 11, tzinfo=UTC)),
        ("2026-07-26T20:49:11.1234567Z", datetime(2026, 7, 26, 20, 49, 11, 123456, tzinfo=UTC)),
        ("Tue, 08 Nov 2022 15:06:49 +0100", datetime(2022, 11, 8, 14, 6, 49, tzinfo=UTC)),
        ("2026-08-04", datetime(2026, 8, 4, tzinfo=UTC)),
        ("yesterday", None),
        (0, None),
        (True, None),
        (None, None),
    ],
)
def test_parse_posted(raw: object, expected: datetime | None) -> None:
    """Dates arrive in UTC whatever the board's format."""
    assert parse_posted(raw) == expected


def test_looks_remote() -> None:
    """Location texts that say remote."""
    assert looks_remote("US-Remote, US-San Francisco")
    assert looks_remote(None, "Anywhere in the World")
    assert not looks_remote("London", None)
