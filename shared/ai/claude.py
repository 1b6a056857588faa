"""Claude through the anthropic SDK: JSON by forced tool calls, errors mapped for the engine.

The SDK never retries (`max_retries=0` unless configured otherwise): the engine does, and
429/529 become RetryAfterError with the server's `retry-after`, so the wait is durable.

Every call's `usage` is priced (pricing.py) and reported to the step running it
(`record_usage`); its `anthropic-ratelimit-*` headers go to the listeners a service adds
(`add_response_listener`: the org-wide shared rate limits, see ratelimits.py). The long
repeated prefix of a call (system prompt; the profile and resume text when writing; the
document when parsing) carries `cache_control`, so a second call with the same prefix
(a gate's retry, the user's next application) reads it from Anthropic's prompt cache.
A gate's feedback (`feedback=`) is appended after the cached prefix; `fallback=True` uses
the second model (pricier, stronger).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from shared.ai import prompts
from shared.ai.pricing import PriceTable
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
from shared.workflow.gates import record_usage

if TYPE_CHECKING:
    import anthropic

__all__ = ["ClaudeAI", "deprecated_models"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=msgspec.Struct)

#: Called with each reply's headers, the model and the priced usage (never the body).
ResponseListener = Callable[[Mapping[str, str], str, Usage], Awaitable[None]]
# Characters per token when estimating a prompt before it is sent: low on purpose (real
# English runs near 4), so that a reservation is not smaller than the call.
CHARS_PER_TOKEN = 3.0


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
        self.prices = PriceTable(settings.llm_prices)
        self._listeners: list[ResponseListener] = []
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

    def add_response_listener(self, listener: ResponseListener) -> None:
        """Hear every successful reply's headers and usage (rate limits, metrics)."""
        self._listeners.append(listener)

    def model_for(self, what: str, *, fallback: bool = False) -> str:
        """The model a call of kind `what` uses (its fallback: the next stronger one)."""
        settings = self._settings
        primary = (
            settings.anthropic_strong_model
            if what == "generate-resume"
            else settings.anthropic_cheap_model
        )
        if not fallback:
            return primary
        if primary == settings.anthropic_cheap_model != settings.anthropic_strong_model:
            return settings.anthropic_strong_model
        return settings.anthropic_fallback_model

    def estimate(self, what: str, prompt_chars: int, *, fallback: bool = False) -> float:
        """An upper-bound estimate of one call's cost in USD: the prompt at a pessimistic
        characters-per-token rate, uncached, and the whole `max_tokens` of output."""
        settings = self._settings
        max_tokens = {
            "generate-resume": settings.write_max_tokens,
            "parse-and-structure": settings.parse_max_tokens,
        }.get(what, settings.analyze_max_tokens)
        system = len(_SYSTEMS.get(what, ""))
        input_tokens = int((prompt_chars + system) / CHARS_PER_TOKEN) + 64
        price = self.prices.price(self.model_for(what, fallback=fallback))
        return price.cost(input_tokens, max_tokens)

    # ---- the workflows' calls --------------------------------------------------------------

    async def analyze_requirements(
        self, job: JobPosting, *, feedback: str | None = None, fallback: bool = False
    ) -> AnalysisResult:
        """Required/preferred skills, years, responsibilities, culture (cheap model)."""
        model = self.model_for("analyze-requirements", fallback=fallback)
        message = await self._create(
            what="analyze-requirements",
            model=model,
            system=prompts.ANALYZE_SYSTEM,
            content=[
                {"type": "text", "text": prompts.analyze_prompt(job)},
                *_feedback_block(feedback),
            ],
            max_tokens=self._settings.analyze_max_tokens,
            tool=(prompts.ANALYZE_TOOL, "Record the job's requirements.", RequirementsAnalysis),
        )
        analysis = self._decode(
            message, prompts.ANALYZE_TOOL, RequirementsAnalysis, "analyze-requirements"
        )
        return AnalysisResult(
            analysis=analysis, model=message.model or model, usage=self._usage(message, model)
        )

    async def write_resume(
        self,
        profile: CandidateProfile,
        job: JobPosting,
        analysis: RequirementsAnalysis,
        existing_resume_text: str | None = None,
        *,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> ResumeResult:
        """A Markdown resume tailored to `job` from the profile's facts only (strong model).

        Whether the text is a resume at all is the quality gate's call (resume gates in
        shared/ai/gates.py), so that a wrong answer is retried with its problems stated.
        """
        model = self.model_for("generate-resume", fallback=fallback)
        candidate, posting = prompts.write_parts(profile, job, analysis, existing_resume_text)
        message = await self._create(
            what="generate-resume",
            model=model,
            system=prompts.WRITE_SYSTEM,
            content=[
                # The candidate's facts first: the same for all of a user's applications,
                # so the cached prefix (system + this block) is read, not written, again.
                self._cached({"type": "text", "text": candidate}),
                {"type": "text", "text": posting},
                *_feedback_block(feedback),
            ],
            max_tokens=self._settings.write_max_tokens,
            tool=None,
        )
        if message.stop_reason == "max_tokens":
            raise MalformedReplyError("generate-resume: the reply was cut off at max_tokens")
        text = "".join(block.text for block in message.content if block.type == "text")
        markdown = _markdown_body(text)
        if not markdown.strip():
            kinds = [block.type for block in message.content]
            raise MalformedReplyError(f"generate-resume: the reply has no text (blocks {kinds})")
        return ResumeResult(
            markdown=markdown, model=message.model or model, usage=self._usage(message, model)
        )

    async def parse_resume_pdf(
        self,
        pdf: bytes,
        *,
        text: str | None = None,
        feedback: str | None = None,
        fallback: bool = False,
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
        model = self.model_for("parse-and-structure", fallback=fallback)
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
                # A second try with feedback sends the same document: read from the cache.
                self._cached(document),
                {"type": "text", "text": prompts.parse_prompt(None, feedback)},
            ],
            max_tokens=self._settings.parse_max_tokens,
            tool=(prompts.PARSE_TOOL, "Record the resume's structured data.", ParsedResume),
        )
        resume = self._decode(message, prompts.PARSE_TOOL, ParsedResume, "parse-and-structure")
        return ParseResult(
            resume=resume,
            text=text,
            model=message.model or model,
            usage=self._usage(message, model),
        )

    async def parse_resume_docx(self, docx: bytes) -> ParseResult:
        """Structured data from a DOCX: real text extraction, then `parse_resume_text`."""
        import asyncio

        text = await asyncio.to_thread(docx_text, docx)
        return await self.parse_resume_text(text)

    async def parse_resume_text(
        self, text: str, *, feedback: str | None = None, fallback: bool = False
    ) -> ParseResult:
        """Structured data from resume text (DOCX extraction, pasted text)."""
        if not text.strip():
            raise NonRetryableError("the resume holds no text to parse")
        model = self.model_for("parse-and-structure", fallback=fallback)
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
            resume=resume,
            text=text,
            model=message.model or model,
            usage=self._usage(message, model),
        )

    async def skills_from_readmes(
        self,
        readmes: list[tuple[str, str]],
        *,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> SkillsResult:
        """Technologies named in (repository, README text) pairs (cheap model)."""
        model = self.model_for("analyze-readmes", fallback=fallback)
        message = await self._create(
            what="analyze-readmes",
            model=model,
            system=prompts.README_SYSTEM,
            content=[
                {"type": "text", "text": prompts.readme_prompt(readmes)},
                *_feedback_block(feedback),
            ],
            max_tokens=self._settings.analyze_max_tokens,
            tool=(prompts.README_TOOL, "Record the technologies used.", ReadmeSkills),
        )
        found = self._decode(message, prompts.README_TOOL, ReadmeSkills, "analyze-readmes")
        return SkillsResult(
            skills=found.skills, model=message.model or model, usage=self._usage(message, model)
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
            raw = await self._client.messages.with_raw_response.create(
                model=model,
                max_tokens=max_tokens,
                # A block list, so the (long, fixed) system prompt can end a cached prefix.
                system=[self._cached({"type": "text", "text": system})],  # type: ignore[list-item]
                messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
                **kwargs,
            )
            message = await raw.parse()
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc, what) from safe_cause(exc, self._settings.secrets)
        except anthropic.APITimeoutError as exc:
            raise UpstreamError(f"Claude {what}: the request timed out") from exc
        except anthropic.APIConnectionError as exc:
            raise UpstreamError(
                f"Claude {what}: could not connect ({type(exc.__cause__).__name__})"
            ) from exc
        usage = self._usage(message, model)
        # Reported before any verdict on the reply: a refused or malformed answer was paid for.
        record_usage(
            message.model or model,
            {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "cost_usd": usage.cost_usd,
            },
        )
        for listener in self._listeners:
            try:
                await listener(raw.headers, message.model or model, usage)
            except Exception as exc:  # noqa: BLE001 - bookkeeping never fails the call
                log.warning("Claude response listener failed: %s", exc)
        if message.stop_reason == "refusal":
            raise NonRetryableError(f"Claude {what}: the model declined to answer")
        log.info(
            "Claude %s: model %s, %d input + %d output tokens (cache: %d read, %d written), $%.5f",
            what,
            message.model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens,
            usage.cost_usd,
        )
        return message

    def _cached(self, block: dict[str, Any]) -> dict[str, Any]:
        """`block` marked as the end of a cached prefix (when prompt caching is on)."""
        if not self._settings.anthropic_prompt_cache:
            return block
        control: dict[str, Any] = {"type": "ephemeral"}
        if self._settings.anthropic_cache_ttl != "5m":
            control["ttl"] = self._settings.anthropic_cache_ttl
        return {**block, "cache_control": control}

    def _usage(self, message: anthropic.types.Message, model: str) -> Usage:
        usage = message.usage
        counts = {
            "input_tokens": usage.input_tokens or 0,
            "output_tokens": usage.output_tokens or 0,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
            "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        }
        cost = self.prices.cost(message.model or model, counts)
        if self._settings.anthropic_cache_ttl == "1h" and counts["cache_creation_input_tokens"]:
            # A 1-hour cache write costs 2x the input price, not the table's 1.25x.
            price = self.prices.price(message.model or model)
            cost += (
                counts["cache_creation_input_tokens"] * (2 * price.input - price.cache_write) / 1e6
            )
        return Usage(**counts, cost_usd=round(cost, 8))

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


_SYSTEMS = {
    "analyze-requirements": prompts.ANALYZE_SYSTEM,
    "generate-resume": prompts.WRITE_SYSTEM,
    "parse-and-structure": prompts.PARSE_SYSTEM,
    "analyze-readmes": prompts.README_SYSTEM,
}


def _feedback_block(feedback: str | None) -> list[dict[str, Any]]:
    """The gate's objections to the previous answer, after the cached prefix."""
    if not feedback:
        return []
    return [{"type": "text", "text": prompts.feedback_prompt(feedback)}]


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
