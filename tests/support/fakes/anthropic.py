"""A fake Anthropic Messages API (POST …/v1/messages), built on recorded replies.

Replies reuse the recorded envelopes in fixtures/anthropic/ (ids, usage with cache fields,
service_tier) with the content the test asks for. Any path prefix is accepted before
`/v1/messages`, so a Cloudflare AI Gateway URL (`<gateway>/anthropic/v1/messages`) works.

Default answer: a forced tool call gets a `tool_use` block whose input is synthesised
from the tool's JSON schema; otherwise a text reply (`default_text`). Script keys:
  {"tool_input": {...}}                 a tool_use reply for the requested tool
  {"text": "..."}                       a text reply
  {"fixture": "anthropic/x.json"}       a recorded body verbatim (with "status")
  {"status": 429, "fixture": "anthropic/error_429_rate_limit_error.json",
   "headers": {"retry-after": "2"}}     an error with headers
  {"stop_reason": "max_tokens"}         combined with text/tool_input

Usage is computed from the request as the real API reports it (about 4 characters a
token): prompt caching is honoured — each block with `cache_control` ends a cacheable
prefix (tools, then system, then messages, per model); a prefix of at least
`min_cache_tokens` seen within its TTL is read (`cache_read_input_tokens`), a new one is
written (`cache_creation_input_tokens`), and `input_tokens` is the rest. Every reply
carries `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` headers from a
per-minute window (`POST /__fake__/rate-limits {"requests": n, "tokens": n}` sets the
limits) and a `request-id`. `GET /__fake__/usage` sums what was reported.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

from tests.support.fakes.base import FakeApp, Reply, Request

DEFAULT_TEXT = (
    "# Jordan Example\n\njordan@example.com\n\n## Summary\n\n"
    "A placeholder resume written by the fake Anthropic server.\n\n## Skills\n\n- Python\n"
)


def example_from_schema(schema: dict[str, Any]) -> Any:
    """A small value that satisfies `schema` (objects, arrays, strings, numbers, anyOf)."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            if option.get("type") != "null":
                return example_from_schema(option)
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_from_schema(sub) for name, sub in props.items()}
    if kind == "array":
        return [example_from_schema(schema.get("items", {"type": "string"}))]
    if kind == "string":
        return schema.get("enum", ["example"])[0]
    if kind == "integer":
        return 3
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return False
    return None


class AnthropicFake(FakeApp):
    name = "anthropic"

    def __init__(self, fixtures_dir: Any) -> None:
        super().__init__(fixtures_dir)
        self.default_text = DEFAULT_TEXT
        self._ids = itertools.count(1)
        self._tool_template = json.loads(self.fixture_bytes("anthropic/messages_200_tool_use.json"))
        self._text_template = json.loads(
            self.fixture_bytes("anthropic/messages_200_text_end_turn.json")
        )
        self.min_cache_tokens = 1024
        self._usage_lock = threading.Lock()
        self.reset_state()

    def reset_state(self) -> None:
        with self._usage_lock:
            self._cache: dict[str, float] = {}  # prefix digest → expiry
            self.totals: dict[str, int] = {}
            self.limits = {"requests": 4000, "tokens": 2_000_000}
            self._window = (0.0, {"requests": 0, "tokens": 0})

    async def handle(self, request: Request) -> Reply:
        if request.method != "POST" or not request.path.endswith("/v1/messages"):
            return self._error(404, "not_found_error", f"Not found: {request.path}")
        if denied := self._check(request):
            return denied
        body = request.json()
        tool = self._forced_tool(body)
        if tool is not None:
            reply = self._tool_reply(
                body, tool["name"], example_from_schema(tool.get("input_schema", {}))
            )
        else:
            reply = self._text_reply(body, self.default_text)
        return Reply.json(reply, 200, self._account(body, reply))

    def render(self, script: dict[str, Any], request: Request) -> Reply:
        if "tool_input" in script or "text" in script:
            if denied := self._check(request):
                return denied
            body = request.json()
            if "tool_input" in script:
                tool = self._forced_tool(body) or {"name": script.get("tool_name", "tool")}
                reply = self._tool_reply(body, tool["name"], script["tool_input"])
            else:
                reply = self._text_reply(body, script["text"])
            if "stop_reason" in script:
                reply["stop_reason"] = script["stop_reason"]
            headers = self._account(body, reply)
            if "usage" in script:
                reply["usage"].update(script["usage"])
            headers.update(script.get("headers") or {})
            answer = Reply.json(reply, int(script.get("status", 200)), headers)
            answer.delay = float(script.get("delay", 0.0))
            return answer
        return super().render(script, request)

    def control(self, action: str, request: Request) -> Reply | None:
        if action == "default-text" and request.method == "POST":
            self.default_text = request.body.decode()
            return Reply.json({"ok": True})
        if action == "rate-limits" and request.method == "POST":
            with self._usage_lock:
                self.limits.update({k: int(v) for k, v in request.json().items()})
            return Reply.json({"ok": True})
        if action == "usage":
            with self._usage_lock:
                return Reply.json(dict(self.totals))
        return None

    # ---- usage, prompt caching, rate-limit headers --------------------------------------------

    @staticmethod
    def tokens_of(value: Any) -> int:
        """About 4 characters a token, as English text runs (cache_control not counted)."""
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "cache_control"}
        return math.ceil(len(json.dumps(value, sort_keys=True, ensure_ascii=False)) / 4)

    def _prompt_blocks(self, body: dict[str, Any]) -> list[Any]:
        """The prompt in cache order: tools, system, then each message's content blocks."""
        blocks: list[Any] = list(body.get("tools") or [])
        system = body.get("system")
        if isinstance(system, str):
            blocks.append({"type": "text", "text": system})
        elif isinstance(system, list):
            blocks.extend(system)
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                blocks.append({"type": "text", "text": content, "role": message.get("role")})
            else:
                blocks.extend(
                    {**block, "role": message.get("role")} if isinstance(block, dict) else block
                    for block in content or []
                )
        return blocks

    def _account(self, body: dict[str, Any], reply: dict[str, Any]) -> dict[str, str]:
        """Fill the reply's usage from the request; the rate-limit headers to send."""
        blocks = self._prompt_blocks(body)
        digest = hashlib.sha256(str(body.get("model")).encode())
        total = 0
        breakpoints: list[tuple[str, int, float]] = []
        for block in blocks:
            digest.update(json.dumps(_without_cache_control(block), sort_keys=True).encode())
            total += self.tokens_of(block)
            control = block.get("cache_control") if isinstance(block, dict) else None
            if control and control.get("type") == "ephemeral":
                ttl = 3600.0 if control.get("ttl") == "1h" else 300.0
                breakpoints.append((digest.copy().hexdigest(), total, ttl))
        output = sum(
            self.tokens_of(b.get("text") or b.get("input") or "") for b in reply["content"]
        )
        now = time.time()
        read = written = 0
        with self._usage_lock:
            cacheable = [b for b in breakpoints if b[1] >= self.min_cache_tokens]
            for key, size, _ in cacheable:
                if self._cache.get(key, 0.0) > now:
                    read = max(read, size)
            for key, size, ttl in cacheable:
                if size > read:
                    written = max(written, size - read)
                # A read refreshes the entry's lifetime, as the real cache does.
                self._cache[key] = now + ttl
            usage = reply.setdefault("usage", {})
            usage.update(
                {
                    "input_tokens": total - read - written,
                    "output_tokens": max(1, output),
                    "cache_read_input_tokens": read,
                    "cache_creation_input_tokens": written,
                }
            )
            if isinstance(usage.get("cache_creation"), dict):
                usage["cache_creation"] = {
                    "ephemeral_1h_input_tokens": 0,
                    "ephemeral_5m_input_tokens": written,
                }
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            ):
                self.totals[name] = self.totals.get(name, 0) + int(usage[name])
            self.totals["requests"] = self.totals.get("requests", 0) + 1
            start, used = self._window
            if now - start >= 60:
                start, used = now - (now % 60), {"requests": 0, "tokens": 0}
            used["requests"] += 1
            used["tokens"] += total + int(usage["output_tokens"])
            self._window = (start, used)
            reset = datetime.fromtimestamp(start + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            headers = {"request-id": f"req_fake{next(self._ids):06d}"}
            for kind in ("requests", "tokens"):
                limit = self.limits[kind]
                headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
                headers[f"anthropic-ratelimit-{kind}-remaining"] = str(max(0, limit - used[kind]))
                headers[f"anthropic-ratelimit-{kind}-reset"] = reset
        return headers

    # ---- wire format ----------------------------------------------------------------------------

    def _check(self, request: Request) -> Reply | None:
        if not request.headers.get("x-api-key") and not request.headers.get("authorization"):
            return self._error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version header is required")
        return None

    @staticmethod
    def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
        choice = body.get("tool_choice") or {}
        tools = body.get("tools") or []
        if choice.get("type") == "tool":
            return next((t for t in tools if t.get("name") == choice.get("name")), None)
        if choice.get("type") == "any" and tools:
            return tools[0]
        return None

    def _envelope(self, template: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        reply = copy.deepcopy(template)
        reply["id"] = f"msg_fake{next(self._ids):06d}"
        reply["model"] = body.get("model", reply["model"])
        return reply

    def _tool_reply(self, body: dict[str, Any], name: str, tool_input: Any) -> dict[str, Any]:
        reply = self._envelope(self._tool_template, body)
        reply["content"] = [
            {
                "id": f"toolu_fake{next(self._ids):06d}",
                "input": tool_input,
                "name": name,
                "type": "tool_use",
            }
        ]
        reply["stop_reason"] = "tool_use"
        return reply

    def _text_reply(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        reply = self._envelope(self._text_template, body)
        reply["content"] = [{"text": text, "type": "text"}]
        reply["stop_reason"] = "end_turn"
        return reply

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Reply:
        return Reply.json(
            {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": "req_fake",
            },
            status,
            {"request-id": "req_fake"},
        )


def _without_cache_control(block: Any) -> Any:
    if isinstance(block, dict):
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block
