"""The analysis pipeline as plain functions; `flows/analysis.py` wraps each step in a Prefect task.

    gather context ─▶ render one prompt per chunk ─▶ run the agent per chunk ─▶ parse (+1 repair turn)
                                                                             ─▶ merge chunks ─▶ WorkerRun

Nothing here talks to Prefect; everything is testable with a real CLI and the fake model API.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nightshift.agents.base import AgentAdapter, AgentOutcome, AgentRequest, TranscriptEntry
from nightshift.catalogue import READ_ONLY_TOOLS, WRITE_TOOLS, WorkerSpec
from nightshift.context import (
    ContextBundle,
    ContextFile,
    ContextSignals,
    ContextSpec,
    RankingPolicy,
    gather_context,
)
from nightshift.errors import OutputError
from nightshift.findings import Finding
from nightshift.parsing import parse_json_report, parse_markdown_report, report_findings
from nightshift.prompts import render_prompt
from nightshift.results import RunCost, state_dir
from nightshift.runner import run_agent_checked
from nightshift.schemas import AuditReport, PredictReport, TriageVerdict, UltralearnReport, _Report

_LANGUAGE = {".py": "python", ".js": "javascript", ".ts": "typescript", ".go": "go", ".rs": "rust",
             ".java": "java", ".rb": "ruby", ".sh": "bash", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml",
             ".json": "json", ".md": "markdown", ".sql": "sql", ".c": "c", ".cpp": "cpp"}  # fmt: skip
WORKSPACE_IGNORE = shutil.ignore_patterns("node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".tox")


class ChunkPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=1)
    total: int = Field(ge=1)
    prompt: str
    files: list[str]


class ChunkResult(BaseModel):
    """What one agent call (plus its repair turn, if any) produced."""

    model_config = ConfigDict(extra="forbid")

    index: int
    report: dict[str, Any] | None = None
    markdown: str = ""
    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)
    cost: RunCost
    session_id: str | None = None
    repaired: bool = False
    triage: list[TriageVerdict] = Field(default_factory=list)
    transcript: list[TranscriptEntry] = Field(default_factory=list)


MAX_TRIAGE = 30


def triage_candidates(findings: list[Finding]) -> list[dict[str, Any]]:
    """The most severe local findings (at most MAX_TRIAGE), with ids L1, L2, ... for the agent to triage."""
    ranked = sorted(findings, key=lambda f: (f.severity.rank, f.file or "", f.line or 0, f.rule))[:MAX_TRIAGE]
    return [{"id": f"L{i}", **f.model_dump(mode="json")} for i, f in enumerate(ranked, start=1)]


def context_spec_for(spec: WorkerSpec) -> ContextSpec:
    """Over-budget repositories are split into at most `spec.max_chunks` budget-sized chunks."""
    return ContextSpec(
        include=tuple(spec.include),
        exclude=tuple(spec.exclude),
        budget_tokens=spec.budget_tokens,
        ranking=RankingPolicy.for_worker(spec.ranking),
        chunking=spec.max_chunks > 1,
        max_chunks=spec.max_chunks,
    )


def collect_context(
    repo: Path, spec: WorkerSpec, *, signals: ContextSignals | None = None, cache_dir: Path | None = None
) -> ContextBundle:
    return gather_context(repo, context_spec_for(spec), signals=signals, cache_dir=cache_dir)


def _file_view(file: ContextFile) -> dict[str, Any]:
    return {
        "path": file.path,
        "content": file.content,
        "truncated": file.truncated,
        "language": _LANGUAGE.get(Path(file.path).suffix, ""),
    }


def render_chunk_prompts(
    spec: WorkerSpec, repo: Path, bundle: ContextBundle, *, local_findings: list[dict[str, Any]] | None = None
) -> list[ChunkPrompt]:
    """`local_findings` are `triage_candidates` rows; each chunk lists those about its files."""
    """One prompt per chunk of the context (one chunk when the repository fits the budget)."""
    chunks = bundle.chunks or [bundle.files]
    schema = json.dumps(spec.report_schema.json_schema(), indent=2) if spec.report_schema else ""
    prompts = []
    for index, files in enumerate(chunks, start=1):
        in_chunk = {f.path for f in files}
        variables = {
            "worker": spec.model_dump(mode="json", exclude={"report_schema"}),
            "repo": {"name": repo.name},
            "chunk": {"index": index, "total": len(chunks)},
            "context": {
                "files": [_file_view(f) for f in files],
                "total_tokens": sum(f.tokens for f in files),
                "skipped_count": len(bundle.skipped),
                "redaction_count": len(bundle.redactions),
            },
            "local_findings": [f for f in (local_findings or []) if f["file"] is None or f["file"] in in_chunk],
            "schema_json": schema,
        }
        prompt = render_prompt(f"{spec.name}.md.j2", variables)
        prompts.append(ChunkPrompt(index=index, total=len(chunks), prompt=prompt, files=sorted(in_chunk)))
    return prompts


def agent_request(
    spec: WorkerSpec, prompt: str, *, workdir: Path, home: Path, model: str | None = None
) -> AgentRequest:
    """Strict: read-only tools only. Permissive: all tools, edits accepted, in a disposable workspace."""
    strict = spec.sandbox == "strict"
    return AgentRequest(
        prompt=prompt,
        cwd=workdir,
        model=model or spec.model or "sonnet",
        max_turns=spec.max_turns,
        permission_mode="default" if strict else "acceptEdits",
        tools=list(READ_ONLY_TOOLS) if strict else None,
        allowed_tools=list(READ_ONLY_TOOLS),
        disallowed_tools=[*WRITE_TOOLS, "Bash"] if strict else [],
        json_schema=spec.report_schema.json_schema() if spec.report_schema else None,
        max_budget_usd=spec.max_budget_usd,
        timeout_s=spec.timeout_s,
        timeout_setting=f"timeout_s of [workers.{spec.name}] in .nightshift.toml",
        home=home,
    )


@contextmanager
def workspace(repo: Path, spec: WorkerSpec) -> Iterator[Path]:
    """Strict workers read the repository itself; permissive ones get a disposable copy."""
    if spec.sandbox == "strict":
        yield repo
        return
    parent = Path(tempfile.mkdtemp(prefix=f"nightshift-{spec.name}-"))
    try:
        copy = parent / repo.name
        shutil.copytree(repo, copy, symlinks=True, ignore=WORKSPACE_IGNORE)
        yield copy
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def agent_home(repo_key: str, worker: str, run_id: str, chunk: int) -> Path:
    return state_dir() / "homes" / repo_key / worker / f"{run_id}-{chunk}"


def _cost(outcomes: list[AgentOutcome]) -> RunCost:
    cost = RunCost()
    for outcome in outcomes:
        cost.add(outcome)
    return cost


def run_chunk(
    spec: WorkerSpec,
    chunk: ChunkPrompt,
    request: AgentRequest,
    *,
    adapter: AgentAdapter,
) -> ChunkResult:
    """Run the agent on one chunk; a JSON answer that does not validate gets one repair turn on the
    same session. Still invalid → `OutputError` carrying the raw answer (never an empty success)."""
    outcome = run_agent_checked(request, adapter=adapter)
    outcomes = [outcome]
    transcript = adapter.transcript(outcome)
    if spec.report_schema is None:
        parsed_md = parse_markdown_report(outcome.final_text, spec.name)
        return ChunkResult(
            index=chunk.index,
            markdown=outcome.final_text,
            summary=parsed_md.summary,
            findings=parsed_md.findings,
            cost=_cost(outcomes),
            session_id=outcome.session_id,
            triage=parsed_md.triage,
            transcript=transcript,
        )
    parsed = parse_json_report(outcome.structured_output, outcome.final_text, spec.report_schema)
    repaired = False
    if parsed.report is None:
        repair_prompt = render_prompt(
            "repair.md.j2",
            {"errors": parsed.errors, "schema_json": json.dumps(spec.report_schema.json_schema(), indent=2)},
        )
        repair = request.model_copy(
            update={"prompt": repair_prompt, "resume_id": outcome.session_id, "session_id": None}
        )
        second = run_agent_checked(repair, adapter=adapter)
        outcomes.append(second)
        transcript += adapter.transcript(second)
        parsed = parse_json_report(second.structured_output, second.final_text, spec.report_schema)
        repaired = True
        if parsed.report is None:
            raise OutputError(
                f"{spec.name}: the agent's answer did not validate after one repair turn: "
                + "; ".join(parsed.errors[:5]),
                raw=parsed.raw,
                errors=parsed.errors,
            )
    report = parsed.report
    assert report is not None
    return ChunkResult(
        index=chunk.index,
        report=report.model_dump(mode="json"),
        summary=_json_summary(report),
        findings=report_findings(report, spec.name),
        cost=_cost(outcomes),
        session_id=outcomes[-1].session_id,
        repaired=repaired,
        triage=report.triage,
        transcript=transcript,
    )


def _json_summary(report: _Report) -> str:
    if isinstance(report, AuditReport):
        return f"Risk score {report.riskScore}/100; {len(report.vulnerabilities)} vulnerabilities."
    if isinstance(report, PredictReport):
        return report.summary
    if isinstance(report, UltralearnReport):
        return f"{len(report.lessons)} lessons, {len(report.conventions)} conventions."
    return ""


def merge_reports(spec: WorkerSpec, reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Reduce step of map-reduce for JSON workers."""
    if not reports or spec.report_schema is None:
        return None
    if len(reports) == 1:
        return reports[0]
    if spec.report_schema is AuditReport:
        audits = [AuditReport.model_validate(r) for r in reports]
        merged: _Report = AuditReport(
            vulnerabilities=[v for a in audits for v in a.vulnerabilities],
            riskScore=max(a.riskScore for a in audits),
            recommendations=list(dict.fromkeys(r for a in audits for r in a.recommendations)),
        )
    elif spec.report_schema is PredictReport:
        predicts = [PredictReport.model_validate(r) for r in reports]
        best: dict[str, Any] = {}
        for prediction in (p for report in predicts for p in report.predictions):
            if prediction.file not in best or prediction.likelihood > best[prediction.file].likelihood:
                best[prediction.file] = prediction
        merged = PredictReport(
            predictions=sorted(best.values(), key=lambda p: -p.likelihood),
            summary=" ".join(p.summary for p in predicts),
        )
    else:
        learns = [UltralearnReport.model_validate(r) for r in reports]
        merged = UltralearnReport(
            lessons=[lesson for r in learns for lesson in r.lessons],
            conventions=list(dict.fromkeys(c for r in learns for c in r.conventions)),
            open_questions=list(dict.fromkeys(q for r in learns for q in r.open_questions)),
        )
    return merged.model_dump(mode="json")


def merge_costs(costs: list[RunCost]) -> RunCost:
    total = RunCost()
    for cost in costs:
        total.merge(cost)
    return total
