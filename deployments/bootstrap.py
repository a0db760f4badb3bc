"""Create what nightshift's deployments need on a Prefect server, idempotently.

    python -m deployments.bootstrap [--repo PATH] [--concurrency N]     (`nightshift up` calls it)

1. work pool `nightshift` (process) with the queues `critical`, `normal`, `low` (priorities 1, 2, 3:
   a worker takes critical runs first); prefect.yaml maps each worker's catalogue priority to one;
2. blocks, their types registered so the UI offers their forms:
   - `nightshift-agent-settings/default`: API key (SecretStr) from `ANTHROPIC_API_KEY` when set, else
     empty (agent workers then run their local fallback); `ANTHROPIC_BASE_URL` and
     `CLAUDE_CODE_MAX_RETRIES` likewise; edits made in the UI are kept;
   - `nightshift-budget/default`: the budget guard's caps (defaults of `nightshift.budget.BudgetLimits`,
     `NIGHTSHIFT_BUDGET_*` overrides); edits made in the UI are kept;
   - `nightshift-sandbox-profile/{strict,permissive,disabled}`: the profiles as enforced;
   - `nightshift-repository-target/default`: the repository the deployments work on (`--repo`, default
     this checkout); prefect.yaml reads its `url` as the default `repo` parameter at deploy time;
3. global concurrency limits: `agent-claude` sized from the agent-settings block's `concurrency`
   (`--concurrency` / `NIGHTSHIFT_AGENT_CONCURRENCY` change it), and `nightshift-budget-lock` (1 slot).

Runs against the API in `PREFECT_API_URL`. Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from blocks.agent import AgentSettings
from blocks.budget import Budget
from blocks.repository import RepositoryTarget
from blocks.sandbox import SandboxProfile, catalogue_profiles
from nightshift import budget
from nightshift.limits import limit_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POOL = "nightshift"
QUEUES = {"critical": 1, "normal": 2, "low": 3}
BLOCK = "default"
QUEUE_DESCRIPTIONS = {
    "critical": "Security audit and other critical workers: taken first.",
    "normal": "Most workers.",
    "low": "Housekeeping and expensive, rarely urgent workers: taken last.",
}


def _load(cls: type[Any], name: str) -> Any:
    try:
        block = cls.load(name)
    except ValueError:
        return None
    return block if isinstance(block, cls) else None


def ensure_pool(client: SyncPrefectClient, pool: str = POOL) -> list[str]:
    """The process work pool and its three priority queues."""
    from prefect.workers.process import ProcessWorker

    done: list[str] = []
    try:
        client.read_work_pool(pool)
        done.append(f"work pool {pool}: exists")
    except ObjectNotFound:
        client.create_work_pool(
            WorkPoolCreate(
                name=pool,
                type="process",
                description="nightshift workers as local processes (prefect worker start --pool nightshift)",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
        done.append(f"work pool {pool}: created (process)")
    existing = {queue.name: queue for queue in client.read_work_queues(work_pool_name=pool)}
    for name, priority in QUEUES.items():
        queue = existing.get(name)
        if queue is None:
            client.create_work_queue(
                name=name, work_pool_name=pool, priority=priority, description=QUEUE_DESCRIPTIONS[name]
            )
            done.append(f"queue {pool}/{name}: created (priority {priority})")
        elif queue.priority != priority:
            client.update_work_queue(queue.id, priority=priority)
            done.append(f"queue {pool}/{name}: priority set to {priority}")
    return done


def ensure_limit(client: SyncPrefectClient, name: str, limit: int) -> str:
    try:
        current = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
        return f"concurrency limit {name}: created ({limit})"
    if current.limit != limit:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
        return f"concurrency limit {name}: {current.limit} -> {limit}"
    return f"concurrency limit {name}: {limit}"


def ensure_agent_settings(concurrency: int | None, environ: dict[str, str]) -> tuple[AgentSettings, str]:
    """The agent-settings block: created from the environment, or updated where the environment says more."""
    key = environ.get("ANTHROPIC_API_KEY") or None
    base_url = environ.get("ANTHROPIC_BASE_URL") or None
    retries = environ.get("CLAUDE_CODE_MAX_RETRIES")
    block: AgentSettings | None = _load(AgentSettings, BLOCK)
    created = block is None
    if block is None:
        block = AgentSettings()
    if key and (block.api_key is None or block.api_key.get_secret_value() != key):
        block.api_key = SecretStr(key)
    if base_url:
        block.base_url = base_url
    if retries:
        block.max_api_retries = int(retries)
    if concurrency is not None:
        block.concurrency = concurrency
    block.save(BLOCK, overwrite=True)
    has_key = block.api_key is not None and bool(block.api_key.get_secret_value())
    state = "created" if created else "updated"
    detail = "API key set" if has_key else "NO API key: agent workers run their local fallback"
    return block, f"block nightshift-agent-settings/{BLOCK}: {state} ({detail}; {block.concurrency} at once)"


def ensure_budget() -> str:
    block: Budget | None = _load(Budget, BLOCK)
    if block is not None:
        limits = block.limits()
        return f"block nightshift-budget/{BLOCK}: exists ({_limits_text(limits)})"
    limits = budget.env_limits(budget.BudgetLimits()) or budget.BudgetLimits()
    Budget(**limits.model_dump()).save(BLOCK, overwrite=True)
    return f"block nightshift-budget/{BLOCK}: created ({_limits_text(limits)})"


def _limits_text(limits: budget.BudgetLimits) -> str:
    return (
        f"{limits.max_launches_per_hour}/hour, {limits.max_launches_per_day}/day, "
        f"${limits.max_usd_per_day}/day, cool-off {limits.cooloff_minutes:g} min"
    )


def ensure_sandbox_profiles() -> str:
    profiles = catalogue_profiles()
    for name, profile in profiles.items():
        existing: SandboxProfile | None = _load(SandboxProfile, name)
        if existing is None or existing.model_dump() != profile.model_dump():
            profile.save(name, overwrite=True)
    return f"blocks nightshift-sandbox-profile/{{{','.join(profiles)}}}: saved"


def ensure_repository(repo: Path) -> str:
    block: RepositoryTarget | None = _load(RepositoryTarget, BLOCK)
    url = str(repo)
    if block is not None and block.url == url:
        return f"block nightshift-repository-target/{BLOCK}: {url}"
    if block is None:
        block = RepositoryTarget(url=url)
    else:
        block.url = url
    block.save(BLOCK, overwrite=True)
    return f"block nightshift-repository-target/{BLOCK}: {url} (saved)"


def bootstrap(
    *, repo: Path | None = None, concurrency: int | None = None, environ: dict[str, str] | None = None
) -> list[str]:
    """Everything above, against the current Prefect API; returns one line per thing ensured."""
    env = dict(os.environ if environ is None else environ)
    if concurrency is None and env.get("NIGHTSHIFT_AGENT_CONCURRENCY"):
        concurrency = int(env["NIGHTSHIFT_AGENT_CONCURRENCY"])
    target = (repo or PROJECT_ROOT).expanduser().resolve()
    lines: list[str] = []
    with get_client(sync_client=True) as client:
        lines += ensure_pool(client)
    agent, line = ensure_agent_settings(concurrency, env)
    lines.append(line)
    lines.append(ensure_budget())
    lines.append(ensure_sandbox_profiles())
    lines.append(ensure_repository(target))
    with get_client(sync_client=True) as client:
        lines.append(ensure_limit(client, limit_name(agent.backend), agent.concurrency))
        lines.append(ensure_limit(client, budget.LOCK_LIMIT, 1))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, help="repository the deployments work on (default: this checkout)")
    parser.add_argument("--concurrency", type=int, help="agent runs alive at once (default: the block's, 2)")
    args = parser.parse_args(argv)
    for line in bootstrap(repo=args.repo, concurrency=args.concurrency):
        print(f"[bootstrap] {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
