"""Claude Code (`claude`) adapter: the only module that knows its flags, environment and events.

Facts this relies on (checked against the pinned CLI, see tools/package.json):
- `-p` reads the prompt from stdin; `--output-format stream-json` requires `--verbose`.
- Success is decided by the `result` event's `is_error`: an API 400 ends with subtype `success`
  and `is_error: true`; SIGINT exits 0 without any `result`. Exit codes are recorded, never trusted.
- `--json-schema` makes the model call a `StructuredOutput` tool; the value is in
  `result.structured_output`.
- Resume (`--resume <id>`) finds the transcript under `$HOME/.claude/projects/<cwd-slug>/`, so it
  needs the same cwd and HOME as the run that created the session.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nightshift.agents.base import (
    AgentOutcome,
    AgentRequest,
    Denial,
    OutcomeStatus,
    StreamEvent,
    TranscriptEntry,
    Usage,
)
from nightshift.agents.claude_events import (
    ApiRetryEvent,
    AssistantEvent,
    ClaudeEvent,
    InitEvent,
    ResultEvent,
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
    AgentNotFoundError,
    AgentTimeoutError,
    RateLimitedError,
    TransientAgentError,
)
from nightshift.process import ProcessResult

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PLATFORM_BINARY = Path("node_modules/@anthropic-ai/claude-code-linux-x64/claude")
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
RATE_LIMIT_MARKERS = ("usage limit", "rate limit", "rate_limit", "quota")
# Variables of the parent environment a CLI may see; everything else (tokens!) stays behind.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")


class ClaudeSettings(BaseModel):
    """How to reach Claude Code and its model API."""

    model_config = ConfigDict(extra="forbid")

    binary: Path | None = Field(default=None, description="path of the `claude` executable")
    base_url: str | None = Field(default=None, description="ANTHROPIC_BASE_URL; unset = Anthropic's API")
    api_key: SecretStr | None = Field(default=None, description="ANTHROPIC_API_KEY")
    fallback_model: str | None = Field(default=None, description="alias used when the model is overloaded")
    max_api_retries: int | None = Field(
        default=None, ge=0, description="CLAUDE_CODE_MAX_RETRIES: the CLI's own retries of a failed API call"
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ClaudeSettings:
        env = os.environ if environ is None else environ
        key = env.get("ANTHROPIC_API_KEY")
        binary = env.get("NIGHTSHIFT_CLAUDE_BIN")
        retries = env.get("CLAUDE_CODE_MAX_RETRIES")
        return cls(
            binary=Path(binary) if binary else None,
            base_url=env.get("ANTHROPIC_BASE_URL") or None,
            api_key=SecretStr(key) if key else None,
            max_api_retries=int(retries) if retries else None,
        )


def find_claude_binary(configured: Path | None = None) -> Path:
    """The configured binary, else the one `scripts/setup.sh` installed, else `claude` on PATH."""
    candidates: list[Path] = []
    if configured is not None:
        candidates.append(configured)
    else:
        tools = Path(os.environ.get("NIGHTSHIFT_TOOLS_DIR", PROJECT_ROOT / "tools"))
        candidates.append(tools / PLATFORM_BINARY)
        on_path = shutil.which("claude")
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AgentNotFoundError(
        "Claude Code CLI not found (looked at: "
        + ", ".join(str(c) for c in candidates)
        + "); run scripts/setup.sh or set NIGHTSHIFT_CLAUDE_BIN",
        binary=str(candidates[0]) if candidates else "claude",
    )


def build_argv(request: AgentRequest, binary: Path, *, fallback_model: str | None = None) -> list[str]:
    """The exact argv for one run. Pure: the prompt is not in it (stdin), nor any secret (env)."""
    argv = [str(binary), "-p", "--output-format", "stream-json", "--verbose", "--model", request.model]
    argv += ["--permission-mode", request.permission_mode]
    if fallback_model and fallback_model != request.model:
        argv += ["--fallback-model", fallback_model]
    if request.max_turns is not None:
        argv += ["--max-turns", str(request.max_turns)]
    if request.tools is not None:
        argv += ["--tools", ",".join(request.tools)]
    if request.allowed_tools:
        argv += ["--allowedTools", ",".join(request.allowed_tools)]
    if request.disallowed_tools:
        argv += ["--disallowedTools", ",".join(request.disallowed_tools)]
    if request.append_system_prompt:
        argv += ["--append-system-prompt", request.append_system_prompt]
    if request.json_schema is not None:
        argv += ["--json-schema", json.dumps(request.json_schema, separators=(",", ":"), sort_keys=True)]
    if request.session_id is not None:
        argv += ["--session-id", str(request.session_id)]
    if request.resume_id is not None:
        argv += ["--resume", request.resume_id]
    if request.max_budget_usd is not None:
        argv += ["--max-budget-usd", f"{request.max_budget_usd:g}"]
    return argv


def build_env(
    request: AgentRequest, home: Path, settings: ClaudeSettings, parent: dict[str, str] | None = None
) -> dict[str, str]:
    """A minimal environment: a few harmless parent variables, our HOME, the API settings, the request's."""
    source = os.environ if parent is None else parent
    env = {name: source[name] for name in PASSTHROUGH_ENV if name in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env |= {
        "HOME": str(home),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_TELEMETRY": "1",
    }
    if settings.base_url:
        env["ANTHROPIC_BASE_URL"] = settings.base_url
    if settings.api_key is not None:
        env["ANTHROPIC_API_KEY"] = settings.api_key.get_secret_value()
    if settings.max_api_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(settings.max_api_retries)
    env |= request.extra_env
    env |= {name: value.get_secret_value() for name, value in request.secret_env.items()}
    return env


class ClaudeStreamParser:
    """Reads one run's stream-json lines and turns them into an `AgentOutcome`."""

    def __init__(self) -> None:
        self.events: list[ClaudeEvent] = []
        self.init: InitEvent | None = None
        self.result: ResultEvent | None = None
        self.api_retries = 0
        self.last_retry_status: int | None = None
        self.unknown = 0
        self.assistant_errors: list[str] = []

    def feed(self, line: bytes) -> ClaudeEvent | None:
        event = parse_event(line)
        if event is None:
            return None
        self.events.append(event)
        if isinstance(event, InitEvent):
            self.init = event
        elif isinstance(event, ResultEvent):
            self.result = event
        elif isinstance(event, ApiRetryEvent):
            self.api_retries += 1
            self.last_retry_status = event.error_status or self.last_retry_status
        elif isinstance(event, AssistantEvent) and event.error:
            self.assistant_errors.append(event.error)
        elif isinstance(event, UnknownEvent):
            self.unknown += 1
        return event

    def _last_text(self) -> str:
        for event in reversed(self.events):
            if isinstance(event, AssistantEvent):
                texts = [b.text for b in event.message.blocks if isinstance(b, TextBlock) and b.text]
                if texts:
                    return "\n".join(texts)
        return ""

    def outcome(self, process: ProcessResult, *, home: Path, cwd: Path) -> AgentOutcome:
        result = self.result
        status: OutcomeStatus
        if result is not None and not result.is_error:
            status = "success"
        elif process.stop_reason != "exited":
            status = process.stop_reason  # our stop came first; an error result is its consequence
        elif result is not None:
            status = "error"
        else:
            status = "crashed"
        errors = [str(e) for e in result.errors] if result else []
        errors += [f"assistant error: {e}" for e in self.assistant_errors]
        events: list[StreamEvent] = list(self.events)
        return AgentOutcome(
            agent="claude",
            status=status,
            is_error=result.is_error if result else True,
            subtype=result.subtype if result else None,
            final_text=(result.result if result and result.result is not None else self._last_text()),
            structured_output=result.structured_output if result else None,
            session_id=(result.session_id if result else None) or (self.init.session_id if self.init else None),
            home=home,
            cwd=cwd,
            model=self.init.model if self.init else None,
            cli_version=self.init.claude_code_version if self.init else None,
            num_turns=result.num_turns if result else None,
            usage=result.usage if result else Usage(),
            total_cost_usd=result.total_cost_usd if result else None,
            duration_s=process.duration_s,
            api_error_status=result.api_error_status if result else None,
            api_retries=self.api_retries,
            last_retry_status=self.last_retry_status,
            terminal_reason=result.terminal_reason if result else None,
            errors=errors,
            permission_denials=[
                Denial(tool_name=d.tool_name, tool_input=d.tool_input)
                for d in (result.permission_denials if result else [])
            ],
            exit_code=process.returncode,
            stderr_tail=process.stderr_tail,
            unknown_events=self.unknown,
            events=events,
        )


def _mentions_rate_limit(outcome: AgentOutcome) -> bool:
    text = " ".join([outcome.final_text, *outcome.errors]).lower()
    return any(marker in text for marker in RATE_LIMIT_MARKERS)


def _retries_note(outcome: AgentOutcome) -> str:
    if not outcome.api_retries:
        return ""
    status = f", last HTTP {outcome.last_retry_status}" if outcome.last_retry_status else ""
    limited = " (rate limited)" if outcome.last_retry_status == 429 else ""
    return f"; the CLI had retried the model API {outcome.api_retries} time(s){status}{limited}"


def raise_for_outcome(outcome: AgentOutcome) -> None:
    """Map a non-successful outcome onto the error tree (what is retried is decided there)."""
    if outcome.succeeded:
        return
    detail = (outcome.final_text or "; ".join(outcome.errors) or outcome.stderr_tail[-500:]).strip()
    status = outcome.api_error_status or outcome.last_retry_status
    if outcome.status in ("timeout", "cancelled"):
        verb = "timed out" if outcome.status == "timeout" else "cancelled"
        where = f"claude {verb}: stopped by {outcome.stopped_by or 'request'} after {outcome.duration_s:.0f} s"
        message = where + _retries_note(outcome)
        if outcome.status == "cancelled":
            raise AgentCancelledError(message, outcome=outcome)
        if status == 429:
            raise RateLimitedError(message, outcome=outcome)
        raise AgentTimeoutError(message, outcome=outcome)
    where = f"claude {outcome.status}" + (f" (HTTP {status})" if status else "")
    message = (f"{where}: {detail[:500]}" if detail else where) + _retries_note(outcome)
    if outcome.status == "crashed":
        raise TransientAgentError(message, outcome=outcome)
    if status == 429 or _mentions_rate_limit(outcome):
        raise RateLimitedError(message, outcome=outcome)
    if status in TRANSIENT_STATUSES:
        raise TransientAgentError(message, outcome=outcome)
    raise AgentFailedError(message, outcome=outcome)


def transcript(events: list[StreamEvent]) -> list[TranscriptEntry]:
    """Claude's events as a readable conversation (tool inputs as JSON, tool results as text)."""
    entries: list[TranscriptEntry] = []
    for event in events:
        if isinstance(event, InitEvent):
            text = f"session {event.session_id}, model {event.model}, claude {event.claude_code_version}"
            entries.append(TranscriptEntry(role="system", kind="init", text=text))
        elif isinstance(event, AssistantEvent):
            if event.error:
                entries.append(TranscriptEntry(role="assistant", kind="error", text=event.error))
            for block in event.message.blocks:
                if isinstance(block, TextBlock):
                    entries.append(TranscriptEntry(role="assistant", kind="text", text=block.text))
                elif isinstance(block, ToolUseBlock):
                    call = f"{block.name} {json.dumps(block.input, ensure_ascii=False)}"
                    entries.append(TranscriptEntry(role="assistant", kind="tool_use", text=call))
                elif isinstance(block, ThinkingBlock):
                    entries.append(TranscriptEntry(role="assistant", kind="thinking", text=block.thinking))
        elif isinstance(event, UserEvent):
            for block in event.message.blocks:
                if isinstance(block, ToolResultBlock):
                    entries.append(TranscriptEntry(role="tool", kind="tool_result", text=block.text))
                elif isinstance(block, TextBlock):
                    entries.append(TranscriptEntry(role="user", kind="text", text=block.text))
        elif isinstance(event, ResultEvent):
            text = f"{event.subtype} is_error={event.is_error} turns={event.num_turns} cost=${event.total_cost_usd}"
            entries.append(TranscriptEntry(role="result", kind="result", text=text))
    return entries


class ClaudeAdapter:
    """`AgentAdapter` for Claude Code."""

    name = "claude"

    def __init__(self, settings: ClaudeSettings | None = None) -> None:
        self.settings = settings or ClaudeSettings.from_env()

    def binary(self) -> Path:
        return find_claude_binary(self.settings.binary)

    def build_argv(self, request: AgentRequest, binary: Path) -> list[str]:
        return build_argv(request, binary, fallback_model=self.settings.fallback_model)

    def build_env(self, request: AgentRequest, home: Path) -> dict[str, str]:
        return build_env(request, home, self.settings)

    def stdin_payload(self, request: AgentRequest) -> bytes:
        return request.prompt.encode()

    def new_parser(self) -> ClaudeStreamParser:
        return ClaudeStreamParser()

    def raise_for_outcome(self, outcome: AgentOutcome) -> None:
        raise_for_outcome(outcome)

    def transcript(self, outcome: AgentOutcome) -> list[TranscriptEntry]:
        return transcript(outcome.events)

    @property
    def has_credentials(self) -> bool:
        return self.settings.api_key is not None


def describe(settings: ClaudeSettings) -> dict[str, Any]:
    """Settings as shown to people: the key only as present/absent."""
    return {
        "binary": str(settings.binary) if settings.binary else None,
        "base_url": settings.base_url,
        "api_key": "set" if settings.api_key else "unset",
    }
