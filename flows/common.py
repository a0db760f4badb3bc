"""Small pieces every flow shares: the agent adapter, the retry and timeout policy, run naming, and the
end of a run the budget guard refused.

Deployments tune the policy through their job variables (prefect.yaml): `NIGHTSHIFT_AGENT_RETRIES`,
`NIGHTSHIFT_AGENT_RETRY_DELAYS`, `NIGHTSHIFT_AGENT_RETRY_JITTER` (the `run-agent` task),
`NIGHTSHIFT_FLOW_RETRIES`, `NIGHTSHIFT_FLOW_RETRY_DELAY_S`, `NIGHTSHIFT_FLOW_TIMEOUT_S` (the flow), and
`NIGHTSHIFT_AGENT_SETTINGS_BLOCK` (where the agent's settings and API key are). Read at import time, i.e.
when a flow run's process loads its flow; unset, a plain local run keeps the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Cancelled

from nightshift import cancellation, logquiet
from nightshift.agents.base import AgentAdapter
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings
from nightshift.errors import (
    AgentCancelledError,
    AgentNotFoundError,
    BudgetRefusedError,
    ConfigError,
    is_retryable,
)

DEFAULT_AGENT_RETRY_DELAYS = (5.0, 30.0)

# Loaded by every flow-run process (and `nightshift run`): SIGTERM/SIGINT stop the agents first, and
# the run log shows known errors as one line.
cancellation.install_signal_handlers()
logquiet.install()


def agent_settings() -> ClaudeSettings:
    """The agent's settings: the environment, overlaid by the agent-settings block when
    `NIGHTSHIFT_AGENT_SETTINGS_BLOCK` names one (the deployments do; the bootstrap creates it)."""
    settings = ClaudeSettings.from_env()
    name = os.environ.get("NIGHTSHIFT_AGENT_SETTINGS_BLOCK")
    if not name:
        return settings
    from blocks.agent import AgentSettings

    try:
        block = AgentSettings.load(name)
    except ValueError as exc:
        raise ConfigError(
            f"no agent-settings block named {name!r} (nightshift-agent-settings); run `python -m "
            f"deployments.bootstrap` or unset NIGHTSHIFT_AGENT_SETTINGS_BLOCK: {exc}"
        ) from exc
    if not isinstance(block, AgentSettings):
        raise ConfigError(f"block {name!r} is not a nightshift-agent-settings block")
    return block.claude_settings(settings)


def agent_adapter() -> AgentAdapter:
    """The configured agent backend (Claude Code; settings from `agent_settings`)."""
    return ClaudeAdapter(agent_settings())


def agent_unavailable_reason() -> str | None:
    """Why no agent can run here (None when one can): CLI missing, or no credentials."""
    adapter = ClaudeAdapter(agent_settings())
    try:
        adapter.binary()
    except AgentNotFoundError as exc:
        return str(exc)
    if not adapter.has_credentials:
        return "no API key: ANTHROPIC_API_KEY is not set (nor an agent-settings block)"
    return None


def agent_available() -> bool:
    """True when the agent CLI is installed and has credentials to call its model."""
    return agent_unavailable_reason() is None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc


def agent_task_options() -> dict[str, Any]:
    """Options of the task that runs the agent: retries of transient failures only, with growing delays."""
    raw = os.environ.get("NIGHTSHIFT_AGENT_RETRY_DELAYS")
    try:
        delays = [float(part) for part in raw.split(",")] if raw else list(DEFAULT_AGENT_RETRY_DELAYS)
    except ValueError as exc:
        raise ConfigError(f"NIGHTSHIFT_AGENT_RETRY_DELAYS={raw!r}: expected seconds like 10,60") from exc
    options: dict[str, Any] = {
        "retries": int(_env_float("NIGHTSHIFT_AGENT_RETRIES", 2)),
        "retry_delay_seconds": delays,
        "retry_condition_fn": retry_transient,
    }
    jitter = _env_float("NIGHTSHIFT_AGENT_RETRY_JITTER", 0.0)
    if jitter > 0:
        options["retry_jitter_factor"] = jitter
    return options


def flow_options() -> dict[str, Any]:
    """Flow retries (after a transient failure only, see `run_guarded`) and timeout of a worker flow."""
    options: dict[str, Any] = {
        "retries": int(_env_float("NIGHTSHIFT_FLOW_RETRIES", 0)),
        "retry_delay_seconds": int(_env_float("NIGHTSHIFT_FLOW_RETRY_DELAY_S", 600)),
    }
    timeout = _env_float("NIGHTSHIFT_FLOW_TIMEOUT_S", 0)
    if timeout > 0:
        options["timeout_seconds"] = timeout
    return options


def no_more_flow_retries() -> None:
    """Prefect flows have no retry condition: before a non-transient failure ends this run, set its
    remaining retries to zero so the server lets it fail instead of scheduling it again."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or not context.flow_run.empirical_policy.retries:
        return
    policy = context.flow_run.empirical_policy.model_copy(update={"retries": 0})
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, empirical_policy=policy)
    context.flow_run.empirical_policy = policy


def refused_state(worker: str, repo: str, exc: BudgetRefusedError) -> State[Any]:
    """A run the budget guard refused: its report says why, and it ends `Refused` (type CANCELLED), which
    Prefect neither retries nor counts as a failure."""
    from nightshift.artifacts import publish_run
    from nightshift.results import WorkerRun, repo_key

    path = Path(repo).expanduser().resolve()
    run = WorkerRun(
        worker=worker, repo=str(path), repo_key=repo_key(path), mode="agent", method="budget guard",
        status="refused", error=f"The budget guard refused to launch the agent: {exc.reason}",
        summary="No agent ran; nothing was spent. The run was not retried.",
    )  # fmt: skip
    publish_run(run)
    return Cancelled(name="Refused", message=f"budget guard: {exc.reason}")


def cancelled_state(exc: AgentCancelledError) -> State[Any]:
    """A run whose agent was stopped on request (Prefect cancel, SIGTERM/SIGINT): `Cancelled`, saying why."""
    return Cancelled(message=str(exc).splitlines()[0][:500])


def run_guarded(worker: str, repo: str, body: Callable[[], Any]) -> Any:
    """Run a worker flow's body: a budget refusal ends the run `Refused`, a cancelled agent `Cancelled`;
    any other non-transient error fails it without flow retries; a transient one (after the task retries)
    may be retried."""
    try:
        return body()
    except BudgetRefusedError as exc:
        return refused_state(worker, repo, exc)
    except AgentCancelledError as exc:
        return cancelled_state(exc)
    except Exception as exc:
        if not is_retryable(exc):
            no_more_flow_retries()
        raise


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only what `nightshift.errors.is_retryable` allows."""
    # Not `state.result()`: re-raising the task's exception here would append this frame to its traceback.
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_retryable(exc)


def rename_flow_run(name: str) -> None:
    """Give the current flow run a name that says what ran (e.g. `audit-local-myrepo`)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, name=name)
