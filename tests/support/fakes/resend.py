"""A fake Resend API: POST /emails and POST /emails/batch, Idempotency-Key, the team rate limit.

Like Resend:
- a repeated Idempotency-Key with the same payload returns the first call's answer and
  sends nothing new; the same key with a different payload is a 409. Keys are forgotten
  after 24 h (`idempotency_ttl`); `forget_keys` (control `POST /__fake__/forget-keys`)
  forgets them at once, as if a day had passed;
- with a rate limit set (`rate_limit=2`, or control `POST /__fake__/configure
  {"rate_limit": 2}`), more than that many requests in any second get 429 with Resend's
  error body and its `ratelimit-*` / `retry-after` headers; the limit is per team, over
  every API key;
- a batch holds at most 100 emails; `x-batch-validation: permissive` reports invalid
  emails by index and sends the rest, strict (the default) refuses the whole batch.

Stats: requests per idempotency key, emails delivered per recipient, 429s answered, and
the most requests accepted in any one second.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter, deque
from typing import Any

from tests.support.fakes.base import FakeApp, Reply, Request

MAX_BATCH = 100
DAY = 24 * 3600.0


class ResendFake(FakeApp):
    name = "resend"

    def __init__(
        self, fixtures_dir: Any, rate_limit: float | None = None, idempotency_ttl: float = DAY
    ) -> None:
        super().__init__(fixtures_dir)
        self._configured_rate_limit = rate_limit
        self.idempotency_ttl = idempotency_ttl
        self.reset_state()

    def reset_state(self) -> None:
        self.rate_limit = self._configured_rate_limit
        self.by_key: Counter[str] = Counter()
        self.by_recipient: Counter[str] = Counter()
        # key → (payload digest, status, answer, when)
        self.keys: dict[str, tuple[str, int, Any, float]] = {}
        self.delivered: list[dict[str, Any]] = []
        self.rejected_recipients: set[str] = set()
        self.accepted_times: deque[float] = deque()
        self.max_per_second = 0
        self.rate_limited = 0

    def forget_keys(self) -> None:
        """What 24 hours do to Resend's idempotency memory."""
        with self._lock:
            self.keys.clear()

    # ---- requests -------------------------------------------------------------------------

    async def handle(self, request: Request) -> Reply:
        path = request.path.rstrip("/")
        if request.method != "POST" or path not in ("/emails", "/emails/batch"):
            return self._error(404, "not_found", "Route not found")
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Reply.json(
                json.loads(self.fixture_bytes("resend/error_401_missing_api_key.json")), 401
            )
        with self._lock:
            limited = self._over_limit(time.monotonic())
            if limited is not None:
                return limited
        try:
            payload = request.json()
        except ValueError:
            return self._error(422, "validation_error", "Invalid JSON body")
        key = request.headers.get("idempotency-key")
        digest = hashlib.sha256(request.body).hexdigest()
        with self._lock:
            if key:
                self.by_key[key] += 1
                remembered = self._remembered(key)
                if remembered is not None:
                    first_digest, status, answer, _ = remembered
                    if first_digest != digest:
                        return self._error(
                            409,
                            "invalid_idempotent_request",
                            "Same idempotency key used with a different request payload.",
                        )
                    return Reply.json(answer, status)
            if path == "/emails":
                status, answer = self._send_one(payload, key)
            else:
                permissive = request.headers.get("x-batch-validation", "strict") == "permissive"
                status, answer = self._send_batch(payload, permissive, key)
            if key and status == 200:
                self.keys[key] = (digest, status, answer, time.monotonic())
        return Reply.json(answer, status)

    def _over_limit(self, now: float) -> Reply | None:
        """429 when `rate_limit` requests were accepted in the last second (the lock is held)."""
        window = self.accepted_times
        while window and window[0] <= now - 1.0:
            window.popleft()
        if self.rate_limit is not None and len(window) >= self.rate_limit:
            self.rate_limited += 1
            reset = max(0.0, window[0] + 1.0 - now)
            body = json.loads(self.fixture_bytes("resend/error_429_rate_limit_exceeded.json"))
            return Reply.json(
                body,
                429,
                {
                    "ratelimit-limit": f"{self.rate_limit:g}",
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": str(max(1, round(reset + 0.5))),
                    "retry-after": str(max(1, round(reset + 0.5))),
                },
            )
        window.append(now)
        self.max_per_second = max(self.max_per_second, len(window))
        return None

    def _remembered(self, key: str) -> tuple[str, int, Any, float] | None:
        entry = self.keys.get(key)
        if entry is not None and time.monotonic() - entry[3] > self.idempotency_ttl:
            del self.keys[key]
            return None
        return entry

    def _invalid(self, email: Any) -> str | None:
        if not isinstance(email, dict):
            return "Invalid email object."
        if not email.get("from"):
            return "Missing `from` field."
        for field in ("to", "subject"):
            if not email.get(field):
                return f"Missing `{field}` field."
        recipients = email["to"] if isinstance(email["to"], list) else [email["to"]]
        if any(str(r) in self.rejected_recipients for r in recipients):
            return "Invalid `to` field. The email address needs to follow the `email@example.com`"
        return None

    def _deliver(self, email: dict[str, Any], key: str | None) -> str:
        email_id = str(uuid.uuid4())
        recipients = email["to"] if isinstance(email["to"], list) else [email["to"]]
        for recipient in recipients:
            self.by_recipient[str(recipient)] += 1
        self.delivered.append({"id": email_id, "idempotency_key": key, **email})
        return email_id

    def _send_one(self, payload: Any, key: str | None) -> tuple[int, Any]:
        if isinstance(payload, dict) and not payload.get("from"):
            return 422, json.loads(
                self.fixture_bytes("resend/error_422_missing_required_field.json")
            )
        problem = self._invalid(payload)
        if problem is not None:
            return 422, _body(422, "validation_error", problem)
        return 200, {"id": self._deliver(payload, key)}

    def _send_batch(self, payload: Any, permissive: bool, key: str | None) -> tuple[int, Any]:
        if not isinstance(payload, list) or not payload:
            return 422, _body(422, "validation_error", "The body must be a non-empty array.")
        if len(payload) > MAX_BATCH:
            return 422, _body(
                422, "validation_error", f"Too many emails: at most {MAX_BATCH} per batch."
            )
        problems = {i: p for i, email in enumerate(payload) if (p := self._invalid(email))}
        if problems and not permissive:
            index, problem = min(problems.items())
            return 422, _body(422, "validation_error", f"emails[{index}]: {problem}")
        data = [
            {"id": self._deliver(email, key)}
            for i, email in enumerate(payload)
            if i not in problems
        ]
        answer: dict[str, Any] = {"data": data}
        if permissive:
            answer["errors"] = [{"index": i, "message": p} for i, p in sorted(problems.items())]
        return 200, answer

    # ---- control --------------------------------------------------------------------------

    def control(self, action: str, request: Request) -> Reply | None:
        if action == "forget-keys" and request.method == "POST":
            self.forget_keys()
            return Reply.json({"ok": True})
        if action == "configure" and request.method == "POST":
            body = request.json() or {}
            with self._lock:
                if "rate_limit" in body:
                    self.rate_limit = body["rate_limit"]
                if "reject" in body:
                    self.rejected_recipients = set(body["reject"])
            return Reply.json({"ok": True})
        return None

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._lock:
            stats["by_idempotency_key"] = dict(self.by_key)
            stats["by_recipient"] = dict(self.by_recipient)
            stats["deliveries"] = len(self.delivered)
            stats["delivered"] = list(self.delivered)
            stats["rate_limited"] = self.rate_limited
            stats["max_per_second"] = self.max_per_second
        return stats

    @staticmethod
    def _error(status: int, name: str, message: str) -> Reply:
        return Reply.json(_body(status, name, message), status)


def _body(status: int, name: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "name": name, "message": message}
