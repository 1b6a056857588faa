"""Rules of the offline structurer for what real resumes contain, beyond the fixtures."""

from __future__ import annotations

from services.parsing.grounding import drop_invented, find_invented
from shared.ai import Experience, ParsedResume
from shared.ai.heuristics import parse_resume

TEXT = """Maria Garcia
maria.garcia@example.org | +44 20 7946 0958
Page 1 of 2
EXPERIENCE
Staff Engineer, Acme, Inc. Mar 2019 - Present
- Built things with Python; devel-
oped the billing service.
Engineer at Initech, LLC 2015 - 2019
- Did stuff
EDUCATION
BSc, Computer Science — Imperial College London (2015)
MIT
Master of Engineering, 2017
PROJECTS
Project: Howler — a job search tool
SKILLS
Python, Large Language Model Fine-Tuning and Evaluation Pipelines, Go
2
"""


def test_commas_in_company_names_and_label_project_lines() -> None:
    """'Acme, Inc.' stays one company; 'Project: Howler' names the project Howler."""
    resume = parse_resume(TEXT)
    assert [(e.title, e.company) for e in resume.experience] == [
        ("Staff Engineer", "Acme, Inc."),
        ("Engineer", "Initech, LLC"),
    ]
    assert "developed the billing service" in resume.experience[0].description
    assert [p.name for p in resume.projects] == ["Howler"]


def test_degree_field_institution_lines_and_schools_without_university() -> None:
    """'Degree, Field — Institution (year)', and an acronym school on its own line."""
    resume = parse_resume(TEXT)
    assert [(e.institution, e.degree, e.field, e.end_date) for e in resume.education] == [
        ("Imperial College London", "BSc", "Computer Science", "2015"),
        ("MIT", "Master of Engineering", None, "2017"),
    ]


def test_long_skill_items_and_page_numbers() -> None:
    """A long skill survives whole; page numbers are not content."""
    resume = parse_resume(TEXT)
    assert resume.skills == [
        "Python",
        "Large Language Model Fine-Tuning and Evaluation Pipelines",
        "Go",
    ]
    assert resume.name == "Maria Garcia"


def test_grounding_tolerates_case_hyphenation_and_columns_but_not_inventions() -> None:
    """'ACME, INC' matches 'Acme Inc.'; a wrapped 'Con-\\nsulting' matches; Globex does not."""
    text = "Worked at Acme Inc. and at Birch Con-\nsulting Group.\nSkills: a@b.io"
    resume = ParsedResume(
        email="A@B.IO",
        experience=[
            Experience(title="Dev", company="ACME, INC"),
            Experience(title="Lead", company="Birch Consulting Group"),
            Experience(title="CTO", company="Globex Corporation"),
        ],
    )
    invented = find_invented(resume, text)
    assert [(d.kind, d.value) for d in invented] == [("employer", "Globex Corporation")]
    cleaned, warnings = drop_invented(resume, invented)
    assert [e.company for e in cleaned.experience] == ["ACME, INC", "Birch Consulting Group"]
    assert warnings == [
        'dropped the experience "CTO" at "Globex Corporation": the employer does not occur '
        "in the document"
    ]
