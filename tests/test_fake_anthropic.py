"""The fake Anthropic API, driven by the real claude CLI (and, for server details, by http.client)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nightshift.testing.fake_anthropic import (
    AUXILIARY_TEXT,
    EXHAUSTED_MESSAGE,
    FakeAnthropic,
    Hang,
    HttpError,
    MalformedSSE,
    ParallelToolUse,
    StructuredOutput,
    Text,
    ToolCall,
    ToolUse,
    Turn,
    load_script,
)

DEFAULT_CLAUDE_BIN = "/tmp/cc/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
CLAUDE_BIN = Path(os.environ.get("NIGHTSHIFT_CLAUDE_BIN", DEFAULT_CLAUDE_BIN))

needs_claude = pytest.mark.skipif(not CLAUDE_BIN.exists(), reason=f"claude CLI not found at {CLAUDE_BIN}")


@dataclass
class ClaudeRun:
    returncode: int
    events: list[dict[str, Any]]
    ended_at: float
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert results, f"no result event (rc={self.returncode}): {self.stderr[-2000:]}"
        return results[-1]

    def seconds_after_first_request(self, api: FakeAnthropic) -> float:
        """How long the run lasted once it reached the API (startup time varies with machine load)."""
        return self.ended_at - api.requests[0].received_at

    def system(self, subtype: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == "system" and e.get("subtype") == subtype]


def run_claude(
    api: FakeAnthropic,
    tmp_path: Path,
    *args: str,
    prompt: str = "Say hello.",
    max_retries: int | None = 0,
    extra_env: dict[str, str] | None = None,
    timeout: float = 60,
) -> ClaudeRun:
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    cwd.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), **api.cli_env(max_retries=max_retries)}
    env.update(extra_env or {})
    command = [str(CLAUDE_BIN), "-p", "--output-format", "stream-json", "--verbose", "--model", "haiku"]
    proc = subprocess.run(
        [*command, *args], input=prompt, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return ClaudeRun(proc.returncode, events, time.time(), proc.stderr)


# ----------------------------------------------------------------------------- with the real CLI


@pytest.mark.slow
@needs_claude
def test_plain_text_reports_tokens_and_keeps_keys_out_of_the_record(tmp_path: Path) -> None:
    with FakeAnthropic([Text(text="Hello from the fake.", input_tokens=1200, output_tokens=34)]) as api:
        run = run_claude(api, tmp_path, prompt="marker-7f3a say hello")

    result = run.result
    assert (run.returncode, result["is_error"], result["result"]) == (0, False, "Hello from the fake.")
    assert result["num_turns"] == 1
    assert (result["usage"]["input_tokens"], result["usage"]["output_tokens"]) == (1200, 34)
    assert result["total_cost_usd"] > 0
    assert [r.turn for r in api.main_requests] == [0]
    assert all(r.kind == "main" for r in api.requests)
    assert "marker-7f3a" in api.all_text()
    assert "fake-anthropic-key" not in api.all_text()
    assert api.main_requests[0].headers["x-api-key"] == "<redacted>"


@pytest.mark.slow
@needs_claude
def test_json_as_text(tmp_path: Path) -> None:
    value = {"files": ["a.py", "b.py"], "score": 3}
    with FakeAnthropic([Text(text=json.dumps(value))]) as api:
        run = run_claude(api, tmp_path)
    assert json.loads(run.result["result"]) == value


@pytest.mark.slow
@needs_claude
def test_json_schema_structured_output(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    with FakeAnthropic([StructuredOutput(value={"answer": 42})]) as api:
        run = run_claude(api, tmp_path, "--json-schema", json.dumps(schema))

    assert run.result["is_error"] is False
    assert run.result["structured_output"] == {"answer": 42}
    tools = [tool["name"] for tool in api.main_requests[0].body["tools"]]
    assert "StructuredOutput" in tools
    assert len(api.main_requests) == 1


@pytest.mark.slow
@needs_claude
def test_write_tool_use_creates_the_file_then_answers(tmp_path: Path) -> None:
    script: list[Turn] = [
        ToolUse(name="Write", input={"file_path": "hello.txt", "content": "hi\n"}, text="Writing it."),
        Text(text="Wrote hello.txt."),
    ]
    with FakeAnthropic(script) as api:
        run = run_claude(api, tmp_path, "--permission-mode", "acceptEdits")

    assert (tmp_path / "work" / "hello.txt").read_text() == "hi\n"
    assert run.result["result"] == "Wrote hello.txt."
    assert run.result["permission_denials"] == []
    first, second = api.main_requests
    tool_use_id = _tool_use_ids(run)[0]
    assert tool_use_id in json.dumps(second.body["messages"])
    assert (first.turn, second.turn) == (0, 1)


@pytest.mark.slow
@needs_claude
def test_parallel_tool_calls_in_one_turn(tmp_path: Path) -> None:
    calls = [ToolCall(name="Write", input={"file_path": f"{n}.txt", "content": n}) for n in ("one", "two")]
    with FakeAnthropic([ParallelToolUse(calls=calls), Text(text="both written")]) as api:
        run = run_claude(api, tmp_path, "--permission-mode", "acceptEdits")

    assert run.result["result"] == "both written"
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["one.txt", "two.txt"]
    assert len(api.main_requests) == 2


@pytest.mark.slow
@needs_claude
def test_http_400_fails_fast(tmp_path: Path) -> None:
    with FakeAnthropic([HttpError(status=400, message="fake bad request")]) as api:
        run = run_claude(api, tmp_path, max_retries=None)

    assert run.seconds_after_first_request(api) < 15
    assert (run.returncode, run.result["is_error"], run.result["api_error_status"]) == (1, True, 400)
    assert "fake bad request" in run.result["result"]
    # The CLI repeats a 400 a few times with fewer betas and other tool settings, without backoff;
    # the pinned turn answers every repeat.
    assert {r.turn for r in api.main_requests} == {0}
    assert api.turns_used == 1


@pytest.mark.slow
@needs_claude
@pytest.mark.parametrize(
    ("error", "max_retries"),
    [
        (HttpError(status=500), 0),
        (HttpError(status=529), 0),
        (HttpError(status=529, should_retry=False), None),
        (HttpError(status=429, should_retry=False), None),
    ],
    ids=["500-max-retries-0", "529-max-retries-0", "529-x-should-retry-false", "429-x-should-retry-false"],
)
def test_retryable_errors_fail_fast_when_told_not_to_retry(
    tmp_path: Path, error: HttpError, max_retries: int | None
) -> None:
    with FakeAnthropic([error]) as api:
        run = run_claude(api, tmp_path, max_retries=max_retries)

    assert run.seconds_after_first_request(api) < 15
    assert (run.result["is_error"], run.result["api_error_status"]) == (True, error.status)
    assert len(api.main_requests) == 1
    assert run.system("api_retry") == []


@pytest.mark.slow
@needs_claude
def test_overloaded_once_then_recovers(tmp_path: Path) -> None:
    with FakeAnthropic([HttpError(status=529, attempts=1), Text(text="recovered")]) as api:
        run = run_claude(api, tmp_path, max_retries=1)

    assert (run.result["is_error"], run.result["result"]) == (False, "recovered")
    assert [e["error_status"] for e in run.system("api_retry")] == [529]
    assert [r.turn for r in api.main_requests] == [0, 1]


@pytest.mark.slow
@needs_claude
def test_malformed_stream_gives_an_error_result(tmp_path: Path) -> None:
    with FakeAnthropic([MalformedSSE()]) as api:
        run = run_claude(api, tmp_path)

    assert run.seconds_after_first_request(api) < 15
    assert run.result["is_error"] is True
    assert run.returncode == 1
    # The CLI falls back to one non-streaming request, which is answered by the same turn.
    assert [(r.stream, r.turn) for r in api.main_requests] == [(True, 0), (False, 0)]


@pytest.mark.slow
@needs_claude
def test_no_answer_times_out_with_api_timeout_ms(tmp_path: Path) -> None:
    with FakeAnthropic([Hang()]) as api:
        run = run_claude(api, tmp_path, extra_env={"API_TIMEOUT_MS": "2000"})

    assert 2 <= run.seconds_after_first_request(api) < 15
    assert (run.result["is_error"], run.result["api_error_status"]) == (True, None)
    assert "timed out" in run.result["result"]
    assert len(api.main_requests) == 1


@pytest.mark.slow
@needs_claude
def test_exhausted_script_fails_fast_and_says_so(tmp_path: Path) -> None:
    with FakeAnthropic([]) as api:
        run = run_claude(api, tmp_path, max_retries=None)

    assert run.seconds_after_first_request(api) < 15
    assert run.result["is_error"] is True
    assert EXHAUSTED_MESSAGE in run.result["result"]
    assert api.main_requests
    assert all(r.turn is None for r in api.main_requests)


def _tool_use_ids(run: ClaudeRun) -> list[str]:
    return [
        block["id"]
        for event in run.events
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
        if block["type"] == "tool_use"
    ]


# ------------------------------------------------------------------------------- server details


def _post(api: FakeAnthropic, path: str, body: dict[str, Any], timeout: float = 5) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json", "x-api-key": "k"})
        response = conn.getresponse()
        raw = response.read().decode()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except json.JSONDecodeError:
        return response.status, raw


def _sse_data(raw: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in raw.splitlines() if line.startswith("data: ")]


CONVERSATION = {"model": "claude-haiku", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def test_stream_shape_of_a_tool_use_turn() -> None:
    with FakeAnthropic([ToolUse(name="Read", input={"file_path": "x" * 100}, id="toolu_1", delay_s=0.05)]) as api:
        status, raw = _post(api, "/v1/messages?beta=true", {**CONVERSATION, "stream": True})

    assert status == 200
    events = _sse_data(raw)
    assert [e["type"] for e in events][:3] == ["message_start", "ping", "content_block_start"]
    assert events[2]["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}
    partial = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert json.loads(partial) == {"file_path": "x" * 100}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-1] == {"type": "message_stop"}


def test_count_tokens_and_auxiliary_requests_do_not_consume_turns() -> None:
    with FakeAnthropic([Text(text="main answer")]) as api:
        _, counted = _post(api, "/v1/messages/count_tokens?beta=true", CONVERSATION)
        _, aux = _post(api, "/v1/messages?beta=true", CONVERSATION)
        _, main = _post(api, "/v1/messages?beta=true", {**CONVERSATION, "stream": True})
        repeat_status, _ = _post(api, "/v1/messages?beta=true", CONVERSATION)

    assert counted["input_tokens"] > 0
    assert aux["type"] == "message"
    assert aux["content"][0]["text"] == AUXILIARY_TEXT
    assert "main answer" in main
    # A non-streaming repeat of a main conversation is main-loop (the CLI's fallback): no turn left.
    assert repeat_status == 400
    assert [r.kind for r in api.requests] == ["count_tokens", "auxiliary", "main", "main"]
    assert api.turns_used == 1


def test_non_streaming_fallback_gets_a_message() -> None:
    script: list[Turn] = [
        MalformedSSE(attempts=1),
        StructuredOutput(value={"a": 1}, input_tokens=7, output_tokens=3),
    ]
    with FakeAnthropic(script) as api:
        _, broken = _post(api, "/v1/messages", {**CONVERSATION, "stream": True})
        status, reply = _post(api, "/v1/messages", CONVERSATION)

    with pytest.raises(json.JSONDecodeError):
        _sse_data(broken)
    assert status == 200
    assert reply["content"][0] | {"id": None} == {
        "type": "tool_use",
        "id": None,
        "name": "StructuredOutput",
        "input": {"a": 1},
    }
    assert (reply["stop_reason"], reply["usage"]["input_tokens"], reply["usage"]["output_tokens"]) == (
        "tool_use",
        7,
        3,
    )


def test_http_error_shape_and_pinning() -> None:
    script: list[Turn] = [HttpError(status=429, message="slow down", retry_after=3), Text(text="next")]
    with FakeAnthropic(script) as api:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
        conn.request("POST", "/v1/messages", json.dumps({**CONVERSATION, "stream": True}))
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
        repeat_status, _ = _post(api, "/v1/messages", {**CONVERSATION, "stream": True})
        other = {**CONVERSATION, "stream": True, "messages": [{"role": "user", "content": "other"}]}
        _, other_reply = _post(api, "/v1/messages", other)

    assert response.status == 429
    assert response.getheader("retry-after") == "3"
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert repeat_status == 429
    assert "next" in other_reply
    assert [r.turn for r in api.main_requests] == [0, 0, 1]


def test_callable_responders() -> None:
    def count_messages(body: dict[str, Any]) -> Turn:
        return Text(text=f"{len(body['messages'])} messages")

    with FakeAnthropic([Text(text="first"), count_messages]) as api:
        _post(api, "/v1/messages", {**CONVERSATION, "stream": True})
        _, second = _post(api, "/v1/messages", {**CONVERSATION, "stream": True, "messages": [{}, {}, {}]})
    assert "3 messages" in second

    with FakeAnthropic(lambda body: {"kind": "text", "text": body["model"]}) as api:
        replies = [_post(api, "/v1/messages", {**CONVERSATION, "stream": True})[1] for _ in range(3)]
    assert all("claude-haiku" in reply for reply in replies)
    assert api.turns_used == 3


def test_a_failing_responder_answers_a_final_error() -> None:
    def broken(body: dict[str, Any]) -> Turn:
        raise KeyError("no such field")

    with FakeAnthropic([broken]) as api:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
        conn.request("POST", "/v1/messages", json.dumps({**CONVERSATION, "stream": True}))
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()

    assert (response.status, response.getheader("x-should-retry")) == (500, "false")
    assert "responder failed: KeyError('no such field')" in body["error"]["message"]


@pytest.mark.parametrize("after_headers", [False, True])
def test_a_hanging_answer_does_not_block_shutdown(after_headers: bool) -> None:
    threads_before = set(threading.enumerate())
    outcome: list[BaseException | tuple[int, Any]] = []
    api = FakeAnthropic([Hang(after_headers=after_headers)]).start()

    def call() -> None:
        try:
            outcome.append(_post(api, "/v1/messages", {**CONVERSATION, "stream": True}, timeout=30))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 5
    while not api.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    api.stop()
    client.join(5)

    assert time.monotonic() - started < 3
    assert not client.is_alive()
    assert outcome
    assert not isinstance(outcome[0], tuple) or "message_stop" not in str(outcome[0][1])
    assert set(threading.enumerate()) <= threads_before


def test_hang_for_seconds_then_close() -> None:
    with FakeAnthropic([Hang(seconds=0.2)]) as api:
        started = time.monotonic()
        with pytest.raises(http.client.RemoteDisconnected):
            _post(api, "/v1/messages", {**CONVERSATION, "stream": True})
    assert 0.2 <= time.monotonic() - started < 3


def test_script_loads_from_json_with_a_kind(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            [
                {"kind": "text", "text": "hi", "delay_s": 0.5},
                {"kind": "tool_use", "name": "Write", "input": {"file_path": "a"}},
                {"kind": "structured_output", "value": {"x": 1}},
                {"kind": "http_error", "status": 529},
                {"kind": "hang", "seconds": 1},
                {"kind": "malformed_sse"},
            ]
        )
    )
    script = load_script(path)
    assert [type(turn) for turn in script] == [Text, ToolUse, StructuredOutput, HttpError, Hang, MalformedSSE]
    assert script[3] == HttpError(status=529)
    path.write_text(json.dumps([{"kind": "text", "text": "hi", "colour": "red"}]))
    with pytest.raises(ValidationError):
        load_script(path)


def test_command_line_entry(tmp_path: Path) -> None:
    script, log = tmp_path / "script.json", tmp_path / "requests.jsonl"
    script.write_text(json.dumps([{"kind": "text", "text": "from the command line"}]))
    command = [sys.executable, "-m", "nightshift.testing.fake_anthropic", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--script", str(script), "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("PORT=")
        conn = http.client.HTTPConnection("127.0.0.1", int(line.removeprefix("PORT=")), timeout=5)
        conn.request("POST", "/v1/messages", json.dumps({**CONVERSATION, "stream": True}))
        assert "from the command line" in conn.getresponse().read().decode()
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)

    assert (proc.returncode, stderr) == (0, "")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["kind"], r["turn"]) for r in records] == [("main", 0)]
