"""Robust JSON out of model replies: tool calls, fences, chatter, wrappers, and refusals."""

from __future__ import annotations

import pytest

from shared.ai import MalformedReplyError, RequirementsAnalysis
from shared.ai.replies import decode_reply, find_json_object


async def test_find_json_in_fences_and_chatter() -> None:
    """A JSON object is found bare, fenced, or between sentences."""
    assert find_json_object('{"a": 1}') == {"a": 1}
    assert find_json_object('Here:\n```json\n{"a": 1}\n```\nDone.') == {"a": 1}
    assert find_json_object('Sure. {"a": {"b": [1, 2]}} Anything else?') == {"a": {"b": [1, 2]}}
    assert find_json_object("no json { here") is None


async def test_decode_prefers_the_named_tool() -> None:
    """The named tool's input wins over text and other tools."""
    blocks = [
        {"type": "thinking", "thinking": "..."},
        {"type": "text", "text": '{"requiredSkills": ["Wrong"]}'},
        {"type": "tool_use", "name": "other", "input": {"requiredSkills": ["Other"]}},
        {
            "type": "tool_use",
            "name": "record",
            "input": {"requiredSkills": ["Go"], "experienceYears": "4"},
        },
    ]
    analysis = decode_reply(blocks, "record", RequirementsAnalysis, what="t")
    assert analysis.required_skills == ["Go"] and analysis.experience_years == 4


async def test_decode_unwraps_one_level() -> None:
    """`{"analysis": {...}}` and a JSON string inside the tool input are unwrapped."""
    wrapped = [
        {"type": "tool_use", "name": "record", "input": {"analysis": {"requiredSkills": ["Go"]}}}
    ]
    as_string = [
        {"type": "tool_use", "name": "record", "input": {"json": '{"requiredSkills": ["Rust"]}'}}
    ]
    assert decode_reply(wrapped, "record", RequirementsAnalysis, what="t").required_skills == ["Go"]
    assert decode_reply(as_string, "record", RequirementsAnalysis, what="t").required_skills == [
        "Rust"
    ]


async def test_wrong_shapes_are_malformed_with_a_snippet() -> None:
    """Wrong types, unknown keys only, or prose raise MalformedReplyError quoting the start."""
    for blocks in (
        [{"type": "tool_use", "name": "record", "input": {"requiredSkills": "Python"}}],
        [{"type": "tool_use", "name": "record", "input": {"unrelated": 1}}],
        [{"type": "text", "text": "I am unable to help with that request. " * 10}],
    ):
        with pytest.raises(MalformedReplyError) as caught:
            decode_reply(blocks, "record", RequirementsAnalysis, what="analyze")
        assert "analyze" in str(caught.value) and "starts with" in str(caught.value)
        assert len(str(caught.value)) < 300
