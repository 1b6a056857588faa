"""The I/O of resume-parsing and profile-sync: plain async functions over `ParsingDeps`.

No engine imports. Each returns JSON-friendly values (the engine records them) and is
safe to run again on a redelivery: downloads and parses are reads, and the two writes
(`save_parsed_resume`, the profile merges) are assignments and fill-if-empty updates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast

import msgspec

from services.parsing.grounding import describe, drop_invented, find_invented
from shared.ai import OFFLINE_MODEL, ParsedResume, ResumeAI, Usage
from shared.ai.budget import Budgets
from shared.ai.gates import unsupported_skills
from shared.ai.skills import find_skills
from shared.db import GithubMerge, ProfileFill, Repository
from shared.documents import NoTextError, docx_text, pdf_text
from shared.errors import NonRetryableError
from shared.sources.github import GitHub, GitHubRepo, GitHubUser
from shared.storage import StoredFile
from shared.workflow import step_feedback

__all__ = [
    "Downloaded",
    "FileStore",
    "GithubSkills",
    "Memo",
    "ParseOutcome",
    "ParsingDeps",
    "ReadmeAnalysis",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
FileKind = Literal["pdf", "docx"]
# The text is part of the step's recorded result (at most 512 KiB): 120k characters fit
# even when every one takes three bytes. Resumes are a few thousand.
MAX_SAVED_CHARS = 120_000


class FileStore(Protocol):
    """Where resume files are read from (Supabase Storage, or a local folder)."""

    async def download(self, file_url: str, *, file_type: FileKind) -> StoredFile: ...


class Memo(Protocol):
    """A cross-run memo (services/parsing/memo.py)."""

    async def load(self, kind: str, key: str, type_: type[T]) -> T | None: ...

    async def save(self, kind: str, key: str, value: Any) -> None: ...


@dataclass
class ParsingDeps:
    """What the parsing service's steps use, built in `__main__` (or by hand in tests)."""

    repo: Repository
    ai: ResumeAI
    storage: FileStore
    github: GitHub
    memo: Memo
    # Where text extraction runs (a process pool in the service; None: a thread).
    extractor: Executor | None = None
    readme_repos: int = 5
    readme_chars: int = 6000
    # The last few downloads by sha256, so parse-and-structure need not fetch again.
    recent: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    # Per-user LLM budgets (shared/ai/budget.py); None: not enforced (the offline AI).
    budgets: Budgets | None = None

    async def tier_name(self, user_id: str) -> str:
        return (await self.repo.get_tier(user_id)).name

    def remember(self, sha256: str, data: bytes) -> None:
        self.recent[sha256] = data
        self.recent.move_to_end(sha256)
        while len(self.recent) > 8:
            self.recent.popitem(last=False)


# ---- resume-parsing ---------------------------------------------------------------------------


class Downloaded(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A checked file in storage: what it is, not its bytes (those stay out of the record)."""

    sha256: str
    size: int
    content_type: str
    path: str


async def download_file(deps: ParsingDeps, file_url: str, file_type: FileKind) -> Downloaded:
    """Fetch the file (origin-checked, size- and time-capped) and check it is a `file_type`."""
    stored = await deps.storage.download(file_url, file_type=file_type)
    sha256 = hashlib.sha256(stored.data).hexdigest()
    deps.remember(sha256, stored.data)
    return Downloaded(
        sha256=sha256, size=stored.size, content_type=stored.content_type, path=stored.path
    )


class ParseOutcome(msgspec.Struct, frozen=True, kw_only=True):
    resume: ParsedResume
    text: str
    model: str
    usage: Usage
    warnings: list[str] = []
    attempts: int = 1
    # What the quality gate objects to in the model's answer (before invented entries
    # were dropped): the values the document does not hold, a name it does not hold, or
    # nothing found at all. Non-empty: the step is marked needs_review.
    problems: list[str] = []


async def _file_bytes(deps: ParsingDeps, file_url: str, file_type: FileKind, sha256: str) -> bytes:
    data = deps.recent.get(sha256)
    if data is None:  # another process downloaded it, or this one restarted
        stored = await deps.storage.download(file_url, file_type=file_type)
        data = stored.data
        if hashlib.sha256(data).hexdigest() != sha256:
            raise NonRetryableError("the file changed in storage after download-file read it")
        deps.remember(sha256, data)
    return data


async def _off_loop(pool: Executor | None, fn: Callable[[bytes], str], data: bytes) -> str:
    """`fn(data)` in the process pool (pypdf is pure Python: in a thread it would hold the
    GIL and delay the event loop's heartbeats), or a thread when there is no pool."""
    if pool is None:
        return await asyncio.to_thread(fn, data)
    return await asyncio.get_running_loop().run_in_executor(pool, fn, data)


async def _document_text(
    data: bytes, file_type: FileKind, *, offline: bool, pool: Executor | None = None
) -> str:
    """The document's text, extracted off the event loop."""
    if file_type == "docx":
        text = await _off_loop(pool, docx_text, data)
        if not text.strip():
            raise NoTextError("the DOCX holds no text")
        return text
    text = await _off_loop(pool, pdf_text, data)
    if not text.strip() and offline:
        raise NoTextError(
            "the PDF has no text layer (a scanned image?); the offline parser cannot read it"
        )
    return text


def _add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_creation_input_tokens=a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        cache_read_input_tokens=a.cache_read_input_tokens + b.cache_read_input_tokens,
    )


async def parse_and_structure(
    deps: ParsingDeps, file_url: str, file_type: FileKind, sha256: str
) -> ParseOutcome:
    """Text and structure of the file, the structure checked against the text.

    PDFs go to Claude as documents, DOCX as their extracted text. An answer naming an
    employer, school or e-mail the document does not contain is retried once with the
    discrepancy named; what is still invented then is dropped, with a warning each.
    """
    data = await _file_bytes(deps, file_url, file_type, sha256)
    offline = deps.ai.name == OFFLINE_MODEL
    text = await _document_text(data, file_type, offline=offline, pool=deps.extractor)
    gate = step_feedback()  # the gate's round: its problems, on the fallback model
    extra: dict[str, Any] = {"fallback": True} if gate is not None and gate.fallback else {}

    async def ask(feedback: str | None) -> Any:
        if file_type == "pdf":
            return await deps.ai.parse_resume_pdf(data, text=text, feedback=feedback, **extra)
        return await deps.ai.parse_resume_text(text, feedback=feedback, **extra)

    result = await ask(gate.text() if gate is not None else None)
    resume, usage, attempts = result.resume, result.usage, 1
    warnings: list[str] = []
    if not text.strip():
        warnings.append("not checked against the document: the PDF has no text layer")
        return ParseOutcome(
            resume=resume, text=text, model=result.model, usage=usage, warnings=warnings
        )
    invented = find_invented(resume, text)
    if invented and not offline:
        log.warning(
            "parse-and-structure: the model named %d value(s) not in the document; asking again",
            len(invented),
        )
        retry = await ask(describe(invented))
        resume, usage, attempts = retry.resume, _add_usage(usage, retry.usage), 2
        invented = find_invented(resume, text)
    problems = [] if offline else _parse_problems(resume, text, invented)
    resume, dropped = drop_invented(resume, invented)
    warnings.extend(dropped)
    if len(text) > MAX_SAVED_CHARS:
        warnings.append(f"the text is {len(text)} characters; the first {MAX_SAVED_CHARS} are kept")
    return ParseOutcome(
        resume=resume,
        text=text[:MAX_SAVED_CHARS],
        model=result.model,
        usage=usage,
        warnings=warnings,
        attempts=attempts,
        problems=problems,
    )


def _parse_problems(resume: ParsedResume, text: str, invented: list[Any]) -> list[str]:
    """The gate's view of an answer: the values grounding.py found invented (employers,
    schools, e-mail), or an answer that found nothing in a document that has text. (The
    name is not judged: letter-spaced and column layouts scramble it too often.)"""
    problems = [f'{d.kind} "{d.value}" does not occur in the resume' for d in invented]
    if not (resume.name or resume.email or resume.experience or resume.education):
        problems.append("no name, e-mail, experience or education was found in the resume")
    return problems


async def save_parsed_data(
    deps: ParsingDeps, user_id: str, resume_id: str, text: str, resume: ParsedResume
) -> bool:
    """`resumes.parsed_content` and `structured_data` (an assignment: safe to repeat)."""
    saved = await deps.repo.save_parsed_resume(
        user_id, resume_id, parsed_content=text, structured_data=msgspec.to_builtins(resume)
    )
    if not saved:
        raise NonRetryableError(f"resume {resume_id} not found for this user")
    return True


class ProfileUpdate(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    profile_found: bool


async def update_profile(deps: ParsingDeps, user_id: str, resume: ParsedResume) -> ProfileUpdate:
    """Fill only the EMPTY profile fields, in one conditional update (never a user's edit)."""
    fill = ProfileFill(
        full_name=resume.name,
        summary=resume.summary,
        skills=resume.skills,
        experience=cast(list[Any], msgspec.to_builtins(resume.experience)),
        education=cast(list[Any], msgspec.to_builtins(resume.education)),
    )
    profile = await deps.repo.fill_empty_profile_fields(user_id, fill)
    return ProfileUpdate(profile_found=profile is not None)


# ---- profile-sync -----------------------------------------------------------------------------

# GitHub's language → the skills it shows (a TypeScript repository is JavaScript work too).
LANGUAGE_SKILLS: dict[str, tuple[str, ...]] = {
    "TypeScript": ("TypeScript", "JavaScript"),
    "Go": ("Go", "Golang"),
    "Jupyter Notebook": ("Python", "Jupyter"),
    "Vue": ("Vue.js", "JavaScript"),
    "Svelte": ("Svelte", "JavaScript"),
    "Shell": ("Bash",),
    "PowerShell": ("PowerShell",),
    "HCL": ("Terraform",),
    "Dockerfile": ("Docker",),
    "Objective-C": ("Objective-C", "iOS"),
    "Swift": ("Swift", "iOS"),
    "Kotlin": ("Kotlin", "Android"),
    "Dart": ("Dart", "Flutter"),
    "Elixir": ("Elixir",),
    "C#": ("C#", ".NET"),
    "F#": ("F#", ".NET"),
    "SCSS": ("CSS", "Sass"),
    "Less": ("CSS",),
    "TeX": ("LaTeX",),
    "Nix": ("Nix",),
}
# Linguist counts these as languages; they say nothing about a person's skills.
NOT_SKILLS = {"Makefile", "CMake", "Batchfile", "Roff", "M4", "Procfile", "Text", "Markdown"}


class ProfileSyncUser(msgspec.Struct, frozen=True, kw_only=True):
    login: str
    charged: int = 0  # requests GitHub counted against the limit (304s are free)
    name: str | None = None
    bio: str | None = None
    blog: str | None = None
    location: str | None = None
    public_repos: int = 0


async def fetch_github_profile(deps: ParsingDeps, handle: str) -> ProfileSyncUser:
    """GET /users/{handle}: a person's account (an organisation or bot is refused)."""
    with GitHub.counting() as charged:
        user: GitHubUser = await deps.github.get_user(handle)
    if user.type != "User":
        article = "an" if user.type[:1].lower() in "aeiou" else "a"
        raise NonRetryableError(
            f"GitHub account {handle!r} is {article} {user.type}, not a person's profile"
        )
    return ProfileSyncUser(
        login=user.login,
        name=user.name,
        bio=user.bio,
        blog=user.blog,
        location=user.location,
        public_repos=user.public_repos,
        charged=charged[0],
    )


class Repo(msgspec.Struct, frozen=True, kw_only=True):
    full_name: str
    name: str
    description: str | None = None
    language: str | None = None
    topics: list[str] = []
    stars: int = 0
    url: str | None = None


class Repos(msgspec.Struct, frozen=True, kw_only=True):
    repos: list[Repo]
    charged: int = 0


async def fetch_github_repos(deps: ParsingDeps, handle: str) -> Repos:
    """Own repositories, no forks, most recently pushed first, at most 30 (Link pages)."""
    with GitHub.counting() as charged:
        repos: list[GitHubRepo] = await deps.github.list_repos(handle, limit=30)
    found = [
        Repo(
            full_name=r.full_name,
            name=r.name,
            description=r.description,
            language=r.language,
            topics=list(r.topics),
            stars=r.stars,
            url=r.html_url,
        )
        for r in repos
    ]
    return Repos(repos=found, charged=charged[0])


class ReadmeAnalysis(msgspec.Struct, frozen=True, kw_only=True):
    skills: list[str]
    model: str
    readmes: int
    cached: bool = False
    charged: int = 0
    # Skills the model named that are neither known technologies nor in the READMEs: kept
    # out of `skills` (never merged into a profile); the quality gate asks again.
    unverified: list[str] = []


def _top(repos: list[Repo], n: int) -> list[Repo]:
    # Stable: among equal stars, the more recently pushed (the list's order) first.
    return sorted(repos, key=lambda r: -r.stars)[:n]


async def analyze_readmes(deps: ParsingDeps, repos: list[Repo]) -> ReadmeAnalysis:
    """The READMEs of the top repositories → skills (Claude, or the offline dictionary).

    The same README texts are analysed once: the answer is memoised by their digest, so
    a re-sync of an unchanged profile (READMEs answered 304) makes no LLM call.
    """
    pairs: list[tuple[str, str]] = []
    with GitHub.counting() as charged:
        for repo in _top(repos, deps.readme_repos):
            text = await deps.github.get_readme(repo.full_name, max_chars=deps.readme_chars)
            if text and text.strip():
                pairs.append((repo.full_name, text))
    if not pairs:
        return ReadmeAnalysis(skills=[], model="none", readmes=0, charged=charged[0])
    key = deps.ai.name + "\n" + "\n".join(f"{name}\n{text}" for name, text in pairs)
    gate = step_feedback()
    if gate is None:
        known = await deps.memo.load("readme-skills", key, ReadmeAnalysis)
        if known is not None:
            return msgspec.structs.replace(known, cached=True, charged=charged[0])
        result = await deps.ai.skills_from_readmes(pairs)
    else:  # a quality gate's round: what the last answer named without grounds
        result = await deps.ai.skills_from_readmes(
            pairs, feedback=gate.text(), fallback=gate.fallback
        )
    named = [s.strip() for s in result.skills if s.strip() and len(s.strip()) <= 40][:30]
    doubtful = set(unsupported_skills(named, pairs))
    analysis = ReadmeAnalysis(
        skills=[s for s in named if s not in doubtful],
        model=result.model,
        readmes=len(pairs),
        unverified=[s for s in named if s in doubtful],
    )
    if not analysis.unverified:
        await deps.memo.save("readme-skills", key, analysis)
    return msgspec.structs.replace(analysis, charged=charged[0])


class GithubSkills(msgspec.Struct, frozen=True, kw_only=True):
    skills: list[str]
    projects: list[Repo]


def _add(skills: list[str], seen: set[str], new: list[str] | tuple[str, ...]) -> None:
    for skill in new:
        if skill.lower() not in seen:
            seen.add(skill.lower())
            skills.append(skill)


async def extract_skills(repos: list[Repo], readme_skills: list[str]) -> GithubSkills:
    """Languages by frequency, relevant topics, README skills; the top 5 projects by stars."""
    skills: list[str] = []
    seen: set[str] = set()
    languages = Counter(r.language for r in repos if r.language and r.language not in NOT_SKILLS)
    for language, _ in sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])):
        _add(skills, seen, LANGUAGE_SKILLS.get(language, (language,)))
    topics = Counter(t for r in repos for t in r.topics)
    for topic, _ in sorted(topics.items(), key=lambda kv: (-kv[1], kv[0])):
        # A topic is relevant when it names a technology we know ("postgresql", "react-native").
        _add(skills, seen, find_skills(topic.replace("-", " ")))
    _add(skills, seen, readme_skills)
    return GithubSkills(skills=skills, projects=_top(repos, 5))


class SyncUpdate(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    profile_found: bool


async def update_github_profile(
    deps: ParsingDeps, user_id: str, user: ProfileSyncUser, skills: list[str]
) -> SyncUpdate:
    """Merge skills (no duplicates), fill empty name/summary/location, add the blog once."""
    blog = (user.blog or "").strip() or None
    if blog and "://" not in blog:
        blog = f"https://{blog}"
    profile = await deps.repo.merge_github_profile(
        user_id,
        GithubMerge(
            skills=skills,
            full_name=user.name,
            summary=user.bio,
            location=user.location,
            blog_url=blog,
        ),
    )
    return SyncUpdate(profile_found=profile is not None)
