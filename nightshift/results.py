"""Where worker results live on disk, and the skip-if-fresh key.

    $NIGHTSHIFT_STATE_DIR (default ~/.local/share/nightshift)
    └── results/<repo-key>/<worker>/
        ├── latest.json                 the last completed run (what skip-if-fresh compares against)
        └── runs/<stamp>-<id>/          one folder per run: report.md, report.json, audit.sarif,
                                        transcript.jsonl, run.json

The freshness key is sha256 of (repository tree hash, worker, rendered prompt + config hash, model):
the same repository content, prompt, settings and model give the same key, and a fresh result is
reused with zero model calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nightshift.agents.base import AgentOutcome
from nightshift.findings import Finding

RunMode = Literal["agent", "local", "hybrid"]
RunStatus = Literal["completed", "failed", "reused", "needs-agent", "refused"]


def state_dir() -> Path:
    configured = os.environ.get("NIGHTSHIFT_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".local" / "share" / "nightshift"


def repo_key(repo: Path) -> str:
    """A readable, stable, artifact-key-safe name for a repository: `<dir-name>-<hash of its path>`."""
    resolved = repo.resolve()
    slug = re.sub(r"[^a-z0-9]+", "-", resolved.name.lower()).strip("-")[:40] or "repo"
    return f"{slug}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"


def freshness_key(*, tree_hash: str, worker: str, prompt: str, config: dict[str, Any], model: str | None) -> str:
    prompt_and_config = hashlib.sha256(prompt.encode() + json.dumps(config, sort_keys=True, default=str).encode())
    parts = [tree_hash, worker, prompt_and_config.hexdigest(), model or "local"]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class RunCost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    cli_version: str | None = None
    agent_calls: int = 0
    num_turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0

    def add(self, outcome: AgentOutcome) -> None:
        """Count one agent call: its tokens, its own cost (`run_cost_usd`), its time."""
        self.agent_calls += 1
        self.model = outcome.model or self.model
        self.cli_version = outcome.cli_version or self.cli_version
        self.num_turns += outcome.num_turns or 0
        self.input_tokens += outcome.usage.input_tokens
        self.output_tokens += outcome.usage.output_tokens
        self.cache_read_tokens += outcome.usage.cache_read_input_tokens
        self.cache_creation_tokens += outcome.usage.cache_creation_input_tokens
        self.cost_usd += outcome.run_cost_usd or 0.0
        self.duration_s += outcome.duration_s

    def merge(self, other: RunCost) -> None:
        self.model = other.model or self.model
        self.cli_version = other.cli_version or self.cli_version
        for name in ("agent_calls", "num_turns", "input_tokens", "output_tokens", "cache_read_tokens",
                     "cache_creation_tokens", "cost_usd", "duration_s"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))


class WorkerRun(BaseModel):
    """One worker run as persisted and as shown in artifacts."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    worker: str
    repo: str
    repo_key: str
    mode: RunMode
    method: str = Field(description="exactly what ran, e.g. 'claude-code haiku' or 'bandit 1.8 + secrets'")
    status: RunStatus
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    freshness_key: str | None = None
    reused_from: str | None = Field(default=None, description="run id whose result was reused")
    chunks: int = 1
    cost: RunCost = Field(default_factory=RunCost)
    summary: str = ""
    markdown: str = ""
    findings: list[Finding] = Field(default_factory=list)
    report: dict[str, Any] | None = None
    triage: list[dict[str, Any]] = Field(default_factory=list, description="hybrid: the agent's verdicts")
    raw_output: str | None = Field(default=None, description="the agent's answer when it did not validate")
    error: str | None = None
    redactions: int = 0
    run_dir: str | None = None


def results_dir(repo_key_: str, worker: str) -> Path:
    return state_dir() / "results" / repo_key_ / worker


def new_run_dir(run: WorkerRun) -> Path:
    stamp = run.started_at.strftime("%Y%m%dT%H%M%SZ")
    path = results_dir(run.repo_key, run.worker) / "runs" / f"{stamp}-{run.run_id}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_run(run: WorkerRun, files: dict[str, str]) -> Path:
    """Write the run's files and run.json; a completed run also becomes `latest.json`."""
    run_dir = Path(run.run_dir) if run.run_dir else new_run_dir(run)
    run.run_dir = str(run_dir)
    for name, text in files.items():
        _atomic_write(run_dir / name, text)
    payload = run.model_dump_json(indent=2)
    _atomic_write(run_dir / "run.json", payload)
    if run.status == "completed":
        _atomic_write(results_dir(run.repo_key, run.worker) / "latest.json", payload)
    return run_dir


def load_latest(repo_key_: str, worker: str) -> WorkerRun | None:
    path = results_dir(repo_key_, worker) / "latest.json"
    if not path.is_file():
        return None
    try:
        return WorkerRun.model_validate_json(path.read_text())
    except ValueError:
        return None


def find_fresh(repo_key_: str, worker: str, key: str) -> WorkerRun | None:
    latest = load_latest(repo_key_, worker)
    return latest if latest is not None and latest.freshness_key == key else None
