"""The six kinds of code-change worker and what each may do.

A kind fixes the prompts (`prompts/codechange/<kind>.md.j2` for the task,
`prompts/codechange/<kind>.system.md.j2` appended to the CLI's system prompt), the built-in tools the
agent gets and the ones it may use without asking (headless, anything else is denied), and the
Prefect flow name. The analysis worker `refactor` already owns the flow name `refactor`, so the
code-change refactoring flow is `refactor-change`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nightshift.errors import ConfigError

KindName = Literal["feature", "bugfix", "test", "docs", "refactor", "review"]

READ_TOOLS = ["Read", "Grep", "Glob"]
EDIT_TOOLS = ["Write", "Edit", "MultiEdit"]
# Shell access for looking around and running the tests; delivering (commit, push) is ours alone.
SHELL_READ_RULES = ["Bash(git diff:*)", "Bash(git status:*)", "Bash(git log:*)", "Bash(ls:*)"]
SHELL_DENY_RULES = [
    "Bash(git push:*)",
    "Bash(git commit:*)",
    "Bash(git checkout:*)",
    "Bash(git switch:*)",
    "Bash(git reset:*)",
    "Bash(git remote:*)",
    "Bash(curl:*)",
    "Bash(wget:*)",
]


# A permission rule cannot carry these (the CLI splits tool lists on commas, rules end at ")").
_RULE_BREAKERS = frozenset(",()")


class ChangeKind(BaseModel):
    """One kind of code-change worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: KindName
    flow_name: str = Field(description="the Prefect flow (and deployment) name")
    description: str
    edits: bool = Field(description="whether it changes files (review does not)")
    runs_commands: bool = Field(description="whether the agent gets Bash (to run the tests itself)")

    @property
    def task_template(self) -> str:
        return f"codechange/{self.name}.md.j2"

    @property
    def system_template(self) -> str:
        return f"codechange/{self.name}.system.md.j2"

    def tools(self) -> list[str]:
        return [*READ_TOOLS, *(EDIT_TOOLS if self.edits else []), *(["Bash"] if self.runs_commands else [])]

    def allowed_tools(self, test_command: str | None) -> list[str]:
        allowed = [*READ_TOOLS, *(EDIT_TOOLS if self.edits else [])]
        if self.runs_commands:
            allowed += SHELL_READ_RULES
            if test_command and not _RULE_BREAKERS.intersection(test_command):
                allowed.append(f"Bash({test_command}:*)")
        return allowed

    def disallowed_tools(self) -> list[str]:
        return list(SHELL_DENY_RULES) if self.runs_commands else []


CHANGE_KINDS: dict[str, ChangeKind] = {
    kind.name: kind
    for kind in (
        ChangeKind(
            name="feature",
            flow_name="feature",
            description="Implement a feature on a new branch, test it, deliver it by the permission level.",
            edits=True,
            runs_commands=True,
        ),
        ChangeKind(
            name="bugfix",
            flow_name="bugfix",
            description="Fix a bug with a regression test, on a new branch, delivered by the permission level.",
            edits=True,
            runs_commands=True,
        ),
        ChangeKind(
            name="test",
            flow_name="test",
            description="Add or improve tests without changing production code.",
            edits=True,
            runs_commands=True,
        ),
        ChangeKind(
            name="docs",
            flow_name="docs",
            description="Write or update documentation without changing behaviour.",
            edits=True,
            runs_commands=False,
        ),
        ChangeKind(
            name="refactor",
            flow_name="refactor-change",
            description="Restructure code without changing behaviour (the analysis worker is `refactor`).",
            edits=True,
            runs_commands=True,
        ),
        ChangeKind(
            name="review",
            flow_name="review",
            description="Review a branch or pull request diff: findings as JSON, artifact, GitHub comments.",
            edits=False,
            runs_commands=False,
        ),
    )
}


def change_kind(name: str) -> ChangeKind:
    if name not in CHANGE_KINDS:
        raise ConfigError(f"unknown code-change kind {name!r}; known: {', '.join(CHANGE_KINDS)}")
    return CHANGE_KINDS[name]
