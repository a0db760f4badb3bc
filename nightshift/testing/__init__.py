"""Test doubles. The only fake nightshift allows is the model provider's HTTP API."""

from nightshift.testing.fake_anthropic import (
    FakeAnthropic,
    Hang,
    HttpError,
    MalformedSSE,
    ParallelToolUse,
    RecordedRequest,
    Responder,
    StructuredOutput,
    Text,
    ToolCall,
    ToolUse,
    Turn,
    load_script,
)

__all__ = [
    "FakeAnthropic",
    "Hang",
    "HttpError",
    "MalformedSSE",
    "ParallelToolUse",
    "RecordedRequest",
    "Responder",
    "StructuredOutput",
    "Text",
    "ToolCall",
    "ToolUse",
    "Turn",
    "load_script",
]
