"""Parsing steps with hand-built deps: the answer check, local storage, skill extraction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest

from services.parsing import steps
from services.parsing.memo import MemoryMemo
from services.parsing.steps import ParsingDeps, Repo
from shared.ai import Experience, ParsedResume, ParseResult, Usage
from shared.documents import DocumentError
from shared.filestore import LocalResumeStorage, LocalStorageSettings
from shared.storage import FileTooLargeError, ForbiddenUrlError
from tests.support.documents import docx_bytes

LINES = ["Sam Lee", "sam@example.com", "EXPERIENCE", "Engineer at Tech Corp 2019 - 2021"]


class ScriptedAI:
    """Answers parse calls with the given resumes in turn, recording the feedback."""

    name = "claude"

    def __init__(self, *answers: ParsedResume) -> None:
        self.answers = list(answers)
        self.feedback: list[str | None] = []

    async def parse_resume_text(self, text: str, *, feedback: str | None = None) -> ParseResult:
        self.feedback.append(feedback)
        return ParseResult(
            resume=self.answers.pop(0), text=text, model="claude-test", usage=Usage()
        )


def deps_with(ai: Any, tmp_path: Path) -> ParsingDeps:
    storage = LocalResumeStorage(LocalStorageSettings(storage_dir=str(tmp_path)))
    return ParsingDeps(
        repo=cast(Any, None), ai=ai, storage=storage, github=cast(Any, None), memo=MemoryMemo()
    )


def store(tmp_path: Path, path: str, data: bytes) -> None:
    target = tmp_path / "resumes" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def answer(*companies: str) -> ParsedResume:
    return ParsedResume(
        name="Sam Lee", experience=[Experience(title="Engineer", company=c) for c in companies]
    )


async def test_an_answer_corrected_on_the_second_try_keeps_everything(tmp_path: Path) -> None:
    """Invented on the first try, right on the second: no warnings, two calls."""
    ai = ScriptedAI(answer("Tech Corp", "Globex"), answer("Tech Corp"))
    deps = deps_with(ai, tmp_path)
    store(tmp_path, "u/cv.docx", docx_bytes(LINES))
    file = await steps.download_file(deps, "u/cv.docx", "docx")
    outcome = await steps.parse_and_structure(deps, "u/cv.docx", "docx", file.sha256)
    assert [e.company for e in outcome.resume.experience] == ["Tech Corp"]
    assert outcome.warnings == [] and outcome.attempts == 2
    assert ai.feedback[0] is None
    assert ai.feedback[1] == 'employer "Globex" does not occur in the resume.'


async def test_a_grounded_answer_is_asked_once(tmp_path: Path) -> None:
    """Nothing invented: one call, no feedback."""
    ai = ScriptedAI(answer("Tech Corp"))
    deps = deps_with(ai, tmp_path)
    store(tmp_path, "u/cv.docx", docx_bytes(LINES))
    file = await steps.download_file(deps, "u/cv.docx", "docx")
    deps.recent.clear()  # as after a restart: read again from storage, checked by sha256
    outcome = await steps.parse_and_structure(deps, "u/cv.docx", "docx", file.sha256)
    assert outcome.attempts == 1 and ai.feedback == [None]


async def test_a_file_changed_between_steps_is_refused(tmp_path: Path) -> None:
    """parse-and-structure reads the bytes download-file checked, or fails."""
    deps = deps_with(ScriptedAI(answer("Tech Corp")), tmp_path)
    store(tmp_path, "u/cv.docx", docx_bytes(LINES))
    file = await steps.download_file(deps, "u/cv.docx", "docx")
    deps.recent.clear()
    store(tmp_path, "u/cv.docx", docx_bytes([*LINES, "changed"]))
    with pytest.raises(Exception, match="changed in storage"):
        await steps.parse_and_structure(deps, "u/cv.docx", "docx", file.sha256)


async def test_local_storage_stays_inside_its_bucket(tmp_path: Path) -> None:
    """Traversal, absolute paths, URLs with hosts and symlinks out are refused; size capped."""
    storage = LocalResumeStorage(
        LocalStorageSettings(storage_dir=str(tmp_path), storage_max_bytes=50_000)
    )
    store(tmp_path, "u/cv.docx", docx_bytes(LINES))
    (tmp_path / "secret.docx").write_bytes(docx_bytes(LINES))
    os.symlink(tmp_path / "secret.docx", tmp_path / "resumes" / "u" / "link.docx")
    ok = await storage.download("/storage/v1/object/resumes/u/cv.docx", file_type="docx")
    assert ok.path == "u/cv.docx"
    for url in (
        "../secret.docx",
        "u/../../secret.docx",
        "/etc/passwd",
        "http://127.0.0.1/storage/v1/object/resumes/u/cv.docx",
        "file:///etc/passwd",
        "/storage/v1/object/avatars/u/cv.docx",
        "u/%2e%2e/%2e%2e/secret.docx",
        "u/link.docx",
    ):
        with pytest.raises(ForbiddenUrlError):
            await storage.download(url, file_type="docx")
    store(tmp_path, "u/big.docx", b"PK\x03\x04" + b"0" * 60_000)
    with pytest.raises(FileTooLargeError):
        await storage.download("u/big.docx", file_type="docx")
    with pytest.raises(DocumentError, match="the file is a DOCX"):
        await storage.download("u/cv.docx", file_type="pdf")


async def test_languages_topics_and_readmes_become_skills_without_duplicates() -> None:
    """TypeScript → TypeScript + JavaScript; Go → Go + Golang; topics by the dictionary."""
    repos = [
        Repo(full_name="a/x", name="x", language="TypeScript", topics=["react-native"], stars=3),
        Repo(full_name="a/y", name="y", language="TypeScript", stars=9),
        Repo(full_name="a/z", name="z", language="Go", topics=["postgresql", "fun"], stars=1),
        Repo(full_name="a/m", name="m", language="Makefile"),
    ]
    found = await steps.extract_skills(repos, ["javascript", "Docker"])
    assert found.skills == [
        "TypeScript",
        "JavaScript",
        "Go",
        "Golang",
        "PostgreSQL",
        "React",
        "React Native",
        "Docker",
    ]
    assert [p.name for p in found.projects] == ["y", "x", "z", "m"]


async def test_an_answer_still_invented_after_the_retry_is_a_gate_problem(tmp_path: Path) -> None:
    """Invented twice: the entry is dropped (never saved) and the outcome names the
    problem for the workflow's quality gate, which asks the fallback model."""
    ai = ScriptedAI(answer("Tech Corp", "Globex"), answer("Tech Corp", "Globex"))
    deps = deps_with(ai, tmp_path)
    store(tmp_path, "u/cv.docx", docx_bytes(LINES))
    file = await steps.download_file(deps, "u/cv.docx", "docx")
    outcome = await steps.parse_and_structure(deps, "u/cv.docx", "docx", file.sha256)
    assert [e.company for e in outcome.resume.experience] == ["Tech Corp"]
    assert outcome.problems == ['employer "Globex" does not occur in the resume']
    grounded = ScriptedAI(answer("Tech Corp"))
    outcome = await steps.parse_and_structure(
        deps_with(grounded, tmp_path), "u/cv.docx", "docx", file.sha256
    )
    assert outcome.problems == []


class ReadmeAI:
    name = "claude"

    async def skills_from_readmes(self, readmes: list[tuple[str, str]]) -> Any:
        from shared.ai import SkillsResult

        return SkillsResult(
            skills=["Python", "SQLAlchemy", "Synergy"], model="claude-test", usage=Usage()
        )


class Readmes:
    async def get_readme(self, name: str, max_chars: int) -> str:
        return "A bot built with SQLAlchemy on Python."


async def test_readme_skills_neither_known_nor_written_are_kept_out(tmp_path: Path) -> None:
    deps = deps_with(ReadmeAI(), tmp_path)
    deps.github = cast(Any, Readmes())
    repo = Repo(name="bot", full_name="me/bot", url="https://github.com/me/bot", stars=1)
    found = await steps.analyze_readmes(deps, [repo])
    assert found.skills == ["Python", "SQLAlchemy"] and found.unverified == ["Synergy"]
