"""Resume files from Supabase Storage, fetched only from the configured origin (no SSRF).

A `fileUrl` from an event is never fetched as given. It is parsed strictly, checked to name
an object in the `resumes` bucket on exactly the configured Supabase origin, and reduced
to the object's path; the request URL is then rebuilt from the configured origin:
`GET {SUPABASE_URL}/storage/v1/object/resumes/{path}` with the service key. Anything else
(another host, scheme or port, an IP literal in any spelling, userinfo, `..`, encoded
tricks, another bucket) is refused before any connection is made. Redirects are never
followed; size and total time are capped; the content type and magic bytes are checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import urllib.parse
from typing import Annotated, Literal

import httpx
import msgspec
from msgspec import Meta

from shared.config import Settings
from shared.documents import check_document
from shared.errors import ConfigError, NonRetryableError, UpstreamError
from shared.http import PROVIDERS, classify, error_for, redact

__all__ = [
    "FileTooLargeError",
    "ForbiddenUrlError",
    "ResumeStorage",
    "StorageSettings",
    "StoredFile",
]

log = logging.getLogger(__name__)

BUCKET = "resumes"
CONTENT_TYPES = {
    "pdf": {"application/pdf", "application/x-pdf"},
    "docx": {"application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
}
# Supabase serves what the uploader declared; a generic type is accepted when the bytes
# themselves are the expected kind.
GENERIC_TYPES = {"application/octet-stream", "binary/octet-stream", "application/zip", ""}
_OBJECT_PATH = re.compile(r"^/storage/v1/object/(?:(?:public|sign|authenticated)/)?([^/]+)/(.+)$")
_SEGMENT = re.compile(r"^[A-Za-z0-9 _.,()@+=~'!\-]+$")


class ForbiddenUrlError(NonRetryableError):
    """A file URL we will not fetch: not an object of the resumes bucket on our Supabase."""


class FileTooLargeError(NonRetryableError):
    """The stored file is larger than the configured cap (reading stopped at the cap)."""

    def __init__(self, message: str, bytes_read: int) -> None:
        super().__init__(message)
        self.bytes_read = bytes_read


class StorageSettings(Settings, frozen=True, kw_only=True):
    """Env: SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, STORAGE_MAX_BYTES, STORAGE_TIMEOUT."""

    supabase_url: str
    supabase_service_role_key: str
    storage_bucket: str = BUCKET
    storage_max_bytes: Annotated[int, Meta(ge=1)] = 10 * 1024 * 1024
    storage_timeout: Annotated[float, Meta(gt=0)] = 30.0


class StoredFile(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


class _Origin(msgspec.Struct, frozen=True):
    scheme: str
    host: str
    port: int


class ResumeStorage:
    """Downloads resume files; shares the process's httpx client."""

    def __init__(self, settings: StorageSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._origin = _configured_origin(settings.supabase_url)
        self._base = settings.supabase_url.rstrip("/")

    def object_path(self, file_url: str) -> str:
        """The object's path inside the bucket, or ForbiddenUrlError. Pure: no I/O."""
        return _object_path(file_url, self._origin, self._settings.storage_bucket)

    def object_url(self, path: str) -> str:
        """The URL we request for a validated path (rebuilt from configuration only)."""
        quoted = "/".join(urllib.parse.quote(segment, safe="") for segment in path.split("/"))
        return f"{self._base}/storage/v1/object/{self._settings.storage_bucket}/{quoted}"

    async def download(self, file_url: str, *, file_type: Literal["pdf", "docx"]) -> StoredFile:
        """The file's bytes, checked: origin, size cap, total time, content type, magic."""
        path = self.object_path(file_url)
        url = self.object_url(path)
        try:
            async with asyncio.timeout(self._settings.storage_timeout):
                return await self._fetch(url, path, file_type)
        except TimeoutError:
            raise UpstreamError(
                f"storage: the download took longer than {self._settings.storage_timeout:g}s"
            ) from None

    async def _fetch(self, url: str, path: str, file_type: Literal["pdf", "docx"]) -> StoredFile:
        key = self._settings.supabase_service_role_key
        # identity: we count and cap the bytes as they arrive, with no decompression bombs.
        headers = {"Authorization": f"Bearer {key}", "apikey": key, "Accept-Encoding": "identity"}
        cap = self._settings.storage_max_bytes
        try:
            async with self._client.stream(
                "GET", url, headers=headers, follow_redirects=False
            ) as response:
                if response.status_code != 200:
                    self._raise(response, await _head_of_body(response))
                encoding = response.headers.get("content-encoding", "identity").lower()
                if encoding not in ("identity", ""):
                    raise NonRetryableError(f"storage: unexpected content encoding {encoding!r}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise FileTooLargeError(
                        f"storage: the file is {int(declared)} bytes; the limit is {cap}", 0
                    )
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.aiter_raw():
                    total += len(chunk)
                    if total > cap:
                        raise FileTooLargeError(
                            f"storage: the file is larger than the limit of {cap} bytes", total
                        )
                    chunks.append(chunk)
                content_type = response.headers.get("content-type", "")
        except httpx.TimeoutException as exc:
            raise UpstreamError("storage: the request timed out") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(
                f"storage: could not reach Supabase ({type(exc).__name__})"
            ) from exc
        data = b"".join(chunks)
        _check_type(content_type, data, file_type)
        return StoredFile(path=path, content_type=content_type.split(";")[0].strip(), data=data)

    def _raise(self, response: httpx.Response, body: str) -> None:
        status = response.status_code
        if 300 <= status < 400:
            raise ForbiddenUrlError(f"storage answered with a redirect ({status}); not followed")
        # Supabase Storage reports a missing object as 400 with statusCode "404" in the body.
        if status == 404 or (status == 400 and ('"404"' in body or "not_found" in body.lower())):
            raise NonRetryableError("storage: the resume file does not exist")
        if status in (401, 403):
            raise NonRetryableError(
                f"storage: access denied ({status}); check SUPABASE_SERVICE_ROLE_KEY"
            )
        snippet = redact(" ".join(body.split())[:200], [self._settings.supabase_service_role_key])
        message = f"storage answered {status}: {snippet}"
        raise error_for(classify(status, response.headers, PROVIDERS["supabase-storage"]), message)


async def _head_of_body(response: httpx.Response, limit: int = 4096) -> str:
    """At most `limit` bytes of an error body (never the whole of a hostile one)."""
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", "replace")


def _check_type(content_type: str, data: bytes, file_type: Literal["pdf", "docx"]) -> None:
    media = content_type.split(";")[0].strip().lower()
    if media not in CONTENT_TYPES[file_type] and media not in GENERIC_TYPES:
        raise NonRetryableError(f"storage: expected a {file_type} file, got content type {media!r}")
    # Empty, another type than declared, cut short: each named (DocumentError, non-retryable).
    check_document(data, file_type)


def _configured_origin(supabase_url: str) -> _Origin:
    parts = urllib.parse.urlsplit(supabase_url.strip())
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username
        or parts.password
    ):
        raise ConfigError(
            "SUPABASE_URL must be an http(s) origin such as https://<project>.supabase.co"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError("SUPABASE_URL has an invalid port") from None
    return _Origin(parts.scheme, parts.hostname.lower(), port)


def _forbid(reason: str) -> ForbiddenUrlError:
    return ForbiddenUrlError(f"file URL refused: {reason}")


def _is_ip_literal(host: str) -> bool:
    """Any spelling of an IP address: dotted, decimal, octal, hex, short forms, IPv6."""
    if host.startswith("[") or ":" in host:
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    # inet_aton accepts 2130706433, 017700000001, 0x7f000001, 127.1, 0177.0.0.1, ...
    return bool(
        re.fullmatch(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}\.?", host, re.I)
    )


def _object_path(file_url: str, origin: _Origin, bucket: str) -> str:
    if not isinstance(file_url, str) or not file_url or len(file_url) > 2048:
        raise _forbid("empty or too long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in file_url) or "\\" in file_url:
        raise _forbid("control characters or backslashes")
    if file_url != file_url.strip():
        raise _forbid("leading or trailing whitespace")
    if not file_url.isascii():
        raise _forbid("non-ASCII characters")
    scheme_match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", file_url)
    if scheme_match or file_url.startswith("//"):
        if " " in file_url:
            raise _forbid("spaces in a URL")
        raw_path = _check_absolute(file_url, origin, scheme_match.group(1) if scheme_match else "")
        match = _OBJECT_PATH.match(raw_path)
        if not match:
            raise _forbid("not a Supabase Storage object path")
        if urllib.parse.unquote(match.group(1)) != bucket:
            raise _forbid(f"not in the {bucket!r} bucket")
        raw_object = match.group(2)
    else:
        raw_object = file_url.split("?", 1)[0].split("#", 1)[0]
        if raw_object.startswith("/"):
            raise _forbid("a bare path must be relative to the bucket")
    return _clean_object_path(raw_object)


def _check_absolute(file_url: str, origin: _Origin, scheme: str) -> str:
    if scheme.lower() != origin.scheme:
        raise _forbid(f"scheme {scheme.lower() or '(none)'!r} is not {origin.scheme!r}")
    try:
        parts = urllib.parse.urlsplit(file_url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise _forbid("not a parseable URL") from None
    netloc = parts.netloc
    if "@" in netloc:
        raise _forbid("credentials (userinfo) in the URL")
    if "%" in netloc:
        raise _forbid("percent-encoding in the host")
    if not host:
        raise _forbid("no host")
    if host != origin.host:
        if _is_ip_literal(host) or _is_ip_literal(
            netloc.rsplit(":", 1)[0] if "]" not in netloc else netloc
        ):
            raise _forbid("IP-address hosts are not allowed")
        raise _forbid(f"host {host!r} is not the configured storage host")
    try:
        port = parts.port or (443 if origin.scheme == "https" else 80)
    except ValueError:
        raise _forbid("invalid port") from None
    if port != origin.port:
        raise _forbid("port is not the configured storage port")
    return parts.path


def _clean_object_path(raw: str) -> str:
    if not raw or len(raw) > 1024:
        raise _forbid("empty or overlong object path")
    decoded = urllib.parse.unquote(raw)
    if "%" in decoded:
        raise _forbid("double percent-encoding")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded) or "\\" in decoded:
        raise _forbid("control characters or backslashes in the object path")
    segments = decoded.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise _forbid("empty, '.' or '..' path segments")
        if not _SEGMENT.match(segment):
            raise _forbid("unexpected characters in the object path")
    return "/".join(segments)
