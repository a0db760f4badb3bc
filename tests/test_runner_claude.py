"""The runner with the real Claude Code binary against the scripted fake model API."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from nightshift.agents.base import AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings
from nightshift.errors import AgentFailedError, AgentTimeoutError, RateLimitedError
from nightshift.process import StopPolicy, live_process_groups
from nightshift.runner import run_agent, run_agent_checked
from nightshift.testing.fake_anthropic import FakeAnthropic, Hang, HttpError, StructuredOutput, Text, ToolUse

pytestmark = pytest.mark.slow
FAST_STOP = StopPolicy(interrupt_grace_s=1.0, terminate_grace_s=1.0, kill_grace_s=2.0)


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic([]) as fake:
        yield fake


def adapter_for(api: FakeAnthropic, claude_bin: Path) -> ClaudeAdapter:
    return ClaudeAdapter(
        ClaudeSettings(binary=claude_bin, base_url=api.url, api_key=SecretStr("fake-key"), max_api_retries=0)
    )


def request(tmp_path: Path, prompt: str = "say hello", **fields: object) -> AgentRequest:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return AgentRequest.model_validate(
        {"prompt": prompt, "cwd": workdir, "model": "haiku", "home": tmp_path / "home", **fields}
    )


def scripted(api: FakeAnthropic, *turns: object) -> None:
    api._script = type(api._script)(list(turns))


def test_text_answer(tmp_path: Path, claude_bin: Path) -> None:
    with FakeAnthropic([Text(text="Hello from the fake model.")]) as api:
        outcome = run_agent(request(tmp_path, "PROMPT-ON-STDIN"), adapter=adapter_for(api, claude_bin))
        assert outcome.status == "success"
        assert outcome.final_text == "Hello from the fake model."
        assert outcome.cli_version == "2.1.330"
        assert outcome.session_id
        assert outcome.usage.output_tokens > 0
        assert outcome.num_turns == 1
        assert outcome.total_cost_usd is not None
        assert outcome.unknown_events >= 0
        assert next(type(e).__name__ for e in outcome.events) == "InitEvent"
        assert "PROMPT-ON-STDIN" in api.all_text()
        assert "fake-key" not in api.all_text()


def test_json_answer(tmp_path: Path, claude_bin: Path) -> None:
    with FakeAnthropic([Text(text='{"answer": 42, "items": ["a", "b"]}')]) as api:
        outcome = run_agent(request(tmp_path), adapter=adapter_for(api, claude_bin))
    assert outcome.succeeded
    assert json.loads(outcome.final_text) == {"answer": 42, "items": ["a", "b"]}


def test_structured_output_with_json_schema(tmp_path: Path, claude_bin: Path) -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    with FakeAnthropic([StructuredOutput(value={"score": 7})]) as api:
        outcome = run_agent(request(tmp_path, json_schema=schema), adapter=adapter_for(api, claude_bin))
        tools = api.main_requests[0].body["tools"]
    assert outcome.succeeded
    assert outcome.structured_output == {"score": 7}
    assert "StructuredOutput" in {tool["name"] for tool in tools}


def test_write_tool_creates_a_file_in_accept_edits_mode(tmp_path: Path, claude_bin: Path) -> None:
    target = tmp_path / "work" / "hello.txt"
    script = [ToolUse(name="Write", input={"file_path": str(target), "content": "written by the agent\n"}),
              Text(text="I wrote hello.txt.")]  # fmt: skip
    with FakeAnthropic(script) as api:
        outcome = run_agent(request(tmp_path, permission_mode="acceptEdits"), adapter=adapter_for(api, claude_bin))
        second_request = json.dumps(api.main_requests[1].body["messages"])
    assert outcome.succeeded
    assert target.read_text() == "written by the agent\n"
    assert outcome.permission_denials == []
    assert '"type": "tool_result"' in second_request
    assert outcome.num_turns == 2


def test_write_is_denied_in_default_mode(tmp_path: Path, claude_bin: Path) -> None:
    target = tmp_path / "work" / "hello.txt"
    script = [ToolUse(name="Write", input={"file_path": str(target), "content": "x"}), Text(text="Could not write.")]
    with FakeAnthropic(script) as api:
        outcome = run_agent(request(tmp_path), adapter=adapter_for(api, claude_bin))
    assert outcome.succeeded  # the run itself ends normally ...
    assert not target.exists()  # ... but nothing was written
    assert [d.tool_name for d in outcome.permission_denials] == ["Write"]
    assert outcome.permission_denials[0].tool_input["file_path"] == str(target)


def test_max_turns(tmp_path: Path, claude_bin: Path) -> None:
    script = [ToolUse(name="Read", input={"file_path": str(tmp_path / "work")}), Text(text="never reached")]
    with FakeAnthropic(script) as api:
        outcome = run_agent(request(tmp_path, max_turns=1), adapter=adapter_for(api, claude_bin))
    assert outcome.status == "error"
    assert outcome.subtype == "error_max_turns"
    with pytest.raises(AgentFailedError):
        ClaudeAdapter().raise_for_outcome(outcome)


def test_api_error_is_an_error_whatever_the_subtype(tmp_path: Path, claude_bin: Path) -> None:
    with FakeAnthropic([HttpError(status=400, message="bad request from the fake")]) as api:
        started = time.monotonic()
        with pytest.raises(AgentFailedError) as info:
            run_agent_checked(request(tmp_path), adapter=adapter_for(api, claude_bin))
    outcome = info.value.outcome
    assert outcome is not None
    assert outcome.is_error
    assert outcome.api_error_status == 400
    assert time.monotonic() - started < 30


def test_usage_limit_is_a_rate_limit(tmp_path: Path, claude_bin: Path) -> None:
    limit = HttpError(status=429, message="You have reached your usage limit.", error_type="rate_limit_error")
    with FakeAnthropic([limit]) as api, pytest.raises(RateLimitedError) as info:
        run_agent_checked(request(tmp_path), adapter=adapter_for(api, claude_bin))
    assert info.value.api_error_status == 429


def test_timeout_stops_the_cli(tmp_path: Path, claude_bin: Path) -> None:
    with FakeAnthropic([Hang(seconds=None)]) as api:
        started = time.monotonic()
        outcome = run_agent(request(tmp_path, timeout_s=3), adapter=adapter_for(api, claude_bin), stop_policy=FAST_STOP)
    assert outcome.status == "timeout"
    assert time.monotonic() - started < 15
    with pytest.raises(AgentTimeoutError):
        ClaudeAdapter().raise_for_outcome(outcome)
    assert live_process_groups() == []


def test_cancel_mid_run_leaves_no_process(tmp_path: Path, claude_bin: Path) -> None:
    cancel = threading.Event()
    with FakeAnthropic([Hang(seconds=None)]) as api:
        threading.Timer(2.0, cancel.set).start()
        outcome = run_agent(
            request(tmp_path), adapter=adapter_for(api, claude_bin), cancel=cancel, stop_policy=FAST_STOP
        )
    assert outcome.status == "cancelled"
    assert outcome.exit_code is not None
    assert not _group_alive(outcome)


def test_resume_carries_the_history(tmp_path: Path, claude_bin: Path) -> None:
    session = uuid.uuid4()
    with FakeAnthropic([Text(text="What is the code word?"), Text(text="The code word is PINEAPPLE.")]) as api:
        adapter = adapter_for(api, claude_bin)
        first = run_agent(request(tmp_path, "Ask me for the code word.", session_id=session), adapter=adapter)
        assert first.session_id == str(session)
        second = run_agent(request(tmp_path, "It is PINEAPPLE.", resume_id=first.session_id), adapter=adapter)
        resumed_messages = json.dumps(api.main_requests[1].body["messages"])
    assert second.succeeded
    assert second.session_id == str(session)
    # on --resume the CLI reports the session's running total; the runner derives this run's own cost
    assert first.total_cost_usd
    assert second.total_cost_usd
    assert second.total_cost_usd > first.total_cost_usd
    assert second.run_cost_usd == pytest.approx(second.total_cost_usd - first.total_cost_usd)
    assert first.run_cost_usd == pytest.approx(first.total_cost_usd)
    assert "Ask me for the code word." in resumed_messages
    assert "What is the code word?" in resumed_messages
    assert "It is PINEAPPLE." in resumed_messages


def _group_alive(outcome: object) -> bool:  # the run is over: no group of ours may remain
    return bool(live_process_groups())


def _descendants() -> list[int]:
    me = os.getpid()
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [me]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_twenty_runs_cancelled_leave_no_child(tmp_path: Path, claude_bin: Path) -> None:
    already_there = set(_descendants())  # e.g. the Prefect harness server of this session
    cancel = threading.Event()
    outcomes = []
    with FakeAnthropic(lambda body: Hang(seconds=None)) as api:
        adapter = adapter_for(api, claude_bin)

        def one(index: int) -> None:
            base = tmp_path / f"run{index}"
            base.mkdir()
            outcomes.append(run_agent(request(base), adapter=adapter, cancel=cancel, stop_policy=FAST_STOP))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(api.main_requests) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(api.main_requests) == 20, "every CLI reached the model API before the cancel"
        cancel.set()
        for thread in threads:
            thread.join(timeout=60)
    assert [o.status for o in outcomes] == ["cancelled"] * 20
    assert live_process_groups() == []
    assert set(_descendants()) - already_there == set()
