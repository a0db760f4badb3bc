"""Parsing of Claude Code stream-json lines into typed events, and outcomes decided by the stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightshift.agents.claude import ClaudeStreamParser, raise_for_outcome
from nightshift.agents.claude_events import (
    ApiRetryEvent,
    AssistantEvent,
    InitEvent,
    ResultEvent,
    SystemEvent,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UnknownEvent,
    UserEvent,
    parse_event,
)
from nightshift.errors import (
    AgentCancelledError,
    AgentFailedError,
    RateLimitedError,
    StreamParseError,
    TransientAgentError,
    is_retryable,
)
from nightshift.process import ProcessResult

INIT = {
    "type": "system", "subtype": "init", "cwd": "/repo", "session_id": "s-1",
    "tools": ["Bash", "Read", "Write"], "model": "claude-haiku-4-5", "permissionMode": "default",
    "claude_code_version": "2.1.330", "mcp_servers": [], "uuid": "u1",
}  # fmt: skip
ASSISTANT = {
    "type": "assistant", "session_id": "s-1", "parent_tool_use_id": None,
    "message": {"id": "m1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                "content": [{"type": "thinking", "thinking": "hmm", "signature": "x"},
                            {"type": "text", "text": "Writing it."},
                            {"type": "tool_use", "id": "tu1", "name": "Write",
                             "input": {"file_path": "/repo/a.txt", "content": "hi"}}],
                "stop_reason": "tool_use", "usage": {"input_tokens": 3}},
}  # fmt: skip
USER = {
    "type": "user", "session_id": "s-1",
    "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1",
                                               "content": "File created", "is_error": False}]},
    "tool_use_result": {"type": "create"},
}  # fmt: skip
RESULT = {
    "type": "result", "subtype": "success", "is_error": False, "duration_ms": 1200, "num_turns": 2,
    "result": "Done.", "session_id": "s-1", "total_cost_usd": 0.0012, "terminal_reason": "completed",
    "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0,
              "cache_creation_input_tokens": 0, "server_tool_use": {}},
    "permission_denials": [{"tool_name": "Bash", "tool_use_id": "t9", "tool_input": {"command": "ls"}}],
    "structured_output": {"ok": True}, "modelUsage": {}, "new_vendor_field": 1,
}  # fmt: skip


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def test_each_event_kind() -> None:
    init = parse_event(line(INIT))
    assert isinstance(init, InitEvent)
    assert init.claude_code_version == "2.1.330"
    assert init.tools == ["Bash", "Read", "Write"]

    assistant = parse_event(line(ASSISTANT))
    assert isinstance(assistant, AssistantEvent)
    kinds = [type(b) for b in assistant.message.blocks]
    assert kinds == [ThinkingBlock, TextBlock, ToolUseBlock]
    tool = assistant.message.blocks[2]
    assert isinstance(tool, ToolUseBlock)
    assert tool.input["file_path"] == "/repo/a.txt"

    user = parse_event(line(USER))
    assert isinstance(user, UserEvent)
    block = user.message.blocks[0]
    assert isinstance(block, ToolResultBlock)
    assert block.text == "File created"

    result = parse_event(line(RESULT))
    assert isinstance(result, ResultEvent)
    assert result.is_error is False
    assert result.usage.output_tokens == 5
    assert result.permission_denials[0].tool_name == "Bash"
    assert result.model_extra == {"new_vendor_field": 1}

    retry = parse_event(line({"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": 529}))
    assert isinstance(retry, ApiRetryEvent)
    assert retry.error_status == 529
    other = parse_event(line({"type": "system", "subtype": "compact_boundary"}))
    assert isinstance(other, SystemEvent)


def test_unknown_blocks_and_events_are_kept() -> None:
    odd = dict(ASSISTANT, message={"role": "assistant", "content": [{"type": "server_tool_use", "id": "x"}]})
    event = parse_event(line(odd))
    assert isinstance(event, AssistantEvent)
    assert event.message.blocks[0].type == "server_tool_use"
    unknown = parse_event(line({"type": "rate_limit_event", "info": {"x": 1}}))
    assert isinstance(unknown, UnknownEvent)
    assert unknown.model_extra == {"info": {"x": 1}}


def test_stray_and_blank_lines_are_skipped() -> None:
    assert parse_event(b"\n") is None
    assert parse_event(b"Warning: something printed to stdout\n") is None


def test_corrupt_json_line_is_an_error_with_the_line() -> None:
    with pytest.raises(StreamParseError) as info:
        parse_event(b'{"type": "assistant", "message": {\n')
    assert info.value.line.startswith('{"type": "assistant"')


def test_a_several_megabyte_tool_result_parses() -> None:
    big = dict(USER, message={"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": "x" * (8 * 1024 * 1024)}]})  # fmt: skip
    event = parse_event(line(big))
    assert isinstance(event, UserEvent)
    block = event.message.blocks[0]
    assert isinstance(block, ToolResultBlock)
    assert len(block.text) == 8 * 1024 * 1024


def _outcome(*objs: object, stop: str = "exited", code: int | None = 0):  # type: ignore[no-untyped-def]
    parser = ClaudeStreamParser()
    for obj in objs:
        parser.feed(line(obj))
    process = ProcessResult(pid=1, returncode=code, stop_reason=stop, duration_s=1.0, stderr_tail="")  # type: ignore[arg-type]
    return parser.outcome(process, home=Path("/h"), cwd=Path("/repo"))


def test_outcome_from_a_successful_stream() -> None:
    outcome = _outcome(INIT, ASSISTANT, USER, RESULT, {"type": "mystery"})
    assert outcome.status == "success"
    assert outcome.final_text == "Done."
    assert outcome.structured_output == {"ok": True}
    assert outcome.cli_version == "2.1.330"
    assert outcome.session_id == "s-1"
    assert outcome.num_turns == 2
    assert outcome.usage.total_tokens == 15
    assert outcome.permission_denials[0].tool_input == {"command": "ls"}
    assert outcome.unknown_events == 1
    assert len(outcome.events) == 5
    raise_for_outcome(outcome)


def test_no_result_means_crashed_or_cancelled_whatever_the_exit_code() -> None:
    crashed = _outcome(INIT, ASSISTANT, code=0)
    assert crashed.status == "crashed"
    with pytest.raises(TransientAgentError) as info:
        raise_for_outcome(crashed)
    assert is_retryable(info.value)
    cancelled = _outcome(INIT, stop="cancelled", code=0)
    assert cancelled.status == "cancelled"
    with pytest.raises(AgentCancelledError):
        raise_for_outcome(cancelled)


def test_is_error_decides_even_when_subtype_says_success() -> None:
    bad = dict(RESULT, is_error=True, api_error_status=400, result="API Error: 400 invalid request")
    outcome = _outcome(INIT, bad, code=1)
    assert outcome.status == "error"
    with pytest.raises(AgentFailedError) as info:
        raise_for_outcome(outcome)
    assert not is_retryable(info.value)
    assert info.value.api_error_status == 400


def test_rate_limits_and_overload_are_transient() -> None:
    limited = dict(RESULT, is_error=True, api_error_status=429, result="API Error: 429 usage limit reached")
    with pytest.raises(RateLimitedError):
        raise_for_outcome(_outcome(limited))
    overloaded = dict(RESULT, is_error=True, api_error_status=529, result="Overloaded")
    with pytest.raises(TransientAgentError) as info:
        raise_for_outcome(_outcome(overloaded))
    assert not isinstance(info.value, RateLimitedError)
