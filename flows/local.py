"""Local workers (map, consolidate, benchmark, preload) and the local fallback of the agent workers.

Everything here is real analysis without an AI model, and says so: every artifact carries the
"Local analysis (no AI agent)" banner, `mode="local"` and a flow-run name containing `local`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.analysis import persist_task
from flows.common import rename_flow_run
from nightshift.artifacts import artifact_key, publish_table
from nightshift.benchmark import run_benchmark
from nightshift.catalogue import WorkerSpec, resolve_worker
from nightshift.consolidate import run_consolidate
from nightshift.context.paths import resolve_repo
from nightshift.local.models import LocalResult
from nightshift.local.workers import run_local
from nightshift.preload import run_preload
from nightshift.results import WorkerRun, repo_key


@task(name="local-analysis")
def local_analysis_task(worker: str, repo: Path, no_agent_reason: str) -> LocalResult:
    if worker == "consolidate":
        return run_consolidate(repo)
    if worker == "benchmark":
        return run_benchmark(repo)
    if worker == "preload":
        return run_preload(repo)
    return run_local(worker, repo, no_agent_reason=no_agent_reason)


def local_run(worker: str, repo: Path, key: str, result: LocalResult) -> WorkerRun:
    tools = ", ".join(t.label() for t in result.tools) or "none"
    return WorkerRun(
        worker=worker,
        repo=str(repo),
        repo_key=key,
        mode="local",
        method=f"{result.method} Tools: {tools}.",
        status="completed" if result.status == "completed" else "needs-agent",
        markdown=result.summary_markdown,
        findings=result.findings,
        report=result.report,
    )


def publish_local(worker: str, repo: Path, key: str, result: LocalResult) -> dict[str, Any]:
    """Persist and publish a local result: report, findings, cost (zero) and one table per result table."""
    run = local_run(worker, repo, key, result)
    keys = persist_task(run, [])
    for name, rows in result.tables.items():
        table_key = artifact_key(worker, key, name.replace("_", "-"))
        keys[name] = publish_table(table_key, rows, f"{worker} (local): {name.replace('_', ' ')}")
    get_run_logger().info("%s ran locally (no AI agent): %s", worker, result.method)
    return {"status": run.status, "mode": "local", "artifacts": keys, "run_dir": run.run_dir}


def no_agent_reason() -> str:
    from flows.common import agent_unavailable_reason

    return agent_unavailable_reason() or "local mode was requested"


def run_local_fallback(spec: WorkerSpec, repo: Path, key: str) -> dict[str, Any]:
    """The agent worker `spec` without an agent: its local analysis, labelled local everywhere."""
    result = local_analysis_task(spec.name, repo, no_agent_reason())
    return publish_local(spec.name, repo, key, result)


def run_local_worker(worker: str, repo: str) -> dict[str, Any]:
    repo_path = resolve_repo(Path(repo))
    resolve_worker(worker, repo_path)  # validates the repository's overrides for this worker
    rename_flow_run(f"{worker}-local-{repo_path.name}")
    key = repo_key(repo_path)
    result = local_analysis_task(worker, repo_path, "local worker")
    return publish_local(worker, repo_path, key, result)


@flow(name="map", description=resolve_worker("map").description)
def map_flow(repo: str = ".") -> dict[str, Any]:
    return run_local_worker("map", repo)


@flow(name="consolidate", description=resolve_worker("consolidate").description)
def consolidate_flow(repo: str = ".") -> dict[str, Any]:
    return run_local_worker("consolidate", repo)


@flow(name="benchmark", description=resolve_worker("benchmark").description)
def benchmark_flow(repo: str = ".") -> dict[str, Any]:
    return run_local_worker("benchmark", repo)


@flow(name="preload", description=resolve_worker("preload").description)
def preload_flow(repo: str = ".") -> dict[str, Any]:
    return run_local_worker("preload", repo)


LOCAL_FLOWS: dict[str, Any] = {
    "map": map_flow,
    "consolidate": consolidate_flow,
    "benchmark": benchmark_flow,
    "preload": preload_flow,
}
