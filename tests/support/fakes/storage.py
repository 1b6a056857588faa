"""A fake Supabase Storage: GET /storage/v1/object/[public|sign|authenticated/]{bucket}/{path}.

Objects are put through the control API (`put_object`). Missing objects answer like
Supabase does: 400 with `{"statusCode":"404","error":"not_found",...}`. A wrong or absent
service key is a 400 with statusCode "403". Redirects, huge bodies and slow bodies are
scripted with "headers"/"status", "stream" and "trickle".
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from tests.support.fakes.base import FakeApp, FakeControl, Reply, Request

SERVICE_KEY = "fake-service-role-key-for-tests"
_OBJECT = re.compile(r"^/storage/v1/object/(?:(?:public|sign|authenticated)/)?([^/]+)/(.+)$")


class StorageFake(FakeApp):
    name = "storage"

    def __init__(self, fixtures_dir: Any, service_key: str = SERVICE_KEY) -> None:
        super().__init__(fixtures_dir)
        self.service_key = service_key
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}

    def reset_state(self) -> None:
        self.objects.clear()

    async def handle(self, request: Request) -> Reply:
        match = _OBJECT.match(request.path)
        if request.method != "GET" or not match:
            return self._error("404", "not_found", "Route not found", 404)
        if request.headers.get("authorization") != f"Bearer {self.service_key}":
            return self._error("403", "Unauthorized", "invalid signature")
        bucket, path = match.group(1), urllib.parse.unquote(match.group(2))
        with self._lock:
            stored = self.objects.get((bucket, path))
        if stored is None:
            return self._error("404", "not_found", "Object not found")
        data, content_type = stored
        return Reply(200, {"content-type": content_type}, data)

    def control(self, action: str, request: Request) -> Reply | None:
        if action.startswith("objects/") and request.method == "PUT":
            bucket, _, path = action.removeprefix("objects/").partition("/")
            content_type = request.headers.get("content-type", "application/octet-stream")
            with self._lock:
                self.objects[(bucket, urllib.parse.unquote(path))] = (request.body, content_type)
            return Reply.json({"Key": f"{bucket}/{path}"})
        return None

    @staticmethod
    def _error(code: str, error: str, message: str, status: int = 400) -> Reply:
        return Reply.json({"statusCode": code, "error": error, "message": message}, status)


def put_object(
    control: FakeControl, bucket: str, path: str, data: bytes, content_type: str
) -> None:
    """Store an object in a (possibly remote) storage fake."""
    quoted = urllib.parse.quote(path, safe="/")
    control.call(
        "PUT", f"objects/{bucket}/{quoted}", content=data, headers={"content-type": content_type}
    )
