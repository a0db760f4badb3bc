"""The eight analysis workers as Prefect flows on one shared pipeline.

Each worker is its own flow (named after the worker, so deployments read `audit/<name>`); they all
call `run_analysis`, which only orchestrates tasks wrapping the plain functions of
`nightshift.analysis`, `nightshift.results` and `nightshift.artifacts`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.futures import PrefectFuture

from flows.common import (
    agent_adapter,
    agent_available,
    agent_task_options,
    flow_options,
    rename_flow_run,
    run_guarded,
)
from nightshift import analysis
from nightshift.agents.base import AgentAdapter, TranscriptEntry
from nightshift.artifacts import Progress, publish_run
from nightshift.catalogue import WorkerOverrides, WorkerSpec, resolve_worker
from nightshift.context import ContextBundle, ContextSignals
from nightshift.context.paths import resolve_repo
from nightshift.errors import NightshiftError, OutputError
from nightshift.limits import agent_slot
from nightshift.local.models import LocalResult
from nightshift.local.workers import run_local
from nightshift.results import WorkerRun, find_fresh, freshness_key, repo_key, save_run
from nightshift.sarif import to_sarif

RunModeParam = Literal["auto", "agent", "local"]


# Local analyses cheap and safe enough to steer every agent run (static only: nothing of the repo runs).
HYBRID_OPTIONS: dict[str, dict[str, Any]] = {
    "audit": {}, "document": {}, "refactor": {}, "optimize": {}, "predict": {}, "testgaps": {"run_tests": False},
}  # fmt: skip


@task(name="local-findings")
def local_findings_task(worker: str, repo: Path) -> LocalResult | None:
    """Hybrid runs: the worker's local analysis, whose findings steer the context and get triaged."""
    if worker not in HYBRID_OPTIONS:
        return None
    try:
        return run_local(worker, repo, **HYBRID_OPTIONS[worker])
    except NightshiftError as exc:
        get_run_logger().warning("local analysis for %s failed, continuing agent-only: %s", worker, exc)
        return None


@task(name="gather-context")
def gather_context_task(repo: Path, spec: WorkerSpec, signals: ContextSignals | None = None) -> ContextBundle:
    bundle = analysis.collect_context(repo, spec, signals=signals)
    get_run_logger().info(
        "context: %d files, ~%d tokens, %d skipped, %d secrets redacted, %d chunk(s)",
        len(bundle.files),
        bundle.total_tokens,
        len(bundle.skipped),
        len(bundle.redactions),
        len(bundle.chunks) or 1,
    )
    return bundle


@task(name="render-prompts")
def render_prompts_task(
    spec: WorkerSpec, repo: Path, bundle: ContextBundle, local_findings: list[dict[str, Any]]
) -> list[analysis.ChunkPrompt]:
    return analysis.render_chunk_prompts(spec, repo, bundle, local_findings=local_findings)


@task(name="run-agent", **agent_task_options())  # retries of transient failures only (flows.common)
def run_agent_task(
    spec: WorkerSpec, chunk: analysis.ChunkPrompt, workdir: Path, home: Path, model: str | None
) -> analysis.ChunkResult:
    from prefect.runtime import flow_run

    from nightshift.sandbox.base import use_sandbox
    from nightshift.sandbox.select import sandbox_for

    adapter: AgentAdapter = agent_adapter()
    request = analysis.agent_request(spec, chunk.prompt, workdir=workdir, home=home, model=model)
    # The worker's profile picks the sandbox: strict = the repository read-only in a container,
    # permissive = this workspace copy writable in a container, disabled = a plain process.
    sandbox = sandbox_for(spec.sandbox, flow_run_id=flow_run.get_id(), worker=spec.name)
    logger = get_run_logger()
    if sandbox.backend == "process" and sandbox.profile != "disabled":
        logger.warning("sandbox degraded: %s profile %s runs as a plain process", spec.name, sandbox.profile)
    else:
        logger.info("sandbox: %s profile on the %s backend", sandbox.profile, sandbox.backend)
    with agent_slot(adapter.name), use_sandbox(sandbox):
        return analysis.run_chunk(spec, chunk, request, adapter=adapter)


@task(name="persist-results")
def persist_task(run: WorkerRun, transcript: list[TranscriptEntry]) -> dict[str, str]:
    files = {"report.md": run.markdown or run.summary}
    if run.report is not None:
        files["report.json"] = json.dumps(run.report, indent=2)
    if run.worker == "audit" and run.status in ("completed", "reused"):
        files["audit.sarif"] = json.dumps(to_sarif(run.findings, tool_name=f"nightshift-audit ({run.mode})"), indent=2)
    if transcript:
        files["transcript.jsonl"] = "\n".join(e.model_dump_json() for e in transcript) + "\n"
    save_run(run, files)
    keys = publish_run(run, transcript)
    get_run_logger().info("artifacts: %s; files in %s", ", ".join(keys.values()), run.run_dir)
    return keys


def _reuse(fresh: WorkerRun) -> WorkerRun:
    """The fresh run shown again: new id, no cost, pointing at the run that paid for it."""
    return fresh.model_copy(
        update={
            "run_id": uuid.uuid4().hex[:12],
            "status": "reused",
            "reused_from": fresh.reused_from or fresh.run_id,
            "cost": fresh.cost.model_copy(update={"agent_calls": 0, "cost_usd": 0.0, "input_tokens": 0,
                                                  "output_tokens": 0, "num_turns": 0, "duration_s": 0.0}),
            "run_dir": None,
        }
    )  # fmt: skip


def run_analysis(
    worker: str,
    repo: str,
    *,
    force: bool = False,
    mode: RunModeParam = "auto",
    model: str | None = None,
    overrides: WorkerOverrides | None = None,
) -> dict[str, Any]:
    """Orchestrate one analysis worker run; returns status, artifact keys and the run folder."""
    logger = get_run_logger()
    repo_path = resolve_repo(Path(repo))
    spec = resolve_worker(worker, repo_path, overrides)
    key = repo_key(repo_path)
    if mode == "local" or (mode == "auto" and not agent_available()):
        from flows.local import run_local_fallback

        rename_flow_run(f"{worker}-local-{repo_path.name}")
        return run_local_fallback(spec, repo_path, key)

    local = local_findings_task(worker, repo_path)
    hybrid = local is not None
    rename_flow_run(f"{worker}-{'hybrid' if hybrid else 'agent'}-{repo_path.name}")
    candidates = analysis.triage_candidates(local.findings) if local else []
    signals = ContextSignals(flagged=frozenset(f.file for f in local.findings if f.file)) if local else None
    bundle = gather_context_task(repo_path, spec, signals)
    prompts = render_prompts_task(spec, repo_path, bundle, candidates)
    chosen_model = model or spec.model
    fresh_key = freshness_key(
        tree_hash=bundle.tree_hash,
        worker=worker,
        prompt="\n\x1e".join(p.prompt for p in prompts),
        config=spec.model_dump(mode="json", exclude={"report_schema"}),
        model=chosen_model,
    )
    fresh = None if force else find_fresh(key, worker, fresh_key)
    if fresh is not None:
        logger.info("fresh result of run %s reused: 0 model calls", fresh.run_id)
        run = _reuse(fresh)
        return {"status": run.status, "artifacts": persist_task(run, []), "run_dir": run.run_dir}

    tools = ", ".join(t.label() for t in local.tools) if local else ""
    method = f"claude-code {chosen_model}" + (
        f", triaging {len(candidates)} local finding(s) of {tools}" if local else ""
    )
    run = WorkerRun(
        worker=worker, repo=str(repo_path), repo_key=key, mode="hybrid" if hybrid else "agent", method=method,
        status="completed", freshness_key=fresh_key, chunks=len(prompts), redactions=len(bundle.redactions),
    )  # fmt: skip
    progress = Progress(worker, key, len(prompts)) if len(prompts) > 1 else None
    with analysis.workspace(repo_path, spec) as workdir:
        futures: list[PrefectFuture[analysis.ChunkResult]] = [
            run_agent_task.submit(
                spec, chunk, workdir, analysis.agent_home(key, worker, run.run_id, chunk.index), chosen_model
            )
            for chunk in prompts
        ]
        results: list[analysis.ChunkResult] = []
        try:
            for future in futures:
                results.append(future.result())
                if progress:
                    progress.advance()
        except OutputError as exc:
            run.status, run.error, run.raw_output = "failed", str(exc), exc.raw
            persist_task(run, [])
            raise
    results.sort(key=lambda r: r.index)
    run.cost = analysis.merge_costs([r.cost for r in results])
    run.report = analysis.merge_reports(spec, [r.report for r in results if r.report is not None])
    run.findings = [f for r in results for f in r.findings]
    run.summary = "\n\n".join(r.summary for r in results if r.summary)
    run.markdown = "\n\n---\n\n".join(r.markdown for r in results if r.markdown)
    by_id = {c["id"]: c for c in candidates}
    run.triage = [
        {**t.model_dump(mode="json"), **{k: by_id[t.id].get(k) for k in ("rule", "file", "line", "title")}}
        for r in results
        for t in r.triage
        if t.id in by_id
    ]
    transcript = [entry for r in results for entry in r.transcript]
    keys = persist_task(run, transcript)
    return {"status": run.status, "artifacts": keys, "run_dir": run.run_dir, "findings": len(run.findings)}


def _analysis_flow(worker: str) -> Any:
    spec = resolve_worker(worker)

    @flow(name=worker, description=spec.description, log_prints=True, **flow_options())
    def worker_flow(
        repo: str = ".", force: bool = False, mode: RunModeParam = "auto", model: str | None = None
    ) -> dict[str, Any]:
        # a budget refusal ends the run `Refused`; flow retries only after transient failures
        result = run_guarded(worker, repo, lambda: run_analysis(worker, repo, force=force, mode=mode, model=model))
        return result  # type: ignore[no-any-return]

    return worker_flow


audit = _analysis_flow("audit")
optimize = _analysis_flow("optimize")
testgaps = _analysis_flow("testgaps")
document = _analysis_flow("document")
ultralearn = _analysis_flow("ultralearn")
refactor = _analysis_flow("refactor")
deepdive = _analysis_flow("deepdive")
predict = _analysis_flow("predict")

ANALYSIS_FLOWS = {
    "audit": audit, "optimize": optimize, "testgaps": testgaps, "document": document,
    "ultralearn": ultralearn, "refactor": refactor, "deepdive": deepdive, "predict": predict,
}  # fmt: skip
