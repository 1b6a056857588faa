"""Field-level precision/recall of the offline resume structurer against hand-written goldens.

`python -m bench.parsing_eval [--fixtures DIR] [--goldens DIR] [-v]`: each golden in
tests/data/resumes/ was written by reading its document in ../shared/fixtures/resumes/.
Scalars (name, email, phone) are right or wrong; skills compare as case-insensitive sets;
experience and education entries are paired one to one (greedily, by how many fields
agree) and each field then counts as a hit for precision (per predicted entry) and recall
(per golden entry). Dates compare by meaning ("Jan 2023" = "January 2023").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.ai.heuristics import parse_resume
from shared.documents import docx_text, pdf_text

ROOT = Path(__file__).resolve().parent.parent
GOLDENS = ROOT / "tests" / "data" / "resumes"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "resumes"

# The targets, checked by tests/unit/parsing/test_structurer_eval.py.
TARGETS: dict[str, tuple[float, float]] = {  # field → (min precision, min recall)
    "name": (1.0, 1.0),
    "email": (1.0, 1.0),
    "phone": (1.0, 1.0),
    "experience.title": (0.9, 0.9),
    "experience.company": (0.9, 0.9),
    "experience.dates": (0.9, 0.9),
    "education.institution": (0.9, 0.9),
    "education.degree": (0.9, 0.9),
    "skills": (0.9, 0.8),
}

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}


def norm(value: Any) -> str:
    if value is None:
        return ""
    return re.sub(r"\s+", " ", str(value)).strip().strip(".,;").casefold()


def norm_phone(value: Any) -> str:
    return re.sub(r"\D", "", str(value or ""))


def norm_date(value: Any) -> str:
    text = norm(value)
    match = re.match(r"^([a-z]{3})[a-z]*\.?\s+(\d{4})$", text)
    if match and match.group(1) in _MONTHS:
        return f"{match.group(2)}-{_MONTHS[match.group(1)]:02d}"
    return text


@dataclass
class Count:
    hits_p: int = 0
    predicted: int = 0
    hits_r: int = 0
    gold: int = 0

    def add(self, hits_p: int, predicted: int, hits_r: int, gold: int) -> None:
        self.hits_p += hits_p
        self.predicted += predicted
        self.hits_r += hits_r
        self.gold += gold

    @property
    def precision(self) -> float:
        return self.hits_p / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.hits_r / self.gold if self.gold else 1.0


@dataclass
class Report:
    fields: dict[str, Count] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)

    def count(self, name: str) -> Count:
        return self.fields.setdefault(name, Count())

    def failures(self) -> list[str]:
        out = []
        for name, (min_p, min_r) in TARGETS.items():
            c = self.count(name)
            if c.precision < min_p or c.recall < min_r:
                out.append(
                    f"{name}: precision {c.precision:.0%} (≥{min_p:.0%}), "
                    f"recall {c.recall:.0%} (≥{min_r:.0%})"
                )
        return out


def _pair(
    gold: list[dict[str, Any]], pred: list[dict[str, Any]], keys: list[str]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    scored = []
    for gi, g in enumerate(gold):
        for pi, p in enumerate(pred):
            score = sum(norm(g.get(k)) == norm(p.get(k)) and bool(norm(g.get(k))) for k in keys)
            if score:
                scored.append((score, -abs(gi - pi), gi, pi))
    pairs = []
    used_g: set[int] = set()
    used_p: set[int] = set()
    for _, _, gi, pi in sorted(scored, reverse=True):
        if gi not in used_g and pi not in used_p:
            used_g.add(gi)
            used_p.add(pi)
            pairs.append((gold[gi], pred[pi]))
    return pairs


def _entries(
    report: Report,
    label: str,
    gold: list[dict[str, Any]],
    pred: list[dict[str, Any]],
    checks: dict[str, Any],
    doc: str,
) -> None:
    pairs = _pair(gold, pred, [k for k in checks if k != "dates"])
    for name, same in checks.items():
        hits = sum(1 for g, p in pairs if same(g, p))
        report.count(f"{label}.{name}").add(hits, len(pred), hits, len(gold))
        for g, p in pairs:
            if not same(g, p):
                report.misses.append(f"{doc}: {label}.{name}: {_show(g)} ≠ {_show(p)}")
    matched = {id(g) for g, _ in pairs}
    for g in gold:
        if id(g) not in matched:
            report.misses.append(f"{doc}: {label}: missed {_show(g)}")
    matched_p = {id(p) for _, p in pairs}
    for p in pred:
        if id(p) not in matched_p:
            report.misses.append(f"{doc}: {label}: extra {_show(p)}")


def _show(entry: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in entry.items() if v not in (None, "", False)})


def _dates(g: dict[str, Any], p: dict[str, Any]) -> bool:
    return (
        norm_date(g["start"]) == norm_date(p["start"])
        and norm_date(g["end"]) == norm_date(p["end"])
        and bool(g["current"]) == bool(p["current"])
    )


def predicted(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    text = pdf_text(data) if path.suffix == ".pdf" else docx_text(data)
    resume = parse_resume(text)
    return {
        "name": resume.name,
        "email": resume.email,
        "phone": resume.phone,
        "skills": resume.skills,
        "experience": [
            {
                "title": e.title,
                "company": e.company,
                "start": e.start_date,
                "end": e.end_date,
                "current": e.current,
            }
            for e in resume.experience
        ],
        "education": [
            {
                "institution": e.institution,
                "degree": e.degree,
                "field": e.field,
                "start": e.start_date,
                "end": e.end_date,
            }
            for e in resume.education
        ],
    }


def evaluate(fixtures: Path = FIXTURES, goldens: Path = GOLDENS) -> Report:
    report = Report()
    for golden_path in sorted(goldens.glob("*.json")):
        gold = json.loads(golden_path.read_text())
        doc = gold["file"]
        pred = predicted(fixtures / doc)
        for key, same in (("name", norm), ("email", norm), ("phone", norm_phone)):
            hit = same(gold[key]) == same(pred[key])
            report.count(key).add(int(hit), 1, int(hit), 1)
            if not hit:
                report.misses.append(f"{doc}: {key}: {gold[key]!r} ≠ {pred[key]!r}")
        gold_skills = {norm(s) for s in gold["skills"]}
        pred_skills = {norm(s) for s in pred["skills"]}
        both = len(gold_skills & pred_skills)
        report.count("skills").add(both, len(pred_skills), both, len(gold_skills))
        for s in sorted(gold_skills - pred_skills):
            report.misses.append(f"{doc}: skills: missed {s!r}")
        for s in sorted(pred_skills - gold_skills):
            report.misses.append(f"{doc}: skills: extra {s!r}")
        _entries(
            report,
            "experience",
            gold["experience"],
            pred["experience"],
            {
                "title": lambda g, p: norm(g["title"]) == norm(p["title"]),
                "company": lambda g, p: norm(g["company"]) == norm(p["company"]),
                "dates": _dates,
            },
            doc,
        )
        _entries(
            report,
            "education",
            gold["education"],
            pred["education"],
            {
                "institution": lambda g, p: norm(g["institution"]) == norm(p["institution"]),
                "degree": lambda g, p: norm(g["degree"]) == norm(p["degree"]),
                "field": lambda g, p: norm(g["field"]) == norm(p["field"]),
                "dates": lambda g, p: (
                    norm_date(g["start"]) == norm_date(p["start"])
                    and norm_date(g["end"]) == norm_date(p["end"])
                ),
            },
            doc,
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--goldens", type=Path, default=GOLDENS)
    parser.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    parser.add_argument("--quick", action="store_true", help="the same (it takes seconds)")
    args = parser.parse_args(argv)
    report = evaluate(args.fixtures, args.goldens)
    print(f"{'field':24} {'precision':>10} {'recall':>8}   (n pred / n gold)")
    for name, c in report.fields.items():
        target = TARGETS.get(name)
        mark = ""
        if target:
            mark = (
                "  ok" if c.precision >= target[0] and c.recall >= target[1] else "  BELOW TARGET"
            )
        print(f"{name:24} {c.precision:>10.1%} {c.recall:>8.1%}   ({c.predicted}/{c.gold}){mark}")
    if args.verbose:
        print("\n".join(["", *report.misses]))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
