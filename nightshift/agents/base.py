"""The agent adapter interface: one adapter per CLI, one request and one outcome shape for all.

    AgentRequest ──adapter.build_argv/build_env/stdin──▶ process.stream_process
         stdout lines ──adapter parser.feed──▶ typed events ──parser.outcome──▶ AgentOutcome

Callers (the runner, flows) only see `AgentRequest` and `AgentOutcome`; what a CLI's flags and events
look like is known by its adapter module alone (`claude.py` now; Gemini, Codex and Droid later).
The prompt always travels on stdin, secrets only in the environment.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializeAsAny,
    field_validator,
    model_validator,
)

from nightshift.process import ProcessResult

ModelAlias = Literal["sonnet", "opus", "haiku"]
PermissionMode = Literal["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"]
OutcomeStatus = Literal["success", "error", "crashed", "cancelled", "timeout"]

SECRET_ENV_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")


def is_secret_env_name(name: str) -> bool:
    """The one rule for environment variables that must be treated as secrets (kept out of argv/logs)."""
    upper = name.upper()
    return any(word in upper for word in SECRET_ENV_WORDS)


class StreamEvent(BaseModel):
    """Base of every CLI's stream events (vendor-owned: unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")

    type: str


class Usage(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


class AgentRequest(BaseModel):
    """Everything one headless agent run needs; the same for every CLI."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="sent on stdin, never in argv")
    cwd: Path = Field(description="working directory of the agent (resume needs the same one)")
    model: ModelAlias = Field(default="sonnet", description="model alias, never a dated model id")
    max_turns: int | None = Field(default=None, ge=1)
    permission_mode: PermissionMode = "default"
    tools: list[str] | None = Field(default=None, description="the only built-in tools available")
    allowed_tools: list[str] = Field(default_factory=list, description="tools allowed without asking")
    disallowed_tools: list[str] = Field(default_factory=list)
    append_system_prompt: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, description="structured output schema")
    session_id: uuid.UUID | None = Field(default=None, description="id for a new session")
    resume_id: str | None = Field(default=None, description="session to resume (same cwd and home)")
    max_budget_usd: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=1800.0, gt=0)
    timeout_setting: str = Field(
        default="AgentRequest.timeout_s", description="where a person changes the time limit (named in timeouts)"
    )
    extra_env: dict[str, str] = Field(default_factory=dict, description="non-secret environment")
    secret_env: dict[str, SecretStr] = Field(default_factory=dict, description="secret environment")
    home: Path | None = Field(default=None, description="HOME of the CLI; a fresh one when unset")

    @field_validator("extra_env")
    @classmethod
    def _no_secrets_in_plain_env(cls, env: dict[str, str]) -> dict[str, str]:
        leaked = sorted(k for k in env if is_secret_env_name(k))
        if leaked:
            raise ValueError(f"pass {', '.join(leaked)} through secret_env, not extra_env")
        return env

    @model_validator(mode="after")
    def _one_session_source(self) -> AgentRequest:
        if self.session_id is not None and self.resume_id is not None:
            raise ValueError("session_id starts a new session; resume_id continues one: give only one")
        return self


class Denial(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool_name: str
    tool_input: dict[str, Any] = Field(default_factory=dict)


class AgentOutcome(BaseModel):
    """What one agent run produced, decided from its own stream."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    status: OutcomeStatus
    is_error: bool
    subtype: str | None = None
    final_text: str = ""
    structured_output: Any = None
    session_id: str | None = None
    home: Path
    cwd: Path
    model: str | None = None
    cli_version: str | None = None
    num_turns: int | None = None
    usage: Usage = Field(default_factory=Usage)
    total_cost_usd: float | None = Field(default=None, description="as the CLI reports it (a session total)")
    run_cost_usd: float | None = Field(default=None, description="this run's own cost (set by the runner)")
    duration_s: float
    api_error_status: int | None = None
    api_retries: int = 0
    last_retry_status: int | None = Field(default=None, description="HTTP status of the CLI's last API retry")
    stopped_by: str | None = Field(default=None, description="what stopped the process: time limit, cancel, signal")
    terminal_reason: str | None = None
    errors: list[str] = Field(default_factory=list)
    permission_denials: list[Denial] = Field(default_factory=list)
    exit_code: int | None = None
    stderr_tail: str = ""
    unknown_events: int = 0
    events: list[SerializeAsAny[StreamEvent]] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "success"


class TranscriptEntry(BaseModel):
    """One step of a conversation, CLI-neutral, for people to read."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "assistant", "user", "tool", "result"]
    kind: str = Field(description="text, tool_use, tool_result, thinking, init, result, error")
    text: str


class StreamParser(Protocol):
    """Stateful reader of one run's stdout."""

    def feed(self, line: bytes) -> StreamEvent | None: ...

    def outcome(self, process: ProcessResult, *, home: Path, cwd: Path) -> AgentOutcome: ...


class AgentAdapter(Protocol):
    """Knows one CLI: its binary, flags, environment and events."""

    name: str

    def binary(self) -> Path:
        """The CLI executable; raises AgentNotFoundError when it is not installed."""
        ...

    def build_argv(self, request: AgentRequest, binary: Path) -> list[str]: ...

    def build_env(self, request: AgentRequest, home: Path) -> dict[str, str]: ...

    def stdin_payload(self, request: AgentRequest) -> bytes: ...

    def new_parser(self) -> StreamParser: ...

    def raise_for_outcome(self, outcome: AgentOutcome) -> None:
        """Raise the matching error of `nightshift.errors` unless the outcome is a success."""
        ...

    def transcript(self, outcome: AgentOutcome) -> list[TranscriptEntry]:
        """The run's conversation as CLI-neutral entries."""
        ...
