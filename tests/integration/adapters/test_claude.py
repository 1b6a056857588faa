"""The Claude adapter against the fake Anthropic API (recorded envelopes and error bodies)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from shared.ai import (
    AISettings,
    CandidateProfile,
    ClaudeAI,
    JobPosting,
    MalformedReplyError,
    RequirementsAnalysis,
    create_ai,
)
from shared.ai.settings import DEFAULT_CHEAP_MODEL, DEFAULT_STRONG_MODEL
from shared.config import load_settings
from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from tests.integration.adapters.conftest import ANTHROPIC_KEY
from tests.support.fakes import RunningFake

JOB = JobPosting(
    title="Senior Python Engineer",
    company="Acme",
    description="Requirements: 5+ years of Python and PostgreSQL. Kafka is a plus.",
)
ANALYSIS = {
    "requiredSkills": ["Python", "PostgreSQL"],
    "preferredSkills": ["Kafka"],
    "experienceYears": 5,
    "keyResponsibilities": ["Build APIs"],
    "cultureIndicators": ["remote-first"],
}


def claude(fake: RunningFake, **overrides: object) -> ClaudeAI:
    env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": fake.url}
    env.update({k: str(v) for k, v in overrides.items()})
    ai = create_ai(load_settings(AISettings, env))
    assert isinstance(ai, ClaudeAI)
    return ai


async def test_analysis_comes_from_a_forced_tool_call(anthropic_fake: RunningFake) -> None:
    """analyze_requirements forces the record tool and reports the model and token usage."""
    anthropic_fake.control.script(tool_input=ANALYSIS)
    async with claude(anthropic_fake) as ai:
        result = await ai.analyze_requirements(JOB)
    assert result.analysis.required_skills == ["Python", "PostgreSQL"]
    assert result.analysis.experience_years == 5
    assert result.model == DEFAULT_CHEAP_MODEL
    usage = anthropic_fake.control.call("GET", "usage")
    assert result.usage.input_tokens == usage["input_tokens"] > 0
    assert result.usage.output_tokens == usage["output_tokens"] > 0
    # Haiku-class list price: $1 per million input tokens, $5 per million output tokens.
    expected = (usage["input_tokens"] * 1 + usage["output_tokens"] * 5) / 1e6
    assert result.usage.cost_usd == pytest.approx(expected)
    sent = json.loads(anthropic_fake.control.last_request("/v1/messages")["body"])
    assert sent["model"] == DEFAULT_CHEAP_MODEL
    assert sent["tool_choice"] == {"type": "tool", "name": "record_job_requirements"}
    assert sent["tools"][0]["input_schema"]["required"] == list(ANALYSIS)
    assert "<job_posting>" in sent["messages"][0]["content"][0]["text"]


async def test_the_sdk_is_asked_not_to_retry(anthropic_fake: RunningFake) -> None:
    """One 529 is one request: the SDK's own retries are off, the engine retries."""
    anthropic_fake.control.fail_next(1, 529, fixture="anthropic/error_529_overloaded_error.json")
    async with claude(anthropic_fake) as ai:
        with pytest.raises(RetryAfterError):
            await ai.analyze_requirements(JOB)
    assert len(anthropic_fake.control.requests("/v1/messages")) == 1


@pytest.mark.parametrize(
    ("status", "fixture", "retry_after", "expected"),
    [
        (429, "anthropic/error_429_rate_limit_error.json", "2", 2.0),
        (529, "anthropic/error_529_overloaded_error.json", "7", 7.0),
        (529, "anthropic/error_529_overloaded_error_no_request_id.json", None, 30.0),
    ],
)
async def test_rate_limits_become_retry_after(
    anthropic_fake: RunningFake, status: int, fixture: str, retry_after: str | None, expected: float
) -> None:
    """429 and 529 become RetryAfterError with the server's retry-after (or the default)."""
    headers = {"retry-after": retry_after} if retry_after else {}
    anthropic_fake.control.script(status=status, fixture=fixture, headers=headers)
    async with claude(anthropic_fake) as ai:
        with pytest.raises(RetryAfterError) as caught:
            await ai.analyze_requirements(JOB)
    assert caught.value.delay == timedelta(seconds=expected)
    assert str(status) in str(caught.value)


@pytest.mark.parametrize(
    ("status", "fixture"),
    [
        (400, "anthropic/error_400_invalid_request_error.json"),
        (404, "anthropic/error_404_not_found_error.json"),
    ],
)
async def test_client_errors_are_not_retried(
    anthropic_fake: RunningFake, status: int, fixture: str
) -> None:
    """400 and 404 answers are NonRetryableError quoting the API's message and request id."""
    anthropic_fake.control.script(status=status, fixture=fixture)
    async with claude(anthropic_fake) as ai:
        with pytest.raises(NonRetryableError) as caught:
            await ai.analyze_requirements(JOB)
    assert "req_011C" in str(caught.value)


async def test_server_errors_are_retryable_upstream_errors(anthropic_fake: RunningFake) -> None:
    """A 500 is an UpstreamError (retryable), not a non-retryable one."""
    anthropic_fake.control.script(
        status=500, json={"type": "error", "error": {"type": "api_error", "message": "boom"}}
    )
    async with claude(anthropic_fake) as ai:
        with pytest.raises(UpstreamError) as caught:
            await ai.analyze_requirements(JOB)
    assert not isinstance(caught.value, NonRetryableError)


async def test_fenced_json_in_a_text_reply_is_accepted(anthropic_fake: RunningFake) -> None:
    """A text reply with chatter and a ```json fence still yields the analysis."""
    text = "Sure! Here is the analysis:\n```json\n" + json.dumps(ANALYSIS) + "\n```\nHope it helps."
    anthropic_fake.control.script(text=text)
    async with claude(anthropic_fake) as ai:
        result = await ai.analyze_requirements(JOB)
    assert result.analysis.preferred_skills == ["Kafka"]


async def test_a_reply_of_the_wrong_shape_is_retryable_and_quoted(
    anthropic_fake: RunningFake,
) -> None:
    """Prose instead of JSON is a MalformedReplyError quoting the reply's first characters."""
    anthropic_fake.control.script(text="I cannot find any requirements in this posting, sorry.")
    async with claude(anthropic_fake) as ai:
        with pytest.raises(MalformedReplyError) as caught:
            await ai.analyze_requirements(JOB)
    assert "I cannot find any requirements" in str(caught.value)
    assert isinstance(caught.value, UpstreamError) and not isinstance(
        caught.value, NonRetryableError
    )


async def test_a_recorded_thinking_reply_with_another_tool_is_not_accepted(
    anthropic_fake: RunningFake,
) -> None:
    """The recorded thinking+text+tool_use reply (a different, empty tool call) is malformed."""
    anthropic_fake.control.script(fixture="anthropic/messages_200_thinking_text_tool_use.json")
    async with claude(anthropic_fake) as ai:
        with pytest.raises(MalformedReplyError):
            await ai.analyze_requirements(JOB)


async def test_resume_is_written_by_the_strong_model(anthropic_fake: RunningFake) -> None:
    """write_resume uses the strong model and strips a wrapping fence and preamble."""
    markdown = "# Ada Lovelace\n\nada@example.com\n\n## Experience\n\n### Analyst — Engines Ltd\n"
    anthropic_fake.control.script(text=f"Here is the resume:\n```markdown\n{markdown}```")
    profile = CandidateProfile(full_name="Ada Lovelace", email="ada@example.com", skills=["Python"])
    async with claude(anthropic_fake) as ai:
        result = await ai.write_resume(
            profile, JOB, RequirementsAnalysis(required_skills=["Python"]), "old text"
        )
    assert result.markdown.startswith("# Ada Lovelace")
    assert result.model == DEFAULT_STRONG_MODEL
    sent = json.loads(anthropic_fake.control.last_request()["body"])
    assert sent["model"] == DEFAULT_STRONG_MODEL
    assert "<existing_resume>\nold text" in sent["messages"][0]["content"][0]["text"]
    assert "Never invent employers" in sent["system"][0]["text"]


async def test_a_resume_cut_at_max_tokens_is_retryable(anthropic_fake: RunningFake) -> None:
    """A resume reply that stopped at max_tokens is a MalformedReplyError, not a short resume."""
    anthropic_fake.control.script(
        text="# Ada\n\n## Experience\n\n### Analyst — Engines", stop_reason="max_tokens"
    )
    async with claude(anthropic_fake) as ai:
        with pytest.raises(MalformedReplyError):
            await ai.write_resume(CandidateProfile(full_name="Ada"), JOB, RequirementsAnalysis())


async def test_pdf_goes_as_a_document_block(
    anthropic_fake: RunningFake, fixtures_dir: Path
) -> None:
    """parse_resume_pdf sends the PDF as a base64 document block and returns local text too."""
    pdf = (fixtures_dir / "resumes" / "barry_allen_fe.pdf").read_bytes()
    anthropic_fake.control.script(
        tool_input={"name": "Barry Allen", "skills": ["React"], "experience": []}
    )
    async with claude(anthropic_fake) as ai:
        result = await ai.parse_resume_pdf(pdf)
    assert result.resume.name == "Barry Allen" and result.resume.skills == ["React"]
    assert "Front-End Developer" in result.text
    sent = json.loads(anthropic_fake.control.last_request()["body"])
    document = sent["messages"][0]["content"][0]
    assert document["type"] == "document"
    assert document["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(document["source"]["data"]) == pdf


async def test_docx_text_is_extracted_then_parsed(
    anthropic_fake: RunningFake, fixtures_dir: Path
) -> None:
    """parse_resume_docx sends the real DOCX text (header and table cells included)."""
    docx = (fixtures_dir / "resumes" / "GENERATED_avery_quinlan_two_column_table.docx").read_bytes()
    async with claude(anthropic_fake) as ai:
        result = await ai.parse_resume_docx(docx)
    sent = json.loads(anthropic_fake.control.last_request()["body"])
    prompt = sent["messages"][0]["content"][0]["text"]
    assert "avery.quinlan@example.com" in prompt and "Fernbrook Payments" in prompt
    assert result.resume.name == "example"  # the fake synthesised the tool input from the schema


async def test_gateway_url_routes_through_anthropic_path(anthropic_fake: RunningFake) -> None:
    """CLOUDFLARE_AI_GATEWAY_URL sends calls to <url>/anthropic/v1/messages."""
    env = {
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "CLOUDFLARE_AI_GATEWAY_URL": anthropic_fake.url + "/v1/acct/gw",
    }
    async with ClaudeAI(load_settings(AISettings, env)) as ai:
        await ai.analyze_requirements(JOB)
    assert anthropic_fake.control.last_request()["path"] == "/v1/acct/gw/anthropic/v1/messages"


async def test_models_are_configurable(anthropic_fake: RunningFake) -> None:
    """ANTHROPIC_CHEAP_MODEL overrides the default analysis model."""
    async with claude(anthropic_fake, ANTHROPIC_CHEAP_MODEL="claude-haiku-4-5") as ai:
        result = await ai.analyze_requirements(JOB)
    assert result.model == "claude-haiku-4-5"
