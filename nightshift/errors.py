"""The one exception tree of nightshift.

    NightshiftError
    ├── ConfigError                 bad input from a person or a config; never retried
    │   ├── ContextError            bad glob, path escaping the repository, unreadable repo
    │   ├── PromptTemplateError     missing/broken jinja2 template or undefined variable
    │   ├── AgentNotFoundError      the agent CLI binary is not installed
    │   ├── WorkspaceError          unknown repository, missing or dirty base branch, failed clone
    │   ├── TestCommandError        the repository's test command is not found or not executable
    │   └── SandboxError            the sandbox cannot be set up (no engine, no image, bad API upstream)
    ├── AgentRunError               an agent run that did not succeed (carries the outcome)
    │   ├── TransientAgentError     worth a retry: API 429/5xx/529, a crashed CLI
    │   │   └── RateLimitedError    quota / usage limit: the budget guard cools off
    │   ├── AgentFailedError        the stream reported an error that a retry will not fix
    │   ├── AgentTimeoutError       our timeout fired; the process group was stopped
    │   └── AgentCancelledError     cancelled on request; the process group was stopped
    ├── OutputError                 the agent's output did not validate (raw output kept)
    ├── StreamParseError            a corrupt stream-json line (the line is attached)
    ├── BudgetRefusedError          the budget guard refused to launch an agent (run ends `Refused`)
    ├── OpsError                    `nightshift up`/`down` could not start, reach or stop the server/worker
    └── ChangeError                 a code-change run that ended without delivering its change
        ├── TestsFailingError       the tests still fail after the last iteration
        ├── PushRejectedError       the remote refused the push (hook, protection, non-fast-forward)
        ├── PullRequestError        the hosting API refused the pull request or the review
        ├── ApprovalRejectedError   a human rejected the change (their comment attached)
        └── HumanTimeoutError       nobody answered a question or an approval in time

`is_retryable(exc)` is the single retry policy: Prefect's `retry_condition_fn` calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nightshift.agents.base import AgentOutcome


class NightshiftError(Exception):
    """Base of every error nightshift raises on purpose."""


class ConfigError(NightshiftError):
    """Bad input or configuration: a retry cannot help."""


class ContextError(ConfigError):
    def __init__(self, message: str, *, path: str | None = None, pattern: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.pattern = pattern


class PromptTemplateError(ConfigError):
    def __init__(self, message: str, *, template: str | None = None) -> None:
        super().__init__(message)
        self.template = template


class AgentNotFoundError(ConfigError):
    def __init__(self, message: str, *, binary: str | None = None) -> None:
        super().__init__(message)
        self.binary = binary


class AgentRunError(NightshiftError):
    """An agent run that did not end in a successful `result`."""

    def __init__(self, message: str, *, outcome: AgentOutcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome

    @property
    def api_error_status(self) -> int | None:
        return self.outcome.api_error_status if self.outcome else None

    @property
    def stderr_tail(self) -> str:
        return self.outcome.stderr_tail if self.outcome else ""


class TransientAgentError(AgentRunError):
    """Worth retrying: rate limits, overloaded or failing API, a CLI that crashed."""


class RateLimitedError(TransientAgentError):
    """Quota or usage limit reached: further launches should cool off."""


class AgentFailedError(AgentRunError):
    """The agent's stream reported an error that a retry will not fix (e.g. HTTP 400)."""


class AgentTimeoutError(AgentRunError):
    """The run exceeded its timeout and its process group was stopped."""


class AgentCancelledError(AgentRunError):
    """The run was cancelled and its process group was stopped."""


class OutputError(NightshiftError):
    def __init__(self, message: str, *, raw: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.errors = errors or []


class StreamParseError(NightshiftError):
    def __init__(self, message: str, *, line: str) -> None:
        super().__init__(message)
        self.line = line


class BudgetRefusedError(NightshiftError):
    """The budget guard refused an agent launch (caps reached or cooling off); `reason` says which."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class OpsError(NightshiftError):
    """A step of `nightshift up`/`down` failed: the message names the step and the log to read."""


class WorkspaceError(ConfigError):
    """The repository or its base branch cannot be worked on as given."""

    def __init__(self, message: str, *, repository: str | None = None) -> None:
        super().__init__(message)
        self.repository = repository


class TestCommandError(ConfigError):
    """The test command cannot run at all (not found, not executable): not a test failure."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, message: str, *, command: str) -> None:
        super().__init__(message)
        self.command = command


class SandboxError(ConfigError):
    """The sandbox a worker's profile asks for cannot be set up: never run unsandboxed instead."""

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend


class ChangeError(NightshiftError):
    """A code-change run that stopped before its change was delivered; the workspace is kept."""


class TestsFailingError(ChangeError):
    __test__ = False

    def __init__(self, message: str, *, iterations: int) -> None:
        super().__init__(message)
        self.iterations = iterations


class PushRejectedError(ChangeError):
    def __init__(self, message: str, *, branch: str, detail: str = "") -> None:
        super().__init__(message)
        self.branch = branch
        self.detail = detail


class PullRequestError(ChangeError):
    """The hosting service (GitHub) refused to open the pull request or to post the review."""


class ApprovalRejectedError(ChangeError):
    def __init__(self, message: str, *, comment: str = "") -> None:
        super().__init__(message)
        self.comment = comment


class HumanTimeoutError(ChangeError):
    def __init__(self, message: str, *, question: str) -> None:
        super().__init__(message)
        self.question = question


def is_retryable(exc: BaseException) -> bool:
    """The retry policy: only transient agent failures are retried, never config errors."""
    return isinstance(exc, TransientAgentError)
