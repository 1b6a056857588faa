"""The offline structurer measured against hand-written goldens (bench.parsing_eval)."""

from __future__ import annotations

from pathlib import Path

from bench.parsing_eval import GOLDENS, TARGETS, evaluate


def test_every_fixture_resume_has_a_golden(fixtures_dir: Path) -> None:
    """Each recorded resume is measured; no golden names a missing file."""
    documents = {p.name for p in (fixtures_dir / "resumes").iterdir()}
    goldens = {p.read_text().split('"file": "')[1].split('"')[0] for p in GOLDENS.glob("*.json")}
    assert goldens == documents


def test_field_precision_and_recall_meet_the_targets(fixtures_dir: Path) -> None:
    """Name/email/phone 100 %; experience and education ≥ 90 %; skills P ≥ 90 %, R ≥ 80 %."""
    report = evaluate(fixtures_dir / "resumes", GOLDENS)
    assert set(TARGETS) <= set(report.fields)
    assert report.fields["experience.title"].gold >= 20  # measured on real volume
    assert report.failures() == [], "\n".join(report.misses)
