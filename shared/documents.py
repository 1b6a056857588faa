"""Text out of resume files: PDF through pypdf, DOCX through python-docx (body, tables, headers).

Both are CPU-bound and run in a thread (`extract_text`). Inputs come from users, so the
readers are bounded: page count for PDFs, uncompressed size for DOCX zips (zip bombs),
and a broken file is a NonRetryableError (retrying will not mend it).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from typing import Literal

from shared.errors import NonRetryableError

__all__ = [
    "DocumentError",
    "FileType",
    "NoTextError",
    "check_document",
    "docx_text",
    "drop_running_lines",
    "extract_text",
    "normalize_text",
    "pdf_text",
    "sniff_file_type",
]

log = logging.getLogger(__name__)

FileType = Literal["pdf", "docx"]

MAX_PDF_PAGES = 30
MAX_DOCX_UNCOMPRESSED = 40 * 1024 * 1024
MAX_DOCX_RATIO = 200  # uncompressed / compressed; real documents stay far below
MAX_TEXT_CHARS = 200_000

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


class DocumentError(NonRetryableError):
    """A file that is not the document it claims to be, or that cannot be read safely."""


class NoTextError(DocumentError):
    """A readable document with no text in it (a scanned PDF without a text layer)."""


def sniff_file_type(data: bytes) -> FileType | None:
    """The type the bytes really are (by magic number), or None."""
    if data[:1024].lstrip(b"\x00\t\r\n ").startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "docx"
    return None


def check_document(data: bytes, file_type: FileType) -> None:
    """Refuse, by a cheap look at the bytes, what cannot be the `file_type` document it claims.

    Empty files, a type that does not match the bytes, and PDFs cut short (no `%%EOF` near
    the end: an interrupted upload) each get their own message; deeper damage is found by
    the readers.
    """
    if not data:
        raise DocumentError("the file is empty (0 bytes)")
    actual = sniff_file_type(data)
    if actual is None:
        raise DocumentError(f"the file is not a {file_type.upper()} (nor any document we read)")
    if actual != file_type:
        raise DocumentError(
            f"fileType is {file_type!r} but the file is a {actual.upper()}; "
            "the bytes decide what a file is"
        )
    # Incremental updates append after an earlier %%EOF, and some writers add trailing
    # bytes; the last one must still sit near the end of a complete file.
    if file_type == "pdf" and b"%%EOF" not in data[-2048:]:
        raise DocumentError("the PDF is truncated (no %%EOF marker at its end)")


async def extract_text(data: bytes, file_type: FileType) -> str:
    """The document's text, extracted in a worker thread."""
    if file_type == "pdf":
        return await asyncio.to_thread(pdf_text, data)
    if file_type == "docx":
        return await asyncio.to_thread(docx_text, data)
    raise DocumentError(f"unsupported file type {file_type!r}")


def pdf_text(data: bytes) -> str:
    """All pages' text in reading order as pypdf sees it, normalised."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if sniff_file_type(data) != "pdf":
        raise DocumentError("the file is not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted")
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise DocumentError(f"the PDF has {len(pages)} pages; at most {MAX_PDF_PAGES} are read")
        parts = [page.extract_text() or "" for page in pages]
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # pypdf raises a variety of errors on malformed input; all mean "unreadable".
        raise DocumentError(f"the PDF cannot be read: {type(exc).__name__}") from exc
    return normalize_text("\n".join(drop_running_lines(parts)))


def _edge_keys(page: str, depth: int = 2) -> set[str]:
    lines = [line.strip() for line in page.splitlines() if line.strip()]
    edges = lines[:depth] + lines[-depth:]
    # Digits vary between pages ("Page 2 of 3", a date stamp): compare without them.
    return {re.sub(r"\d+", "#", line.casefold()) for line in edges}


def drop_running_lines(pages: list[str]) -> list[str]:
    """Pages without their running header/footer: a line among the first or last two of
    two or more pages ("Jane Doe — Resume", "Page 2 of 3") is kept only on the first."""
    if len(pages) < 2:
        return pages
    counts: dict[str, int] = {}
    for page in pages:
        for key in _edge_keys(page):
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, n in counts.items() if n >= 2}
    if not running:
        return pages
    out = [pages[0]]
    for page in pages[1:]:
        edges = _edge_keys(page)
        kept = [
            line
            for line in page.splitlines()
            if not (
                line.strip() and re.sub(r"\d+", "#", line.strip().casefold()) in running & edges
            )
        ]
        out.append("\n".join(kept))
    return out


def docx_text(data: bytes) -> str:
    """Header, body (paragraphs and tables in document order), text boxes, footer."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    _check_zip(data)
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DocumentError(f"the DOCX cannot be read: {type(exc).__name__}") from exc
    except Exception as exc:  # lxml raises XMLSyntaxError (not importable without lxml types)
        if type(exc).__name__ == "XMLSyntaxError":
            raise DocumentError("the DOCX holds malformed XML") from exc
        raise

    lines: list[str] = []
    seen_parts: set[int] = set()

    def add_part(element: object) -> None:
        if id(element) in seen_parts:
            return
        seen_parts.add(id(element))
        lines.extend(_block_lines(element))

    # Contact lines often live in the page header: read headers first, like a reader would.
    for section in document.sections:
        for header in (section.first_page_header, section.header, section.even_page_header):
            if not header.is_linked_to_previous:
                add_part(header._element)
    add_part(document.element.body)
    for section in document.sections:
        for footer in (section.first_page_footer, section.footer, section.even_page_footer):
            if not footer.is_linked_to_previous:
                add_part(footer._element)
    return normalize_text("\n".join(lines))


def _check_zip(data: bytes) -> None:
    if sniff_file_type(data) != "docx":
        raise DocumentError("the file is not a DOCX (not a zip archive)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise DocumentError("the DOCX is not a valid zip archive") from exc
    total = sum(info.file_size for info in infos)
    compressed = max(sum(info.compress_size for info in infos), 1)
    if total > MAX_DOCX_UNCOMPRESSED or total / compressed > MAX_DOCX_RATIO:
        raise DocumentError("the DOCX expands to too much data to read safely")
    if not any(info.filename == "word/document.xml" for info in infos):
        raise DocumentError("the zip archive holds no word/document.xml")


def _block_lines(container: object) -> Iterator[str]:
    """Lines of a body/header/cell element: paragraphs, tables (row by row) and text boxes."""
    for child in getattr(container, "iterchildren", lambda: iter(()))():
        tag = child.tag
        if tag == f"{{{W_NS}}}p":
            yield _paragraph_text(child)
            # Text boxes (w:txbxContent) hang inside runs of a paragraph.
            for box in child.iter(f"{{{W_NS}}}txbxContent"):
                yield from _block_lines(box)
        elif tag == f"{{{W_NS}}}tbl":
            yield from _table_lines(child)
        elif tag == f"{{{W_NS}}}sdt":
            content = child.find(f"{{{W_NS}}}sdtContent")
            if content is not None:
                yield from _block_lines(content)


def _table_lines(table: object) -> Iterator[str]:
    """A data row ("Languages | Python, Go") is one "cell: cell" line; a layout row whose
    cells hold several paragraphs (a two-column resume) is read cell by cell, top to
    bottom, left to right. A vertically merged cell appears once."""
    for row in table.iterchildren(f"{{{W_NS}}}tr"):  # type: ignore[attr-defined]
        cells: list[list[str]] = []
        for cell in row.iterchildren(f"{{{W_NS}}}tc"):
            props = cell.find(f"{{{W_NS}}}tcPr")
            if props is not None:
                merge = props.find(f"{{{W_NS}}}vMerge")
                if merge is not None and merge.get(f"{{{W_NS}}}val") in (None, "continue"):
                    continue
            cells.append(list(_block_lines(cell)))
        filled = [[line for line in lines if line.strip()] for lines in cells]
        if len(filled) > 1 and all(len(lines) <= 1 for lines in filled):
            joined = ": ".join(lines[0].strip() for lines in filled if lines)
            if joined:
                yield joined
            continue
        for lines in cells:
            yield from lines


def _paragraph_text(paragraph: object) -> str:
    """A paragraph's text with tabs and breaks, including hyperlinks, fields and smart tags."""
    parts: list[str] = []

    def walk(node: object) -> None:
        for child in node.iterchildren():  # type: ignore[attr-defined]
            tag = child.tag
            if tag == f"{{{W_NS}}}txbxContent":
                continue  # a text box is read as a block of its own
            if tag == f"{{{W_NS}}}t":
                parts.append(child.text or "")
            elif tag == f"{{{W_NS}}}tab":
                # w:tab inside a run is a tab character; inside w:tabs it is a tab-stop setting.
                if node.tag == f"{{{W_NS}}}r":  # type: ignore[attr-defined]
                    parts.append("\t")
            elif tag in (f"{{{W_NS}}}br", f"{{{W_NS}}}cr"):
                parts.append("\n")
            else:
                walk(child)

    walk(paragraph)
    return "".join(parts)


_SOFT_HYPHENS = str.maketrans({"\u00ad": "", "\u200b": "", "\ufeff": ""})
_DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2212": "-", "\u2012": "-"})


def normalize_text(text: str) -> str:
    """Tidy extracted text without changing its meaning.

    NFKC (ligatures such as "ﬁ" → "fi"), soft hyphens removed, odd dashes unified, runs of
    spaces/tabs collapsed (keeping one tab where a tab stop separated columns), letter-spaced
    headings ("C O N TAC T") joined, blank-line runs collapsed, capped in length.
    """
    # Word-for-Mac PDFs spell a hyphen as "-", soft hyphen, U+2010: one hyphen.
    text = text.replace("-\u00ad\u2010", "-")
    text = unicodedata.normalize("NFKC", text).translate(_SOFT_HYPHENS).translate(_DASHES)
    # A lone CR inside a line (seen between words in Quartz PDFs) is whitespace, not a break.
    text = text.replace("\r\n", "\n").replace("\r", " ")
    out: list[str] = []
    blank = False
    for raw in text.split("\n"):
        line = raw.replace("\u00a0", " ").strip(" \t")
        gaps = re.findall(r"[ \t]+", line)
        tabbed = sum("\t" in gap for gap in gaps)
        if gaps and (tabbed == len(gaps) or (tabbed > 2 and tabbed * 2 >= len(gaps))):
            # Some PDF producers put a tab between every word: those tabs are spaces.
            line = re.sub(r"[ \t]+", " ", line)
        else:
            # A tab with padding around it is a column gap (a tab stop): keep one tab.
            line = re.sub(r" *\t[\t ]*", "\t", line)
        line = _join_letter_spaced(re.sub(r" {3,}", "  ", line))
        line = re.sub(r" {2,}", " ", line)
        if not line:
            if not blank and out:
                out.append("")
            blank = True
            continue
        blank = False
        out.append(line)
    return "\n".join(out).strip()[:MAX_TEXT_CHARS]


def _join_letter_spaced(line: str) -> str:
    """'S E N I O R  D E V' → 'SENIOR DEV' (letter-spaced headings from some PDF makers)."""
    tokens = line.split()
    if (
        len(tokens) >= 4
        and all(len(token) <= 3 for token in tokens)
        and sum(len(token) == 1 for token in tokens) * 10 >= len(tokens) * 6
    ):
        return " ".join(word.replace(" ", "") for word in re.split(r" {2,}", line))
    return line
