"""What the agent is asked and allowed: the rendered prompts and the `AgentRequest` of each kind.

Edits are accepted without asking (`acceptEdits`) because the agent works in a disposable clone;
the tools it has, and those it may use without asking, come from its kind. Every turn of a run uses
the same cwd (the clone) and HOME (the workspace's), which is what `--resume` needs.
"""

from __future__ import annotations

from typing import Any

from nightshift.agents.base import AgentRequest, ModelAlias
from nightshift.codechange.kinds import ChangeKind
from nightshift.codechange.replies import REPLY_SCHEMA
from nightshift.codechange.review import REVIEW_SCHEMA
from nightshift.codechange.workspace import Workspace
from nightshift.prompts import render_prompt

DEFAULT_AGENT_TIMEOUT_S = 1800.0


def task_prompt(
    kind: ChangeKind,
    *,
    task: str,
    repository: str,
    base_branch: str,
    branch: str,
    test_command: str | None,
    max_iterations: int,
) -> str:
    variables: dict[str, Any] = {
        "kind": kind.name,
        "task": task.strip(),
        "repository": repository,
        "base_branch": base_branch,
        "branch": branch,
        "test_command": test_command,
        "max_iterations": max_iterations,
    }
    return render_prompt(kind.task_template, variables)


def system_prompt(kind: ChangeKind) -> str:
    return render_prompt(kind.system_template, {"kind": kind.name}).strip()


def change_request(
    kind: ChangeKind,
    prompt: str,
    workspace: Workspace,
    *,
    model: ModelAlias,
    test_command: str | None,
    max_turns: int | None = None,
    timeout_s: float = DEFAULT_AGENT_TIMEOUT_S,
) -> AgentRequest:
    """The first turn of a code-change run; later turns are `loop.resume_request` copies of it."""
    return AgentRequest(
        prompt=prompt,
        cwd=workspace.repo,
        home=workspace.home,
        model=model,
        max_turns=max_turns,
        permission_mode="acceptEdits",
        tools=kind.tools(),
        allowed_tools=kind.allowed_tools(test_command),
        disallowed_tools=kind.disallowed_tools(),
        append_system_prompt=system_prompt(kind),
        json_schema=REPLY_SCHEMA,
        timeout_s=timeout_s,
        timeout_setting="DEFAULT_AGENT_TIMEOUT_S of nightshift.codechange.briefs",
    )


def review_request(
    kind: ChangeKind,
    prompt: str,
    workspace: Workspace,
    *,
    model: ModelAlias,
    timeout_s: float = DEFAULT_AGENT_TIMEOUT_S,
) -> AgentRequest:
    """Read-only: the review agent can look at files, never change them or run commands."""
    return AgentRequest(
        prompt=prompt,
        cwd=workspace.repo,
        home=workspace.home,
        model=model,
        permission_mode="default",
        tools=kind.tools(),
        allowed_tools=kind.allowed_tools(None),
        disallowed_tools=["Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"],
        append_system_prompt=system_prompt(kind),
        json_schema=REVIEW_SCHEMA,
        timeout_s=timeout_s,
        timeout_setting="DEFAULT_AGENT_TIMEOUT_S of nightshift.codechange.briefs",
    )
