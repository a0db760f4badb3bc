"""The worker catalogue: every worker type with the design's defaults, overridable per repository.

A repository may carry `.nightshift.toml` with a `[workers.<name>]` table per worker; its keys are
fields of `WorkerOverrides` (unknown keys are an error, not silently ignored). Blocks can pass the
same overrides programmatically.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nightshift.agents.base import ModelAlias
from nightshift.errors import ConfigError
from nightshift.schemas import AuditReport, PredictReport, UltralearnReport, _Report

WorkerMode = Literal["agent", "local", "codechange"]
Priority = Literal["critical", "normal", "low"]
SandboxProfile = Literal["strict", "permissive", "disabled"]
OutputKind = Literal["json", "markdown", "table"]
Ranking = Literal["audit", "testgaps", "predict", "default"]

READ_ONLY_TOOLS = ["Read", "Grep", "Glob"]
WRITE_TOOLS = ["Write", "Edit", "MultiEdit", "NotebookEdit"]
SOURCE_GLOBS = [
    "**/*.py", "**/*.js", "**/*.ts", "**/*.tsx", "**/*.jsx", "**/*.go", "**/*.rs", "**/*.java",
    "**/*.rb", "**/*.php", "**/*.c", "**/*.h", "**/*.cpp", "**/*.cs", "**/*.kt", "**/*.swift",
    "**/*.sh", "**/*.sql",
]  # fmt: skip
CONFIG_GLOBS = [
    "**/*.toml", "**/*.yaml", "**/*.yml", "**/*.json", "**/*.cfg", "**/*.ini", "**/Dockerfile",
    "**/.env*", "**/*.tf",
]  # fmt: skip
DOC_GLOBS = ["**/*.md", "**/*.rst", "**/*.txt"]


class WorkerSpec(BaseModel):
    """One worker type: how often, how important, how sandboxed, which model, what it writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    mode: WorkerMode
    description: str
    every_minutes: int | None = Field(description="schedule interval; None = manual only")
    priority: Priority
    enabled: bool
    sandbox: SandboxProfile | None = None
    model: ModelAlias | None = None
    output: OutputKind | None = None
    report_schema: type[_Report] | None = Field(default=None, description="pydantic schema of JSON output")
    include: list[str] = Field(default_factory=lambda: list(SOURCE_GLOBS))
    exclude: list[str] = Field(default_factory=list)
    budget_tokens: int = Field(default=60_000, gt=0, description="context budget per agent call (estimate)")
    ranking: Ranking = "default"
    max_chunks: int = Field(default=4, ge=1, description="map-reduce: at most this many agent calls per run")
    max_turns: int = Field(default=30, ge=1)
    timeout_s: float = Field(default=1800.0, gt=0)
    max_budget_usd: float | None = Field(default=None, gt=0)

    @property
    def is_agent(self) -> bool:
        return self.mode == "agent"

    @property
    def schedule_label(self) -> str:
        return "manual" if self.every_minutes is None else f"every {self.every_minutes} min"


class WorkerOverrides(BaseModel):
    """What a repository (or a block) may change about a worker."""

    model_config = ConfigDict(extra="forbid")

    every_minutes: int | None = None
    priority: Priority | None = None
    enabled: bool | None = None
    sandbox: SandboxProfile | None = None
    model: ModelAlias | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    budget_tokens: int | None = Field(default=None, gt=0)
    max_chunks: int | None = Field(default=None, ge=1)
    max_turns: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_budget_usd: float | None = Field(default=None, gt=0)


def _agent(name: str, description: str, **fields: object) -> WorkerSpec:
    return WorkerSpec.model_validate({"name": name, "mode": "agent", "description": description, **fields})


def _local(name: str, description: str, **fields: object) -> WorkerSpec:
    return WorkerSpec.model_validate(
        {"name": name, "mode": "local", "description": description, "output": "table", **fields}
    )


CATALOGUE: dict[str, WorkerSpec] = {
    spec.name: spec
    for spec in [
        _local("map", "Repository map: tree, languages, lines of code, Python import graph",
               every_minutes=15, priority="normal", enabled=True),
        _local("consolidate", "Merge findings across runs; prune old results",
               every_minutes=30, priority="low", enabled=True),
        _local("benchmark", "Run the configured benchmark/test command and track its trend",
               every_minutes=60, priority="low", enabled=False),
        _local("preload", "Warm the context index, agent binary and image",
               every_minutes=5, priority="low", enabled=False, output=None),
        _agent("audit", "Security audit: vulnerabilities with a risk score (JSON + SARIF)",
               every_minutes=30, priority="critical", enabled=True, sandbox="strict", model="haiku",
               output="json", report_schema=AuditReport, ranking="audit",
               include=SOURCE_GLOBS + CONFIG_GLOBS),
        _agent("optimize", "Performance: hot spots and concrete optimizations",
               every_minutes=60, priority="normal", enabled=True, sandbox="permissive", model="sonnet",
               output="markdown"),
        _agent("testgaps", "Missing tests: untested behaviour and the tests to write",
               every_minutes=60, priority="normal", enabled=True, sandbox="permissive", model="sonnet",
               output="markdown", ranking="testgaps"),
        _agent("document", "Documentation gaps: undocumented public API and stale docs",
               every_minutes=120, priority="low", enabled=False, sandbox="permissive", model="haiku",
               output="markdown", include=SOURCE_GLOBS + DOC_GLOBS),
        _agent("ultralearn", "Learn the codebase: conventions, lessons, open questions (JSON)",
               every_minutes=None, priority="normal", enabled=False, sandbox="strict", model="opus",
               output="json", report_schema=UltralearnReport, include=SOURCE_GLOBS + DOC_GLOBS),
        _agent("refactor", "Refactoring opportunities: duplication, complexity, naming",
               every_minutes=None, priority="normal", enabled=False, sandbox="permissive", model="sonnet",
               output="markdown"),
        _agent("deepdive", "Deep dive: architecture and risks of the codebase, in depth",
               every_minutes=None, priority="normal", enabled=False, sandbox="strict", model="opus",
               output="markdown", include=SOURCE_GLOBS + CONFIG_GLOBS + DOC_GLOBS),
        _agent("predict", "Predict the files likely to change next, from recent activity (JSON)",
               every_minutes=10, priority="low", enabled=False, sandbox="strict", model="haiku",
               output="json", report_schema=PredictReport, ranking="predict"),
    ]
}  # fmt: skip

AGENT_WORKERS = [name for name, spec in CATALOGUE.items() if spec.mode == "agent"]
LOCAL_WORKERS = [name for name, spec in CATALOGUE.items() if spec.mode == "local"]

REPO_CONFIG = ".nightshift.toml"


def load_repo_overrides(repo: Path) -> dict[str, WorkerOverrides]:
    """The `[workers.<name>]` tables of the repository's `.nightshift.toml` (none when absent)."""
    path = repo / REPO_CONFIG
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    workers = data.get("workers", {})
    unknown = sorted(set(workers) - set(CATALOGUE))
    if unknown:
        raise ConfigError(f"{path}: unknown worker(s) {', '.join(unknown)}; known: {', '.join(CATALOGUE)}")
    try:
        return {name: WorkerOverrides.model_validate(table) for name, table in workers.items()}
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid worker settings: {exc}") from exc


def resolve_worker(name: str, repo: Path | None = None, overrides: WorkerOverrides | None = None) -> WorkerSpec:
    """The spec of `name` with the repository's and then the caller's overrides applied."""
    if name not in CATALOGUE:
        raise ConfigError(f"unknown worker {name!r}; known: {', '.join(CATALOGUE)}")
    spec = CATALOGUE[name]
    layers = [load_repo_overrides(repo).get(name) if repo is not None else None, overrides]
    for layer in layers:
        if layer is not None:
            spec = spec.model_copy(update=layer.model_dump(exclude_none=True))
    return spec
