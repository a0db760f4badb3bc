"""One honest agent run: request → the adapter's argv/env → a managed process → typed outcome.

`run_agent` never decides success itself: the adapter's parser reads it from the CLI's stream.
It returns the outcome whatever happened; `run_agent_checked` raises the matching error of
`nightshift.errors` instead, which is what Prefect tasks call so that retries see transient errors.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from nightshift.agents.base import AgentAdapter, AgentOutcome, AgentRequest, StreamEvent
from nightshift.agents.claude import ClaudeAdapter
from nightshift.errors import ConfigError
from nightshift.process import StopPolicy, stream_process


def prepare_home(request: AgentRequest) -> Path:
    """The HOME of the run: the requested one (created if missing) or a fresh private directory."""
    if request.home is not None:
        request.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return request.home
    return Path(tempfile.mkdtemp(prefix="nightshift-home-"))


def run_agent(
    request: AgentRequest,
    *,
    adapter: AgentAdapter | None = None,
    cancel: threading.Event | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    stop_policy: StopPolicy | None = None,
) -> AgentOutcome:
    """Run the agent CLI headless once and return what its stream says happened."""
    adapter = adapter or ClaudeAdapter()
    if not request.cwd.is_dir():
        raise ConfigError(f"agent working directory does not exist: {request.cwd}")
    binary = adapter.binary()
    home = prepare_home(request)
    parser = adapter.new_parser()

    def _on_line(line: bytes) -> None:
        event = parser.feed(line)
        if event is not None and on_event is not None:
            on_event(event)

    process = stream_process(
        adapter.build_argv(request, binary),
        cwd=request.cwd,
        env=adapter.build_env(request, home),
        stdin=adapter.stdin_payload(request),
        on_stdout_line=_on_line,
        timeout_s=request.timeout_s,
        cancel=cancel,
        policy=stop_policy,
    )
    return parser.outcome(process, home=home, cwd=request.cwd)


def run_agent_checked(
    request: AgentRequest,
    *,
    adapter: AgentAdapter | None = None,
    cancel: threading.Event | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
) -> AgentOutcome:
    """`run_agent`, raising the matching `AgentRunError` unless the stream reported success."""
    adapter = adapter or ClaudeAdapter()
    outcome = run_agent(request, adapter=adapter, cancel=cancel, on_event=on_event)
    adapter.raise_for_outcome(outcome)
    return outcome
