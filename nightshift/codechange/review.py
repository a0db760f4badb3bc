"""Review findings: the JSON the review agent returns, and where each finding lands on the diff.

GitHub accepts an inline review comment only on a line that the pull request's diff shows (an added
or context line, new side). `new_side_lines` reads that set from the unified diff; findings on other
lines still reach the review, in its body, so nothing the agent found is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nightshift.agents.base import AgentOutcome, AgentRequest
from nightshift.codechange.loop import AgentTurn, LoopRecord
from nightshift.codechange.replies import AgentReply
from nightshift.errors import OutputError
from nightshift.findings import Severity
from nightshift.prompts import render_prompt

MAX_DIFF_CHARS = 120_000
REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "description": "the change as a whole, two or three sentences"},
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "description": "path from the repository root"},
                    "line": {"type": "integer", "minimum": 1, "description": "line on the new side of the diff"},
                    "severity": {"type": "string", "enum": [s.value for s in Severity]},
                    "comment": {"type": "string", "description": "the problem and how to fix it"},
                },
                "required": ["file", "line", "severity", "comment"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["summary", "findings"],
    "additionalProperties": False,
}
_FILE_HEADER = re.compile(r"^\+\+\+ (?:b/)?(.+?)\s*$")
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class ReviewFinding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1)
    line: int = Field(ge=1)
    severity: Severity
    comment: str = Field(min_length=1)

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str) -> str:
        return value.strip().removeprefix("./").removeprefix("b/")


class ReviewReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str
    findings: list[ReviewFinding] = Field(default_factory=list)

    def ranked(self) -> list[ReviewFinding]:
        return sorted(self.findings, key=lambda f: (f.severity.rank, f.file, f.line))


def parse_review(outcome: AgentOutcome) -> ReviewReport:
    """The review of a successful turn; `OutputError` (raw answer kept) when it does not validate."""
    data = outcome.structured_output
    try:
        if isinstance(data, dict):
            return ReviewReport.model_validate(data)
        return ReviewReport.model_validate_json(outcome.final_text.strip())
    except ValidationError as exc:
        raw = outcome.final_text if data is None else str(data)
        raise OutputError(f"the review did not validate: {exc.error_count()} error(s)", raw=raw,
                          errors=exc.errors(include_url=False)) from exc  # fmt: skip


def new_side_lines(patch: str) -> dict[str, set[int]]:
    """File → the new-side line numbers the unified diff shows (added and context lines)."""
    lines: dict[str, set[int]] = {}
    current: set[int] = set()
    number = old_left = new_left = 0
    for row in patch.splitlines():
        if old_left > 0 or new_left > 0:
            marker = row[:1] or " "
            if marker in "+ ":
                current.add(number)
                number += 1
                new_left -= 1
            if marker in "- ":
                old_left -= 1
            continue
        header = _FILE_HEADER.match(row)
        hunk = _HUNK_HEADER.match(row)
        if header:
            current = set() if header.group(1) == "/dev/null" else lines.setdefault(header.group(1), set())
        elif hunk:
            old_left = int(hunk.group(2)) if hunk.group(2) is not None else 1
            number = int(hunk.group(3))
            new_left = int(hunk.group(4)) if hunk.group(4) is not None else 1
    return lines


def split_by_diff(findings: list[ReviewFinding], patch: str) -> tuple[list[ReviewFinding], list[ReviewFinding]]:
    """(findings on a line the diff shows, the others)."""
    visible = new_side_lines(patch)
    inline = [f for f in findings if f.line in visible.get(f.file, set())]
    general = [f for f in findings if f.line not in visible.get(f.file, set())]
    return inline, general


def review_prompt(
    *,
    task: str,
    repository: str,
    head_label: str,
    base_branch: str,
    base_sha: str,
    diff: str,
    diff_stat: str,
    tests: dict[str, Any] | None,
) -> str:
    return render_prompt(
        "codechange/review.md.j2",
        {
            "task": task.strip() or "A general review: correctness, security, error handling, tests.",
            "repository": repository,
            "head_label": head_label,
            "base_branch": base_branch,
            "base_sha": base_sha,
            "diff": diff[:MAX_DIFF_CHARS].replace("```", "ʼʼʼ"),
            "diff_truncated": len(diff) > MAX_DIFF_CHARS,
            "diff_stat": diff_stat,
            "tests": tests,
        },
    )


def review_with_repairs(
    request: AgentRequest, agent: Callable[[AgentRequest], AgentTurn], *, max_iterations: int
) -> tuple[ReviewReport, LoopRecord]:
    """Run the review; an answer that does not validate gets up to `max_iterations - 1` repair turns on
    the same session (the validation errors and the schema as the prompt). Still invalid: `OutputError`."""
    record = LoopRecord()
    for attempt in range(1, max_iterations + 1):
        turn = agent(request)
        record.add_turn(turn, "task" if attempt == 1 else "repair", AgentReply(status="done"), resumed=attempt > 1)
        try:
            review = parse_review(turn.outcome)
        except OutputError as exc:
            if attempt == max_iterations or record.session_id is None:
                raise
            schema = json.dumps(request.json_schema, indent=2)
            repair = render_prompt("repair.md.j2", {"errors": exc.errors, "schema_json": schema})
            request = request.model_copy(update={"prompt": repair, "resume_id": record.session_id, "session_id": None})
            continue
        record.summary = review.summary
        return review, record
    raise OutputError("no review: max_iterations must be at least 1", raw="")
