"""Normalising what job boards send: text, HTML, URLs, salaries and dates.

Every board module turns its wire format into `Posting`s with these functions, so the
quirks of real feeds are handled once: entity-escaped or double-escaped HTML, stray tags
in titles, UTF-8 read as Latin-1, tracking parameters, free-text pay ("$120k \u2013 $150k",
"€60,000 - €80,000 a year", "$31,2k- $52k"), and dates as ISO with or without a zone,
RFC 2822, epoch seconds or epoch milliseconds.
"""

from __future__ import annotations

import email.utils
import html
import re
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.sources.postings import Salary, SalaryPeriod

__all__ = [
    "canonical_url",
    "clean_text",
    "fix_mojibake",
    "html_to_text",
    "looks_remote",
    "parse_posted",
    "parse_salary",
    "salary_from_amounts",
    "salary_in_text",
]

# ---- text -----------------------------------------------------------------------------------

_MOJIBAKE = re.compile(r"[\u00c2-\u00f4][\u0080-\u00bf]{1,3}")
_ENTITY = re.compile(r"&(#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_ESCAPED_TAG = re.compile(r"&lt;\s*/?\s*[A-Za-z][^&]{0,200}?&gt;")
_TAG = re.compile(r"<\s*/?\s*[A-Za-z!][^<>]*>")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES = dict.fromkeys(map(ord, "\u00a0\u2007\u202f\u2009\u200a\t\r\f\v"), " ")


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as Latin-1 ("\u00e2\u0080\u0099" → a right quote), only where valid."""

    def repair(match: re.Match[str]) -> str:
        try:
            return match.group(0).encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return match.group(0)

    return _MOJIBAKE.sub(repair, text)


def _unescape_all(text: str, rounds: int = 3) -> str:
    # Feeds double-escape ("&amp;amp;", "&amp;nbsp;"): unescape until nothing changes.
    for _ in range(rounds):
        if not _ENTITY.search(text):
            break
        text = html.unescape(text)
    return text


def clean_text(value: Any) -> str:
    """A one-line field (title, company, location): unescaped, untagged, trimmed.

    Not a string (None, a number, a list) → "".
    """
    if not isinstance(value, str):
        return ""
    text = _unescape_all(fix_mojibake(value))
    text = _TAG.sub(" ", text)
    text = text.translate(_INVISIBLE).translate(_SPACES)
    return " ".join(text.split()).strip(" ,;|-\u2013\u2014\u2022")


_DROP_BLOCKS = re.compile(r"(?is)<\s*(script|style|head|noscript)\b[^>]*>.*?<\s*/\s*\1\s*>")
_COMMENT = re.compile(r"(?s)<!--.*?-->")
_BREAK = re.compile(
    r"(?i)<\s*(br|/?p|/?div|/?h[1-6]|/?ul|/?ol|/?tr|/?table|/?section|/?article|/?blockquote"
    r"|hr|/li|/dd|/dt)\b[^>]*>"
)
_ITEM = re.compile(r"(?i)<\s*li\b[^>]*>")


def html_to_text(markup: Any) -> str:
    """Readable text from a description's HTML, however many times it was escaped.

    Blocks become line breaks, list items "- " lines; scripts, styles, comments and tags
    (tracking pixels included) are dropped; entities are decoded.
    """
    if not isinstance(markup, str) or not markup:
        return ""
    text = fix_mojibake(markup)
    # Entity-escaped HTML ("&lt;p&gt;…", Greenhouse, WWR) is HTML one or two levels down.
    for _ in range(2):
        if not _ESCAPED_TAG.search(text):
            break
        text = html.unescape(text)
    text = _COMMENT.sub(" ", _DROP_BLOCKS.sub(" ", text))
    text = _ITEM.sub("\n- ", text)
    text = _BREAK.sub("\n", text)
    text = _TAG.sub(" ", text)
    # Escaped HTML inside real HTML (Arbeitnow): a second pass on what is left.
    if _ESCAPED_TAG.search(text):
        text = _TAG.sub(" ", html.unescape(text))
    text = _unescape_all(text).translate(_INVISIBLE).translate(_SPACES)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    lines = [line for line in lines if line != "-"]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return re.sub(r"(?m)^(- .*)\n\n(?=- )", r"\1\n", text).strip()  # list items stay together


_REMOTE = re.compile(r"(?i)\b(remote|anywhere|worldwide|work from home|wfh|distributed)\b")


def looks_remote(*texts: str | None) -> bool:
    """Whether a location or workplace text says the job is remote."""
    return any(_REMOTE.search(t) is not None for t in texts if t)


# ---- URLs -----------------------------------------------------------------------------------

_TRACKING = re.compile(
    r"(?i)^(utm_.*|ref|ref_?src|referr?er|source|src|fbclid|gclid|dclid|msclkid|yclid|"
    r"mc_cid|mc_eid|_hs(enc|mi)|hsctatracking|igshid|trk|trackingid|gh_src|lever-source.*|"
    r"lever-origin|ashby_src|campaign)$"
)


def canonical_url(value: Any) -> str:
    """The URL a posting is known by: lower-cased scheme and host, no default port, no
    fragment, tracking parameters (utm_*, ref, gclid, …) dropped, the rest kept in order.

    "" for anything that is not an absolute http(s) URL.
    """
    if not isinstance(value, str):
        return ""
    raw = _unescape_all(value.strip())
    if raw.startswith("//"):
        raw = "https:" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        return ""
    netloc = (
        host
        if port is None or (scheme, port) in (("http", 80), ("https", 443))
        else (f"{host}:{port}")
    )
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    ]
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


# ---- salaries -------------------------------------------------------------------------------

_SYMBOLS = {
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "A$": "AUD",
    "AU$": "AUD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "S$": "SGD",
    "R$": "BRL",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "zł": "PLN",
    "kr": "SEK",
    "chf": "CHF",
}
_CODES = [
    "USD",
    "EUR",
    "GBP",
    "CAD",
    "AUD",
    "NZD",
    "CHF",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
    "CZK",
    "HUF",
    "JPY",
    "CNY",
    "INR",
    "SGD",
    "HKD",
    "BRL",
    "MXN",
    "ZAR",
    "ILS",
    "TRY",
    "KRW",
    "RUB",
    "RON",
    "BGN",
    "UAH",
    "ARS",
    "COP",
    "CLP",
    "PHP",
    "IDR",
    "MYR",
    "THB",
    "VND",
    "AED",
    "SAR",
    "NGN",
    "KES",
    "EGP",
    "PKR",
]
_CURRENCY = re.compile(
    r"(?i)(US\$|CA\$|AU\$|NZ\$|HK\$|[CARS]\$|\$|€|£|¥|₹|₩|₽|₺|₪|zł|\b(?:"
    + "|".join(_CODES)
    + r")\b)"
)
# A number with optional grouping/decimals and a k/m suffix: "120k", "60,000", "31,2k",
# "211.4K", "1.5M", "60.000".
_AMOUNT = re.compile(
    r"(?<![\d.,])(\d{1,3}(?:[,.\u202f ]\d{3})+|\d+)(?:[.,](\d{1,2}))?\s*([kKmM](?![a-zA-Z]))?"
)
_PERIODS: tuple[tuple[re.Pattern[str], SalaryPeriod], ...] = (
    (re.compile(r"(?i)(/\s*h(ou)?r\b|per\s+hour|an?\s+hour|hourly|\bp/?h\b|/\s*hour)"), "hour"),
    (re.compile(r"(?i)(/\s*day|per\s+day|a\s+day|daily|day\s+rate)"), "day"),
    (re.compile(r"(?i)(/\s*w(ee)?k\b|per\s+week|a\s+week|weekly)"), "week"),
    (re.compile(r"(?i)(/\s*mo(nth)?\b|per\s+month|a\s+month|monthly|\bpm\b)"), "month"),
    (
        re.compile(
            r"(?i)(/\s*y(ea)?r\b|per\s+(year|annum)|a\s+year|annual(ly)?|yearly|\bp\.?a\.?\b"
            r"|\bpa\b|/\s*annum)"
        ),
        "year",
    ),
)
_LOOKS_LIKE_YEAR = re.compile(r"^(19|20)\d\d$")


def _amount(match: re.Match[str]) -> float | None:
    whole, decimals, suffix = match.groups()
    digits = re.sub(r"[,.\u202f ]", "", whole)
    if not digits:
        return None
    value = float(digits)
    if decimals:
        value += float(decimals) / (10 ** len(decimals))
    if suffix:
        value *= 1_000 if suffix in "kK" else 1_000_000
    return value


def parse_salary(text: Any, *, currency: str | None = None) -> Salary | None:
    """Pay from free text ("$120k \u2013 $150k", "€60,000 - €80,000 a year", "$18 - $22/hr",
    "OTE $25k - $35k", "USD 100,000\u2013120,000"); None when it names no amount.

    A range gives min and max, one figure gives min only ("$12K"). The period is the one
    stated, else "year" for amounts of 10,000 or more; `currency` is the fallback code.
    """
    if not isinstance(text, str):
        return None
    cleaned = clean_text(text)
    if not cleaned:
        return None
    amounts: list[float] = []
    for match in _AMOUNT.finditer(cleaned):
        if not match.group(3) and _LOOKS_LIKE_YEAR.match(match.group(1)) and not match.group(2):
            # "2026" next to a salary is usually a date, unless it carries a currency sign.
            before = cleaned[max(0, match.start() - 2) : match.start()]
            if not _CURRENCY.search(before):
                continue
        value = _amount(match)
        if value is not None and value > 0:
            amounts.append(value)
        if len(amounts) == 2:
            break
    if not amounts:
        return None
    # "$120 - 150k": a suffix on the upper figure applies to the lower one too.
    if len(amounts) == 2 and amounts[0] < 1000 <= amounts[1] and amounts[1] / amounts[0] >= 100:
        amounts[0] *= 1000
    found = _CURRENCY.search(cleaned)
    code = currency
    if found:
        token = found.group(1)
        code = _SYMBOLS.get(token, _SYMBOLS.get(token.lower(), token.upper()))
    period: SalaryPeriod | None = None
    for pattern, name in _PERIODS:
        if pattern.search(cleaned):
            period = name
            break
    low = min(amounts)
    high = max(amounts) if len(amounts) == 2 else None
    if period is None and low >= 10_000:
        period = "year"
    if high is None and re.search(r"(?i)\b(up to|max(imum)?|until)\b", cleaned):
        return Salary(min=None, max=round(low), currency=code, period=period)
    return Salary(
        min=round(low), max=round(high) if high is not None else None, currency=code, period=period
    )


_CUR = r"(?:US\$|CA\$|AU\$|[CA]\$|\$|€|£|\b(?:USD|EUR|GBP|CAD|AUD|CHF)\s?)"
_NUM = r"\d[\d,.]*\s?[kKmM]?"
_RANGE_IN_TEXT = re.compile(
    rf"{_CUR}\s?{_NUM}(?:\s?(?:USD|EUR|GBP|CAD|AUD|CHF))?\s?(?:-|\u2013|\u2014|to)\s?{_CUR}?\s?{_NUM}"
    r"[^.\n]{0,40}"
)


def salary_in_text(text: str) -> Salary | None:
    """A pay range stated in a description ("… base salary range is $160,000 - $240,000
    per year"); only ranges with a currency sign, so years and headcounts are not read as
    pay."""
    match = _RANGE_IN_TEXT.search(text or "")
    return parse_salary(match.group(0)) if match else None


def salary_from_amounts(
    low: Any, high: Any, currency: Any = None, period: SalaryPeriod | None = None
) -> Salary | None:
    """A Salary from structured fields; zero, negative or non-numeric amounts are "not
    stated" (RemoteOK writes 0)."""

    def number(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        try:
            amount = float(value)
        except (TypeError, ValueError):
            return None
        return round(amount) if amount > 0 and amount == amount else None

    lo, hi = number(low), number(high)
    if lo is None and hi is None:
        return None
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    code = clean_text(currency).upper() or None if isinstance(currency, str) else None
    if period is None and (lo or hi or 0) >= 10_000:
        period = "year"
    return Salary(min=lo if lo is not None else hi, max=hi, currency=code, period=period)


# ---- dates ----------------------------------------------------------------------------------

_EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_posted(value: Any) -> datetime | None:
    """A posting date as an aware UTC datetime, whatever the board sends.

    Epoch seconds or milliseconds (numbers or digit strings), ISO 8601 with an offset,
    "Z", or no zone at all (read as UTC), a bare date, or RFC 2822 (RSS). Values outside
    1995\u20132100 are taken as garbage → None.
    """
    if value is None or isinstance(value, bool):
        return None
    when: datetime | None = None
    if isinstance(value, int | float):
        when = _from_epoch(float(value))
    elif isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            when = _from_epoch(float(text))
        elif text:
            when = _from_text(text)
    if when is None:
        return None
    when = when.astimezone(UTC)
    return when if _EARLIEST <= when < _LATEST else None


def _from_epoch(seconds: float) -> datetime | None:
    if seconds > 1e14:  # microseconds
        seconds /= 1e6
    elif seconds > 1e11:  # milliseconds (1e11 s is the year 5138)
        seconds /= 1e3
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _from_text(text: str) -> datetime | None:
    iso = text.replace(" UTC", "Z").replace(" GMT", "Z")
    if re.match(r"^\d{4}-\d{2}-\d{2} \d", iso):
        iso = iso.replace(" ", "T", 1)
    # Offsets without a colon ("+0000") and more than 6 fractional digits trip fromisoformat.
    iso = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", iso)
    iso = re.sub(r"(\.\d{6})\d+", r"\1", iso)
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = None
    if parsed is None:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
