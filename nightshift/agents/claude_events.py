"""Typed events of Claude Code's `--output-format stream-json --verbose` stream.

The vendor owns these shapes, so every model keeps unknown fields (`extra="allow"`) and only the
fields nightshift reads are declared. Event kinds:

    system/init        session id, cwd, tools, model, permission mode, CLI version
    system/api_retry   the CLI retrying a failed API call (attempt, delay, HTTP status)
    system/<other>     kept as SystemEvent
    assistant          one message with text / tool_use / thinking blocks (`error` set on API errors)
    user               tool_result blocks coming back to the model
    result             the run's verdict: subtype, is_error, usage, cost, denials, structured output
    <anything else>    UnknownEvent: kept and counted, never fatal

A line that does not start with ``{`` is stray output and is skipped; a line that starts with ``{`` but
is not valid JSON raises `StreamParseError` with the line attached.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from nightshift.agents.base import StreamEvent, Usage
from nightshift.errors import StreamParseError


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Vendor):
    type: Literal["text"] = "text"
    text: str = ""


class ToolUseBlock(_Vendor):
    type: Literal["tool_use"] = "tool_use"
    id: str = ""
    name: str = ""
    input: dict[str, Any] = Field(default_factory=dict)


class ThinkingBlock(_Vendor):
    type: Literal["thinking"] = "thinking"
    thinking: str = ""


class ToolResultBlock(_Vendor):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str = ""
    content: str | list[dict[str, Any]] | None = None
    is_error: bool | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(str(part.get("text", "")) for part in self.content if isinstance(part, dict))


class OtherBlock(_Vendor):
    type: str = "unknown"


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in {"text", "tool_use", "thinking", "tool_result"} else "other"


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[OtherBlock, Tag("other")],
    Discriminator(_block_tag),
]


class Message(_Vendor):
    role: str = ""
    model: str | None = None
    content: str | list[ContentBlock] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None

    @property
    def blocks(self) -> list[ContentBlock]:
        if isinstance(self.content, str):
            return [TextBlock(text=self.content)]
        return self.content


class ClaudeEvent(StreamEvent):
    type: str
    session_id: str | None = None
    uuid: str | None = None


class InitEvent(ClaudeEvent):
    type: Literal["system"] = "system"
    subtype: Literal["init"] = "init"
    cwd: str | None = None
    tools: list[str] = Field(default_factory=list)
    model: str | None = None
    permissionMode: str | None = None
    claude_code_version: str | None = None


class ApiRetryEvent(ClaudeEvent):
    type: Literal["system"] = "system"
    subtype: Literal["api_retry"] = "api_retry"
    attempt: int | None = None
    max_retries: int | None = None
    retry_delay_ms: float | None = None
    error_status: int | None = None
    error: Any = None


class SystemEvent(ClaudeEvent):
    type: Literal["system"] = "system"
    subtype: str = ""


class AssistantEvent(ClaudeEvent):
    type: Literal["assistant"] = "assistant"
    message: Message = Field(default_factory=Message)
    parent_tool_use_id: str | None = None
    error: str | None = None


class UserEvent(ClaudeEvent):
    type: Literal["user"] = "user"
    message: Message = Field(default_factory=Message)
    parent_tool_use_id: str | None = None
    tool_use_result: Any = None


class PermissionDenial(_Vendor):
    tool_name: str = ""
    tool_use_id: str = ""
    tool_input: dict[str, Any] = Field(default_factory=dict)


class ResultEvent(ClaudeEvent):
    type: Literal["result"] = "result"
    subtype: str = ""
    is_error: bool
    api_error_status: int | None = None
    duration_ms: float | None = None
    duration_api_ms: float | None = None
    num_turns: int | None = None
    result: str | None = None
    stop_reason: str | None = None
    total_cost_usd: float | None = None
    usage: Usage = Field(default_factory=Usage)
    modelUsage: dict[str, Any] | None = None
    permission_denials: list[PermissionDenial] = Field(default_factory=list)
    terminal_reason: str | None = None
    errors: list[Any] = Field(default_factory=list)
    structured_output: Any = None


class UnknownEvent(ClaudeEvent):
    """An event type this version of nightshift does not know: kept whole, counted, never fatal."""


def _event_tag(value: Any) -> str:
    kind = value.get("type")
    if kind == "system":
        subtype = value.get("subtype")
        return subtype if subtype in {"init", "api_retry"} else "system"
    return kind if kind in {"assistant", "user", "result"} else "unknown"


_EVENT = TypeAdapter[ClaudeEvent](
    Annotated[
        Annotated[InitEvent, Tag("init")]
        | Annotated[ApiRetryEvent, Tag("api_retry")]
        | Annotated[SystemEvent, Tag("system")]
        | Annotated[AssistantEvent, Tag("assistant")]
        | Annotated[UserEvent, Tag("user")]
        | Annotated[ResultEvent, Tag("result")]
        | Annotated[UnknownEvent, Tag("unknown")],
        Discriminator(_event_tag),
    ]
)


def parse_event(line: bytes | str) -> ClaudeEvent | None:
    """One stream-json line → its event; None for blank or non-JSON stray lines."""
    stripped = line.strip()
    if not stripped or stripped[:1] not in (b"{", "{"):
        return None
    text = stripped.decode("utf-8", "replace") if isinstance(stripped, bytes) else stripped
    try:
        data = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        raise StreamParseError(f"corrupt stream-json line: {exc}", line=text) from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise StreamParseError("stream-json line is not an event object with a 'type'", line=text)
    try:
        return _EVENT.validate_python(data)
    except ValidationError as exc:
        raise StreamParseError(f"stream-json event does not match its type: {exc}", line=text) from exc
