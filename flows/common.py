"""Small pieces every flow shares: the agent adapter, the retry policy, run naming."""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

from nightshift.agents.base import AgentAdapter
from nightshift.agents.claude import ClaudeAdapter
from nightshift.errors import AgentNotFoundError, is_retryable


def agent_adapter() -> AgentAdapter:
    """The configured agent backend (Claude Code; settings from the environment)."""
    return ClaudeAdapter()


def agent_unavailable_reason() -> str | None:
    """Why no agent can run here (None when one can): CLI missing, or no credentials."""
    adapter = ClaudeAdapter()
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


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only what `nightshift.errors.is_retryable` allows."""
    try:
        state.result()
    except Exception as exc:
        return is_retryable(exc)
    return False


def rename_flow_run(name: str) -> None:
    """Give the current flow run a name that says what ran (e.g. `audit-local-myrepo`)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, name=name)
