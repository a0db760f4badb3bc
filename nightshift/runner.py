"""One honest agent run: request → the adapter's argv/env → a managed process → typed outcome.

`run_agent` never decides success itself: the adapter's parser reads it from the CLI's stream.
It returns the outcome whatever happened; `run_agent_checked` raises the matching error of
`nightshift.errors` instead, which is what Prefect tasks call so that retries see transient errors.
Inside orchestrated runs it also reports each outcome's tokens and USD to the budget guard, and a
`RateLimitedError` starts the guard's cool-off (`nightshift.budget`).

Where the CLI runs is the sandbox's business (`nightshift.sandbox`): the `sandbox=` argument, else
the one set with `nightshift.sandbox.base.use_sandbox`, else a plain process (`disabled`). A sandbox
only rewrites the command; `stream_process` starts it either way, so events, timeouts, cancellation
and outcomes are the same, and the launch is closed (the container removed) whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from nightshift import budget
from nightshift.agents.base import AgentAdapter, AgentOutcome, AgentRequest, StreamEvent
from nightshift.agents.claude import ClaudeAdapter
from nightshift.cancellation import stop_watch
from nightshift.errors import ConfigError, RateLimitedError
from nightshift.process import StopPolicy, stream_process
from nightshift.sandbox.base import ProcessSandbox, Sandbox, active_sandbox


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
    sandbox: Sandbox | None = None,
) -> AgentOutcome:
    """Run the agent CLI headless once and return what its stream says happened."""
    adapter = adapter or ClaudeAdapter()
    sandbox = sandbox or active_sandbox() or ProcessSandbox()
    if not request.cwd.is_dir():
        raise ConfigError(f"agent working directory does not exist: {request.cwd}")
    binary = sandbox.binary(adapter)
    home = prepare_home(request)
    parser = adapter.new_parser()

    def _on_line(line: bytes) -> None:
        event = parser.feed(line)
        if event is not None and on_event is not None:
            on_event(event)

    launch = sandbox.launch(
        adapter.build_argv(request, binary), adapter.build_env(request, home), cwd=request.cwd, home=home
    )
    with stop_watch(cancel) as watch:  # a shutdown waits for the whole launch, container removal included
        try:
            process = stream_process(
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=adapter.stdin_payload(request),
                on_stdout_line=_on_line,
                timeout_s=request.timeout_s,
                cancel=watch.event,
                policy=stop_policy,
            )
        finally:
            launch.close()
    outcome = parser.outcome(process, home=home, cwd=request.cwd)
    if process.stop_reason == "timeout":
        outcome.stopped_by = f"the {request.timeout_s:g} s time limit ({request.timeout_setting})"
    elif process.stop_reason == "cancelled":
        outcome.stopped_by = watch.reason
    return with_run_cost(outcome, request.resume_id)


SESSION_COSTS = ".nightshift-session-costs.json"


def with_run_cost(outcome: AgentOutcome, resumed_from: str | None) -> AgentOutcome:
    """Set `run_cost_usd`: on `--resume` the CLI reports the session's running total, so this run's own
    cost is that total less what the session had cost before (remembered in the run's HOME, which a
    resume shares by necessity)."""
    ledger_path = outcome.home / SESSION_COSTS
    try:
        ledger: dict[str, float] = json.loads(ledger_path.read_text())
    except (OSError, ValueError):
        ledger = {}
    total = outcome.total_cost_usd or 0.0
    before = ledger.get(resumed_from, 0.0) if resumed_from else 0.0
    outcome.run_cost_usd = round(max(0.0, total - before), 10)
    if outcome.session_id and outcome.total_cost_usd is not None:
        ledger[outcome.session_id] = total
        with contextlib.suppress(OSError):
            ledger_path.write_text(json.dumps(ledger))
    return outcome


def run_agent_checked(
    request: AgentRequest,
    *,
    adapter: AgentAdapter | None = None,
    cancel: threading.Event | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    sandbox: Sandbox | None = None,
) -> AgentOutcome:
    """`run_agent`, raising the matching `AgentRunError` unless the stream reported success."""
    adapter = adapter or ClaudeAdapter()
    outcome = run_agent(request, adapter=adapter, cancel=cancel, on_event=on_event, sandbox=sandbox)
    budget.record_outcome(outcome)  # tokens + USD of orchestrated runs (a no-op elsewhere)
    try:
        adapter.raise_for_outcome(outcome)
    except RateLimitedError as exc:
        budget.start_cooloff(str(exc))  # the guard pauses every agent launch for a while
        raise
    return outcome
