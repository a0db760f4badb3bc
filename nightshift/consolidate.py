"""The consolidate worker: one ledger of findings across all workers and runs, and retention.

Ledger (`results/<repo-key>/findings-ledger.json`): every finding by its stable fingerprint, with the
time it was first seen, last seen, and resolved (when the worker that reported it ran again, completed,
and no longer reports it). Only each worker's latest *completed* run counts: a failed run resolves
nothing. Retention: run folders, agent HOMEs (transcripts) older than `retention_days` are deleted,
except the run that `latest.json` points at; what was removed is reported.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nightshift.context.paths import resolve_repo
from nightshift.findings import Finding
from nightshift.local.models import LocalResult, ToolInfo, local_banner, python_tool
from nightshift.results import WorkerRun, load_latest, repo_key, state_dir

DEFAULT_RETENTION_DAYS = 14.0


class LedgerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    finding: Finding
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None = None
    seen_in_runs: int = 1


class Ledger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: dict[str, LedgerEntry] = Field(default_factory=dict)
    runs_merged: list[str] = Field(default_factory=list, description="run ids already merged")


def ledger_path(key: str) -> Path:
    return state_dir() / "results" / key / "findings-ledger.json"


def load_ledger(key: str) -> Ledger:
    path = ledger_path(key)
    return Ledger.model_validate_json(path.read_text()) if path.is_file() else Ledger()


def merge_run(ledger: Ledger, run: WorkerRun) -> None:
    """Fold one completed run into the ledger (idempotent per run id)."""
    if run.run_id in ledger.runs_merged or run.status != "completed":
        return
    seen_at = run.started_at
    current = {f.fingerprint: f for f in run.findings}
    for fingerprint, finding in current.items():
        entry = ledger.entries.get(fingerprint)
        if entry is None:
            ledger.entries[fingerprint] = LedgerEntry(finding=finding, first_seen=seen_at, last_seen=seen_at)
        else:
            entry.finding, entry.last_seen, entry.resolved_at = finding, max(entry.last_seen, seen_at), None
            entry.seen_in_runs += 1
    for fingerprint, entry in ledger.entries.items():
        same_worker = entry.finding.worker == run.worker
        if same_worker and fingerprint not in current and entry.resolved_at is None and entry.last_seen < seen_at:
            entry.resolved_at = seen_at
    ledger.runs_merged.append(run.run_id)


def _age_days(since: datetime, now: datetime) -> float:
    return round((now - since).total_seconds() / 86400, 2)


def prune(key: str, retention_days: float, now: float | None = None) -> list[dict[str, Any]]:
    """Delete run folders and agent HOMEs older than the retention; keep what latest.json points at."""
    cutoff = (now or time.time()) - retention_days * 86400
    removed: list[dict[str, Any]] = []
    root = state_dir() / "results" / key
    keep = set()
    for latest in root.glob("*/latest.json"):
        run_dir = json.loads(latest.read_text()).get("run_dir")
        if run_dir:
            keep.add(Path(run_dir).resolve())
    candidates = [(p, "run") for p in root.glob("*/runs/*")]
    candidates += [(p, "agent-home") for p in (state_dir() / "homes" / key).glob("*/*")]
    for path, kind in sorted(candidates):
        if not path.is_dir() or path.resolve() in keep or path.stat().st_mtime >= cutoff:
            continue
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path, ignore_errors=True)
        removed.append({"kind": kind, "path": str(path), "bytes": size})
    return removed


def run_consolidate(repo: Path, *, retention_days: float = DEFAULT_RETENTION_DAYS) -> LocalResult:
    root = resolve_repo(repo)
    key = repo_key(root)
    ledger = load_ledger(key)
    workers = sorted(p.name for p in (state_dir() / "results" / key).glob("*") if (p / "latest.json").is_file())
    for worker in workers:
        run = load_latest(key, worker)
        if run is not None:
            merge_run(ledger, run)
    path = ledger_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ledger.model_dump_json(indent=2))
    removed = prune(key, retention_days)

    now = datetime.now(UTC)
    open_entries = [e for e in ledger.entries.values() if e.resolved_at is None]
    open_entries.sort(key=lambda e: (e.finding.severity.rank, e.first_seen))
    open_rows = [
        {
            "severity": e.finding.severity.value,
            "worker": e.finding.worker,
            "file": e.finding.file,
            "line": e.finding.line,
            "title": e.finding.title,
            "age_days": _age_days(e.first_seen, now),
            "first_seen": e.first_seen.isoformat(),
            "last_seen": e.last_seen.isoformat(),
            "runs": e.seen_in_runs,
            "fingerprint": e.finding.fingerprint,
        }
        for e in open_entries
    ]
    resolved = [e for e in ledger.entries.values() if e.resolved_at is not None]
    by_severity: dict[str, int] = {}
    for entry in open_entries:
        by_severity[entry.finding.severity.value] = by_severity.get(entry.finding.severity.value, 0) + 1
    method = (
        f"merged the latest completed run of {len(workers)} worker(s) ({', '.join(workers) or 'none'}) into the "
        f"findings ledger by fingerprint; pruned run folders and agent homes older than {retention_days:g} days."
    )
    tools: list[ToolInfo] = [python_tool()]
    freed = sum(r["bytes"] for r in removed)
    summary = "\n\n".join(
        [
            local_banner(method, tools),
            f"## Findings ledger\n\n{len(open_entries)} open finding(s), {len(resolved)} resolved, "
            f"{len(ledger.entries)} known in all. Open by severity: "
            + (", ".join(f"{k} {v}" for k, v in by_severity.items()) or "none")
            + ".",
            f"## Retention\n\nRemoved {len(removed)} folder(s), {freed} bytes"
            + (":\n\n" + "\n".join(f"- {r['kind']}: `{r['path']}`" for r in removed) if removed else "."),
        ]
    )
    return LocalResult(
        worker="consolidate",
        method=method,
        tools=tools,
        findings=[],
        tables={
            "open_findings": open_rows,
            "by_severity": [{"severity": k, "open": v} for k, v in by_severity.items()],
            "removed": removed,
        },
        summary_markdown=summary,
        report={"open": len(open_entries), "resolved": len(resolved), "removed": len(removed), "freed_bytes": freed},
    )
