"""Resume downloads from the fake Supabase Storage, and the SSRF list refused with zero
connections to a canary (RELIABILITY S4)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shared.errors import NonRetryableError, UpstreamError
from shared.storage import FileTooLargeError, ForbiddenUrlError, ResumeStorage, StorageSettings
from tests.support.fakes import SERVICE_KEY, Canary, RunningFake, put_object

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def storage(fake: RunningFake, client: httpx.AsyncClient, **overrides: object) -> ResumeStorage:
    settings = StorageSettings(
        supabase_url=fake.url, supabase_service_role_key=SERVICE_KEY, **overrides
    )  # type: ignore[arg-type]
    return ResumeStorage(settings, client)


async def test_download_by_public_url_and_by_bare_path(
    storage_fake: RunningFake, http_client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    """A public URL on our origin and a bare bucket path both fetch with the service key."""
    pdf = (fixtures_dir / "resumes" / "john_doe_openresume.pdf").read_bytes()
    put_object(storage_fake.control, "resumes", "user-1/My CV.pdf", pdf, PDF)
    store = storage(storage_fake, http_client)
    by_url = await store.download(
        f"{storage_fake.url}/storage/v1/object/public/resumes/user-1/My%20CV.pdf", file_type="pdf"
    )
    by_path = await store.download("user-1/My CV.pdf", file_type="pdf")
    assert by_url.data == by_path.data == pdf
    assert by_url.content_type == PDF and by_url.path == "user-1/My CV.pdf"
    request = storage_fake.control.last_request()
    assert request["path"] == "/storage/v1/object/resumes/user-1/My CV.pdf"  # ASGI path, decoded
    assert request["headers"]["authorization"] == f"Bearer {SERVICE_KEY}"


async def test_docx_with_generic_content_type_is_accepted_by_its_bytes(
    storage_fake: RunningFake, http_client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    """application/octet-stream is accepted when the bytes really are the expected type."""
    docx = (fixtures_dir / "resumes" / "john_doe_simple.docx").read_bytes()
    put_object(storage_fake.control, "resumes", "u/cv.docx", docx, "application/octet-stream")
    stored = await storage(storage_fake, http_client).download("u/cv.docx", file_type="docx")
    assert stored.size == len(docx)


@pytest.mark.parametrize(
    ("data", "content_type", "file_type"),
    [
        (b"<html>login</html>", "text/html", "pdf"),
        (b"not a pdf at all", PDF, "pdf"),
        (b"%PDF-1.4 but claimed docx", DOCX, "docx"),
    ],
)
async def test_wrong_type_is_refused(
    storage_fake: RunningFake,
    http_client: httpx.AsyncClient,
    data: bytes,
    content_type: str,
    file_type: str,
) -> None:
    """A content type or magic bytes that do not match the expected type is NonRetryableError."""
    put_object(storage_fake.control, "resumes", "u/f", data, content_type)
    with pytest.raises(NonRetryableError):
        await storage(storage_fake, http_client).download("u/f", file_type=file_type)  # type: ignore[arg-type]


async def test_missing_object_and_bad_key(
    storage_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """Supabase's 400 "not_found" and a rejected key are both NonRetryableError."""
    with pytest.raises(NonRetryableError, match="does not exist"):
        await storage(storage_fake, http_client).download("u/none.pdf", file_type="pdf")
    bad = ResumeStorage(
        StorageSettings(supabase_url=storage_fake.url, supabase_service_role_key="wrong"),
        http_client,
    )
    put_object(storage_fake.control, "resumes", "u/a.pdf", b"%PDF-1.4", PDF)
    with pytest.raises(NonRetryableError):
        await bad.download("u/a.pdf", file_type="pdf")


async def test_oversized_body_stops_at_the_cap(
    storage_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A 50 MB body (no Content-Length) is cut off: bytes read stay within cap + 64 KB."""
    cap = 1_000_000
    storage_fake.control.script(
        stream={"size": 50_000_000, "prefix": "%PDF-"}, headers={"content-type": PDF}
    )
    with pytest.raises(FileTooLargeError) as caught:
        await storage(storage_fake, http_client, storage_max_bytes=cap).download(
            "u/big.pdf", file_type="pdf"
        )
    assert cap < caught.value.bytes_read <= cap + 64 * 1024


async def test_declared_oversize_is_refused_before_reading(
    storage_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A Content-Length above the cap is refused without reading the body."""
    put_object(storage_fake.control, "resumes", "u/big.pdf", b"%PDF-" + b"0" * 5000, PDF)
    with pytest.raises(FileTooLargeError) as caught:
        await storage(storage_fake, http_client, storage_max_bytes=1000).download(
            "u/big.pdf", file_type="pdf"
        )
    assert caught.value.bytes_read == 0


async def test_slow_body_hits_the_total_time_cap(
    storage_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A body trickling one byte at a time is abandoned at the total timeout (retryable)."""
    storage_fake.control.script(
        trickle={"chunk": 1, "interval": 0.3, "count": 200}, headers={"content-type": PDF}
    )
    with pytest.raises(UpstreamError, match="longer than"):
        await storage(storage_fake, http_client, storage_timeout=1.0).download(
            "u/slow.pdf", file_type="pdf"
        )


def ssrf_inputs(canary: Canary, origin: str) -> list[str]:
    p = canary.port
    obj = "/storage/v1/object/public/resumes/u/cv.pdf"
    return [
        f"http://127.0.0.1:{p}{obj}",
        f"http://localhost:{p}{obj}",
        f"http://[::1]:{p}{obj}",
        f"http://[::ffff:127.0.0.1]:{p}{obj}",
        f"http://[0:0:0:0:0:ffff:7f00:1]:{p}{obj}",
        f"http://0x7f000001:{p}{obj}",
        f"http://2130706433:{p}{obj}",
        f"http://017700000001:{p}{obj}",
        f"http://0177.0.0.1:{p}{obj}",
        f"http://127.1:{p}{obj}",
        f"http://0:{p}{obj}",
        "http://169.254.169.254/latest/meta-data",
        f"http://10.0.0.1{obj}",
        f"http://192.168.1.10{obj}",
        f"http://172.16.0.1{obj}",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{p}/_GET",
        f"ftp://127.0.0.1:{p}/cv.pdf",
        f"http://a@127.0.0.1:{p}{obj}",
        f"{origin}@127.0.0.1:{p}{obj}",
        f"http://user:pass@{origin.removeprefix('http://')}{obj}",
        f"http://127.0.0.1:{p}#@{origin.removeprefix('http://')}{obj}",
        f"http://127.0.0.1:{p}\\@{origin.removeprefix('http://')}{obj}",
        f"http://evil.test:{p}{obj}",
        f"//127.0.0.1:{p}{obj}",
        f"HTTP://127.0.0.1:{p}{obj}",
        f" {origin}{obj}",
        f"{origin}{obj}\r\nHost: 127.0.0.1:{p}",
        f"https://{origin.removeprefix('http://')}{obj}",
        f"{origin}/storage/v1/object/public/avatars/u/cv.pdf",
        f"{origin}/storage/v1/object/public/resumes/../../../admin",
        f"{origin}/storage/v1/object/public/resumes/u/%2e%2e/%2e%2e/x",
        f"{origin}/storage/v1/object/public/resumes/u/%252e%252e/x",
        f"{origin}/storage/v1/object/public/resumes/u/..%2f..%2fx",
        f"{origin}/storage/v1/object/public/resumes/u/cv.pdf%00.png",
        f"{origin}/rest/v1/profiles",
        "../../etc/passwd",
        "/etc/passwd",
        "u//cv.pdf",
        "",
    ]


async def test_ssrf_inputs_are_refused_without_any_connection(
    storage_fake: RunningFake, http_client: httpx.AsyncClient, canary: Canary
) -> None:
    """Every SSRF input is ForbiddenUrlError, with 0 canary connections and 0 storage requests."""
    store = storage(storage_fake, http_client)
    inputs = ssrf_inputs(canary, storage_fake.url)
    for url in inputs:
        with pytest.raises(ForbiddenUrlError):
            await store.download(url, file_type="pdf")
    assert canary.connections == 0
    assert storage_fake.control.requests() == []


async def test_redirect_from_our_origin_is_not_followed(
    storage_fake: RunningFake, http_client: httpx.AsyncClient, canary: Canary
) -> None:
    """The configured origin answering 302 → canary is refused; the canary sees no connection."""
    storage_fake.control.script(
        status=302, headers={"location": f"{canary.url}/storage/v1/object/resumes/u/cv.pdf"}
    )
    with pytest.raises(ForbiddenUrlError, match="redirect"):
        await storage(storage_fake, http_client).download("u/cv.pdf", file_type="pdf")
    assert canary.connections == 0
    assert len(storage_fake.control.requests()) == 1


async def test_canary_counts_connections(canary: Canary) -> None:
    """The canary itself works: one direct request is one counted connection."""
    async with httpx.AsyncClient() as client:
        response = await client.get(canary.url)
    assert response.text == "canary"
    assert canary.connections == 1
