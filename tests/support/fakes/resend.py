"""A fake Resend API: POST /emails with Idempotency-Key semantics, counting per key.

Like Resend, a repeated Idempotency-Key with the same payload returns the first send's id
and sends nothing new; the same key with a different payload is a 409. Stats report how
many times each key was requested and how many emails were really "delivered".
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from typing import Any

from tests.support.fakes.base import FakeApp, Reply, Request


class ResendFake(FakeApp):
    name = "resend"

    def __init__(self, fixtures_dir: Any) -> None:
        super().__init__(fixtures_dir)
        self.reset_state()

    def reset_state(self) -> None:
        self.by_key: Counter[str] = Counter()
        self.keys: dict[str, tuple[str, str]] = {}  # key → (payload digest, id)
        self.delivered: list[dict[str, Any]] = []

    async def handle(self, request: Request) -> Reply:
        if request.path.rstrip("/") != "/emails" or request.method != "POST":
            return self._error(404, "not_found", "Route not found")
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Reply.json(
                json.loads(self.fixture_bytes("resend/error_401_missing_api_key.json")), 401
            )
        try:
            payload = request.json()
        except ValueError:
            return self._error(422, "validation_error", "Invalid JSON body")
        if not payload.get("from"):
            return Reply.json(
                json.loads(self.fixture_bytes("resend/error_422_missing_required_field.json")), 422
            )
        for field in ("to", "subject"):
            if not payload.get(field):
                return self._error(422, "missing_required_field", f"Missing `{field}` field.")
        key = request.headers.get("idempotency-key")
        digest = hashlib.sha256(request.body).hexdigest()
        with self._lock:
            if key:
                self.by_key[key] += 1
                if key in self.keys:
                    first_digest, email_id = self.keys[key]
                    if first_digest != digest:
                        return self._error(
                            409,
                            "invalid_idempotent_request",
                            "Same idempotency key used with a different request payload.",
                        )
                    return Reply.json({"id": email_id})
            email_id = str(uuid.uuid4())
            if key:
                self.keys[key] = (digest, email_id)
            self.delivered.append({"id": email_id, "idempotency_key": key, **payload})
        return Reply.json({"id": email_id})

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._lock:
            stats["by_idempotency_key"] = dict(self.by_key)
            stats["deliveries"] = len(self.delivered)
            stats["delivered"] = list(self.delivered)
        return stats

    @staticmethod
    def _error(status: int, name: str, message: str) -> Reply:
        return Reply.json({"statusCode": status, "name": name, "message": message}, status)
