"""The same resume as a PDF and as a DOCX yields the same structure (offline structurer)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from shared.ai.heuristics import parse_resume
from shared.documents import docx_text, pdf_text
from tests.support.documents import docx_bytes, pdf_bytes

SYNTHETIC = [
    "Priya Raman",
    "priya.raman@example.net | (206) 555-0199 | Seattle, WA",
    "SUMMARY",
    "Backend engineer who likes boring, reliable systems.",
    "EXPERIENCE",
    "Staff Engineer, Acme, Inc. Mar 2019 - Present",
    "- Led the move of billing to PostgreSQL and Kafka.",
    "Software Engineer at Birch Consulting Group 2015 - 2019",
    "- Built Python services on AWS.",
    "EDUCATION",
    "B.S. Computer Science, University of Washington, 2015",
    "SKILLS",
    "Python, Go, PostgreSQL, Kafka, AWS, Docker",
]


def _both(lines: list[str]) -> tuple[dict[str, object], dict[str, object]]:
    from_pdf = parse_resume(pdf_text(pdf_bytes(lines)))
    from_docx = parse_resume(docx_text(docx_bytes(lines)))
    return msgspec.to_builtins(from_pdf), msgspec.to_builtins(from_docx)


def test_synthetic_resume_is_the_same_from_pdf_and_docx() -> None:
    """A typical resume written both ways: identical structure, and the expected one."""
    from_pdf, from_docx = _both(SYNTHETIC)
    assert from_pdf == from_docx
    assert from_pdf["name"] == "Priya Raman"
    assert [(e["title"], e["company"]) for e in from_pdf["experience"]] == [
        ("Staff Engineer", "Acme, Inc."),
        ("Software Engineer", "Birch Consulting Group"),
    ]
    assert from_pdf["education"][0]["institution"] == "University of Washington"


@pytest.mark.parametrize("name", ["john_doe_simple.docx", "test_resume_minimal.docx"])
def test_fixture_docx_rewritten_as_pdf_gives_the_same_structure(
    fixtures_dir: Path, name: str
) -> None:
    """A recorded DOCX's lines, typeset as a PDF, parse to what the DOCX parses to."""
    lines = docx_text((fixtures_dir / "resumes" / name).read_bytes()).splitlines()
    from_pdf, from_docx = _both(lines)
    assert from_pdf == from_docx
    assert from_pdf["experience"]


def test_running_headers_and_footers_are_kept_once() -> None:
    """A header and a page footer repeated on every page appear once in the text."""
    header = "Priya Raman — Resume"
    lines = [header, *SYNTHETIC[1:8], "Page 1 of 2", header, *SYNTHETIC[8:], "Page 2 of 2"]
    text = pdf_text(pdf_bytes(lines, per_page=9))  # the header opens each page
    assert text.count(header) == 1
    assert text.count("Page ") == 1
    assert "Python, Go, PostgreSQL" in text


def test_docx_data_table_rows_become_cell_cell_lines() -> None:
    """A table of one-line cells reads as "cell: cell" rows; the layout-table fixture
    elsewhere stays column by column."""
    import io

    import docx

    document = docx.Document()
    document.add_paragraph("SKILLS")
    table = document.add_table(rows=2, cols=2)
    for row, (label, value) in zip(
        table.rows, (("Languages", "Python, Go"), ("Cloud", "AWS, GCP")), strict=True
    ):
        row.cells[0].text, row.cells[1].text = label, value
    out = io.BytesIO()
    document.save(out)
    text = docx_text(out.getvalue())
    assert text.splitlines() == ["SKILLS", "Languages: Python, Go", "Cloud: AWS, GCP"]
    assert parse_resume(text).skills == ["Python", "Go", "AWS", "GCP"]
