"""The LLM quality gates on realistic replies: resumes that pass, and ways they go wrong."""
# ruff: noqa: RUF001  (real replies use en dashes; the gates must read them)

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from shared.ai import CandidateProfile, Education, Experience, ParsedResume, RequirementsAnalysis
from shared.ai.gates import (
    analysis_problems,
    fold,
    parse_problems,
    readme_problems,
    resume_problems,
)

PROFILE = CandidateProfile(
    full_name="Zoë Müller-Łukasik",
    email="zoe.mueller@example.com",
    location="München, Germany",
    linkedin_url="https://www.linkedin.com/in/zoe-ml",
    skills=["Python", "PostgreSQL", "Kubernetes", "Go"],
    experience=[
        Experience(
            title="Senior Backend Engineer",
            company="Acme Robotics GmbH",
            location="Munich",
            start_date="2019-03",
            current=True,
            description="Built the fleet telemetry pipeline (Kafka, Go) and cut p99 by 40%.",
        ),
        Experience(
            title="Software Engineer",
            company="Globex, Inc.",
            start_date="Jun 2016",
            end_date="Feb 2019",
            description="Python services on PostgreSQL; on-call for billing.",
        ),
    ],
    education=[
        Education(
            institution="Technische Universität München",
            degree="B.Sc.",
            field="Informatik",
            start_date="2012",
            end_date="2016",
        )
    ],
)
BODY = """
## Summary

Backend engineer with seven years of building data-heavy services in Python and Go, most
recently leading telemetry for a robotics fleet. Comfortable owning services end to end,
from schema design in PostgreSQL to running them on Kubernetes, and on call for them.

## Skills

- **Languages:** Python, Go, SQL
- **Data:** PostgreSQL, Kafka
- **Platform:** Kubernetes, Docker, CI/CD

## Experience

{experience}

## Education

**B.Sc. Informatik**, Technische Universität München, 2012 – 2016
"""
GOOD_EXPERIENCE = """### Senior Backend Engineer — Acme Robotics
*Munich · Mar 2019 – Present*

- Built the fleet telemetry pipeline on Kafka and Go, cutting p99 latency by 40%.
- Designed the PostgreSQL schema for telemetry and the services that read it at scale.
- Led on-call for the telemetry platform and wrote the runbooks the team still uses.

### Software Engineer — Globex Inc
*06/2016 - 02/2019*

- Wrote Python services on PostgreSQL for the billing platform and its reporting.
- Shared on-call for billing; automated the monthly invoice reconciliation end to end.
"""


def resume(experience: str = GOOD_EXPERIENCE, head: str | None = None) -> str:
    head = head or (
        "# Zoë Müller-Łukasik\n\nzoe.mueller@example.com · München, Germany · "
        "[LinkedIn](https://www.linkedin.com/in/zoe-ml)\n"
    )
    return head + BODY.format(experience=experience)


def test_a_faithful_resume_passes() -> None:
    assert resume_problems(resume(), PROFILE) == []


@pytest.mark.parametrize(
    "experience",
    [
        # bold lines with pipes, the legal form spelled differently, "heute"
        "**Acme Robotics GmbH** | Munich | 2019 – heute\n*Sr. Backend Engineer*\n\n"
        "- Built the fleet telemetry pipeline on Kafka and Go.\n\n"
        "**Globex, Inc.** | Jun 2016 – Feb 2019\n*Software Engineer*\n\n- Python services.\n",
        # one line per role: "Title, Employer (dates)"
        "Senior Backend Engineer, Acme Robotics (March 2019 - Current)\n\n- Telemetry.\n\n"
        "Software Engineer at Globex Incorporated (2016-2019)\n\n- Billing services.\n",
        # headings "Employer — Title", ISO dates
        "### Acme Robotics — Senior Back-end Engineer (2019-03 – present)\n\n- Telemetry.\n\n"
        "### GLOBEX — Software Engineer (2016-06 – 2019-02)\n\n- Billing.\n",
    ],
)
def test_layouts_and_spellings_of_the_same_facts_pass(experience: str) -> None:
    text = resume(experience)
    text += "\n" + " ".join(["Delivered reliable backend systems."] * 20)  # length band
    assert resume_problems(text, PROFILE) == []


def test_italic_title_lines_quarters_durations_and_phone_formats() -> None:
    experience = (
        "### Acme Robotics GmbH\n*Senior Backend Engineer* · Q1 2019 – Present (5+ years)\n\n"
        "- Telemetry.\n\n### Globex, Inc.\n_Software Engineer_, 2016 – 2019\n\n- Billing.\n"
    )
    head = "# Zoë Müller-Łukasik\n\n+49 (0)89 1234 5678 · zoe.mueller@example.com\n"
    profile = msgspec.structs.replace(PROFILE, summary="Call me on 089 12345678.")
    text = resume(experience, head=head) + " ".join(["Reliable systems."] * 30)
    assert resume_problems(text, profile) == []
    invented = text.replace("_Software Engineer_", "_Chief Technology Officer_")
    assert any("'Chief Technology Officer'" in p for p in resume_problems(invented, profile))


def test_an_invented_school_is_caught() -> None:
    text = resume().replace("Technische Universität München", "Stanford University")
    problems = resume_problems(text, PROFILE)
    assert any("'Stanford University'" in p for p in problems), problems


def test_an_invented_employer_and_title_are_caught() -> None:
    invented = GOOD_EXPERIENCE.replace(
        "### Software Engineer — Globex Inc", "### Staff Engineer — Initech LLC"
    )
    problems = resume_problems(resume(invented), PROFILE)
    assert any("'Initech LLC'" in p for p in problems), problems
    assert any("'Staff Engineer'" in p for p in problems), problems
    assert not any("Acme" in p for p in problems)


def test_invented_years_degrees_and_contact_details_are_caught() -> None:
    text = resume(GOOD_EXPERIENCE.replace("06/2016", "06/2013")).replace(
        "**B.Sc. Informatik**", "**MBA, Informatik**"
    )
    text = text.replace("zoe.mueller@example.com", "zoe@initech.example · +49 89 1234 5678")
    problems = resume_problems(text, PROFILE)
    assert "it gives years the profile and resume do not contain: 2013" in problems
    assert "it names a MBA degree the profile and resume do not contain" in problems
    assert any("'zoe@initech.example'" in p for p in problems)
    assert any("phone number" in p for p in problems)


def test_facts_from_the_original_resume_count_as_sources() -> None:
    text = resume(
        GOOD_EXPERIENCE
        + "\n### Intern — Umbrella Labs S.A.\n*2015*\n\n- Built test tooling in Python.\n"
    )
    assert any("Umbrella" in p for p in resume_problems(text, PROFILE))
    original = "EXPERIENCE\nUmbrella Labs SA, Lyon — Intern, summer 2015\n"
    assert resume_problems(text, PROFILE, original) == []


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        ("[Your Phone Number]", "a bracketed placeholder"),
        ("Company Name", "a template phrase"),
        ("Lorem ipsum dolor sit amet", "lorem ipsum"),
        ("grew revenue by XX%", "a dummy value"),
        ("{{candidate_name}}", "a template placeholder"),
        ("TODO: add metrics", "a to-do marker"),
    ],
)
def test_placeholder_text_is_caught(snippet: str, what: str) -> None:
    text = resume(GOOD_EXPERIENCE.replace("cutting p99 latency by 40%", snippet))
    problems = resume_problems(text, PROFILE)
    assert any(p.startswith(f"it contains {what}") for p in problems), problems


def test_the_recorded_thinking_reply_is_not_a_resume(fixtures_dir: Path) -> None:
    """The real Claude reply (a thinking block, then prose about something else) fails."""
    body = json.loads(
        (fixtures_dir / "anthropic" / "messages_200_thinking_text_tool_use.json").read_text()
    )
    text = "".join(b["text"] for b in body["content"] if b["type"] == "text")
    problems = resume_problems(text, PROFILE)
    assert "it has no level-1 heading with the candidate's name: it is not a resume" in problems
    assert "it has no Experience section" in problems and "it has no Skills section" in problems


def test_prose_with_a_heading_is_not_a_resume_either() -> None:
    """What the old check (a heading and 40 characters) let through."""
    text = "# The largest city\n\nThe largest city in your country is probably its capital.\n"
    problems = resume_problems(text, PROFILE)
    assert any("is not the candidate's name" in p for p in problems)
    assert any("no contact block" in p for p in problems)
    assert any("words long" in p for p in problems)


def test_unicode_names_fold_with_and_without_accents() -> None:
    head = "# Zoe Muller-Lukasik\n\nzoe.mueller@example.com\n"
    assert resume_problems(resume(head=head), PROFILE) == []
    assert fold("Technische Universität München") == fold("TECHNISCHE UNIVERSITAT MUNCHEN")
    assert fold("Globex, Inc.") == fold("Globex Inc") == ["globex"]
    assert fold("Acme Robotics GmbH") == fold("ACME Robotics")


def test_analysis_gate() -> None:
    good = RequirementsAnalysis(
        required_skills=["Python", "PostgreSQL"], preferred_skills=["Kafka"], experience_years=5
    )
    assert analysis_problems(good) == []
    bad = RequirementsAnalysis(
        required_skills=["Python", "python ", "You will build APIs used by millions of people"],
        experience_years=70,
    )
    problems = analysis_problems(bad)
    assert any("listed twice" in p for p in problems)
    assert any("not a short skill name" in p for p in problems)
    assert any("experienceYears 70" in p for p in problems)
    assert analysis_problems(RequirementsAnalysis()) == [
        "requiredSkills is empty: list the skills the posting asks for"
    ]


def test_readme_gate() -> None:
    readmes = [("me/bot", "A Discord bot written with discord.py and SQLAlchemy on Python 3.")]
    assert readme_problems(["Python", "SQLAlchemy", "discord.py", "Kubernetes"], readmes) == []
    problems = readme_problems(["Synergy", "Blockchain Synergy"], readmes)
    assert problems == [
        "'Synergy' is neither a known technology nor named in the READMEs",
        "'Blockchain Synergy' is neither a known technology nor named in the READMEs",
    ]


def test_parse_gate() -> None:
    text = "ZOË MÜLLER\nzoe@example.com\nAcme Robotics GmbH, 2019-\nTU München, B.Sc."
    found = ParsedResume(
        name="Zoë Müller",
        email="zoe@example.com",
        experience=[Experience(company="Acme Robotics")],
        education=[Education(institution="TU München")],
    )
    assert parse_problems(found, text) == []
    invented = ParsedResume(name="Zoë Müller", experience=[Experience(company="Initech")])
    assert parse_problems(invented, text) == ['employer "Initech" does not occur in the resume']
