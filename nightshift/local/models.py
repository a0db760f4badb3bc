"""The one result shape of every local (non-AI) worker, so flows turn any of them into artifacts alike.

A `LocalResult` always says what ran: `method` is a sentence naming the analysis, `tools` the libraries
and their versions, and `summary_markdown` opens with a line stating that it is a local analysis made
without an AI agent. `tables` hold plain rows (one dict per row) ready for `pandas.DataFrame`.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nightshift.findings import Finding

LocalStatus = Literal["completed", "needs-agent"]


class ToolInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str

    def label(self) -> str:
        return f"{self.name} {self.version}"


class LocalResult(BaseModel):
    """What a local worker produced, and exactly how."""

    model_config = ConfigDict(extra="forbid")

    worker: str = Field(description="worker type, e.g. 'audit'")
    status: LocalStatus = Field(
        default="completed",
        description="'completed', or 'needs-agent' when the worker cannot run without an agent (not a failure)",
    )
    method: str = Field(description="what ran, in one or two sentences")
    tools: list[ToolInfo] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    summary_markdown: str
    report: dict[str, Any] | None = Field(
        default=None, description="the worker's JSON report (e.g. an AuditReport) when it has a schema"
    )


def python_tool() -> ToolInfo:
    return ToolInfo(name="Python ast", version=platform.python_version())


def package_tool(distribution: str) -> ToolInfo:
    """The installed version of a distribution, e.g. `package_tool("bandit")`."""
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = "not installed"
    return ToolInfo(name=distribution, version=version)


def git_tool() -> ToolInfo:
    return package_tool("GitPython")


def local_banner(method: str, tools: Sequence[ToolInfo]) -> str:
    """The opening lines of every local summary: local, not AI, what ran and with which tools."""
    names = ", ".join(tool.label() for tool in tools) or "none"
    return f"**Local analysis (no AI agent).** Method: {method}\n\nTools: {names}."


def rows(models: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """Models as table rows (lists are joined so every cell is a scalar)."""
    out: list[dict[str, Any]] = []
    for model in models:
        row = model.model_dump(mode="json")
        out.append({key: ", ".join(map(str, v)) if isinstance(v, list) else v for key, v in row.items()})
    return out


def markdown_table(rows_: Sequence[dict[str, Any]], columns: Sequence[str], *, limit: int = 20) -> str:
    """A small markdown table of the first `limit` rows (pipes in cells escaped)."""
    if not rows_:
        return "_none_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows_[:limit]:
        cells = [str(row.get(column, "")).replace("|", "\\|").replace("\n", " ") for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows_) > limit:
        lines.append(f"\n… {len(rows_) - limit} more rows in the table artifact.")
    return "\n".join(lines)


def findings_table(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [
        {
            "severity": f.severity.value,
            "rule": f.rule,
            "file": f.file,
            "line": f.line,
            "title": f.title,
            "fingerprint": f.fingerprint,
        }
        for f in findings
    ]


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.severity.rank, f.file or "", f.line or 0, f.rule))


def local_result(
    *,
    worker: str,
    method: str,
    tools: Sequence[ToolInfo],
    findings: Sequence[Finding],
    tables: dict[str, list[dict[str, Any]]],
    sections: Sequence[str],
    report: dict[str, Any] | None = None,
) -> LocalResult:
    """A completed local result whose summary is the local-analysis banner followed by `sections`."""
    return LocalResult(
        worker=worker,
        method=method,
        tools=list(tools),
        findings=list(findings),
        tables=tables,
        summary_markdown="\n\n".join([local_banner(method, tools), *sections]),
        report=report,
    )
