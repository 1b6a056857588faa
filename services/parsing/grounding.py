"""Checking a model's resume structure against the document: nothing made up reaches a profile.

Every employer, school and e-mail address in the structure must occur in the document's
text. Both sides are compared in a squashed form — NFKC, lower case, words hyphenated or
wrapped across lines rejoined, then only letters, digits and "@" kept — so that "ACME,
Inc." matches "Acme Inc" and "Con-\\nsulting" matches "Consulting". A name that is not
found as a run may still be a column layout's interleaving: it passes when each of its
words occurs in the document as a word. An invented employer fails both.
"""

from __future__ import annotations

import re
import unicodedata

import msgspec

from shared.ai import ParsedResume

__all__ = ["Discrepancy", "describe", "drop_invented", "find_invented"]


class Discrepancy(msgspec.Struct, frozen=True, kw_only=True):
    """One value of the structure that the document does not contain."""

    kind: str  # "employer", "school" or "email"
    value: str
    index: int | None = None  # the experience / education entry it belongs to


_WRAP = re.compile(r"(\w)[-\u00ad\u2010\u2011]\s*\n\s*(\w)")
_KEEP = re.compile(r"[^\w@]|_", re.UNICODE)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Words too common to prove anything on their own.
_FILLER = {"the", "of", "and", "at", "for", "in", "inc", "llc", "ltd", "co", "corp", "&"}


class Document:
    """A document's text, prepared once for many look-ups."""

    def __init__(self, text: str) -> None:
        folded = unicodedata.normalize("NFKC", text).casefold()
        folded = _WRAP.sub(r"\1\2", folded)
        self.squashed = _KEEP.sub("", folded)
        self.words = set(_WORD.findall(folded))
        # A word wrapped with a hyphen is also a word once rejoined (done above); one that
        # the layout split without a hyphen is caught by the squashed run instead.

    def contains(self, value: str) -> bool:
        folded = unicodedata.normalize("NFKC", value).casefold()
        squashed = _KEEP.sub("", folded)
        if not squashed:
            return True  # nothing checkable (punctuation only)
        if squashed in self.squashed:
            return True
        words = [w for w in _WORD.findall(folded) if w not in _FILLER]
        return bool(words) and all(w in self.words for w in words)


def find_invented(resume: ParsedResume, text: str) -> list[Discrepancy]:
    """The employers, schools and e-mail addresses of `resume` that `text` does not hold."""
    document = Document(text)
    found: list[Discrepancy] = []
    if resume.email and not document.contains(resume.email):
        found.append(Discrepancy(kind="email", value=resume.email))
    for index, job in enumerate(resume.experience):
        if job.company.strip() and not document.contains(job.company):
            found.append(Discrepancy(kind="employer", value=job.company, index=index))
    for index, school in enumerate(resume.education):
        if school.institution.strip() and not document.contains(school.institution):
            found.append(Discrepancy(kind="school", value=school.institution, index=index))
    return found


def describe(discrepancies: list[Discrepancy]) -> str:
    """The discrepancies in words, for the model's second try and for `warnings`."""
    parts = [f'{d.kind} "{d.value}" does not occur in the resume' for d in discrepancies]
    return "; ".join(parts) + "."


def drop_invented(
    resume: ParsedResume, discrepancies: list[Discrepancy]
) -> tuple[ParsedResume, list[str]]:
    """`resume` without the entries that hold an invented value, and a warning for each."""
    if not discrepancies:
        return resume, []
    jobs = {d.index for d in discrepancies if d.kind == "employer"}
    schools = {d.index for d in discrepancies if d.kind == "school"}
    warnings: list[str] = []
    for d in discrepancies:
        if d.kind == "email":
            warnings.append(f'dropped the e-mail "{d.value}": it does not occur in the document')
        elif d.kind == "employer":
            title = resume.experience[d.index or 0].title
            what = f'"{title}" at "{d.value}"' if title else f'at "{d.value}"'
            warnings.append(
                f"dropped the experience {what}: the employer does not occur in the document"
            )
        else:
            warnings.append(
                f'dropped the education at "{d.value}": the school does not occur in the document'
            )
    cleaned = msgspec.structs.replace(
        resume,
        email=None if any(d.kind == "email" for d in discrepancies) else resume.email,
        experience=[job for i, job in enumerate(resume.experience) if i not in jobs],
        education=[school for i, school in enumerate(resume.education) if i not in schools],
    )
    return cleaned, warnings
