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
"""

from __future__ import annotations

import copy
import itertools
import json
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

    async def handle(self, request: Request) -> Reply:
        if request.method != "POST" or not request.path.endswith("/v1/messages"):
            return self._error(404, "not_found_error", f"Not found: {request.path}")
        if denied := self._check(request):
            return denied
        body = request.json()
        tool = self._forced_tool(body)
        if tool is not None:
            return Reply.json(
                self._tool_reply(
                    body, tool["name"], example_from_schema(tool.get("input_schema", {}))
                )
            )
        return Reply.json(self._text_reply(body, self.default_text))

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
            if "usage" in script:
                reply["usage"].update(script["usage"])
            answer = Reply.json(reply, int(script.get("status", 200)), script.get("headers"))
            answer.delay = float(script.get("delay", 0.0))
            return answer
        return super().render(script, request)

    def control(self, action: str, request: Request) -> Reply | None:
        if action == "default-text" and request.method == "POST":
            self.default_text = request.body.decode()
            return Reply.json({"ok": True})
        return None

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
