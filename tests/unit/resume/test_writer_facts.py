"""The resume writer (offline stand-in) invents no employer, title, date or degree."""

import re
import uuid

from services.resume import steps
from services.resume.steps import ResumeDeps, UserData
from shared.ai import CandidateProfile, Education, Experience, OfflineAI, RequirementsAnalysis
from shared.ai.gates import resume_problems
from shared.db import Job


async def test_offline_writer_uses_only_profile_facts():
    """Every employer, title, year and degree in the resume comes from the profile."""
    profile = CandidateProfile(
        full_name="Ada Lovelace",
        email="ada@example.com",
        skills=["Python", "PostgreSQL"],
        experience=[
            Experience(
                title="Senior Engineer",
                company="Analytical Engines Ltd",
                start_date="2019-01",
                end_date="2024-06",
                description="Built services",
                skills=["Python"],
            ),
        ],
        education=[
            Education(
                institution="University of London",
                degree="BSc",
                field="Mathematics",
                end_date="2015",
            )
        ],
    )
    job = Job(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        title="Staff Platform Engineer",
        company="Globex Corporation",
        description="Kubernetes, Go, 10 years at a FAANG company, PhD preferred, 2008.",
    )
    analysis = RequirementsAnalysis(
        required_skills=["Kubernetes", "Go", "Python"], preferred_skills=["PhD"]
    )
    deps = ResumeDeps(repo=None, ai=OfflineAI(), mailer=None)  # type: ignore[arg-type]
    user = UserData(profile=profile, skills=["Python", "PostgreSQL"])
    result = await steps.write_resume(deps, user, job, analysis)
    text = result.markdown
    assert result.model == "offline"
    # The quality gate agrees: a resume, built from the profile's facts only.
    assert resume_problems(text, profile) == []
    assert "Analytical Engines Ltd" in text and "Senior Engineer" in text
    for invented in ("Globex", "FAANG", "PhD", "Staff Platform Engineer", "2008"):
        assert invented not in text, invented
    allowed_years = {"2019", "2024", "2015"}
    assert set(re.findall(r"\b(?:19|20)\d\d\b", text)) <= allowed_years
    for degree in ("MSc", "Master", "Doctor", "MBA"):
        assert degree not in text
