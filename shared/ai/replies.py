"""Getting the asked-for JSON out of a Claude reply, whatever wrapping it came in.

Claude is asked to answer through a forced tool call, so the normal case is a `tool_use`
block whose `input` is the object. Gateways, older models and odd days give text instead:
JSON in a ``` fence, JSON after a sentence of chatter, JSON followed by a remark. All of
those are accepted; anything else is a MalformedReplyError (retryable) that quotes the
first characters of what came back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from shared.errors import UpstreamError

__all__ = ["MalformedReplyError", "decode_reply", "find_json_object", "strip_fences"]

T = TypeVar("T", bound=msgspec.Struct)

SNIPPET = 120
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


class MalformedReplyError(UpstreamError):
    """The model's reply is not the shape we asked for (worth another try)."""


def strip_fences(text: str) -> str:
    """The body of the first fenced block if the text has one, else the text itself."""
    match = _FENCE.search(text)
    return match.group(2) if match else text


def find_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (fenced or surrounded by prose), or None."""
    candidates = [strip_fences(text), text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        stripped = candidate.strip()
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        for match in re.finditer(r"\{", candidate):
            try:
                value, _ = decoder.raw_decode(candidate, match.start())
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def decode_reply(
    blocks: Iterable[Mapping[str, Any]], tool_name: str, struct: type[T], *, what: str
) -> T:
    """`struct` from a reply's content blocks (plain dicts), preferring the named tool call."""
    blocks = list(blocks)
    candidates: list[Any] = []
    for block in blocks:
        if block.get("type") == "tool_use" and block.get("name") == tool_name:
            candidates.append(block.get("input"))
    for block in blocks:
        if block.get("type") == "tool_use" and block.get("name") != tool_name:
            candidates.append(block.get("input"))
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    if text.strip():
        candidates.append(find_json_object(text))

    fields = {f.encode_name for f in msgspec.structs.fields(struct)}
    for candidate in candidates:
        obj = _unwrap(candidate, fields)
        if obj is None:
            continue
        try:
            return msgspec.convert(obj, struct, strict=False)
        except msgspec.ValidationError:
            continue
    raise MalformedReplyError(
        f"{what}: the reply is not the JSON asked for; it starts with {_snippet(blocks, text)!r}"
    )


def _unwrap(candidate: Any, fields: set[str]) -> dict[str, Any] | None:
    """The object itself, or the one object it wraps (`{"resume": {...}}`); None if neither."""
    if isinstance(candidate, str):
        candidate = find_json_object(candidate)
    if not isinstance(candidate, dict):
        return None
    if fields & candidate.keys():
        return candidate
    if len(candidate) == 1:
        inner = next(iter(candidate.values()))
        if isinstance(inner, str):
            inner = find_json_object(inner)
        if isinstance(inner, dict) and fields & inner.keys():
            return inner
    return None


def _snippet(blocks: list[Mapping[str, Any]], text: str) -> str:
    if text.strip():
        source = text
    else:
        tool_inputs = [b.get("input") for b in blocks if b.get("type") == "tool_use"]
        source = (
            json.dumps(tool_inputs[0])
            if tool_inputs
            else json.dumps([b.get("type") for b in blocks])
        )
    source = " ".join(source.split())
    return source[:SNIPPET] + ("…" if len(source) > SNIPPET else "")
