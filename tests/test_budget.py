"""The budget guard: its decisions (pure), its hooks in the flows (Prefect test harness), and a usage-limit
error from the model API on the real server + worker stack (the fixture of test_deployments.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from test_deployments import StackInfo, stack  # noqa: F401 - the session's server + worker stack

from nightshift import budget
from nightshift.budget import BudgetLimits, BudgetState, cooloff_until, refusal_reason
from nightshift.errors import (
    AgentFailedError,
    BudgetRefusedError,
    ConfigError,
    RateLimitedError,
    TransientAgentError,
    is_retryable,
)
from nightshift.testing.fake_anthropic import HttpError

NOW = datetime(2026, 11, 21, 12, 30, tzinfo=UTC)


def state(**fields: Any) -> BudgetState:
    return BudgetState.fresh(NOW).model_copy(update=fields)


# ------------------------------------------------------------------------------------- decisions


def test_launches_within_the_caps_are_admitted() -> None:
    assert refusal_reason(state(launches=3, usd=1.0), BudgetLimits(), NOW) is None


def test_hourly_cap_counts_a_rolling_hour() -> None:
    limits = BudgetLimits(max_launches_per_hour=3)
    minute = int(NOW.timestamp() // 60)
    recent = state(minutes={str(minute): 2, str(minute - 59): 1}, launches=3)
    reason = refusal_reason(recent, limits, NOW)
    assert reason is not None
    assert "3 agent launches in the last hour" in reason
    older = state(minutes={str(minute): 2, str(minute - 60): 5}, launches=7).rolled(NOW)
    assert refusal_reason(older, limits, NOW) is None
    assert older.minutes == {str(minute): 2}


def test_daily_launch_and_spend_caps() -> None:
    reason = refusal_reason(state(launches=150), BudgetLimits(), NOW)
    assert reason is not None
    assert "150 agent launches today" in reason
    reason = refusal_reason(state(usd=10.5), BudgetLimits(max_usd_per_day=10), NOW)
    assert reason is not None
    assert "$10.50 spent today" in reason
    assert refusal_reason(state(usd=1e6, launches=10**6), BudgetLimits(max_usd_per_day=None,
                          max_launches_per_day=None, max_launches_per_hour=None), NOW) is None  # fmt: skip


def test_cooloff_refuses_everything_until_it_ends() -> None:
    cooling = state(cooloff_until=NOW + timedelta(minutes=30), cooloff_reason="HTTP 429: usage limit reached")
    reason = refusal_reason(cooling, BudgetLimits(), NOW)
    assert reason is not None
    assert "cool-off" in reason
    assert "usage limit reached" in reason
    assert "30 min left" in reason
    assert (
        refusal_reason(cooling.rolled(NOW + timedelta(minutes=31)), BudgetLimits(), NOW + timedelta(minutes=31)) is None
    )
    assert refusal_reason(cooling, BudgetLimits(enabled=False), NOW) is None


def test_a_new_day_resets_the_counters_but_not_the_cooloff() -> None:
    old = state(launches=149, usd=9.9, refused=4, cooloff_until=NOW + timedelta(hours=13), cooloff_reason="429")
    tomorrow = NOW + timedelta(hours=12)
    rolled = old.rolled(tomorrow)
    assert (rolled.day, rolled.launches, rolled.usd, rolled.refused) == ("2026-11-22", 0, 0.0, 0)
    assert rolled.cooloff_until == old.cooloff_until


def test_cooloff_ends_at_the_announced_reset_time_or_after_the_configured_span() -> None:
    limits = BudgetLimits(cooloff_minutes=45)
    reset = int((NOW + timedelta(hours=2)).timestamp())
    assert cooloff_until(f"Claude AI usage limit reached|{reset}", limits, NOW) == NOW + timedelta(hours=2)
    assert cooloff_until("HTTP 429: rate_limit_error", limits, NOW) == NOW + timedelta(minutes=45)
    far = int((NOW + timedelta(days=3)).timestamp())
    assert cooloff_until(f"usage limit reached|{far}", limits, NOW) == NOW + timedelta(minutes=45)


def test_environment_overrides_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTSHIFT_BUDGET_MAX_USD_PER_DAY", "none")
    monkeypatch.setenv("NIGHTSHIFT_BUDGET_MAX_LAUNCHES_PER_HOUR", "5")
    limits = budget.env_limits(None)
    assert limits is not None
    assert limits.max_usd_per_day is None
    assert limits.max_launches_per_hour == 5
    monkeypatch.setenv("NIGHTSHIFT_BUDGET_COOLOFF_MINUTES", "soon")
    with pytest.raises(ConfigError, match="NIGHTSHIFT_BUDGET"):
        budget.env_limits(None)


def test_only_transient_agent_errors_are_retried() -> None:
    assert is_retryable(RateLimitedError("429"))
    assert is_retryable(TransientAgentError("529 overloaded"))
    assert not is_retryable(BudgetRefusedError("refused", reason="cool-off"))
    assert not is_retryable(ConfigError("bad glob"))
    assert not is_retryable(AgentFailedError("400"))


def test_the_guard_is_a_no_op_outside_prefect_runs() -> None:
    budget.admit("claude")  # no flow or task run: nothing is asked of any server
    assert budget.start_cooloff("429 usage limit") is None


def test_state_fits_a_prefect_variable() -> None:
    busy = state(minutes={str(i): 9 for i in range(60)}, launches=999, refused=99, usd=123.456789,
                 cooloff_until=NOW, cooloff_reason="x" * 300)  # fmt: skip
    for worker in ["map", "audit", "feature", "refactor-change", *[f"worker-{i}" for i in range(14)]]:
        tally = busy.tally(worker)
        tally.launches, tally.usd, tally.input_tokens, tally.output_tokens = 999, 99.123456, 10**9, 10**8
    assert len(busy.model_dump_json()) < 5000


# ---------------------------------------------------------------------------- in flows (harness)


@pytest.fixture
def guard(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A budget block of this test's own (other harness tests stay unguarded), a fresh shared state."""
    from prefect.client.orchestration import get_client

    from blocks.budget import Budget

    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("NIGHTSHIFT_BUDGET_BLOCK", name)
    Budget(max_launches_per_hour=2, max_launches_per_day=10, max_usd_per_day=5.0).save(name)
    budget.clear_cache()
    budget.reset(cooloff_only=False)
    yield name
    budget.clear_cache()
    with get_client(sync_client=True) as client:
        client.delete_variable_by_name(budget.STATE_VARIABLE)
        client.delete_block_document(client.read_block_document_by_name(name, "nightshift-budget").id)


def test_refused_launch_ends_the_run_refused_with_the_reason(guard: str, tmp_path: Path) -> None:
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.common import agent_task_options, run_guarded
    from nightshift.limits import agent_slot
    from nightshift.results import repo_key

    launched: list[int] = []

    @task(**agent_task_options())
    def launch(i: int) -> None:
        with agent_slot("claude"):
            launched.append(i)

    @flow(name="budget-probe")
    def probe(repo: str) -> Any:
        return run_guarded("budget-probe", repo, lambda: [launch(i) for i in range(3)])

    final = probe(str(tmp_path), return_state=True)
    assert final.is_cancelled()
    assert final.name == "Refused"
    assert "launch limit: 2 agent launches in the last hour" in (final.message or "")
    assert launched == [0, 1]  # the refused one never ran, and was not retried
    current = budget.read_state()
    assert (current.launches, current.refused) == (2, 1)
    assert current.workers["budget-probe"].refused == 1
    key = f"budget-probe-{repo_key(tmp_path)}-report"
    with get_client(sync_client=True) as client:
        report = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert report
    assert "refused" in report[0].data
    assert "launch limit" in report[0].data


def test_flow_retries_only_after_transient_failures(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow

    from flows.common import flow_options, run_guarded

    monkeypatch.setenv("NIGHTSHIFT_FLOW_RETRIES", "1")
    monkeypatch.setenv("NIGHTSHIFT_FLOW_RETRY_DELAY_S", "0")
    attempts: list[str] = []

    @flow(name="retry-probe", **flow_options())
    def probe(kind: str) -> Any:
        def body() -> str:
            attempts.append(kind)
            if kind == "config":
                raise ConfigError("a bad glob: retrying cannot help")
            if attempts.count(kind) == 1:
                raise TransientAgentError("HTTP 529 overloaded")
            return "ok"

        return run_guarded("retry-probe", ".", body)

    assert probe("transient") == "ok"
    assert attempts.count("transient") == 2
    state = probe("config", return_state=True)
    assert state.is_failed()
    assert attempts.count("config") == 1


def test_deployments_read_agent_settings_from_the_block(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from blocks.agent import AgentSettings
    from flows.common import agent_adapter, agent_settings

    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("NIGHTSHIFT_AGENT_SETTINGS_BLOCK", name)
    with pytest.raises(ConfigError, match="no agent-settings block"):
        agent_settings()
    AgentSettings(api_key=SecretStr("sk-ant-from-the-block"), max_api_retries=1).save(name)
    settings = agent_settings()
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-ant-from-the-block"
    assert settings.base_url == "http://127.0.0.1:9"  # empty in the block: the environment's
    assert settings.max_api_retries == 1
    assert agent_adapter().has_credentials


# ---------------------------------------------------------------------------- on the server stack


def test_usage_limit_pauses_every_agent_run_and_nothing_retries_in_a_loop(stack: StackInfo) -> None:  # noqa: F811
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    usage_limit = HttpError(status=429, message="Claude AI usage limit reached. Try again later.", should_retry=False)
    forget_guard_state(stack)
    try:
        with stack.fake([usage_limit], "usage-limit") as fake, stack.client() as client:
            audit = client.read_deployment_by_name("audit/default")
            first = client.create_flow_run_from_deployment(audit.id, parameters={"force": True}).id
            run = stack.wait_final([first], timeout=240)[first]
            assert run.state.name == "Refused", run.state
            assert run.state.type.value == "CANCELLED"
            assert "cool-off" in run.state.message
            assert "usage limit" in run.state.message
            assert run.run_count == 1  # the flow itself was not retried
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[first])))
            agent = next(t for t in tasks if t.name.startswith("run-agent"))
            assert agent.run_count == 2  # one launch; its retry was refused by the guard, not launched
            assert len(fake.main_requests()) == 1

            optimize = client.read_deployment_by_name("optimize/default")
            second = client.create_flow_run_from_deployment(optimize.id, parameters={"force": True}).id
            refused = stack.wait_final([second], timeout=180)[second]
            assert refused.state.name == "Refused"
            assert "cool-off" in refused.state.message
            assert len(fake.main_requests()) == 1  # no agent was launched at all
        report = stack.artifact(stack.report_key("optimize"))
        assert "refused" in report.data
        assert "usage limit" in report.data
        with stack.api():
            current = budget.read_state()
        assert current.cooloff_until is not None
        assert current.cooloff_until > datetime.now(UTC) + timedelta(minutes=50)
        assert current.refused >= 2
    finally:
        forget_guard_state(stack)  # end the cool-off for the tests that follow


def forget_guard_state(stack: StackInfo) -> None:  # noqa: F811
    """Delete the guard's Variable on the stack (plain API call: this process also knows the harness, and
    Prefect's concurrency services are per process, so the guard's lock is only taken in flow runs here)."""
    from prefect.exceptions import ObjectNotFound

    with stack.client() as client, contextlib.suppress(ObjectNotFound):
        client.delete_variable_by_name(budget.STATE_VARIABLE)
