"""What goes into and comes out of the AI adapter: frozen msgspec Structs, camelCase on the wire.

Outputs keep the original's camelCase keys (the web app reads them); every result carries
the model that produced it and the tokens it cost. `json_schema(...)` gives the tool input
schema Claude is asked to fill.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec

__all__ = [
    "AnalysisResult",
    "CandidateProfile",
    "Education",
    "Experience",
    "JobPosting",
    "ParseResult",
    "ParsedResume",
    "Project",
    "ReadmeSkills",
    "RequirementsAnalysis",
    "ResumeResult",
    "SkillsResult",
    "Usage",
    "json_schema",
]


class Usage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Tokens one call cost (all zero for the offline stand-in)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0  # the call's price by the configured table (pricing.py)


# ---- inputs -------------------------------------------------------------------------------


class Experience(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One job in a profile or a parsed resume (SPEC §5 shape)."""

    title: str = ""
    company: str = ""
    location: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    current: bool = False
    description: str = ""
    skills: list[str] = msgspec.field(default_factory=list)


class Education(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One degree or course of study."""

    institution: str = ""
    degree: str = ""
    field: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    gpa: str | None = None


class Project(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A project named on a resume."""

    name: str = ""
    description: str = ""
    url: str | None = None


class JobPosting(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a `jobs` row the AI reads. Build with `msgspec.convert(row, JobPosting)`."""

    title: str
    company: str = ""
    description: str = ""
    location: str | None = None
    requirements: list[str] = msgspec.field(default_factory=list)
    employment_type: str | None = None
    experience_level: str | None = None


class CandidateProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a `profiles` row the AI reads (snake_case columns, camelCase jsonb items)."""

    full_name: str | None = None
    email: str | None = None
    headline: str | None = None
    summary: str | None = None
    location: str | None = None
    linkedin_url: str | None = None
    github_handle: str | None = None
    skills: list[str] = msgspec.field(default_factory=list)
    experience: list[Experience] = msgspec.field(default_factory=list)
    education: list[Education] = msgspec.field(default_factory=list)
    portfolio_urls: list[str] = msgspec.field(default_factory=list)


# ---- outputs ------------------------------------------------------------------------------


class RequirementsAnalysis(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a job asks for (step `analyze-requirements`)."""

    required_skills: list[str] = msgspec.field(default_factory=list)
    preferred_skills: list[str] = msgspec.field(default_factory=list)
    experience_years: int | None = None
    key_responsibilities: list[str] = msgspec.field(default_factory=list)
    culture_indicators: list[str] = msgspec.field(default_factory=list)


class ParsedResume(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A resume as structured data (SPEC §5 resume-parsing)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    summary: str | None = None
    skills: list[str] = msgspec.field(default_factory=list)
    experience: list[Experience] = msgspec.field(default_factory=list)
    education: list[Education] = msgspec.field(default_factory=list)
    certifications: list[str] = msgspec.field(default_factory=list)
    projects: list[Project] = msgspec.field(default_factory=list)


class AnalysisResult(msgspec.Struct, frozen=True, kw_only=True):
    analysis: RequirementsAnalysis
    model: str
    usage: Usage


class ResumeResult(msgspec.Struct, frozen=True, kw_only=True):
    markdown: str
    model: str
    usage: Usage


class ParseResult(msgspec.Struct, frozen=True, kw_only=True):
    resume: ParsedResume
    # The document's plain text (for `resumes.parsed_content`); from local extraction.
    text: str
    model: str
    usage: Usage


class ReadmeSkills(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Technologies a set of READMEs shows the author working with (profile-sync)."""

    skills: list[str] = msgspec.field(default_factory=list)


class SkillsResult(msgspec.Struct, frozen=True, kw_only=True):
    skills: list[str]
    model: str
    usage: Usage


def json_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """A self-contained JSON schema for `struct`, as a tool's `input_schema`.

    Definitions are inlined, titles and defaults dropped, and every property required, so
    the model fills each field (null where a field is optional) instead of leaving gaps.
    """
    schema = msgspec.json.schema(struct)
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return inline(dict(defs[ref.removeprefix("#/$defs/")]))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "default"):
                continue
            if key == "properties":
                out[key] = {name: inline(sub) for name, sub in value.items()}
            else:
                out[key] = inline(value)
        if out.get("type") == "object" and "properties" in out:
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out

    return cast(dict[str, Any], inline(schema))
