"""Quality gates for the LLM steps: what a reply must be before a workflow keeps it.

Each gate returns the problems it finds, phrased so they can be put to the model as they
are ("the resume has no Skills section"); an empty list passes. The workflows hand them to
`ctx.step(..., validate=...)`, which retries with the problems stated, then falls back to
a second model, then keeps the best attempt marked `needs_review`.

- `resume_problems`: a resume (a name heading, a contact block, experience and skills
  sections, a length band), no placeholder text, and no employer, job title, year, degree
  or school the candidate's profile and original resume do not contain.
- `analysis_problems`: non-empty, de-duplicated, short skill strings; a sane
  `experienceYears`.
- `readme_problems`: every skill is in the known vocabulary or written in a README.
- `parse_problems`: the parsed name, e-mail, employers and schools occur in the document.

Facts are compared in a folded form — NFKC, case-folded, accents stripped, "&" as "and",
common abbreviations spelled out ("Sr." = "Senior"), legal-form suffixes dropped ("Inc.",
"GmbH", "S.A.", …) — then found as a run of the source text, or word by word (a layout
or a rephrasing may reorder words, but not add new ones).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cached_property

import msgspec

from shared.ai.schemas import CandidateProfile, ParsedResume, RequirementsAnalysis
from shared.ai.skills import SKILLS

__all__ = [
    "Sources",
    "analysis_problems",
    "fold",
    "parse_problems",
    "readme_problems",
    "resume_problems",
    "unsupported_skills",
]

# ---- folding and finding ----------------------------------------------------------------

_LEGAL = {
    "inc", "incorporated", "llc", "ltd", "limited", "gmbh", "mbh", "ag", "co", "corp",
    "corporation", "company", "plc", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "oy",
    "oyj", "ab", "asa", "kk", "pty", "pvt", "se", "kg", "kgaa", "ug", "lp", "llp", "pllc",
    "pc", "gbr", "ohg", "ev", "sl", "sro", "zoo", "doo", "ltda", "cia", "the",
}  # fmt: skip
_ABBREVIATIONS = {
    "sr": "senior", "snr": "senior", "jr": "junior", "jnr": "junior", "mgr": "manager",
    "engr": "engineer", "eng": "engineer", "dev": "developer", "devs": "developers",
    "mgmt": "management", "intl": "international", "assoc": "associate",
    "asst": "assistant", "dir": "director", "vp": "vice president", "svp": "senior vice "
    "president", "evp": "executive vice president", "admin": "administrator",
    "dept": "department", "univ": "university", "uni": "university", "inst": "institute",
    "tech": "technology", "sw": "software", "swe": "software engineer",
}  # fmt: skip
_FILLER = {"of", "and", "at", "for", "in", "a", "an", "to", "de", "der", "die", "und", "la"}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_DOTTED = re.compile(r"\b((?:\w\.)+\w?)(?!\w)")  # "S.A.", "B.V", "e.V." → "sa", "bv", "ev"
# Letters that carry no combining accent to strip, spelled as their base letters.
_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "\u0131": "i",
    }
)


def fold(text: str) -> list[str]:
    """The comparable words of `text` (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("&", " and ").translate(_LETTERS)
    # "S.A.", "B.V.", "e.V." → one token; hyphenated/wrapped words rejoined.
    text = _DOTTED.sub(lambda m: m.group(1).replace(".", ""), text)
    text = re.sub(r"(\w)[-\u00ad\u2010\u2011]\s*\n\s*(\w)", r"\1\2", text)
    words: list[str] = []
    for word in _WORD.findall(text):
        expanded = _ABBREVIATIONS.get(word, word)
        words.extend(w for w in expanded.split() if w not in _LEGAL)
    return words


class Sources:
    """The facts a generated text may use (profile, original resume), prepared once."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.text = "\n".join(t for t in texts if t)
        words = fold(self.text)
        self.words = set(words)
        self.squashed = "".join(words)
        self.years = set(_YEAR.findall(self.text))
        self.degrees = degree_families(self.text, strict_case=False)
        self.emails = {e.casefold() for e in _EMAIL.findall(self.text)}
        self.digits = re.sub(r"\D", "", self.text)

    @classmethod
    def of_profile(cls, profile: CandidateProfile, resume_text: str | None) -> Sources:
        data = msgspec.to_builtins(profile)
        return cls([*_strings(data), resume_text or ""])

    def has_run(self, value: str) -> bool:
        """Whether `value` occurs as a run of words (order kept) in the sources."""
        words = fold(value)
        return bool(words) and "".join(words) in self.squashed

    def has(self, value: str) -> bool:
        """Whether `value` occurs in the sources: as a run, or each of its words."""
        words = fold(value)
        if not words:
            return True  # nothing checkable (punctuation, a legal form alone)
        if "".join(words) in self.squashed:
            return True
        meaningful = [w for w in words if w not in _FILLER]
        return all(w in self.words for w in meaningful)

    @cached_property
    def word_count(self) -> int:
        return len(self.text.split())


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


# ---- dates, degrees, contact details ----------------------------------------------------

_YEAR = re.compile(r"(?<![\w.,$€£])(?:19[5-9]\d|20\d\d)(?![\w%])")
_MONTHS = (
    r"jan(?:uary|uar)?|feb(?:ruary|ruar)?|m(?:ar(?:ch)?|ärz|aerz)|apr(?:il)?|ma[yi]|"
    r"june?|juni|july?|juli|aug(?:ust)?|sep(?:t(?:ember)?)?|o[ck]t(?:ober)?|nov(?:ember)?|"
    r"de[cz](?:ember)?|spring|summer|autumn|fall|winter"
)
_NOW = r"present|current(?:ly)?|now|today|ongoing|date|heute|aujourd'hui|actuel"
_DATE_RUN = re.compile(
    rf"(?:\b(?:{_MONTHS})\.?\s*,?\s*)?"
    r"(?:\b\d{1,2}[./-])?(?:19|20)\d\d(?:[./-]\d{1,2})?"
    rf"|\b(?:{_NOW})\b|\b(?:since|until|till|from|to|bis|seit)\b|\b(?:{_MONTHS})\b\.?"
    r"|\b[QH][1-4]\b|\b\d{1,2}\+?\s*(?:years?|yrs?|months?|mos?|jahre|monate)\b",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<!\w)\+?\(?\d[\d ()./-]{6,}\d(?!\w)")
_URL = re.compile(r"https?://\S+|\b(?:www\.|linkedin\.com/|github\.com/)\S+", re.IGNORECASE)

_DEGREES: dict[str, tuple[str, ...]] = {
    "bachelor": (r"\bbachelor'?s?\b", r"\bbaccalaureate\b", r"\blicen[cs]iatura\b"),
    "master": (r"\bmaster'?s?\b(?! of business administration)", r"\bmagister\b"),
    "MBA": (r"\bmaster of business administration\b",),
    "doctorate": (r"\bdoctor(?:ate| of philosophy)\b", r"\bdoktor\b", r"\bpromotion\b"),
    "associate": (r"\bassociate'?s? (?:degree|of (?:arts|science|applied))\b",),
    "diploma": (r"\bdiplom(?:a)?\b",),
}
# Short forms only count in their usual capitalisation (so "MS Office" is no degree).
_DEGREE_FORMS: dict[str, str] = {
    "bachelor": r"\bB\.? ?(?:S|A|Sc|Eng|E|Tech|Com|BA|FA|Ed)\.?(?=[\s,;)]|$)|\bBSc\b|\bBEng\b",
    "master": r"\bM\.? ?(?:S|A|Sc|Eng|Phil|Tech|Ed|FA|Res)\.?(?=[\s,;)]|$)|\bMSc\b|\bMEng\b",
    "MBA": r"\bM\.? ?B\.? ?A\b\.?|\bEMBA\b",
    "doctorate": r"\bPh\.? ?D\b\.?|\bDPhil\b|\bD\.? ?Sc\b|\bEd\.? ?D\b",
    "associate": r"\bA\.? ?A\.? ?S\b\.?|\bA\.A\.",
}


def degree_families(text: str, *, strict_case: bool = True) -> set[str]:
    """The kinds of degree `text` names ("bachelor", "master", "MBA", "doctorate", …)."""
    found = set()
    lowered = unicodedata.normalize("NFKC", text).casefold()
    for family, patterns in _DEGREES.items():
        if any(re.search(p, lowered) for p in patterns):
            found.add(family)
    flags = 0 if strict_case else re.IGNORECASE
    for family, pattern in _DEGREE_FORMS.items():
        if re.search(pattern, text, flags):
            found.add(family)
    return found


# ---- the resume gate --------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_EXPERIENCE = re.compile(
    r"experience|employment|work history|career|berufserfahrung|erfahrung|expérience|"
    r"experiencia|esperienz",
    re.IGNORECASE,
)
_SKILLS = re.compile(
    r"skill|competenc|technolog|expertise|tools|tech stack|kenntnisse|fähigkeiten|"
    r"compétences|habilidades",
    re.IGNORECASE,
)
_EDUCATION = re.compile(
    r"education|academic|qualification|ausbildung|studium|formation", re.IGNORECASE
)
_PLACEHOLDERS = [
    (
        re.compile(
            r"\[[^\]\n]{0,40}\b(?:your|name|company|employer|title|date|year|city|state|phone|"
            r"e-?mail|address|insert|degree|university|school|position|role|number|link|url|"
            r"location|skill|add|enter|placeholder|X{2,})\b[^\]\n]{0,40}\](?!\()",
            re.IGNORECASE,
        ),
        "a bracketed placeholder",
    ),
    (re.compile(r"\{\{[^}\n]*\}\}|\{[A-Za-z_ ]{2,30}\}"), "a template placeholder"),
    (re.compile(r"<\s*(?:insert|your|add|enter)\b[^>\n]*>", re.IGNORECASE), "an insert marker"),
    (re.compile(r"\blorem ipsum\b", re.IGNORECASE), "lorem ipsum"),
    (re.compile(r"\b(?:TBD|TODO|TBA|FIXME)\b"), "a to-do marker"),
    (re.compile(r"\b(?:19|20)X{2}\b|\bX{2,}%|\$X+\b|\b(?:MM|YYYY|yyyy)\b"), "a dummy value"),
    (
        re.compile(
            r"\b(?:your (?:name|email|phone|address|city|company)|company name|job title|"
            r"university name|school name|degree name|city, state)\b",
            re.IGNORECASE,
        ),
        "a template phrase",
    ),
]
# Segments that say how or where someone worked, not for whom.
_WORK_WORDS = {
    "remote", "hybrid", "onsite", "on site", "full time", "fulltime", "part time",
    "contract", "contractor", "freelance", "self employed", "internship", "temporary",
    "permanent", "present", "current", "various locations", "worldwide", "multiple clients",
}  # fmt: skip
_DASHES = "\u2012\u2013\u2014\u2015"  # figure, en, em dash, horizontal bar
_SEPARATORS = re.compile(
    rf"\s+[{_DASHES}\-|·•@]\s+|[{_DASHES}|·•]|\s+at\s+|\s+@\s*|[,;()/\[\]:]|\s{{2,}}|\t"
)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
MIN_WORDS, MAX_WORDS = 120, 1600


def _strip_markdown(line: str) -> str:
    line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)  # links: their text
    line = re.sub(r"[*_`>#]+", " ", line)
    return line.strip()


def _sections(lines: list[str]) -> list[tuple[str, int, list[str]]]:
    """(heading, level, lines) of each heading's section, up to the next of its level."""
    found: list[tuple[str, int, list[str]]] = []
    for index, line in enumerate(lines):
        match = _HEADING.match(line.strip())
        if match is None:
            continue
        level = len(match.group(1))
        body: list[str] = []
        for later in lines[index + 1 :]:
            other = _HEADING.match(later.strip())
            if other is not None and len(other.group(1)) <= level:
                break
            body.append(later)
        found.append((_strip_markdown(match.group(2)), level, body))
    return found


def _entry_lines(body: list[str]) -> list[str]:
    """The lines of a section that name an entry (a role, a school), not describe it."""
    entries = []
    for raw in body:
        line = raw.strip()
        if not line or _BULLET.match(line):
            continue
        if _HEADING.match(line) or line.startswith(("*", "_")):
            entries.append(line)  # a heading, a bold or italic line (bullets are out)
        elif len(line) <= 140 and _YEAR.search(line):
            entries.append(line)  # "Engineer, Acme GmbH (2019 - Present)"
    return entries


def _segments(line: str) -> list[str]:
    text = _strip_markdown(line)
    text = _DATE_RUN.sub(" ", text)
    parts = [p.strip(" .-" + _DASHES) for p in _SEPARATORS.split(text)]
    kept = []
    for part in parts:
        words = fold(part)
        if not words or all(w.isdigit() for w in words):
            continue
        if " ".join(words) in _WORK_WORDS:
            continue
        kept.append(part)
    return kept


def resume_problems(
    markdown: str, profile: CandidateProfile, resume_text: str | None = None
) -> list[str]:
    """What makes `markdown` not a resume of this candidate built from their facts only."""
    sources = Sources.of_profile(profile, resume_text)
    problems: list[str] = []
    text = markdown.strip()
    lines = text.splitlines()
    headings = [(len(m.group(1)), m.group(2)) for m in map(_HEADING.match, lines) if m]
    sections = _sections(lines)

    # Shape: a name heading, a contact block, the sections, a sane length.
    top = [h for level, h in headings if level == 1]
    if not top:
        problems.append("it has no level-1 heading with the candidate's name: it is not a resume")
    elif (
        profile.full_name and fold(profile.full_name) and not _same_name(top[0], profile.full_name)
    ):
        problems.append(
            f"the top heading {_strip_markdown(top[0])!r} is not the candidate's name "
            f"{profile.full_name!r}"
        )
    first_section = next((i for i, ln in enumerate(lines) if ln.startswith("## ")), len(lines))
    head = "\n".join(lines[:first_section])
    has_contact = bool(_EMAIL.search(head) or _PHONE.search(head) or _URL.search(head)) or bool(
        profile.location and profile.location.strip() and profile.location in head
    )
    if not has_contact:
        problems.append(
            "there is no contact block (e-mail, phone, profile link or location) under the name"
        )
    needs_experience = bool(profile.experience) or bool(resume_text and resume_text.strip())
    if needs_experience and not any(_EXPERIENCE.search(h) for h, _, _ in sections):
        problems.append("it has no Experience section")
    if not any(_SKILLS.search(h) for h, _, _ in sections):
        problems.append("it has no Skills section")
    words = len(text.split())
    # A thin profile makes a short resume: the floor follows what there is to say.
    low = (
        MIN_WORDS
        if sources.word_count >= 2 * MIN_WORDS
        else max(25, min(MIN_WORDS // 2, sources.word_count))
    )
    if words < low:
        problems.append(f"it is {words} words long; a resume needs at least {low}")
    elif words > MAX_WORDS:
        problems.append(f"it is {words} words long; keep it under {MAX_WORDS} (two pages)")

    # Placeholders: text a template left in, unless the candidate's own data says it.
    for pattern, what in _PLACEHOLDERS:
        for match in pattern.finditer(text):
            if not sources.has_run(match.group(0)):
                problems.append(f"it contains {what}: {match.group(0)!r}")
                break

    # Facts: years, contact details, employers and titles, degrees and schools.
    invented_years = sorted(set(_YEAR.findall(text)) - sources.years)
    if invented_years:
        problems.append(
            "it gives years the profile and resume do not contain: " + ", ".join(invented_years)
        )
    for email in sorted({e.casefold() for e in _EMAIL.findall(text)} - sources.emails):
        problems.append(f"the e-mail address {email!r} is not the candidate's")
    for phone in _PHONE.findall(head):  # phones belong to the contact block; dates do not
        digits = re.sub(r"\D", "", phone)
        # The subscriber part: "+49 (0)89 1234 5678" and "089 12345678" are one number.
        if len(digits) >= 7 and digits[-7:] not in sources.digits:
            problems.append(f"the phone number {phone.strip()!r} is not the candidate's")
    seen: set[str] = set()
    for heading, _, body in sections:
        if _EXPERIENCE.search(heading):
            kind = "employer or job title"
        elif _EDUCATION.search(heading):
            kind = "school or degree"
        else:
            continue
        for line in _entry_lines(body):
            for segment in _segments(line):
                if kind == "school or degree" and degree_families(segment):
                    continue  # checked by family below
                key = " ".join(fold(segment))
                if key in seen or sources.has(segment):
                    continue
                seen.add(key)
                problems.append(
                    f"the {kind} {segment!r} is in neither the profile nor the original resume"
                )
    invented_degrees = sorted(degree_families(text) - sources.degrees)
    for family in invented_degrees:
        problems.append(f"it names a {family} degree the profile and resume do not contain")
    return problems


def _same_name(heading: str, name: str) -> bool:
    wanted, got = fold(name), fold(_strip_markdown(heading))
    # Middle names or initials may be dropped; the first and last must be there.
    return bool(got) and wanted[0] in got and wanted[-1] in got


# ---- the other gates --------------------------------------------------------------------

MAX_SKILL_CHARS, MAX_SKILL_WORDS, MAX_YEARS = 60, 6, 40


def analysis_problems(analysis: RequirementsAnalysis) -> list[str]:
    """A usable requirements analysis: skills present, short, unique; years sane."""
    problems: list[str] = []
    skills = [*analysis.required_skills, *analysis.preferred_skills]
    if not [s for s in analysis.required_skills if s.strip()]:
        problems.append("requiredSkills is empty: list the skills the posting asks for")
    seen: dict[str, str] = {}
    for skill in skills:
        name = " ".join(skill.split())
        if not name:
            problems.append("a skill is an empty string")
            continue
        if len(name) > MAX_SKILL_CHARS or len(name.split()) > MAX_SKILL_WORDS or "\n" in skill:
            problems.append(
                f"{name[:80]!r} is not a short skill name (at most {MAX_SKILL_WORDS} words)"
            )
        key = " ".join(fold(name)) or name.casefold()
        if key in seen:
            problems.append(f"{name!r} is listed twice (also as {seen[key]!r})")
        seen[key] = name
    years = analysis.experience_years
    if years is not None and not 0 <= years <= MAX_YEARS:
        problems.append(f"experienceYears {years} is not a sane number of years (0 to 40)")
    return problems


_KNOWN = {
    " ".join(fold(alias))
    for canonical, aliases in SKILLS.items()
    for alias in (canonical, *aliases)
    if fold(alias)
}


def unsupported_skills(skills: Sequence[str], readmes: Sequence[tuple[str, str]]) -> list[str]:
    """The skills that are neither a known technology nor written in one of the READMEs."""
    text = "\n".join(body for _, body in readmes)
    folded = " " + " ".join(fold(text)) + " "
    found = []
    for skill in skills:
        key = " ".join(fold(skill))
        if not key or key in _KNOWN or f" {key} " in folded:
            continue
        found.append(skill)
    return found


def readme_problems(skills: Sequence[str], readmes: Sequence[tuple[str, str]]) -> list[str]:
    """Each skill is a known technology or is written in one of the READMEs."""
    return [
        f"{skill!r} is neither a known technology nor named in the READMEs"
        for skill in unsupported_skills(skills, readmes)
    ]


def parse_problems(resume: ParsedResume, text: str) -> list[str]:
    """The parsed entities (name, e-mail, employers, schools) occur in the document."""
    if not text.strip():
        return []  # a scan without a text layer: nothing to compare with
    sources = Sources([text])
    problems = []
    if resume.name and not sources.has(resume.name):
        problems.append(f'the name "{resume.name}" does not occur in the resume')
    if resume.email and resume.email.casefold() not in sources.emails:
        problems.append(f'the e-mail "{resume.email}" does not occur in the resume')
    for job in resume.experience:
        if job.company.strip() and not sources.has(job.company):
            problems.append(f'employer "{job.company}" does not occur in the resume')
    for school in resume.education:
        if school.institution.strip() and not sources.has(school.institution):
            problems.append(f'school "{school.institution}" does not occur in the resume')
    if not (resume.name or resume.email or resume.experience or resume.education):
        problems.append("no name, e-mail, experience or education was found in the resume")
    return problems
