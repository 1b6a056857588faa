"""The weekly summary email itself: subject, HTML and plain text from one user's figures.

Pure functions of their inputs, so the same chunk rendered on a retry is byte-for-byte
the same request (the Idempotency-Key then names the same batch).
"""

from __future__ import annotations

import html
from typing import Any

import msgspec

SUBJECT = "Your Weekly Job Search Summary"


class TopMatchView(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    company: str | None = None
    match_score: int = 0
    source_url: str | None = None


class SummaryFigures(msgspec.Struct, frozen=True, kw_only=True):
    """What one user's email says, fixed when the user is claimed for a batch."""

    name: str | None
    jobs_discovered: int
    applications_ready: int
    jobs_applied: int
    week_label: str  # e.g. "Nov 23 - Nov 29, 2026" (with an en dash)
    top_match: TopMatchView | None = None


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def render_text(figures: SummaryFigures, dashboard: str, preferences: str, unsub: str) -> str:
    lines = [
        f"Hi {figures.name or 'there'},",
        "",
        f"Your job search for the week of {figures.week_label}:",
        "",
        f"- Jobs discovered: {figures.jobs_discovered}",
        f"- Resumes generated: {figures.applications_ready}",
        f"- Applications submitted: {figures.jobs_applied}",
    ]
    if figures.top_match is not None:
        top = figures.top_match
        where = f" at {top.company}" if top.company else ""
        lines += ["", f"Top match: {top.title}{where} ({top.match_score}% match)"]
        if top.source_url:
            lines.append(top.source_url)
    lines += [
        "",
        f"Open your dashboard: {dashboard}",
        "",
        "--",
        f"Email preferences: {preferences}",
        f"Unsubscribe from weekly summaries: {unsub}",
    ]
    return "\n".join(lines) + "\n"


def render_html(figures: SummaryFigures, dashboard: str, preferences: str, unsub: str) -> str:
    e = html.escape
    cells = "".join(
        f'<td style="padding:12px 16px;text-align:center"><div style="font-size:28px;'
        f'font-weight:bold">{n}</div><div style="color:#555">{e(label)}</div></td>'
        for n, label in (
            (figures.jobs_discovered, "Jobs discovered"),
            (figures.applications_ready, "Resumes generated"),
            (figures.jobs_applied, "Applications submitted"),
        )
    )
    top = ""
    if figures.top_match is not None:
        match = figures.top_match
        title = e(match.title)
        if match.source_url:
            title = f'<a href="{e(match.source_url)}">{title}</a>'
        where = f" at {e(match.company)}" if match.company else ""
        top = (
            f'<h2 style="font-size:18px">Top match</h2><p>{title}{where} — '
            f"<strong>{match.match_score}% match</strong></p>"
        )
    return (
        '<!DOCTYPE html><html><body style="font-family:sans-serif;max-width:600px">'
        f'<h1 style="font-size:22px">{e(SUBJECT)}</h1>'
        f"<p>Hi {e(figures.name or 'there')},</p>"
        f"<p>Here is your job search for the week of {e(figures.week_label)}:</p>"
        f"<table><tr>{cells}</tr></table>{top}"
        f'<p><a href="{e(dashboard)}">Open your dashboard</a></p>'
        '<hr><p style="font-size:12px;color:#777">'
        f"{e(_plural(figures.jobs_discovered, 'job', 'jobs'))} found for you this week. "
        f'<a href="{e(preferences)}">Email preferences</a> · '
        f'<a href="{e(unsub)}">Unsubscribe from weekly summaries</a></p>'
        "</body></html>"
    )


def figures_from(metadata: dict[str, Any]) -> SummaryFigures:
    """The figures a claimed row holds (`metadata["summary"]`)."""
    return msgspec.convert(metadata["summary"], SummaryFigures)
