"""resume-parsing end to end: gateway and parsing service as processes, real NATS and
PostgreSQL, Supabase Storage and Anthropic as local servers speaking their wire formats."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

from pypdf import PdfWriter

from bench.parsing_eval import GOLDENS
from tests.e2e.parsing_stack import Stack

WF = "resume-parsing"
GROUNDED = {
    "name": "Jordan Example",
    "email": None,
    "phone": None,
    "summary": "Engineer.",
    "skills": ["Python", "SQL"],
    "experience": [],
    "education": [],
    "certifications": [],
    "projects": [],
}


def resumes(fixtures_dir: Path) -> list[Path]:
    return sorted((fixtures_dir / "resumes").iterdir())


def messages(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in stack.anthropic.requests("/v1/messages")]


async def test_every_fixture_resume_parses_offline_and_fills_the_profile(
    parsing: Stack, fixtures_dir: Path
) -> None:
    """Each recorded PDF and DOCX: text saved, structure saved, empty profile filled."""
    parsing.start_parsing()
    runs = []
    for path in resumes(fixtures_dir):
        user = await parsing.new_user(email="someone@example.com")
        params = await parsing.upload(user, path.name, path.read_bytes(), path.suffix[1:])
        runs.append((path, user, params, await parsing.trigger(WF, params)))
    for path, user, params, instance in runs:
        body = await parsing.finished(WF, instance)
        assert body["status"] == "complete", (path.name, body)
        output = body["output"]
        assert output["success"] is True and output["model"] == "offline"
        assert output["extractedLength"] > 250, path.name
        golden = json.loads((GOLDENS / f"{path.stem}.json").read_text())
        assert output["skillsCount"] >= min(len(golden["skills"]), 1), (path.name, output)
        assert output["experienceCount"] == len(golden["experience"]), (path.name, output)
        assert output["educationCount"] == len(golden["education"]), (path.name, output)
        row = await parsing.resume_row(params["resumeId"])
        assert len(row["parsed_content"]) == output["extractedLength"]
        assert len(row["structured_data"]["skills"]) == output["skillsCount"]
        profile = await parsing.profile(user)
        assert profile["full_name"] == golden["name"], path.name
        assert profile["full_name"] == row["structured_data"]["name"], path.name
        assert len(profile["skills"]) == output["skillsCount"]
        assert len(profile["experience"]) == output["experienceCount"]
        assert len(profile["education"]) == output["educationCount"]
    assert parsing.anthropic.requests() == []


async def test_every_fixture_resume_through_claude(parsing: Stack, fixtures_dir: Path) -> None:
    """With a key: a PDF reaches Claude as a document block (its bytes), a DOCX as its
    text; a scanned PDF goes as it is."""
    parsing.start_parsing(claude=True)
    files = resumes(fixtures_dir)
    parsing.anthropic.script(times=len(files) + 1, tool_input=GROUNDED)
    # A scan (no text layer) goes to Claude as it is, marked as not checked.
    scan = _blank_pdf()
    scan_user = await parsing.new_user()
    scan_run = await parsing.trigger(WF, await parsing.upload(scan_user, "scan.pdf", scan, "pdf"))
    runs = []
    for path in files:
        user = await parsing.new_user()
        params = await parsing.upload(user, path.name, path.read_bytes(), path.suffix[1:])
        runs.append((path, user, params, await parsing.trigger(WF, params)))
    for path, user, params, instance in runs:
        body = await parsing.finished(WF, instance)
        assert body["status"] == "complete", (path.name, body)
        assert body["output"]["skillsCount"] == 2 and body["output"]["warnings"] == []
        row = await parsing.resume_row(params["resumeId"])
        if path.suffix == ".pdf":
            [content] = [
                m["messages"][0]["content"]
                for m in messages(parsing)
                if m["messages"][0]["content"][0]["type"] == "document"
                and base64.b64decode(m["messages"][0]["content"][0]["source"]["data"])
                == path.read_bytes()
            ]
        else:
            [content] = [
                m["messages"][0]["content"]
                for m in messages(parsing)
                if m["messages"][0]["content"][0]["type"] == "text"
                and row["parsed_content"] in m["messages"][0]["content"][0]["text"]
            ]
            assert "<resume>" in content[0]["text"]
        profile = await parsing.profile(user)
        assert profile["full_name"] == "Jordan Example"
        assert profile["skills"] == ["Python", "SQL"]
    body = await parsing.finished(WF, scan_run)
    assert body["status"] == "complete", body
    assert body["output"]["warnings"] == [
        "not checked against the document: the PDF has no text layer"
    ]
    assert any(
        m["messages"][0]["content"][0]["type"] == "document"
        and base64.b64decode(m["messages"][0]["content"][0]["source"]["data"]) == scan
        for m in messages(parsing)
    )
    assert len(messages(parsing)) == len(files) + 1


async def test_invented_employer_is_retried_with_the_discrepancy_then_dropped(
    parsing: Stack, fixtures_dir: Path
) -> None:
    """An answer inventing an employer: asked again naming it; still invented: dropped."""
    parsing.start_parsing(claude=True)
    path = fixtures_dir / "resumes" / "john_doe_simple.docx"
    real = {"title": "Software Engineer", "company": "Tech Corp", "startDate": "June 2020"}
    invented = {"title": "CTO", "company": "Globex Corporation", "startDate": "2010"}
    answer = {**GROUNDED, "email": "john.doe@example.com", "experience": [real, invented]}
    parsing.anthropic.script(times=2, tool_input=answer)
    user = await parsing.new_user()
    params = await parsing.upload(user, path.name, path.read_bytes(), "docx")
    body = await parsing.finished(WF, await parsing.trigger(WF, params))
    assert body["status"] == "complete", body
    first, second = messages(parsing)
    assert "Globex" not in first["messages"][0]["content"][0]["text"]
    retry_prompt = second["messages"][0]["content"][0]["text"]
    assert 'employer "Globex Corporation" does not occur in the resume' in retry_prompt
    assert body["output"]["experienceCount"] == 1
    [warning] = body["output"]["warnings"]
    assert "Globex Corporation" in warning and "dropped" in warning
    profile = await parsing.profile(user)
    assert [job["company"] for job in profile["experience"]] == ["Tech Corp"]
    row = await parsing.resume_row(params["resumeId"])
    assert "Globex" not in json.dumps(row["structured_data"])


async def test_user_written_fields_survive_also_when_edited_during_the_run(
    parsing: Stack, fixtures_dir: Path
) -> None:
    """Filled fields are kept; a field the user fills while Claude works is kept too."""
    parsing.start_parsing(claude=True)
    answer = {
        **GROUNDED,
        "name": "John Doe",
        "summary": "From the resume.",
        "skills": ["Python", "FastAPI"],
        "experience": [{"title": "Software Engineer", "company": "Tech Corp"}],
    }
    parsing.anthropic.script(times=1, tool_input=answer, delay=4)
    user = await parsing.new_user(full_name="Johnny D. (my words)")
    path = fixtures_dir / "resumes" / "john_doe_simple.docx"
    params = await parsing.upload(user, path.name, path.read_bytes(), "docx")
    instance = await parsing.trigger(WF, params)
    for _ in range(300):
        if parsing.anthropic.requests("/v1/messages"):
            break
        await asyncio.sleep(0.05)
    assert parsing.anthropic.requests("/v1/messages")
    await parsing.execute(
        "UPDATE profiles SET summary = 'Written by me mid-run' WHERE user_id = $1", user
    )
    body = await parsing.finished(WF, instance)
    assert body["status"] == "complete", body
    profile = await parsing.profile(user)
    assert profile["full_name"] == "Johnny D. (my words)"
    assert profile["summary"] == "Written by me mid-run"
    assert profile["skills"] == ["Python", "FastAPI"]  # was empty: filled
    assert [job["company"] for job in profile["experience"]] == ["Tech Corp"]


def _encrypted(pdf: bytes) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_bad_files_fail_clearly_and_write_nothing(parsing: Stack, fixtures_dir: Path) -> None:
    """Not a PDF, truncated, encrypted, empty, scanned (offline), oversize, a type that is
    not the bytes, a URL off the storage origin: each its own clear error, nothing saved."""
    parsing.start_parsing(STORAGE_MAX_BYTES="100000")
    pdf = (fixtures_dir / "resumes" / "barry_allen_fe.pdf").read_bytes()  # 129 kB
    small_pdf = (fixtures_dir / "resumes" / "john_doe_openresume.pdf").read_bytes()
    docx = (fixtures_dir / "resumes" / "john_doe_simple.docx").read_bytes()
    assert len(pdf) > 100_000 > len(small_pdf)
    cases: list[tuple[str, bytes, str, str | None, str]] = [
        ("html.pdf", b"<html><body>not a resume</body></html>", "pdf", None, "not a PDF"),
        ("cut.pdf", small_pdf[: len(small_pdf) // 2], "pdf", None, "truncated"),
        ("locked.pdf", _encrypted(small_pdf), "pdf", None, "encrypted"),
        ("empty.pdf", b"", "pdf", None, "empty"),
        ("scan.pdf", _blank_pdf(), "pdf", None, "no text layer"),
        ("big.pdf", pdf, "pdf", None, "limit"),
        ("word.docx", docx, "pdf", None, "the file is a DOCX"),
        (
            "x.pdf",
            small_pdf,
            "pdf",
            "http://169.254.169.254/storage/v1/object/resumes/x.pdf",
            "refused",
        ),
    ]
    runs = []
    for name, data, kind, url, expected in cases:
        user = await parsing.new_user(full_name=None)
        params = await parsing.upload(user, name, data, kind)
        if url is not None:
            params["fileUrl"] = url
        runs.append((name, user, params, expected, await parsing.trigger(WF, params)))
    for name, user, params, expected, instance in runs:
        body = await parsing.finished(WF, instance)
        assert body["status"] == "errored", (name, body)
        assert expected in body["error"]["message"], (name, body["error"])
        steps = await parsing.steps(WF, instance)
        failed = [s for s in steps.values() if s["status"] == "errored"]
        assert len(failed) == 1 and failed[0]["attempts"] == 1, (name, steps)  # non-retryable
        assert "save-parsed-data" not in steps and "update-profile" not in steps
        row = await parsing.resume_row(params["resumeId"])
        assert row["parsed_content"] is None and row["structured_data"] is None, name
        profile = await parsing.profile(user)
        assert profile["full_name"] is None and profile["skills"] == [], name
    # Nothing was fetched from the refused host: the one request per run went to storage.
    assert len(parsing.storage.requests("/storage/v1/object/")) == len(cases) - 1


async def test_sigkill_mid_parse_the_replacement_finishes_once(
    parsing: Stack, fixtures_dir: Path
) -> None:
    """SIGKILL while Claude answers: a new process finishes; download-file is not repeated;
    one set of profile changes."""
    first = parsing.start_parsing(claude=True)
    answer = {
        **GROUNDED,
        "experience": [{"title": "Software Engineer", "company": "Tech Corp"}],
    }
    parsing.anthropic.script(times=1, tool_input=answer, delay=30)  # hangs: killed here
    parsing.anthropic.script(times=1, tool_input=answer)
    user = await parsing.new_user()
    path = fixtures_dir / "resumes" / "john_doe_simple.docx"
    params = await parsing.upload(user, path.name, path.read_bytes(), "docx")
    instance = await parsing.trigger(WF, params)
    for _ in range(600):
        if parsing.anthropic.requests("/v1/messages"):
            break
        await asyncio.sleep(0.05)
    assert parsing.anthropic.requests("/v1/messages"), first.output()
    first.kill()
    parsing.start_parsing(2, claude=True)
    body = await parsing.finished(WF, instance)
    assert body["status"] == "complete", body
    steps = await parsing.steps(WF, instance)
    assert steps["download-file"]["attempts"] == 1
    assert steps["update-profile"]["status"] == "complete"
    assert len(parsing.anthropic.requests("/v1/messages")) == 2  # only the in-flight step again
    profile = await parsing.profile(user)
    assert [job["company"] for job in profile["experience"]] == ["Tech Corp"]
    assert profile["skills"] == ["Python", "SQL"]


async def test_the_same_file_from_two_users_is_parsed_once(
    parsing: Stack, fixtures_dir: Path
) -> None:
    """Two users upload identical bytes: one Claude call; both resumes and profiles filled."""
    parsing.start_parsing(claude=True)
    parsing.anthropic.script(times=1, tool_input=GROUNDED)
    data = (fixtures_dir / "resumes" / "john_doe_simple.docx").read_bytes()
    runs = []
    for n in range(2):
        user = await parsing.new_user()
        params = await parsing.upload(user, f"mine-{n}.docx", data, "docx")
        runs.append((user, params, await parsing.trigger(WF, params)))
    for user, params, instance in runs:
        body = await parsing.finished(WF, instance)
        assert body["status"] == "complete", body
        assert body["output"]["skillsCount"] == 2
        row = await parsing.resume_row(params["resumeId"])
        assert row["structured_data"]["name"] == "Jordan Example"
        assert (await parsing.profile(user))["full_name"] == "Jordan Example"
    assert len(parsing.anthropic.requests("/v1/messages")) == 1
