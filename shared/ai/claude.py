"""Claude through the anthropic SDK: JSON by forced tool calls, errors mapped for the engine.

The SDK never retries (`max_retries=0` unless configured otherwise): the engine does, and
429/529 become RetryAfterError with the server's `retry-after`, so the wait is durable.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from shared.ai import prompts
from shared.ai.replies import MalformedReplyError, decode_reply, strip_fences
from shared.ai.schemas import (
    AnalysisResult,
    CandidateProfile,
    JobPosting,
    ParsedResume,
    ParseResult,
    ReadmeSkills,
    RequirementsAnalysis,
    ResumeResult,
    SkillsResult,
    Usage,
    json_schema,
)
from shared.ai.settings import AISettings
from shared.documents import DocumentError, docx_text, extract_text, sniff_file_type
from shared.errors import NonRetryableError, UpstreamError
from shared.http import PROVIDERS, classify, error_for, redact, safe_cause

if TYPE_CHECKING:
    import anthropic

__all__ = ["ClaudeAI", "deprecated_models"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=msgspec.Struct)


def deprecated_models() -> dict[str, str]:
    """The installed SDK's table of deprecated model names → end-of-life date."""
    try:
        from anthropic.resources.messages.messages import DEPRECATED_MODELS
    except ImportError:  # the table moved; nothing to warn about then
        return {}
    return dict(DEPRECATED_MODELS)


class ClaudeAI:
    """The real thing. Use as an async context manager (closes the SDK's connection pool)."""

    name = "claude"

    def __init__(self, settings: AISettings, *, client: anthropic.AsyncAnthropic | None = None):
        if not settings.anthropic_api_key:
            raise ValueError("ClaudeAI needs ANTHROPIC_API_KEY; use the offline stand-in without")
        # Imported here, not at module level: the SDK costs ~1 s of import, which every
        # worker without a key (the offline stand-in) would pay at each cold start.
        import anthropic

        self._settings = settings
        headers: dict[str, str] = {}
        if settings.cloudflare_ai_gateway_token:
            headers["cf-aig-authorization"] = f"Bearer {settings.cloudflare_ai_gateway_token}"
        self._client = client or anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.base_url,
            max_retries=settings.anthropic_max_retries,
            timeout=settings.anthropic_timeout,
            default_headers=headers or None,
        )
        deprecated = deprecated_models()
        for model in (settings.anthropic_cheap_model, settings.anthropic_strong_model):
            if model in deprecated:
                log.warning(
                    "Claude model %s is deprecated; end of life %s", model, deprecated[model]
                )
        log.info(
            "Claude adapter: cheap model %s, strong model %s",
            settings.anthropic_cheap_model,
            settings.anthropic_strong_model,
        )

    async def __aenter__(self) -> ClaudeAI:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.close()

    # ---- the workflows' calls --------------------------------------------------------------

    async def analyze_requirements(self, job: JobPosting) -> AnalysisResult:
        """Required/preferred skills, years, responsibilities, culture (cheap model)."""
        model = self._settings.anthropic_cheap_model
        message = await self._create(
            what="analyze-requirements",
            model=model,
            system=prompts.ANALYZE_SYSTEM,
            content=[{"type": "text", "text": prompts.analyze_prompt(job)}],
            max_tokens=self._settings.analyze_max_tokens,
            tool=(prompts.ANALYZE_TOOL, "Record the job's requirements.", RequirementsAnalysis),
        )
        analysis = self._decode(
            message, prompts.ANALYZE_TOOL, RequirementsAnalysis, "analyze-requirements"
        )
        return AnalysisResult(
            analysis=analysis, model=message.model or model, usage=_usage(message)
        )

    async def write_resume(
        self,
        profile: CandidateProfile,
        job: JobPosting,
        analysis: RequirementsAnalysis,
        existing_resume_text: str | None = None,
    ) -> ResumeResult:
        """A Markdown resume tailored to `job` from the profile's facts only (strong model)."""
        model = self._settings.anthropic_strong_model
        message = await self._create(
            what="generate-resume",
            model=model,
            system=prompts.WRITE_SYSTEM,
            content=[
                {
                    "type": "text",
                    "text": prompts.write_prompt(profile, job, analysis, existing_resume_text),
                }
            ],
            max_tokens=self._settings.write_max_tokens,
            tool=None,
        )
        if message.stop_reason == "max_tokens":
            raise MalformedReplyError("generate-resume: the reply was cut off at max_tokens")
        text = "".join(block.text for block in message.content if block.type == "text")
        markdown = _markdown_body(text)
        if len(markdown) < 40 or not any(line.startswith("#") for line in markdown.splitlines()):
            snippet = " ".join(text.split())[:120]
            raise MalformedReplyError(
                f"generate-resume: the reply is not a Markdown resume; it starts with {snippet!r}"
            )
        return ResumeResult(markdown=markdown, model=message.model or model, usage=_usage(message))

    async def parse_resume_pdf(
        self, pdf: bytes, *, text: str | None = None, feedback: str | None = None
    ) -> ParseResult:
        """Structured data from a PDF sent as a document block; text extracted locally
        (or given as `text`). `feedback` names what a previous answer got wrong."""
        if sniff_file_type(pdf) != "pdf":
            raise DocumentError("the file is not a PDF (no %PDF- header)")
        if text is None:
            try:
                text = await extract_text(pdf, "pdf")
            except DocumentError as exc:
                # Claude reads PDFs pypdf cannot (scans, odd encodings); go on without text.
                log.info("local PDF text extraction failed (%s); relying on Claude alone", exc)
                text = ""
        model = self._settings.anthropic_cheap_model
        document = {
            "type": "document",
            "source": {
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64.b64encode(pdf).decode("ascii"),
            },
        }
        message = await self._create(
            what="parse-and-structure",
            model=model,
            system=prompts.PARSE_SYSTEM,
            content=[
                document,
                {"type": "text", "text": prompts.parse_prompt(None, feedback)},
            ],
            max_tokens=self._settings.parse_max_tokens,
            tool=(prompts.PARSE_TOOL, "Record the resume's structured data.", ParsedResume),
        )
        resume = self._decode(message, prompts.PARSE_TOOL, ParsedResume, "parse-and-structure")
        return ParseResult(
            resume=resume, text=text, model=message.model or model, usage=_usage(message)
        )

    async def parse_resume_docx(self, docx: bytes) -> ParseResult:
        """Structured data from a DOCX: real text extraction, then `parse_resume_text`."""
        import asyncio

        text = await asyncio.to_thread(docx_text, docx)
        return await self.parse_resume_text(text)

    async def parse_resume_text(self, text: str, *, feedback: str | None = None) -> ParseResult:
        """Structured data from resume text (DOCX extraction, pasted text)."""
        if not text.strip():
            raise NonRetryableError("the resume holds no text to parse")
        model = self._settings.anthropic_cheap_model
        message = await self._create(
            what="parse-and-structure",
            model=model,
            system=prompts.PARSE_SYSTEM,
            content=[{"type": "text", "text": prompts.parse_prompt(text, feedback)}],
            max_tokens=self._settings.parse_max_tokens,
            tool=(prompts.PARSE_TOOL, "Record the resume's structured data.", ParsedResume),
        )
        resume = self._decode(message, prompts.PARSE_TOOL, ParsedResume, "parse-and-structure")
        return ParseResult(
            resume=resume, text=text, model=message.model or model, usage=_usage(message)
        )

    async def skills_from_readmes(self, readmes: list[tuple[str, str]]) -> SkillsResult:
        """Technologies named in (repository, README text) pairs (cheap model)."""
        model = self._settings.anthropic_cheap_model
        message = await self._create(
            what="analyze-readmes",
            model=model,
            system=prompts.README_SYSTEM,
            content=[{"type": "text", "text": prompts.readme_prompt(readmes)}],
            max_tokens=self._settings.analyze_max_tokens,
            tool=(prompts.README_TOOL, "Record the technologies used.", ReadmeSkills),
        )
        found = self._decode(message, prompts.README_TOOL, ReadmeSkills, "analyze-readmes")
        return SkillsResult(
            skills=found.skills, model=message.model or model, usage=_usage(message)
        )

    # ---- plumbing ----------------------------------------------------------------------------

    async def _create(
        self,
        *,
        what: str,
        model: str,
        system: str,
        content: list[dict[str, Any]],
        max_tokens: int,
        tool: tuple[str, str, type[msgspec.Struct]] | None,
    ) -> anthropic.types.Message:
        import anthropic  # loaded by __init__ already: a dict lookup

        kwargs: dict[str, Any] = {}
        if tool is not None:
            name, description, struct = tool
            kwargs["tools"] = [
                {"name": name, "description": description, "input_schema": json_schema(struct)}
            ]
            kwargs["tool_choice"] = {"type": "tool", "name": name}
        try:
            message = await self._client.messages.create(
                model=model,
                max_tokens=max_tokens,
                system=system,
                messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
                **kwargs,
            )
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc, what) from safe_cause(exc, self._settings.secrets)
        except anthropic.APITimeoutError as exc:
            raise UpstreamError(f"Claude {what}: the request timed out") from exc
        except anthropic.APIConnectionError as exc:
            raise UpstreamError(
                f"Claude {what}: could not connect ({type(exc.__cause__).__name__})"
            ) from exc
        if message.stop_reason == "refusal":
            raise NonRetryableError(f"Claude {what}: the model declined to answer")
        log.info(
            "Claude %s: model %s, %d input + %d output tokens",
            what,
            message.model,
            message.usage.input_tokens,
            message.usage.output_tokens,
        )
        return message

    def _decode(self, message: anthropic.types.Message, tool: str, struct: type[T], what: str) -> T:
        blocks = [block.model_dump() for block in message.content]
        try:
            return decode_reply(blocks, tool, struct, what=f"Claude {what}")
        except MalformedReplyError as exc:
            if message.stop_reason == "max_tokens":
                raise MalformedReplyError(
                    f"Claude {what}: the reply was cut off at max_tokens"
                ) from exc
            raise

    def _status_error(self, exc: anthropic.APIStatusError, what: str) -> Exception:
        status = exc.status_code
        kind = exc.type or "error"
        detail = redact(" ".join(str(exc.api_message or "").split())[:300], self._settings.secrets)
        request_id = exc.request_id
        if not request_id and isinstance(exc.body, dict):
            request_id = exc.body.get("request_id")  # real error bodies carry it too
        request = f" (request {request_id})" if isinstance(request_id, str) and request_id else ""
        message = f"Claude {what}: {status} {kind}: {detail}{request}"
        verdict = classify(
            status,
            exc.response.headers,
            PROVIDERS["anthropic"],
            default_retry_after=self._settings.anthropic_default_retry_after,
        )
        return error_for(verdict, message)


def _usage(message: anthropic.types.Message) -> Usage:
    usage = message.usage
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
    )


def _markdown_body(text: str) -> str:
    """The resume without a wrapping fence or a line of preamble before its first heading."""
    text = strip_fences(text).strip()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            if index <= 2:  # e.g. "Here is the tailored resume:" before the heading
                return "\n".join(lines[index:]).strip()
            break
    return text
