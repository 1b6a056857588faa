"""Resume files from a local folder: the storage of the laptop stack (no Supabase needed).

`howlerhire up` points STORAGE_DIR at `var/storage/`; a file saved as
`var/storage/resumes/<user>/cv.pdf` is parsed with `fileUrl` `<user>/cv.pdf` (or the
Supabase route form `/storage/v1/object/resumes/<user>/cv.pdf`). The same checks as the
Supabase adapter apply: only objects inside the bucket folder (no `..`, no absolute paths,
no symlinks out), a size cap, and the bytes must be the declared type.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from pathlib import Path
from typing import Literal

from shared.config import Settings
from shared.documents import check_document
from shared.errors import NonRetryableError
from shared.storage import BUCKET, FileTooLargeError, ForbiddenUrlError, StoredFile

__all__ = ["LocalResumeStorage", "LocalStorageSettings"]

_ROUTE = re.compile(r"^/storage/v1/object/(?:(?:public|sign|authenticated)/)?([^/]+)/(.+)$")
_SEGMENT = re.compile(r"^[A-Za-z0-9 _.,()@+=~'!\-]+$")
_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class LocalStorageSettings(Settings, frozen=True, kw_only=True):
    """Env: STORAGE_DIR (the folder holding `resumes/`), STORAGE_MAX_BYTES."""

    storage_dir: str = "var/storage"
    storage_bucket: str = BUCKET
    storage_max_bytes: int = 10 * 1024 * 1024


def _refuse(reason: str) -> ForbiddenUrlError:
    return ForbiddenUrlError(f"file URL refused: {reason}")


class LocalResumeStorage:
    """Reads `<storage_dir>/<bucket>/<path>`; the same interface as `ResumeStorage`."""

    def __init__(self, settings: LocalStorageSettings) -> None:
        self._settings = settings
        self._root = (Path(settings.storage_dir) / settings.storage_bucket).resolve()

    def object_path(self, file_url: str) -> str:
        """The object's path inside the bucket, or ForbiddenUrlError. Pure: no I/O."""
        if not file_url or len(file_url) > 2048 or not file_url.isascii():
            raise _refuse("empty, too long or non-ASCII")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in file_url) or "\\" in file_url:
            raise _refuse("control characters or backslashes")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", file_url) or file_url.startswith("//"):
            raise _refuse("the local storage takes an object path, not a URL with a host")
        raw = file_url.split("?", 1)[0].split("#", 1)[0]
        route = _ROUTE.match(raw)
        if route:
            if urllib.parse.unquote(route.group(1)) != self._settings.storage_bucket:
                raise _refuse(f"not in the {self._settings.storage_bucket!r} bucket")
            raw = route.group(2)
        elif raw.startswith("/"):
            raise _refuse("a bare path must be relative to the bucket")
        decoded = urllib.parse.unquote(raw)
        if "%" in decoded or "\\" in decoded:
            raise _refuse("double percent-encoding or backslashes")
        segments = decoded.split("/")
        for segment in segments:
            if segment in ("", ".", "..") or not _SEGMENT.match(segment):
                raise _refuse("empty, '.', '..' or unexpected characters in the object path")
        return "/".join(segments)

    async def download(self, file_url: str, *, file_type: Literal["pdf", "docx"]) -> StoredFile:
        path = self.object_path(file_url)
        return await asyncio.to_thread(self._read, path, file_type)

    def _read(self, path: str, file_type: Literal["pdf", "docx"]) -> StoredFile:
        target = (self._root / path).resolve()
        if not target.is_relative_to(self._root):
            raise _refuse("the object resolves outside the bucket folder")
        if not target.is_file():
            raise NonRetryableError("storage: the resume file does not exist")
        cap = self._settings.storage_max_bytes
        size = target.stat().st_size
        if size > cap:
            raise FileTooLargeError(f"storage: the file is {size} bytes; the limit is {cap}", 0)
        with target.open("rb") as handle:
            data = handle.read(cap + 1)
        if len(data) > cap:
            raise FileTooLargeError(
                f"storage: the file is larger than the limit of {cap} bytes", len(data)
            )
        check_document(data, file_type)
        return StoredFile(path=path, content_type=_TYPES[file_type], data=data)
