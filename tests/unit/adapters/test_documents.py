"""PDF and DOCX text extraction on the recorded resumes, and refusal of unsafe files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from shared.documents import (
    DocumentError,
    docx_text,
    extract_text,
    normalize_text,
    pdf_text,
    sniff_file_type,
)


async def test_docx_reads_header_table_cells_and_tabs(fixtures_dir: Path) -> None:
    """The two-column DOCX yields its page-header contact line and both table columns in order."""
    text = docx_text(
        (fixtures_dir / "resumes" / "GENERATED_avery_quinlan_two_column_table.docx").read_bytes()
    )
    lines = text.splitlines()
    assert lines[0].startswith("avery.quinlan@example.com")  # the page header comes first
    assert "github.com/avery-quinlan-example" in lines[0]  # a w:hyperlink's text
    assert text.index("SKILLS") < text.index("SUMMARY") < text.index("EXPERIENCE")
    assert "Senior Data Engineer\tMar 2021 \u2013 Present" in lines  # a tab stop kept as one tab
    assert "Fernbrook Payments — Remote (US)" in lines


async def test_simple_docx_paragraphs(fixtures_dir: Path) -> None:
    """Plain DOCX paragraphs come out line by line; the minimal one is read too."""
    simple = docx_text((fixtures_dir / "resumes" / "john_doe_simple.docx").read_bytes())
    assert simple.startswith("JOHN DOE\nSoftware Engineer\nEmail: john.doe@example.com")
    minimal = await extract_text(
        (fixtures_dir / "resumes" / "test_resume_minimal.docx").read_bytes(), "docx"
    )
    assert "Senior Software Engineer - Tech Corp" in minimal


async def test_pdf_text_is_normalised(fixtures_dir: Path) -> None:
    """Ligatures, letter-spaced headings and per-word tabs are tidied."""
    openresume = pdf_text((fixtures_dir / "resumes" / "john_doe_openresume.pdf").read_bytes())
    assert "fixed 5 bugs" in openresume and "\ufb01" not in openresume
    sidebar = pdf_text(
        (fixtures_dir / "resumes" / "john_doe_senior_backend_sidebar.pdf").read_bytes()
    )
    assert sidebar.startswith("JOHN DOE\nSENIOR BACKEND DEVELOPER\nCONTACT")
    leo = pdf_text((fixtures_dir / "resumes" / "leo_leopard_laverne_sample.pdf").read_bytes())
    assert "Leo Leopard" in leo and "(909) 555-5555" in leo and "on-campus position" in leo


async def test_every_recorded_resume_extracts(fixtures_dir: Path) -> None:
    """Every fixture resume gives a few hundred characters or more."""
    for path in sorted((fixtures_dir / "resumes").iterdir()):
        kind = sniff_file_type(path.read_bytes())
        assert kind == path.suffix.removeprefix(".")
        assert len(await extract_text(path.read_bytes(), kind)) > 250, path.name


async def test_bad_files_are_document_errors() -> None:
    """Non-documents, broken zips and zip bombs are refused as DocumentError (non-retryable)."""
    with pytest.raises(DocumentError):
        pdf_text(b"<html>not a pdf</html>")
    with pytest.raises(DocumentError):
        pdf_text(b"%PDF-1.4\n garbage without structure")
    with pytest.raises(DocumentError):
        docx_text(b"PK\x03\x04 truncated")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<" + b"a" * 60_000_000)
    with pytest.raises(DocumentError, match="too much data"):
        docx_text(bomb.getvalue())


async def test_normalize_keeps_meaningful_structure() -> None:
    """Blank-line runs collapse, soft hyphens vanish, a column tab survives."""
    assert normalize_text("a\n\n\n\nb") == "a\n\nb"
    assert normalize_text("on-\u00ad\u2010campus co\u00adop") == "on-campus coop"
    assert (
        normalize_text("Engineer\tJan 2020 \u2013 Present") == "Engineer\tJan 2020 \u2013 Present"
    )
    assert normalize_text("C O N TAC T") == "CONTACT"
