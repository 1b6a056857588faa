"""Tokens and dollars per resume generation, before and after prompt caching and the shared
analysis: `python -m bench.llm [--quick] [--users N]`.

Runs the real Claude adapter (ClaudeAI: the prompts, the cache_control breakpoints, the
pricing) against the fake Anthropic server, which reports `usage` the way the API does and
honours `cache_control` (a prefix of 1,024+ tokens seen within its TTL is read at 0.1x,
written at 1.25x). Each generation is what resume-generation calls: analyze-requirements
(cheap model) then generate-resume (strong model) over a realistic profile, the user's
original resume and a job ad.

- before: no `cache_control` (ANTHROPIC_PROMPT_CACHE=false) and one analysis per
  generation (no step cache);
- after: prompt caching on and one analysis per normalised posting (what the step cache
  keyed by `posting_key` gives: tests/integration/llm/test_shared_analysis.py shows the
  engine doing it).

Scenarios: one user with 5 applications to 5 different postings; N users (100) tailoring to
the same posting. Gates are not involved (every reply passes); the fake's replies have a
fixed, realistic length, so the output side is the same before and after.
"""
# ruff: noqa: RUF001  (resumes use en dashes)

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.resume.steps import posting_key
from shared.ai import AISettings, CandidateProfile, ClaudeAI, Education, Experience, JobPosting
from shared.ai.schemas import RequirementsAnalysis, Usage
from shared.config import load_settings
from tests.support.fakes import AnthropicFake, RunningFake

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"

PROFILE = CandidateProfile(
    full_name="Zoë Müller-Łukasik",
    email="zoe.mueller@example.com",
    location="München, Germany",
    headline="Senior backend engineer: telemetry, data pipelines, Go and Python",
    summary=(
        "Backend engineer with nine years of building data-heavy services. Leads the fleet "
        "telemetry platform at a robotics company; before that, billing services at a "
        "payments company. Cares about operability, schemas that age well and on-call that "
        "does not burn people out."
    ),
    skills=[
        "Python",
        "Go",
        "PostgreSQL",
        "Kafka",
        "Kubernetes",
        "Terraform",
        "gRPC",
        "ClickHouse",
        "Redis",
        "AWS",
        "Prometheus",
        "Grafana",
        "SQL",
        "Docker",
    ],
    experience=[
        Experience(
            title="Senior Backend Engineer",
            company="Acme Robotics GmbH",
            location="Munich",
            start_date="2019-03",
            current=True,
            description=(
                "Built the fleet telemetry pipeline (Kafka, Go, ClickHouse) ingesting 2 TB a "
                "day from 4,000 robots; cut p99 query latency by 40%. Designed the PostgreSQL "
                "schema of the device registry. Led on-call for the platform (6 engineers), "
                "wrote the runbooks and the SLOs. Mentored three engineers to senior."
            ),
            skills=["Go", "Kafka", "ClickHouse", "PostgreSQL", "Kubernetes"],
        ),
        Experience(
            title="Software Engineer",
            company="Globex, Inc.",
            location="Berlin",
            start_date="Jun 2016",
            end_date="Feb 2019",
            description=(
                "Python services on PostgreSQL for billing: invoicing, dunning, revenue "
                "recognition. Automated the monthly reconciliation (3 days of manual work to "
                "20 minutes). Moved the services from VMs to Kubernetes with Terraform."
            ),
            skills=["Python", "PostgreSQL", "Terraform"],
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
ORIGINAL_RESUME = "\n".join(
    [
        "ZOË MÜLLER-ŁUKASIK",
        "zoe.mueller@example.com | München, Germany | linkedin.com/in/zoe-ml",
        "SUMMARY",
        PROFILE.summary or "",
        "EXPERIENCE",
        "Acme Robotics GmbH, Munich - Senior Backend Engineer, 03/2019 - present",
        *(f"- {line}." for line in (PROFILE.experience[0].description or "").split(". ")),
        "- Introduced contract tests between the ingestion and query services.",
        "- Ran the migration of 30 services to a shared Kafka cluster without downtime.",
        "Globex, Inc., Berlin - Software Engineer, 06/2016 - 02/2019",
        *(f"- {line}." for line in (PROFILE.experience[1].description or "").split(". ")),
        "EDUCATION",
        "Technische Universität München - B.Sc. Informatik, 2012 - 2016",
        "Thesis: adaptive sampling for time-series storage.",
        "SKILLS",
        ", ".join(PROFILE.skills),
    ]
)


def job(n: int) -> JobPosting:
    """A realistic job ad (about 3,000 characters); `n` makes a different one."""
    teams = ["platform", "payments", "data", "search", "growth", "infrastructure"]
    team = teams[n % len(teams)]
    return JobPosting(
        title=f"Senior Backend Engineer, {team.title()}",
        company=f"Company {n}",
        location="Remote (EU)",
        description="\n".join(
            [
                f"We are hiring a senior backend engineer for our {team} team (posting {n}).",
                "About the role: you will design, build and run the services that move "
                "millions of events a day, own them in production and improve how the team "
                "ships. You will work with product, data and SRE colleagues across Europe.",
                "What you will do:",
                "- Design and build services in Go or Python on PostgreSQL and Kafka.",
                "- Own reliability: SLOs, alerting, on-call, incident reviews.",
                "- Improve our deployment pipeline on Kubernetes and Terraform.",
                "- Mentor engineers and review designs across teams.",
                "What we are looking for:",
                "- 5+ years of backend engineering in production.",
                "- Strong SQL and data modelling; PostgreSQL preferred.",
                "- Experience with event streaming (Kafka or similar).",
                "- Comfortable with Kubernetes, CI/CD and infrastructure as code.",
                "Nice to have: ClickHouse, gRPC, observability tooling, payments domain.",
                "What we offer: remote-first team, learning budget, 30 days of holiday, "
                "a four-day week in summer, and a team that writes things down.",
            ]
            * 2
        ),
        requirements=["Go or Python", "PostgreSQL", "Kafka", "Kubernetes"],
    )


RESUME_REPLY = "\n".join(
    [
        "# Zoë Müller-Łukasik",
        "",
        "zoe.mueller@example.com · München, Germany",
        "",
        "## Summary",
        "",
        PROFILE.summary or "",
        "",
        "## Skills",
        "",
        "- " + ", ".join(PROFILE.skills),
        "",
        "## Experience",
        "",
        "### Senior Backend Engineer — Acme Robotics GmbH (Mar 2019 – Present)",
        *(f"- {line}." for line in (PROFILE.experience[0].description or "").split(". ")),
        "",
        "### Software Engineer — Globex, Inc. (Jun 2016 – Feb 2019)",
        *(f"- {line}." for line in (PROFILE.experience[1].description or "").split(". ")),
        "",
        "## Education",
        "",
        "**B.Sc. Informatik**, Technische Universität München, 2012 – 2016",
    ]
)


@dataclass
class Tally:
    generations: int = 0
    calls: int = 0
    input_tokens: int = 0
    cache_write: int = 0
    cache_read: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    analyses: dict[str, RequirementsAnalysis] = field(default_factory=dict)

    def add(self, usage: Usage) -> None:
        self.calls += 1
        self.input_tokens += usage.input_tokens
        self.cache_write += usage.cache_creation_input_tokens
        self.cache_read += usage.cache_read_input_tokens
        self.output_tokens += usage.output_tokens
        self.cost += usage.cost_usd

    def row(self, scenario: str, mode: str) -> str:
        n = max(1, self.generations)
        prompt = (self.input_tokens + self.cache_write + self.cache_read) / n
        return (
            f"| {scenario} | {mode} | {self.calls / n:.2f} | {prompt:,.0f} | "
            f"{self.cache_read / n:,.0f} | {self.cache_write / n:,.0f} | "
            f"{self.output_tokens / n:,.0f} | ${self.cost / n:.5f} | ${self.cost:.4f} |"
        )


async def generate(
    ai: ClaudeAI, posting: JobPosting, tally: Tally, shared: bool, resume_text: str
) -> None:
    """One resume-generation's model calls: the analysis (or the shared one), the writing."""
    key = posting_key(posting)
    analysis = tally.analyses.get(key) if shared else None
    if analysis is None:
        result = await ai.analyze_requirements(posting)
        tally.add(result.usage)
        analysis = tally.analyses[key] = result.analysis
    written = await ai.write_resume(PROFILE, posting, analysis, resume_text)
    tally.add(written.usage)
    tally.generations += 1


async def scenario(url: str, after: bool, postings: list[JobPosting], users: int) -> Tally:
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-bench",
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_PROMPT_CACHE": "true" if after else "false",
    }
    tally = Tally()
    started = time.perf_counter()
    async with ClaudeAI(load_settings(AISettings, env)) as ai:
        # Users one after another, as a day's traffic. Each user's resume differs (here by
        # a reference line), so users never share a writing prefix; only a posting.
        for user in range(users):
            resume_text = ORIGINAL_RESUME + (f"\nReference: {user}" if users > 1 else "")
            for posting in postings:
                await generate(ai, posting, tally, after, resume_text)
    tally.seconds = time.perf_counter() - started
    return tally


async def main(users: int) -> list[str]:
    rows = []
    with RunningFake(AnthropicFake(FIXTURES)) as fake:
        fake.control.call("POST", "default-text", content=RESUME_REPLY.encode())
        cases = [
            ("1 user, 5 applications", [job(n) for n in range(5)], 1),
            (f"{users} users, 1 posting", [job(99)], users),
        ]
        for name, postings, count in cases:
            for after in (False, True):
                fake.control.reset()  # an empty prompt cache for each run
                fake.control.call("POST", "default-text", content=RESUME_REPLY.encode())
                tally = await scenario(fake.url, after, postings, count)
                rows.append(tally.row(name, "after" if after else "before"))
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 users instead of 100")
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    rows = asyncio.run(main(40 if args.quick else args.users))
    print(
        "| scenario | mode | calls/gen | prompt tokens/gen | cache read/gen | cache write/gen "
        "| output tokens/gen | $/gen | $ total |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    cli()
