"""The one module that writes Prefect artifacts.

Keys are stable per repository + worker (`<worker>-<repo-key>-<kind>`), so the UI keeps a version
history of each. Every text goes through secret redaction once more before it leaves: a last guard
behind the redaction of the context itself.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import pandas as pd
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from nightshift.agents.base import TranscriptEntry
from nightshift.context.secrets import redact
from nightshift.findings import Finding
from nightshift.results import WorkerRun

MAX_TRANSCRIPT_ENTRY = 4000
_MODE_LABEL = {"agent": "AI agent", "local": "LOCAL analysis (no AI)", "hybrid": "HYBRID: local + AI triage"}


def artifact_key(worker: str, repo_key: str, kind: str) -> str:
    return f"{worker}-{repo_key}-{kind}"[:200]


def scrub(text: str) -> str:
    return redact(text, "artifact.md")[0]


def findings_rows(findings: list[Finding]) -> list[dict[str, Any]]:
    """Findings as table rows, most severe first, then by file and line."""
    if not findings:
        return []
    frame = pd.DataFrame([f.model_dump(mode="json") for f in findings])
    frame["rank"] = [f.severity.rank for f in findings]
    frame["line"] = frame["line"].astype("Int64")
    frame = frame.sort_values(["rank", "file", "line", "title"], na_position="last", kind="stable")
    columns = ["severity", "file", "line", "title", "rule", "source", "worker", "fingerprint", "description"]
    records = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict(orient="records")
    return [{str(k): scrub(v) if isinstance(v, str) else v for k, v in row.items()} for row in records]


def cost_rows(run: WorkerRun) -> list[dict[str, Any]]:
    cost = run.cost
    return [
        {
            "worker": run.worker,
            "mode": run.mode,
            "method": run.method,
            "model": cost.model,
            "cli_version": cost.cli_version,
            "agent_calls": cost.agent_calls,
            "turns": cost.num_turns,
            "input_tokens": cost.input_tokens,
            "output_tokens": cost.output_tokens,
            "cache_read_tokens": cost.cache_read_tokens,
            "cost_usd": round(cost.cost_usd, 6),
            "duration_s": round(cost.duration_s, 2),
            "reused_from": run.reused_from,
        }
    ]


def report_markdown(run: WorkerRun) -> str:
    lines = [f"# {run.worker}: {run.repo}", ""]
    lines.append(f"**Mode:** {_MODE_LABEL[run.mode]} — {run.method}  ")
    lines.append(f"**Status:** {run.status}  ")
    if run.reused_from:
        lines.append(
            f"**Reused:** the repository, prompt, settings and model are unchanged since run "
            f"`{run.reused_from}`; its result is shown again and **0 model calls** were made.  "
        )
    cost = run.cost
    if cost.agent_calls or run.mode != "local":
        lines.append(
            f"**Model:** {cost.model or '-'} · **CLI:** {cost.cli_version or '-'}"
            f" · **calls:** {cost.agent_calls}"
            f" · **tokens:** {cost.input_tokens} in / {cost.output_tokens} out · **cost:** ${cost.cost_usd:.4f}  "
        )
    if run.chunks > 1:
        lines.append(f"**Chunks:** {run.chunks} (map-reduce)  ")
    if run.redactions:
        lines.append(f"**Secrets redacted before the prompt:** {run.redactions}  ")
    if run.error:
        lines += ["", "## Error", "", run.error]
    if run.summary:
        lines += ["", "## Summary", "", run.summary]
    if run.triage:
        confirmed = sum(t["verdict"] == "confirm" for t in run.triage)
        lines += [
            "",
            f"## Triage of local findings ({confirmed} confirmed, {len(run.triage) - confirmed} dismissed)",
            "",
        ]
        lines += [
            f"- {t['id']} **{t['verdict']}** `{t.get('file') or ''}` {t.get('title') or ''} — {t['reason']}"
            for t in run.triage
        ]
    if run.findings:
        lines += ["", f"## Findings ({len(run.findings)})", ""]
        for f in sorted(run.findings, key=lambda f: (f.severity.rank, f.file or "", f.line or 0)):
            where = f"`{f.file}:{f.line}`" if f.file and f.line else (f"`{f.file}`" if f.file else "")
            detail = f" — {f.description}" if f.description and f.description != f.title else ""
            lines.append(f"- **{f.severity.value}** {where} {f.title}{detail}")
    elif run.status in ("completed", "reused"):
        lines += ["", "## Findings", "", "None."]
    if run.markdown:
        lines += ["", "---", "", run.markdown]
    if run.raw_output:
        lines += ["", "## Raw agent output (did not validate)", "", "```", run.raw_output[:20000], "```"]
    if run.run_dir:
        lines += ["", f"Files: `{run.run_dir}`"]
    return scrub("\n".join(lines) + "\n")


def transcript_markdown(entries: list[TranscriptEntry]) -> str:
    lines = ["# Transcript", ""]
    for entry in entries:
        text = entry.text if len(entry.text) <= MAX_TRANSCRIPT_ENTRY else entry.text[:MAX_TRANSCRIPT_ENTRY] + " …"
        lines.append(f"**{entry.role} · {entry.kind}**")
        lines += ["", "```", text.replace("```", "ʼʼʼ"), "```", ""]
    return scrub("\n".join(lines))


def publish_run(run: WorkerRun, transcript: list[TranscriptEntry] | None = None) -> dict[str, str]:
    """Create the run's artifacts; returns kind → key."""
    keys = {kind: artifact_key(run.worker, run.repo_key, kind) for kind in ("report", "findings", "cost")}
    label = _MODE_LABEL[run.mode]
    create_markdown_artifact(report_markdown(run), key=keys["report"], description=f"{run.worker} report ({label})")
    create_table_artifact(findings_rows(run.findings), key=keys["findings"], description=f"{run.worker} findings")
    create_table_artifact(cost_rows(run), key=keys["cost"], description=f"{run.worker} cost, tokens, model")
    if run.triage:
        keys["triage"] = publish_table(
            artifact_key(run.worker, run.repo_key, "triage"),
            run.triage,
            f"{run.worker}: agent triage of local findings",
        )
    if transcript:
        keys["transcript"] = artifact_key(run.worker, run.repo_key, "transcript")
        create_markdown_artifact(
            transcript_markdown(transcript),
            key=keys["transcript"],
            description=f"{run.worker} agent transcript",
        )
    return keys


def publish_markdown(key: str, markdown: str, description: str) -> str:
    create_markdown_artifact(scrub(markdown), key=key, description=description)
    return key


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> str:
    clean = [{k: scrub(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
    create_table_artifact(clean, key=key, description=description)
    return key


class Progress:
    """A progress artifact for multi-chunk runs."""

    def __init__(self, worker: str, repo_key: str, total: int) -> None:
        self.total = max(1, total)
        self.done = 0
        self.key = artifact_key(worker, repo_key, "progress")
        created = create_progress_artifact(0.0, key=self.key, description=f"{worker}: 0/{self.total} chunks")
        self._id = cast(UUID, created)

    def advance(self) -> None:
        self.done += 1
        update_progress_artifact(
            self._id, 100.0 * self.done / self.total, description=f"{self.done}/{self.total} chunks"
        )
