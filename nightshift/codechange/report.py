"""What a code-change run did, as one model and as the texts people read.

ChangeReport ──report_markdown──▶ the run's report artifact
             ──commit_message──▶ the commit (what changed, why, how it was tested)
             ──pull_request_body──▶ the pull request
diff / tests / cost / question / approval ──▶ their own artifacts' markdown and rows
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nightshift.codechange.checks import TestRun
from nightshift.codechange.loop import LoopRecord
from nightshift.codechange.target import PermissionLevel
from nightshift.codechange.workspace import CommitInfo, DiffInfo, PushInfo

ChangeStatus = Literal[
    "running", "pushed", "pull-request", "no-changes", "reviewed", "review-posted", "rejected", "refused", "failed"
]
MAX_DIFF_ARTIFACT = 60_000
SUBJECT_MAX = 72
_KIND_VERB = {"feature": "feat", "bugfix": "fix", "test": "test", "docs": "docs", "refactor": "refactor"}


class ChangeReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str
    run_id: str
    task: str
    repository: str
    permission_level: PermissionLevel
    status: ChangeStatus = "running"
    base_branch: str | None = None
    base_sha: str | None = None
    branch: str | None = None
    tests: Literal["passed", "untested"] | None = None
    commit: CommitInfo | None = None
    push: PushInfo | None = None
    pull_request_url: str | None = None
    workspace: str | None = Field(default=None, description="kept for inspection (runs that did not finish)")
    error: str | None = None
    approval_comment: str | None = None
    loop: LoopRecord = Field(default_factory=LoopRecord)


def _subject(kind: str, task: str) -> str:
    first = next((line.strip() for line in task.strip().splitlines() if line.strip()), kind)
    subject = f"{_KIND_VERB.get(kind, kind)}: {first}"
    return subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 1].rstrip() + "…"


def _tests_line(report: ChangeReport, test_command: str | None) -> str:
    runs = report.loop.test_runs
    if not test_command or not runs:
        return "Tests: none configured; the change was not verified by tests."
    last = runs[-1]
    return f"Tests: `{last.command}` passed on iteration {last.iteration}" + (
        f" (earlier failures fed back to the agent: {len(runs) - 1})." if len(runs) > 1 else "."
    )


def commit_message(report: ChangeReport, *, test_command: str | None, model: str) -> str:
    """Subject from the task; body: what changed (the agent's summary), why (the task), how tested."""
    what = report.loop.summary.strip() or "(the agent gave no summary)"
    why = report.task.strip()
    lines = [_subject(report.kind, report.task), "", "What changed:", what, "", "Why:", why, ""]
    if report.loop.exchanges:
        lines.append("Clarified with a human:")
        lines += [f"- Q: {e.question}\n  A: {e.answer}" for e in report.loop.exchanges]
        lines.append("")
    lines.append(_tests_line(report, test_command))
    lines += ["", f"Generated-by: nightshift {report.kind} (claude-code {model}), run {report.run_id}"]
    return "\n".join(lines) + "\n"


def pull_request_title(report: ChangeReport) -> str:
    return _subject(report.kind, report.task)


def pull_request_body(report: ChangeReport, diff: DiffInfo, *, test_command: str | None) -> str:
    lines = [
        f"Opened by the nightshift **{report.kind}** worker (run `{report.run_id}`).",
        "",
        "## Task",
        report.task.strip(),
        "",
        "## What changed",
        report.loop.summary.strip() or "(no summary)",
        "",
        "## Tests",
        _tests_line(report, test_command),
        "",
        "## Files",
        "```",
        diff.stat.strip(),
        "```",
    ]
    if report.approval_comment:
        lines += ["", "## Approved by a human", report.approval_comment]
    return "\n".join(lines) + "\n"


def report_markdown(report: ChangeReport) -> str:
    lines = [f"# {report.kind}: {report.repository}", "", f"**Status:** {report.status}  "]
    lines.append(f"**Permission level:** {report.permission_level}  ")
    if report.base_branch:
        lines.append(f"**Base:** `{report.base_branch}` at `{(report.base_sha or '')[:12]}`  ")
    if report.branch:
        lines.append(f"**Branch:** `{report.branch}`  ")
    if report.commit:
        lines.append(f"**Commit:** `{report.commit.sha[:12]}` ({len(report.commit.files)} files)  ")
    if report.push:
        lines.append(f"**Pushed:** `{report.push.branch}` to {report.push.remote}  ")
    if report.pull_request_url:
        lines.append(f"**Pull request:** {report.pull_request_url}  ")
    cost = report.loop.cost
    lines.append(
        f"**Agent:** {cost.agent_calls} call(s), {cost.num_turns} turns, model {cost.model or '-'}, "
        f"${cost.cost_usd:.4f}, session `{report.loop.session_id or '-'}`  "
    )
    if report.workspace:
        lines.append(f"**Workspace kept for inspection:** `{report.workspace}`  ")
    if report.error:
        lines += ["", "## Error", "", report.error]
    if report.loop.pending_question:
        lines += ["", "## Unanswered question of the agent", "", report.loop.pending_question]
    lines += ["", "## Task", "", report.task.strip()]
    if report.loop.summary:
        lines += ["", "## Agent summary", "", report.loop.summary.strip()]
    if report.loop.exchanges:
        lines += ["", "## Questions and answers", ""]
        lines += [f"- **Q:** {e.question}\n  **A:** {e.answer}" for e in report.loop.exchanges]
    if report.approval_comment:
        lines += ["", "## Reviewer comment", "", report.approval_comment]
    if report.loop.test_runs:
        lines += ["", "## Tests", ""]
        lines += [f"- {run.short()}" for run in report.loop.test_runs]
    return "\n".join(lines) + "\n"


def diff_markdown(diff: DiffInfo, *, title: str) -> str:
    patch = diff.patch
    cut = len(patch) > MAX_DIFF_ARTIFACT
    body = patch[:MAX_DIFF_ARTIFACT].replace("```", "ʼʼʼ")
    lines = [f"# {title}", "", f"Against `{diff.base_sha[:12]}`; {len(diff.files)} file(s).", ""]
    lines += ["```", diff.stat.strip() or "(no changes)", "```", "", "```diff", body, "```"]
    if cut:
        lines.append(f"\n(cut at {MAX_DIFF_ARTIFACT} characters of {len(patch)})")
    return "\n".join(lines) + "\n"


def iteration_rows(runs: list[TestRun]) -> list[dict[str, Any]]:
    return [
        {
            "iteration": run.iteration,
            "command": run.command,
            "passed": run.passed,
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
            "duration_s": run.duration_s,
            "output_tail": run.output[-1500:],
        }
        for run in runs
    ]


def cost_rows(report: ChangeReport) -> list[dict[str, Any]]:
    rows = [
        {
            "turn": turn.index,
            "purpose": turn.purpose,
            "resumed": turn.resumed,
            "session_id": turn.session_id,
            "reply": turn.reply,
            "model_turns": turn.num_turns,
            "cost_usd": round(turn.cost_usd, 6),
            "duration_s": turn.duration_s,
        }
        for turn in report.loop.turns
    ]
    cost = report.loop.cost
    rows.append(
        {
            "turn": "total",
            "purpose": f"{cost.input_tokens} in / {cost.output_tokens} out tokens",
            "resumed": None,
            "session_id": report.loop.session_id,
            "reply": None,
            "model_turns": cost.num_turns,
            "cost_usd": round(cost.cost_usd, 6),
            "duration_s": round(cost.duration_s, 3),
        }
    )
    return rows


def question_markdown(kind: str, question: str, *, workspace: str, timeout_s: int) -> str:
    return (
        f"# The {kind} worker asks\n\n{question.strip()}\n\n"
        f"Answer in the Prefect UI (**Resume** on this run) within {timeout_s} s; the agent continues in the same "
        f"session with your answer.\n\nWorkspace: `{workspace}`\n"
    )


def approval_markdown(report: ChangeReport, diff: DiffInfo, *, timeout_s: int, action: str = "push the branch") -> str:
    return (
        f"# Approve the {report.kind} change?\n\n"
        f"Branch `{report.branch}` on {report.repository}, {len(diff.files)} file(s) changed; the full diff is "
        f"in the diff artifact of this run.\n\n```\n{diff.stat.strip()}\n```\n\n"
        f"**Agent summary:** {report.loop.summary.strip() or '-'}\n\n"
        f"Resume with `approve` checked to {action}, unchecked to reject (a comment helps); "
        f"without an answer within {timeout_s} s nothing happens and the run ends.\n"
    )
