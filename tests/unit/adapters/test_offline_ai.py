"""The offline stand-in: keyword analysis, a resume only from the profile, rule-based parsing."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from shared.ai import (
    AISettings,
    CandidateProfile,
    Education,
    Experience,
    JobPosting,
    OfflineAI,
    create_ai,
)
from shared.ai.offline import BANNER

JOB = JobPosting(
    title="Senior Backend Engineer (Python)",
    company="Acme",
    description=(
        "<p>About us: a remote-first, collaborative team.</p>"
        "<p>Requirements:</p><ul><li>5+ years of Python and PostgreSQL</li>"
        "<li>Kubernetes in production</li></ul>"
        "<p>Nice to have:</p><ul><li>Kafka</li><li>Terraform</li></ul>"
        "<p>Responsibilities:</p><ul><li>Design REST APIs</li><li>Mentor engineers</li></ul>"
    ),
)
PROFILE = CandidateProfile(
    full_name="Avery Quinlan",
    email="avery@example.com",
    location="Portland, OR",
    summary="Data engineer with 8 years of pipelines.",
    skills=["Python", "Django", "MongoDB", "Kafka", "Go"],
    experience=[
        Experience(
            title="Senior Data Engineer",
            company="Fernbrook Payments",
            start_date="Mar 2021",
            current=True,
            description="Built a Kafka pipeline\nOwned Airflow",
        ),
        Experience(
            title="Data Engineer",
            company="Hollow Pine Analytics",
            start_date="Jul 2017",
            end_date="Feb 2021",
        ),
    ],
    education=[
        Education(
            institution="Northbridge State University",
            degree="M.S.",
            field="Computer Science",
            end_date="2016",
        )
    ],
)


async def test_without_a_key_the_stand_in_is_used_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """create_ai without ANTHROPIC_API_KEY gives OfflineAI, which logs that it is a stand-in."""
    with caplog.at_level(logging.WARNING):
        ai = create_ai(AISettings())
    assert isinstance(ai, OfflineAI)
    assert "offline AI stand-in (model: offline)" in caplog.text


async def test_analysis_by_keywords() -> None:
    """Required, preferred, years, responsibilities and culture come from the posting's words."""
    result = await OfflineAI().analyze_requirements(JOB)
    analysis = result.analysis
    assert analysis.required_skills == ["Python", "PostgreSQL", "Kubernetes", "REST APIs"]
    assert analysis.preferred_skills == ["Kafka", "Terraform"]
    assert analysis.experience_years == 5
    assert analysis.key_responsibilities == ["Design REST APIs", "Mentor engineers"]
    assert analysis.culture_indicators == ["remote-first", "collaborative"]
    assert result.model == "offline" and result.usage.input_tokens == 0
    assert await OfflineAI().analyze_requirements(JOB) == result  # deterministic


async def test_resume_uses_only_profile_facts() -> None:
    """The resume names only the profile's employers, titles, dates and degrees."""
    ai = OfflineAI()
    analysis = (await ai.analyze_requirements(JOB)).analysis
    result = await ai.write_resume(
        PROFILE, JOB, analysis, existing_resume_text="Worked at Initech 1999-2001"
    )
    markdown = result.markdown
    assert markdown.startswith(BANNER) and result.model == "offline"
    assert "# Avery Quinlan" in markdown and "avery@example.com" in markdown
    assert "### Senior Data Engineer — Fernbrook Payments" in markdown
    assert "*Mar 2021 \u2013 Present*" in markdown
    assert "Initech" not in markdown and "Acme" not in markdown
    headings = re.findall(r"^### (.+)$", markdown, re.M)
    assert headings == [f"{e.title} — {e.company}" for e in PROFILE.experience]
    years = set(re.findall(r"\b(?:19|20)\d{2}\b", markdown))
    assert years <= {"2021", "2017", "2016"}
    relevant = re.search(r"\*\*Relevant to this role:\*\* (.+)", markdown)
    assert relevant and relevant.group(1) == "Python, Kafka"  # not Django/MongoDB/Go by substring


async def test_parse_simple_docx(fixtures_dir: Path) -> None:
    """The simple DOCX parses into contact details, skills, two jobs and a degree."""
    result = await OfflineAI().parse_resume_docx(
        (fixtures_dir / "resumes" / "john_doe_simple.docx").read_bytes()
    )
    resume = result.resume
    assert (resume.name, resume.email, resume.phone) == (
        "John Doe",
        "john.doe@example.com",
        "(555) 123-4567",
    )
    assert {"Python", "FastAPI", "PostgreSQL", "Kubernetes", "Node.js"} <= set(resume.skills)
    assert [
        (e.title, e.company, e.start_date, e.end_date, e.current) for e in resume.experience
    ] == [
        ("Software Engineer", "Tech Corp", "June 2020", None, True),
        ("Junior Developer", "StartupCo", "January 2018", "May 2020", False),
    ]
    assert resume.education[0].degree == "Bachelor of Science"
    assert resume.education[0].field == "Computer Science"
    assert resume.education[0].gpa == "3.8/4.0"
    assert result.model == "offline" and "Tech Corp" in result.text


async def test_parse_two_column_docx_with_header(fixtures_dir: Path) -> None:
    """The generated two-column DOCX: contact in the page header, jobs in a table cell."""
    docx = (fixtures_dir / "resumes" / "GENERATED_avery_quinlan_two_column_table.docx").read_bytes()
    resume = (await OfflineAI().parse_resume_docx(docx)).resume
    assert resume.name == "Avery Quinlan" and resume.email == "avery.quinlan@example.com"
    assert resume.phone == "+1 (555) 014-2291"
    assert [e.company for e in resume.experience] == [
        "Fernbrook Payments",
        "Hollow Pine Analytics",
        "Tidewater Labs",
    ]
    assert resume.experience[1].location == "Seattle, WA"
    assert {"Python", "Airflow", "dbt", "BigQuery"} <= set(resume.skills)
    assert [e.institution for e in resume.education] == [
        "Northbridge State University",
        "Lakeview College",
    ]
    assert resume.certifications == ["AWS Certified Data Analytics \u2013 Specialty (2022)"]
    assert resume.projects[0].name == "streamcheck"


async def test_parse_pdfs(fixtures_dir: Path) -> None:
    """moderncv and Word PDFs give names, contacts and date-anchored jobs."""
    ai = OfflineAI()
    alfred = (
        await ai.parse_resume_pdf(
            (fixtures_dir / "resumes" / "alfred_pennyworth_pm.pdf").read_bytes()
        )
    ).resume
    assert alfred.name == "Alfred Pennyworth" and alfred.email == "alfred.pennyworth@email.com"
    assert [e.company for e in alfred.experience][:3] == ["Google", "Amazon", "Apple"]
    assert alfred.experience[0].current and alfred.experience[0].start_date == "2017"
    assert "Project management" in alfred.skills
    smith = (
        await ai.parse_resume_pdf(
            (fixtures_dir / "resumes" / "john_smith_word2016_3pages.pdf").read_bytes()
        )
    ).resume
    assert smith.name == "John Smith"
    assert [(e.title, e.company) for e in smith.experience][:2] == [
        ("Senior Python Developer", "ABC Company"),
        ("Python Developer", "XYZ Corporation"),
    ]
