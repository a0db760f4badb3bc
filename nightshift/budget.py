"""The budget guard: global caps on agent launches and spend, and a cool-off after a quota error.

    agent_slot(backend) ──admit()──▶ BudgetRefusedError(reason) │ launch counted ──▶ concurrency slot
    run_agent_checked ──record_outcome()──▶ tokens + USD of the day; RateLimitedError ──▶ start_cooloff()

Limits (`BudgetLimits`) come from the `nightshift-budget` block named by `NIGHTSHIFT_BUDGET_BLOCK`
(default `default`; the bootstrap creates it, the UI edits it), then `NIGHTSHIFT_BUDGET_*` environment
variables override single fields. With neither, the guard is off: plain `nightshift run` on the
ephemeral API and the test harness are not rationed.

State (`BudgetState`) lives on the Prefect server, so every worker process shares it: the JSON Variable
`nightshift_budget_state` (see it with `prefect variable inspect nightshift_budget_state`), read-modified-
written only while holding the one slot of the global concurrency limit `nightshift-budget-lock`. Launch
counts are exact across processes; spend is known when a run ends, so runs already going when the daily
USD cap is reached may end a little above it.

- a launch = one agent slot (one attempt of an agent task; a JSON repair turn on the same session is
  part of it). Per rolling hour (minute buckets) and per UTC day.
- a quota/rate error (HTTP 429, "usage limit") refuses every launch until the cool-off ends: the block's
  `cooloff_minutes`, or the reset time the API announced (`usage limit reached|<epoch>`), at most a day.
  A task retry of that very error is refused too, so nothing hammers the API.
- a refusal raises `BudgetRefusedError` (not retryable); `flows.common.run_guarded` ends the flow run in
  the state `Refused` (type CANCELLED) with the reason, and publishes it as the worker's report.

The guard acts only inside a Prefect flow or task run; elsewhere (the runner used as a library) every
function here is a no-op. Prefect is imported lazily so that such uses do not pay for it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nightshift.errors import BudgetRefusedError, ConfigError

if TYPE_CHECKING:
    from nightshift.agents.base import AgentOutcome

STATE_VARIABLE = "nightshift_budget_state"
LOCK_LIMIT = "nightshift-budget-lock"
BLOCK_SLUG = "nightshift-budget"
DEFAULT_BLOCK = "default"
MAX_COOLOFF = timedelta(hours=24)
_CACHE_S = 10.0
_RESET_EPOCH = re.compile(r"usage limit reached\|(\d{9,11})", re.IGNORECASE)
_ENV = {
    "max_launches_per_hour": "NIGHTSHIFT_BUDGET_MAX_LAUNCHES_PER_HOUR",
    "max_launches_per_day": "NIGHTSHIFT_BUDGET_MAX_LAUNCHES_PER_DAY",
    "max_usd_per_day": "NIGHTSHIFT_BUDGET_MAX_USD_PER_DAY",
    "cooloff_minutes": "NIGHTSHIFT_BUDGET_COOLOFF_MINUTES",
    "enabled": "NIGHTSHIFT_BUDGET_ENABLED",
}


class BudgetLimits(BaseModel):
    """The caps; None = no cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_launches_per_hour: int | None = Field(default=20, ge=0)
    max_launches_per_day: int | None = Field(default=150, ge=0)
    max_usd_per_day: float | None = Field(default=10.0, ge=0)
    cooloff_minutes: float = Field(default=60.0, ge=0)


class WorkerTally(BaseModel):
    model_config = ConfigDict(extra="forbid")

    launches: int = 0
    refused: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0


class BudgetState(BaseModel):
    """What the guard remembers, per UTC day (kept small: a Prefect Variable holds at most 5000 chars)."""

    model_config = ConfigDict(extra="forbid")

    day: str = Field(description="UTC date of the daily counters")
    launches: int = 0
    refused: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    minutes: dict[str, int] = Field(default_factory=dict, description="epoch minute → launches, last 60 minutes")
    workers: dict[str, WorkerTally] = Field(default_factory=dict)
    cooloff_until: datetime | None = None
    cooloff_reason: str | None = None

    @classmethod
    def fresh(cls, now: datetime) -> BudgetState:
        return cls(day=now.date().isoformat())

    def rolled(self, now: datetime) -> BudgetState:
        """The state as of `now`: a new day starts from zero (the cool-off carries over); old minutes drop."""
        state = self if self.day == now.date().isoformat() else BudgetState.fresh(now).model_copy(
            update={"minutes": self.minutes, "cooloff_until": self.cooloff_until, "cooloff_reason": self.cooloff_reason}
        )  # fmt: skip
        horizon = _minute(now) - 59
        minutes = {k: v for k, v in state.minutes.items() if int(k) >= horizon}
        cooling = state.cooloff_until is not None and state.cooloff_until > now
        return state.model_copy(
            update={
                "minutes": minutes,
                "cooloff_until": state.cooloff_until if cooling else None,
                "cooloff_reason": state.cooloff_reason if cooling else None,
            }
        )

    def launches_last_hour(self, now: datetime) -> int:
        horizon = _minute(now) - 59
        return sum(v for k, v in self.minutes.items() if int(k) >= horizon)

    def tally(self, worker: str) -> WorkerTally:
        return self.workers.setdefault(worker, WorkerTally())


def _minute(now: datetime) -> int:
    return int(now.timestamp() // 60)


def _now() -> datetime:
    return datetime.now(UTC)


def refusal_reason(state: BudgetState, limits: BudgetLimits, now: datetime) -> str | None:
    """Why a launch at `now` must not happen (None: it may). Pure: `state` is already rolled to `now`."""
    if not limits.enabled:
        return None
    if state.cooloff_until is not None and state.cooloff_until > now:
        left = max(1, round((state.cooloff_until - now).total_seconds() / 60))
        return (
            f"cool-off after a quota/rate-limit error until {state.cooloff_until:%Y-%m-%d %H:%M} UTC "
            f"({left} min left): {state.cooloff_reason or 'rate limited'}"
        )
    hour = state.launches_last_hour(now)
    if limits.max_launches_per_hour is not None and hour >= limits.max_launches_per_hour:
        return f"launch limit: {hour} agent launches in the last hour (max {limits.max_launches_per_hour} per hour)"
    if limits.max_launches_per_day is not None and state.launches >= limits.max_launches_per_day:
        return f"launch limit: {state.launches} agent launches today (max {limits.max_launches_per_day} per UTC day)"
    if limits.max_usd_per_day is not None and state.usd >= limits.max_usd_per_day:
        return f"spend limit: ${state.usd:.2f} spent today (max ${limits.max_usd_per_day:.2f} per UTC day)"
    return None


def cooloff_until(text: str, limits: BudgetLimits, now: datetime) -> datetime:
    """End of the cool-off: the reset time announced in `text` when there is one, else the configured span."""
    match = _RESET_EPOCH.search(text)
    if match:
        announced = datetime.fromtimestamp(int(match.group(1)), UTC)
        if now < announced <= now + MAX_COOLOFF:
            return announced
    return now + timedelta(minutes=limits.cooloff_minutes)


# ------------------------------------------------------------------------------ configuration


def env_limits(base: BudgetLimits | None) -> BudgetLimits | None:
    updates: dict[str, Any] = {}
    for field, name in _ENV.items():
        raw = os.environ.get(name)
        if raw is None:
            continue
        text = raw.strip().lower()
        updates[field] = None if text in ("", "none", "off", "unlimited") and field != "enabled" else raw.strip()
    if not updates:
        return base
    try:
        return BudgetLimits.model_validate({**(base or BudgetLimits()).model_dump(), **updates})
    except ValidationError as exc:
        raise ConfigError(f"invalid NIGHTSHIFT_BUDGET_* setting: {exc}") from exc


def block_name() -> str:
    return os.environ.get("NIGHTSHIFT_BUDGET_BLOCK") or DEFAULT_BLOCK


_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, BudgetLimits | None]] = {}


def configured_limits(*, fresh: bool = False) -> BudgetLimits | None:
    """The limits in force (None: no budget configured, the guard is off). Cached for a few seconds."""
    name = block_name()
    with _cache_lock:
        hit = _cache.get(name)
        if hit is not None and not fresh and time.monotonic() - hit[0] < _CACHE_S:
            return hit[1]
    from blocks.budget import Budget  # lazy: the block module imports prefect

    try:
        block = Budget.load(name)
    except ValueError:
        block = None
    limits = block.limits() if isinstance(block, Budget) else None
    limits = env_limits(limits)
    with _cache_lock:
        _cache[name] = (time.monotonic(), limits)
    return limits


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# ------------------------------------------------------------------------------ server state


def orchestrated() -> bool:
    """True inside a Prefect flow or task run (without importing prefect when nothing did)."""
    context = sys.modules.get("prefect.context")
    if context is None:
        return False
    return context.FlowRunContext.get() is not None or context.TaskRunContext.get() is not None


def _worker_name() -> str:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is not None and context.flow is not None:
        return str(context.flow.name)
    return "other"


def _logger() -> Any:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("nightshift.budget")


def read_state(now: datetime | None = None) -> BudgetState:
    """The shared state as of `now` (a fresh one when none was stored or it does not parse)."""
    from prefect.client.orchestration import get_client

    now = now or _now()
    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(STATE_VARIABLE)
    if variable is None or not isinstance(variable.value, dict):
        return BudgetState.fresh(now)
    try:
        return BudgetState.model_validate(variable.value).rolled(now)
    except ValidationError:
        return BudgetState.fresh(now)


def _write_state(state: BudgetState) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate
    from prefect.exceptions import ObjectAlreadyExists

    value = state.model_dump(mode="json", exclude_defaults=False)
    with get_client(sync_client=True) as client:
        if client.read_variable_by_name(STATE_VARIABLE) is None:
            try:
                client.create_variable(VariableCreate(name=STATE_VARIABLE, value=value, tags=["nightshift"]))
                return
            except ObjectAlreadyExists:
                pass
        client.update_variable(VariableUpdate(name=STATE_VARIABLE, value=value))


class _StaleRenewalFilter(logging.Filter):
    """Prefect renews a lease right after acquiring it, in a thread; when the lock is released first (it is
    held for milliseconds) that renewal meets 410 Gone and logs a warning about a lease nobody needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("concurrency lease renewal" in message and "410 Gone" in message)


_filter_installed = False


@contextmanager
def _locked_state() -> Iterator[BudgetState]:
    """The state for a read-modify-write; written back on a clean exit, under the one-slot lock."""
    from prefect.concurrency.sync import concurrency

    from nightshift.limits import ensure_limit

    global _filter_installed
    if not _filter_installed:
        logging.getLogger("prefect.concurrency").addFilter(_StaleRenewalFilter())
        _filter_installed = True
    ensure_limit(LOCK_LIMIT, 1)
    with concurrency(LOCK_LIMIT, occupy=1, strict=True, lease_duration=60, timeout_seconds=120):
        state = read_state()
        yield state
        _write_state(state)


def _active() -> BudgetLimits | None:
    if not orchestrated():
        return None
    return configured_limits()


def admit(backend: str) -> None:
    """Count one agent launch, or refuse it with `BudgetRefusedError` (the reason is in the message)."""
    limits = _active()
    if limits is None:
        return
    worker = _worker_name()
    now = _now()
    with _locked_state() as state:
        reason = refusal_reason(state, limits, now)
        if reason is None:
            key = str(_minute(now))
            state.minutes[key] = state.minutes.get(key, 0) + 1
            state.launches += 1
            state.tally(worker).launches += 1
        else:
            state.refused += 1
            state.tally(worker).refused += 1
    if reason is not None:
        _logger().warning("budget guard refused a %s launch for %s: %s", backend, worker, reason)
        raise BudgetRefusedError(f"budget guard refused the agent launch: {reason}", reason=reason)


def record_outcome(outcome: AgentOutcome) -> None:
    """Add one run's tokens and USD to today's counters and log them with today's totals."""
    limits = _active()
    if limits is None:
        return
    worker = _worker_name()
    usd = outcome.run_cost_usd or 0.0
    with _locked_state() as state:
        for tally in (state, state.tally(worker)):
            tally.input_tokens += outcome.usage.input_tokens
            tally.output_tokens += outcome.usage.output_tokens
            tally.usd += usd
    cap = f" of ${limits.max_usd_per_day:.2f}" if limits.max_usd_per_day is not None else ""
    _logger().info(
        "agent run (%s): %d input + %d output tokens, $%.4f; today: %d launches, $%.4f%s",
        outcome.status,
        outcome.usage.input_tokens,
        outcome.usage.output_tokens,
        usd,
        state.launches,
        state.usd,
        cap,
    )


def start_cooloff(reason: str) -> datetime | None:
    """After a quota/rate-limit error: refuse every launch until the cool-off ends. Returns its end."""
    limits = _active()
    if limits is None or not limits.enabled:
        return None
    now = _now()
    until = cooloff_until(reason, limits, now)
    with _locked_state() as state:
        if state.cooloff_until is None or state.cooloff_until < until:
            state.cooloff_until = until
            state.cooloff_reason = reason[:300]
        until = state.cooloff_until
    _logger().warning("budget guard: agent launches paused until %s UTC after: %s", f"{until:%H:%M:%S}", reason[:300])
    return until


def reset(*, cooloff_only: bool = True) -> None:
    """End the cool-off now (and with `cooloff_only=False`, forget today's counters too)."""
    with _locked_state() as state:
        if cooloff_only:
            state.cooloff_until = None
            state.cooloff_reason = None
        else:
            fresh = BudgetState.fresh(_now())
            for field in BudgetState.model_fields:
                setattr(state, field, getattr(fresh, field))


def describe(state: BudgetState, limits: BudgetLimits | None, now: datetime | None = None) -> str:
    """One line for people: today's launches and spend against the caps, and any cool-off."""
    now = now or _now()
    if limits is None:
        return "budget guard: off (no nightshift-budget block; run `python -m deployments.bootstrap`)"

    def cap(value: float | None, fmt: str) -> str:
        return "no cap" if value is None else fmt.format(value)

    parts = [
        f"{state.launches_last_hour(now)}/{cap(limits.max_launches_per_hour, '{:g}')} launches this hour",
        f"{state.launches}/{cap(limits.max_launches_per_day, '{:g}')} today",
        f"${state.usd:.2f}/{cap(limits.max_usd_per_day, '${:.2f}')} today",
        f"{state.refused} refused",
    ]
    line = "budget guard: " + ", ".join(parts)
    if not limits.enabled:
        line += " (disabled: nothing is refused)"
    if state.cooloff_until is not None and state.cooloff_until > now:
        line += f"; COOLING OFF until {state.cooloff_until:%H:%M} UTC: {state.cooloff_reason}"
    return line
