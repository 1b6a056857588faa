"""The weekly summary email: figures in both parts, user text escaped, rendering stable."""

from __future__ import annotations

from services.notify.summary import SummaryFigures, TopMatchView, render_html, render_text

FIGURES = SummaryFigures(
    name="<b>Eve</b> & co",
    jobs_discovered=12,
    applications_ready=3,
    jobs_applied=1,
    week_label="Nov 23 – Nov 29, 2026",  # noqa: RUF001 - the email's typographic dash
    top_match=TopMatchView(
        title='Staff "Engineer" <script>alert(1)</script>',
        company="Initech",
        match_score=91,
        source_url="https://jobs.example.com/1?a=1&b=2",
    ),
)
LINKS = ("https://app.test/dashboard", "https://app.test/settings", "https://gw.test/u?token=a.b")


def test_html_has_the_figures_and_escapes_user_text():
    """Names and job titles cannot inject markup; links are attribute-escaped."""
    page = render_html(FIGURES, *LINKS)
    for figure in (">12<", ">3<", ">1<", "91% match", "Initech"):
        assert figure in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; co" in page
    assert 'href="https://jobs.example.com/1?a=1&amp;b=2"' in page
    assert all(f'href="{link}"' in page for link in LINKS)
    assert render_html(FIGURES, *LINKS) == page  # a retry renders the same bytes


def test_text_part_reads_plainly():
    """The plain-text part has the same figures, the top match and every link."""
    text = render_text(FIGURES, *LINKS)
    assert "Jobs discovered: 12" in text and "Resumes generated: 3" in text
    assert "Applications submitted: 1" in text
    assert 'Top match: Staff "Engineer" <script>alert(1)</script> at Initech (91% match)' in text
    assert all(link in text for link in LINKS)
    quiet = render_text(
        SummaryFigures(
            name=None, jobs_discovered=0, applications_ready=1, jobs_applied=0, week_label="w"
        ),
        *LINKS,
    )
    assert quiet.startswith("Hi there,") and "Top match" not in quiet
