"""`nightshift status`: one table of the deployments, the view the design's `daemon status --show-modes`
promised: mode, sandbox, queue, schedule, last run (state and time), next run, and what each worker cost
today (from the budget guard's state), then the guard's line and the processes `up` started.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from nightshift.catalogue import CATALOGUE
from nightshift.ops.stack import Stack

Say = Callable[[str], None]
COLUMNS = ["deployment", "mode", "sandbox", "queue", "schedule", "last_run", "last_run_at", "next_run", "cost_today"]


class DeploymentRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str
    mode: str | None = None
    sandbox: str | None = None
    queue: str | None = None
    schedule: str
    last_run: str | None = None
    last_run_at: str | None = None
    next_run: str | None = None
    cost_today: str | None = None


def _when(moment: datetime | None, now: datetime) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return f"{moment:%H:%M}" if moment.date() == now.date() else f"{moment:%Y-%m-%d %H:%M}"


def _tag(tags: list[str], prefix: str) -> str | None:
    return next((t.split(":", 1)[1] for t in tags if t.startswith(f"{prefix}:")), None)


def _schedule(deployment: Any) -> str:
    if not deployment.schedules:
        return "manual"
    labels = []
    for item in deployment.schedules:
        interval = getattr(item.schedule, "interval", None)
        cron = getattr(item.schedule, "cron", None)
        label = (
            f"every {int(interval.total_seconds() // 60)} min" if interval else (f"cron {cron}" if cron else "rrule")
        )
        labels.append(label + ("" if item.active else " (off)"))
    return ", ".join(labels) + (" (paused)" if deployment.paused else "")


def deployment_rows(now: datetime | None = None) -> list[DeploymentRow]:
    """One row per deployment on the current Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    from nightshift import budget

    now = now or datetime.now(UTC)
    try:
        tallies = budget.read_state(now).workers
    except Exception:
        tallies = {}
    rows: list[DeploymentRow] = []
    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        for deployment in client.read_deployments():
            flow_name = flows.get(deployment.flow_id, "?")
            spec = CATALOGUE.get(flow_name)
            by_id = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            last = client.read_flow_runs(
                deployment_filter=by_id,
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=1,
            )
            upcoming = client.read_flow_runs(
                deployment_filter=by_id,
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=1,
            )
            mode = _tag(deployment.tags, "mode") or (spec.mode if spec else None)
            tally = tallies.get(flow_name)
            if tally is not None and (tally.usd or tally.launches):
                cost = f"${tally.usd:.4f} ({tally.launches} runs)"
            else:
                cost = "$0 (local)" if mode == "local" else "$0"
            last_run = last[0] if last else None
            rows.append(
                DeploymentRow(
                    deployment=f"{flow_name}/{deployment.name}",
                    mode=mode,
                    sandbox=_tag(deployment.tags, "sandbox") or (spec.sandbox if spec else None),
                    queue=deployment.work_queue_name,
                    schedule=_schedule(deployment),
                    last_run=last_run.state.name if last_run and last_run.state else None,
                    last_run_at=_when((last_run.start_time or last_run.expected_start_time) if last_run else None, now),
                    next_run=_when(upcoming[0].expected_start_time if upcoming else None, now),
                    cost_today=cost,
                )
            )
    order = list(CATALOGUE)
    rows.sort(key=lambda r: (order.index(r.deployment.split("/")[0]) if r.deployment.split("/")[0] in order
                             else len(order), r.deployment))  # fmt: skip
    return rows


def render(rows: list[DeploymentRow]) -> str:
    data = [r.model_dump() for r in rows]
    widths = {c: max(len(c), *(len(str(d[c] or "-")) for d in data)) if data else len(c) for c in COLUMNS}
    lines = ["  ".join(c.upper().replace("_", " ").ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(str(d[c] or "-").ljust(widths[c]) for c in COLUMNS).rstrip() for d in data]
    return "\n".join(lines)


def status(*, stack: Stack | None = None, say: Say = print) -> int:
    """`nightshift status`. Exit code 1 when the server is not running."""
    from nightshift import budget

    stack = stack or Stack()
    server = stack.server.alive()
    if server is None or not stack.healthy():
        say(f"nightshift: no server at {stack.ui_url} (state {stack.state}); start one with `nightshift up`")
        return 1
    worker = stack.worker.alive()
    now = datetime.now(UTC)
    say(
        f"server {stack.ui_url} (pid {server.pid}) · worker "
        + (f"pid {worker.pid}" if worker else "NOT running (`nightshift up` starts it)")
        + f" · {now:%Y-%m-%d %H:%M} UTC"
    )
    with stack.api():
        say(render(deployment_rows(now)))
        budget.clear_cache()
        say(budget.describe(budget.read_state(now), budget.configured_limits(fresh=True), now))
    return 0
