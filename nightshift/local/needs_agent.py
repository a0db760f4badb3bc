"""The result of an agent-only worker (deepdive, ultralearn) when no agent can run: not a failure.

Some work has no honest local substitute — explaining an architecture or learning a codebase's
conventions needs a model. Rather than fail (and be retried) or fake an answer, such a run completes
with status `needs-agent`, saying why no agent could run and how to enable one. It carries no findings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nightshift.local.models import LocalResult

AGENT_ONLY_WORKERS = frozenset({"deepdive", "ultralearn"})

HOW_TO_ENABLE = (
    "Install the Claude Code CLI (`scripts/setup.sh` installs it under tools/, or put `claude` on PATH, or "
    "point NIGHTSHIFT_CLAUDE_BIN at it) and give the worker credentials: ANTHROPIC_API_KEY (and "
    "ANTHROPIC_BASE_URL for a compatible endpoint). Then run the worker again."
)

_WHAT_IT_NEEDS = {
    "deepdive": "an in-depth architecture and risk review needs a model to read and reason about the code",
    "ultralearn": "learning the codebase's conventions and lessons needs a model to read and summarise it",
}


class NeedsAgent(BaseModel):
    """Why the worker did not run, and what would let it run."""

    model_config = ConfigDict(extra="forbid")

    worker: str
    reason: str = Field(description="why no agent could run, e.g. the CLI is not installed")
    why_agent: str = Field(description="why this worker has no local fallback")
    how_to_enable: str
    retryable: bool = Field(default=False, description="a retry cannot help until the setup changes")


def needs_agent_result(worker: str, reason: str, *, how_to_enable: str = HOW_TO_ENABLE) -> LocalResult:
    """A completed, non-failing result saying the worker needs an agent, why, and how to enable one."""
    why = _WHAT_IT_NEEDS.get(worker, "this worker has no local (non-AI) analysis")
    needs = NeedsAgent(worker=worker, reason=reason, why_agent=why, how_to_enable=how_to_enable)
    method = f"nothing ran: the {worker} worker needs an agent ({reason})."
    summary = "\n\n".join(
        [
            f"**Local analysis (no AI agent).** Method: {method}\n\nTools: none.",
            f"## {worker}: needs an agent\n\nThis is not a failure: {why}, and no agent is available "
            f"here.\n\n- **Why no agent:** {reason}\n- **How to enable it:** {how_to_enable}",
        ]
    )
    return LocalResult(
        worker=worker,
        status="needs-agent",
        method=method,
        tools=[],
        findings=[],
        tables={},
        summary_markdown=summary,
        report=needs.model_dump(mode="json"),
    )
