"""Resume text → ParsedResume by plain rules: the offline stand-in's parser.

No model, no network: contact details by pattern, sections by their headings, jobs by
their date ranges, degrees by their keywords. Good enough to drive the workflows end to
end and to fill a profile from a typical single- or two-column resume; not a substitute
for Claude on hard layouts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from shared.ai.schemas import Education, Experience, ParsedResume, Project
from shared.ai.skills import find_skills

__all__ = ["parse_resume"]

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(
    r"(?<![\w/])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\d{2,4})[\s.-]?\d{3,4}[\s.-]?\d{3,4}(?!\w)"
)
URL = re.compile(
    r"(?:https?://)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?:/[^\s|,]*)?", re.I
)

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_SEASON = r"(?:spring|summer|fall|autumn|winter)"
_DATE = rf"(?:(?:{_MONTH}|{_SEASON})\s+\d{{4}}|\d{{1,2}}/\d{{4}}|\d{{4}})"
_END = rf"(?:{_DATE}|present|current|now|today)"
DATE_RANGE = re.compile(
    rf"(?P<start>{_DATE})\s*(?:-|\u2013|—|to|until|,(?=\s*(?:19|20)\d{{2}}\b))\s*(?P<end>{_END})",
    re.I,
)
SINGLE_DATE = re.compile(
    rf"(?:(?:{_MONTH}|{_SEASON})\s+\d{{4}}|(?<![\d/.])(?:19|20)\d{{2}}(?![\d/.]))", re.I
)
DANGLING_RANGE = re.compile(rf"^{_DATE}\s*(?:-|\u2013|—|to)$", re.I)

SECTIONS = {
    "summary": {
        "summary",
        "professional summary",
        "profile",
        "professional profile",
        "objective",
        "career objective",
        "about",
        "about me",
        "career summary",
        "personal statement",
    },
    "experience": {
        "experience",
        "work experience",
        "professional experience",
        "employment",
        "employment history",
        "work history",
        "career history",
        "relevant experience",
        "volunteer experience",
        "volunteering",
        "on campus involvement",
        "campus involvement",
        "leadership experience",
        "internships",
        "experience and internships",
    },
    "education": {"education", "academic background", "education and training", "academics"},
    "skills": {
        "skills",
        "technical skills",
        "core skills",
        "key skills",
        "skills & tools",
        "skills and tools",
        "technologies",
        "competencies",
        "core competencies",
        "tech stack",
        "skills and abilities",
        "tools",
    },
    "certifications": {
        "certifications",
        "certificates",
        "certification",
        "licenses",
        "licenses & certifications",
        "certifications & licenses",
        "licenses and certifications",
    },
    "projects": {"projects", "selected projects", "personal projects", "key projects", "project"},
    "other": {
        "languages",
        "honors",
        "awards",
        "honors/awards",
        "honors & awards",
        "interests",
        "references",
        "publications",
        "contact",
        "activities",
        "leadership",
        "hobbies",
        "courses",
        "links",
        "honors and awards",
        "achievements",
        "interests & hobbies",
        "references available",
    },
}
_HEADINGS = {alias: kind for kind, aliases in SECTIONS.items() for alias in aliases}
_TITLE_WORDS = re.compile(
    r"\b(engineer|developer|manager|designer|analyst|scientist|consultant|specialist|"
    r"architect|resume|résumé|curriculum|vitae|director|intern|lead)\b",
    re.I,
)
# Words of a job title (to tell "Member" under "Enactus, La Verne, CA" from a company).
_ROLE_WORDS = re.compile(
    r"\b(engineer|developer|manager|designer|analyst|scientist|consultant|specialist|"
    r"architect|director|intern|lead|member|volunteer|coach|assistant|associate|officer|"
    r"president|founder|owner|administrator|coordinator|technician|teacher|tutor|"
    r"representative|head|chief|vp|cto|ceo|programmer|researcher|fellow|contractor)\b",
    re.I,
)
# Places that follow a company or school name with no separator ("Microsoft New York"):
# US states, large cities, countries, "Remote".
_PLACES = (
    "alabama|alaska|arizona|arkansas|california|colorado|connecticut|delaware|florida|"
    "georgia|hawaii|idaho|illinois|indiana|iowa|kansas|kentucky|louisiana|maine|maryland|"
    "massachusetts|michigan|minnesota|mississippi|missouri|montana|nebraska|nevada|"
    "new hampshire|new jersey|new mexico|new york|north carolina|north dakota|ohio|"
    "oklahoma|oregon|pennsylvania|rhode island|south carolina|south dakota|tennessee|"
    "texas|utah|vermont|virginia|washington|west virginia|wisconsin|wyoming|"
    "new york city|nyc|san francisco|los angeles|seattle|boston|chicago|austin|denver|"
    "atlanta|miami|london|berlin|paris|toronto|vancouver|sydney|bangalore|bengaluru|"
    "singapore|dublin|amsterdam|munich|zurich|tokyo|remote|usa|uk|canada|india|germany"
)
_TRAILING_PLACE = re.compile(rf"^(?P<name>.+?\S)\s+(?:{_PLACES})$", re.I)
_PAGE_NUMBER = re.compile(
    r"^(?:page\s+)?\d{1,2}(?:\s*(?:/|of)\s*\d{1,2})?$|^[-\u2013]\s*\d{1,2}\s*[-\u2013]$", re.I
)
# Words that continue a multi-word skill ("REST APIs", "API Design", "A/B Testing").
_SKILL_TAIL = {
    "design",
    "testing",
    "flags",
    "apis",
    "api",
    "systems",
    "architecture",
    "development",
    "optimization",
    "management",
    "engineering",
    "analysis",
    "analytics",
    "learning",
    "services",
    "boot",
    "native",
    "science",
    "intelligence",
    "computing",
    "integration",
    "automation",
    "modeling",
    "modelling",
    "processing",
    "hooks",
    "vision",
    "mining",
}
_PROFICIENCY = re.compile(
    r"^(?:proficient|fluent|skilled|experienced|familiar|competent|working knowledge|"
    r"knowledge|expert|advanced|basic)\s+(?:in|with|of)\s+",
    re.I,
)
_DEGREE = re.compile(
    r"\b(bachelor|master|b\.?\s?s\.?c?|m\.?\s?s\.?c?|b\.?\s?a\.?|m\.?\s?a\.?|mba|ph\.?\s?d|"
    r"b\.?\s?tech|m\.?\s?tech|b\.?\s?eng|m\.?\s?eng|associate|diploma|doctor(?:ate)?|"
    r"high school|ged)\b",
    re.I,
)
_INSTITUTION = re.compile(r"\b(university|college|institute|school|academy|polytechnic)\b", re.I)
_GPA = re.compile(
    r"(?:gpa[:\s]*([0-9.]+(?:\s*/\s*[0-9.]+)?))|(?:([0-9]\.[0-9]{1,2})\s*(?:/\s*[0-9.]+)?\s*gpa)|(?<![\d.])([0-4]\.\d{1,2}\s*/\s*4(?:\.0)?)(?![\d.])",
    re.I,
)
_BULLET = re.compile(r"^[-*•·▪◦‣]\s*")


def parse_resume(text: str) -> ParsedResume:
    """Structured data from resume text by simple rules (deterministic)."""
    # A word the typesetter hyphenated at a line end ("Devel-" + "oping") is one word.
    text = re.sub(r"(?<=[a-z]{2})-\n(?=[a-z])", "", text)
    lines = _merge_dangling_ranges(
        [line.strip() for line in text.splitlines() if not _PAGE_NUMBER.match(line.strip())]
    )
    sections = _sections(lines)
    email = _first(EMAIL, text)
    phone = _phone(text)
    skills = _skills(sections.get("skills", []))
    if not skills:
        skills = find_skills(text)
    summary_lines = sections.get("summary", [])
    return ParsedResume(
        name=_name(sections.get("_top", []) or lines[:8]) or _name_from_email(lines, email),
        email=email,
        phone=phone,
        summary=" ".join(line for line in summary_lines if line) or None,
        skills=skills,
        experience=_experience(sections.get("experience", [])),
        education=_education(sections.get("education", [])),
        certifications=[_strip_bullet(x) for x in sections.get("certifications", []) if x][:20],
        projects=_projects(sections.get("projects", [])),
    )


def _merge_dangling_ranges(lines: list[str]) -> list[str]:
    """'2017 -' + 'Present' (a date column wrapped by the PDF layout) → one line."""
    out: list[str] = []
    for line in lines:
        if out and DANGLING_RANGE.match(out[-1]) and re.match(_END, line, re.I):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return out


def heading_kind(line: str) -> str | None:
    """The section a heading line opens, or None if the line is not a heading."""
    if not line or len(line) > 40 or len(line.split()) > 5 or line.endswith("."):
        return None
    if _BULLET.match(line):
        return None
    key = re.sub(r"[^a-z&/ ]", "", line.lower().replace("\t", " ")).strip()
    key = re.sub(r"\s+", " ", key)
    return _HEADINGS.get(key)


def _sections(lines: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {"_top": []}
    current = "_top"
    for line in lines:
        kind = heading_kind(line)
        if kind is not None:
            current = kind
            sections.setdefault(current, [])
            continue
        if line or sections[current]:
            sections.setdefault(current, []).append(line)
    return sections


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(0) if match else None


def _phone(text: str) -> str | None:
    for match in PHONE.finditer(text):
        candidate = match.group(0).strip()
        digits = re.sub(r"\D", "", candidate)
        if 10 <= len(digits) <= 15 and not DATE_RANGE.search(candidate):
            return candidate
    return None


def _name(lines: list[str]) -> str | None:
    for line in lines[:8]:
        if not line or EMAIL.search(line) or PHONE.search(line) or "/" in line or ":" in line:
            continue
        words = line.replace("\t", " ").split()
        if not 2 <= len(words) <= 4 or _TITLE_WORDS.search(line) or heading_kind(line):
            continue
        if all(re.fullmatch(r"[A-Za-zÀ-ÿ'\u2019.-]+", word) for word in words):
            return line.title() if line.isupper() else " ".join(words)
    return None


def _name_from_email(lines: list[str], email: str | None) -> str | None:
    """A name-like line anywhere (two-column layouts put the name last) whose words spell
    the e-mail's local part ("John Doe" ↔ john.doe@…)."""
    if not email:
        return None
    local = re.sub(r"[^a-z]", "", email.split("@")[0].lower())
    for line in lines:
        words = line.split()
        if not 2 <= len(words) <= 4 or _TITLE_WORDS.search(line) or heading_kind(line):
            continue
        if not all(re.fullmatch(r"[A-Za-zÀ-ÿ'\u2019.-]+", word) for word in words):
            continue
        joined = re.sub(r"[^a-z]", "", line.lower())
        initials = "".join(w[0] for w in words[:-1]).lower() + re.sub(
            r"[^a-z]", "", words[-1].lower()
        )
        if local and local in (joined, initials):
            return line.title() if line.isupper() else " ".join(words)
    return None


def _split_items(line: str) -> Iterator[str]:
    """Comma/semicolon/pipe/bullet-separated items, not splitting inside parentheses."""
    depth = 0
    current: list[str] = []
    for char in line:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(depth - 1, 0)
        if depth == 0 and char in ",;|•·":
            yield "".join(current)
            current = []
        else:
            current.append(char)
    yield "".join(current)


def _skill_lines(lines: list[str]) -> list[str]:
    """Rejoin comma-separated lists the layout wrapped ('..., Project' + 'management, ...')."""
    out: list[str] = []
    previous = ""
    for raw in lines:
        line = _strip_bullet(raw)
        if not line:
            previous = ""
            continue
        wrapped = (
            bool(previous)
            and not _BULLET.match(raw)
            and (
                previous.endswith((",", "-", "/"))
                or ("," in previous and line[0].islower())
                or ("," in previous and len(previous) > 60 and ":" not in line)
            )
        )
        if wrapped and out:
            glue = "" if previous.endswith(("-", "/")) else " "
            out[-1] = out[-1] + glue + line
        else:
            out.append(line)
        previous = line
    return out


def _skills(lines: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for line in _skill_lines(lines):
        # "Programming: Python, Go" → the items after the category.
        head, sep, rest = line.partition(":")
        if sep and len(head.split()) <= 3:
            line = rest
        items = list(_split_items(line))
        if len(items) == 1:
            items = _space_separated(items[0])
        for item in _expand(items):
            item = re.sub(r"\s*\([^)]*\)\s*$", "", item).strip(" .\t-\u2013")
            item = re.sub(r"^(?:and|or|&)\s+", "", item, flags=re.I)
            if not item or len(item) > 60 or len(item.split()) > 8 or _looks_like_url(item):
                continue
            seen.setdefault(item.lower(), item)
    return list(seen.values())[:60]


def _space_separated(line: str) -> list[str]:
    """'Go Python Node.js' → three skills; 'REST APIs', 'Distributed Systems' stay whole.

    Only for a line of capitalised tokens (a list, not prose); a token that continues a
    multi-word skill ('Design', 'Testing', 'APIs') stays with the one before it.
    """
    tokens = line.split()
    if len(tokens) < 2 or any(t[:1].islower() for t in tokens if t.lower() not in _SKILL_TAIL):
        return [line]
    known = [bool(find_skills(t)) or t.isupper() for t in tokens]
    if len(tokens) == 2 and not all(known):
        return [line]
    if len(tokens) == 2 and find_skills(line) == [line]:
        return [line]
    items: list[str] = []
    for token in tokens:
        if items and token.lower() in _SKILL_TAIL:
            items[-1] = f"{items[-1]} {token}"
        else:
            items.append(token)
    return items


def _expand(items: list[str]) -> Iterator[str]:
    """'Proficient in Windows and Mac OS' → 'Windows', 'Mac OS'."""
    for item in items:
        item = _PROFICIENCY.sub("", item.strip())
        if " and " in item and len(item.split()) <= 6:
            yield from item.split(" and ")
        else:
            yield item


def _looks_like_url(item: str) -> bool:
    lowered = item.lower()
    return lowered.startswith(("http://", "https://", "www.")) or (
        "/" in item and bool(URL.fullmatch(item))
    )


def _strip_bullet(line: str) -> str:
    return _BULLET.sub("", line).strip()


def _split_header(header: str) -> tuple[str, str, str | None]:
    """'Title at Company' / 'Title - Company' / 'Title, Company, City' → (title, company, loc)."""
    header = header.strip(" \t,|\u2013-—•")
    if " at " in header:
        title, _, company = header.partition(" at ")
        return title.strip(), company.strip(" ,"), None
    for separator in (" — ", " \u2013 ", " - ", " | ", " • ", "\t"):
        if separator in header:
            first, _, rest = header.partition(separator)
            company, _, location = rest.partition(separator)
            return first.strip(), company.strip(), location.strip() or None
    parts = _comma_parts(header)
    if len(parts) >= 2:
        return parts[0], parts[1], ", ".join(parts[2:]) or None
    return header, "", None


_LEGAL = re.compile(
    r"^(?:inc|llc|ltd|limited|gmbh|ag|co|corp|corporation|plc|llp|lp|s\.?a|b\.?v|pty|sas|srl)\.?$",
    re.I,
)


def _comma_parts(text: str) -> list[str]:
    """Comma-separated parts, with a legal suffix kept on its name ('Acme, Inc.')."""
    parts: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if parts and _LEGAL.match(part):
            parts[-1] = f"{parts[-1]}, {part}"
        else:
            parts.append(part)
    return parts


def _split_company(line: str) -> tuple[str, str | None]:
    """'Fernbrook Payments — Remote (US)' → ('Fernbrook Payments', 'Remote (US)')."""
    for separator in (" — ", " \u2013 ", " - ", " | ", " • ", "\t", ", "):
        if separator in line:
            company, _, location = line.partition(separator)
            return company.strip(), location.strip() or None
    return line.strip(), None


def _is_description(line: str) -> bool:
    return (
        not line
        or bool(_BULLET.match(line))
        or (line.rstrip().endswith(".") and len(line.split()) > 3)
        or len(line.split()) > 8
    )


def _strip_place(name: str) -> tuple[str, str | None]:
    """'Microsoft New York' → ('Microsoft', 'New York')."""
    match = _TRAILING_PLACE.match(name)
    if (
        match
        and len(match.group("name").split()) <= 6
        and not re.search(r"\b(?:of|at|the|and|&|in|de)$", match.group("name"), re.I)
    ):
        return match.group("name"), name[match.end("name") :].strip()
    return name, None


def _dates_in(
    line: str, *, single: bool = False
) -> tuple[str | None, str | None, bool, str] | None:
    """(start, end, current, the line without its dates) if the line carries a date range.

    With `single`, a short header line ending in one date ("Intern Summer 2022") counts too.
    """
    match = DATE_RANGE.search(line)
    if match:
        end = match.group("end")
        current = end.lower() in ("present", "current", "now", "today")
        rest = (line[: match.start()] + " " + line[match.end() :]).strip(" \t,|\u2013-—")
        return match.group("start"), None if current else end, current, rest
    if single and not _is_description(line):
        matches = list(SINGLE_DATE.finditer(line))
        last = matches[-1] if matches else None
        if last is not None and not line[last.end() :].strip(" )"):
            rest = line[: last.start()].strip(" \t,|\u2013-—(")
            if rest and len(rest.split()) <= 8:
                return last.group(0), last.group(0), False, rest
    return None


def _experience(lines: list[str]) -> list[Experience]:
    anchors: list[tuple[int, tuple[str | None, str | None, bool, str]]] = []
    for index, line in enumerate(lines):
        dates = _dates_in(line, single=True)
        if dates and not _BULLET.match(line):
            anchors.append((index, dates))
    entries: list[Experience] = []
    used: set[int] = set()
    spans: list[tuple[int, int]] = []  # the header lines of each entry
    for number, (index, (start, end, current, rest)) in enumerate(anchors):
        first = last = index
        previous_ok = (
            index > 0
            and index - 1 not in used
            and (number == 0 or index - 1 > anchors[number - 1][0])
            and lines[index - 1]
            and lines[index - 1][0].isupper()
            and not _is_description(lines[index - 1])
            and _dates_in(lines[index - 1]) is None
        )
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        next_ok = (
            bool(next_line) and not _is_description(next_line) and _dates_in(next_line) is None
        )
        title, company, location = _split_header(rest) if rest else ("", "", None)
        if (
            rest
            and company
            and next_ok
            and len(next_line.split()) <= 6
            and _ROLE_WORDS.search(next_line)
            and not _ROLE_WORDS.search(title)
        ):
            # "Enactus, La Verne, CA  Aug 2013 - Present" over "Member": organisation and
            # place on the date line, the role on the next.
            pieces = _comma_parts(rest)
            company, location = pieces[0], ", ".join(pieces[1:]) or None
            title, last = next_line.strip(), index + 1
        elif rest and not company:
            if previous_ok:
                company, location = _split_company(lines[index - 1])
                first = index - 1
            elif next_ok:
                company, location = _split_company(next_line)
                last = index + 1
        elif not rest:
            if previous_ok:
                title, company, location = _split_header(lines[index - 1])
                first = index - 1
            elif next_ok:
                title, company, location = _split_header(next_line)
                last = index + 1
        if company and not location:
            company, location = _strip_place(company)
        used.update(range(first, last + 1))
        spans.append((first, last))
        entries.append(
            Experience(
                title=title,
                company=company,
                location=location,
                start_date=start,
                end_date=end,
                current=current,
            )
        )
    result: list[Experience] = []
    for number, entry in enumerate(entries):
        begin = spans[number][1] + 1
        stop = spans[number + 1][0] if number + 1 < len(spans) else len(lines)
        body = [_strip_bullet(line) for line in lines[begin:stop] if line]
        description = "\n".join(body)
        result.append(
            Experience(
                title=entry.title,
                company=entry.company,
                location=entry.location,
                start_date=entry.start_date,
                end_date=entry.end_date,
                current=entry.current,
                description=description,
                skills=find_skills(description),
            )
        )
    return result


def _join_wrapped(lines: list[str]) -> list[str]:
    """Rejoin entries the layout wrapped: a line ending in ',' or a preposition, or a long
    line followed by a short continuation ('... Institute of Technology' + 'Delhi, India')."""
    out: list[str] = []
    for raw in lines:
        line = raw.strip()
        if out and line and not _BULLET.match(raw):
            previous = out[-1]
            continues = previous.endswith(",") or bool(
                re.search(r"\b(?:in|of|and|&|for)$", previous)
            )
            wrapped = (
                len(previous) >= 70
                and not previous.endswith((".", ":", ";"))
                and not _DEGREE.search(line)
                and not DATE_RANGE.search(line)
                and len(line.split()) <= 6
            )
            if continues or wrapped:
                out[-1] = f"{previous} {line}"
                continue
        out.append(line)
    return out


def _is_place(part: str) -> bool:
    return bool(
        re.fullmatch(r"[A-Z]{2,3}", part.strip()) or re.fullmatch(_PLACES, part.strip(), re.I)
    )


def _degree_and_field(main: str) -> tuple[str, str | None]:
    """'Bachelor of Science in Physics' / 'M.S. Computer Science' / 'MBA' → (degree, field)."""
    name, sep, field = main.partition(" in ")
    if sep:
        return name.strip(), field.strip() or None
    match = _DEGREE.match(main)
    rest = main[match.end() :].strip(" .") if match else ""
    abbreviation = match is not None and (len(match.group(0)) <= 7 or "." in match.group(0))
    if (
        match
        and rest
        and abbreviation
        and rest[:1].isupper()
        and not rest.lower().startswith("of ")
    ):
        return main[: match.end()].strip(), rest
    return main.strip(), None


def _institution_from(parts: list[str]) -> str | None:
    """The institution among comma-separated parts, with 'University of California,
    Berkeley' kept whole (a campus repeated as the city after it)."""
    for index, part in enumerate(parts):
        if _INSTITUTION.search(part):
            name = part
            if (
                index + 2 < len(parts)
                and parts[index + 1] == parts[index + 2]
                and len(parts[index + 1].split()) <= 2
            ):
                name = f"{part}, {parts[index + 1]}"
            # "New York University New York" → the school; "Imperial College London" stays.
            # A school's own name often holds its city, so a place is only cut when it
            # repeats one already in the name (the location column run into it).
            stripped, place = _strip_place(name)
            echoed = place is not None and place.lower() in stripped.lower()
            return stripped if echoed else name
    return None


_FIELD_WORDS = re.compile(
    r"\b(science|sciences|engineering|arts|mathematics|studies|business|administration|"
    r"economics|physics|chemistry|biology|management|law|medicine|finance|marketing|"
    r"psychology|history|literature|informatics|statistics|education|nursing)\b",
    re.I,
)


def _education(lines: list[str]) -> list[Education]:
    entries: list[dict[str, str | None]] = []
    current: dict[str, str | None] = {}

    def flush() -> None:
        if current.get("degree") or current.get("institution"):
            entries.append(dict(current))
        current.clear()

    for raw in _join_wrapped(lines):
        line = _strip_bullet(raw)
        if not line:
            continue
        gpa = _GPA.search(line)
        if gpa:
            current.setdefault(
                "gpa", next(group for group in gpa.groups() if group).replace(" ", "")
            )
            line = (line[: gpa.start()] + line[gpa.end() :]).strip(" -\u2013,\t")
        if _BULLET.match(raw) or not line:
            continue  # honours, coursework: not part of the degree record
        line = re.sub(r"\s+[|•·—\u2013]\s+", ", ", line)
        line = re.sub(r"\b(?:expected\s+)?graduat(?:ion|ed|ing)\s*:?\s*", "", line, flags=re.I)
        dates = _dates_in(line)
        text = dates[3] if dates else line
        single = None if dates else SINGLE_DATE.search(line)
        if single:
            text = (line[: single.start()] + line[single.end() :]).strip(" ,\u2013-\t")
        text = re.sub(r"\(\s*\)", "", text).strip(" ,")
        parts = [part.strip() for part in text.split(",") if part.strip()]
        degree = _DEGREE.search(parts[0]) if parts else None
        institution = _INSTITUTION.search(text)
        if degree and not (gpa and len(text) < 20):
            if current.get("degree"):
                flush()
            current["degree"], field = _degree_and_field(parts[0])
            if field:
                current["field"] = field
            for part in parts[1:]:
                if _INSTITUTION.search(part):
                    found = _institution_from(parts[parts.index(part) :])
                    if found:
                        current["institution"] = found
                    break
                if not current.get("field") and not _is_place(part):
                    current["field"] = part
        elif institution:
            if current.get("institution"):
                flush()
            current["institution"] = _institution_from(parts) or parts[0]
        elif (
            parts
            and len(parts) == 1
            and len(text.split()) <= 5
            and all(word[:1].isupper() for word in text.split())
            and not re.search(r"\d", text)
            and not _FIELD_WORDS.search(text)
            and not gpa
            and not (current.get("degree") and not current.get("field") and not dates)
        ):
            # Named without "University": "UC Berkeley", "MIT", "Sciences Po".
            if current.get("institution"):
                flush()
            current["institution"] = text
        elif (
            current.get("degree")
            and not current.get("field")
            and not gpa
            and len(text.split()) <= 5
            and not dates
        ):
            current["field"] = text  # "Bachelor of Science in" / "Computer Science"
        if dates and not current.get("end_date"):
            current["start_date"], current["end_date"] = dates[0], dates[1] or "Present"
        elif single and not current.get("end_date"):
            current["end_date"] = single.group(0)
    flush()
    return [
        Education(
            institution=entry.get("institution") or "",
            degree=entry.get("degree") or "",
            field=entry.get("field"),
            start_date=entry.get("start_date"),
            end_date=entry.get("end_date"),
            gpa=entry.get("gpa"),
        )
        for entry in entries
    ][:10]


def _projects(lines: list[str]) -> list[Project]:
    projects: list[dict[str, str | None]] = []
    for raw in lines:
        if not raw:
            continue
        is_bullet = bool(_BULLET.match(raw))
        line = _strip_bullet(raw)
        url = URL.search(line)
        if (
            (is_bullet or _is_description(line))
            and projects
            and not re.search(r" [—\u2013-] ", line)
        ):
            description = projects[-1]["description"] or ""
            projects[-1]["description"] = (description + " " + line).strip()
            continue
        name, description = line, ""
        for separator in (" — ", " \u2013 ", " - ", ": "):
            if separator in line:
                name, _, description = line.partition(separator)
                break
        label, colon, named = name.partition(": ")
        if colon and len(label.split()) <= 3 and named.strip():
            name = named  # "Personal Project: Home Automation" → "Home Automation"
        name = SINGLE_DATE.sub("", name).strip(" ,|\u2013-\t")
        projects.append(
            {
                "name": name,
                "description": description.strip(),
                "url": url.group(0)
                if url and "." in url.group(0) and "/" in url.group(0)
                else None,
            }
        )
    return [
        Project(name=p["name"] or "", description=p["description"] or "", url=p["url"])
        for p in projects
        if p["name"]
    ][:15]
