"""What stops an agent besides success, with the real Claude Code CLI against the fake model API:
the time limit while the CLI retries a rate-limited API, a shutdown signal, and the messages they leave."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from nightshift.agents.base import AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings
from nightshift.errors import RateLimitedError
from nightshift.runner import run_agent_checked
from nightshift.testing.fake_anthropic import FakeAnthropic, HttpError

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_rate_limited_until_our_timeout_says_429_and_the_retries(tmp_path: Path, claude_bin: Path) -> None:
    """The CLI retries a 429 with back-off until our limit fires: the error names 429, the retry count and
    the limit's setting, and it is a RateLimitedError (the budget guard cools off), not a bare timeout."""
    work = tmp_path / "work"
    work.mkdir()
    with FakeAnthropic([HttpError(status=429, retry_after=1)]) as api:
        adapter = ClaudeAdapter(ClaudeSettings(binary=claude_bin, base_url=api.url, api_key=SecretStr("k")))
        request = AgentRequest(
            prompt="hello", cwd=work, model="haiku", home=tmp_path / "home", timeout_s=12,
            timeout_setting="timeout_s of [workers.audit] in .nightshift.toml",
        )  # fmt: skip
        with pytest.raises(RateLimitedError) as raised:
            run_agent_checked(request, adapter=adapter)
    message = str(raised.value)
    assert raised.value.outcome is not None
    assert raised.value.outcome.status == "timeout"
    assert "429" in message, message
    assert "rate limited" in message
    assert f"retried the model API {raised.value.outcome.api_retries} time(s)" in message
    assert raised.value.outcome.api_retries >= 2
    assert "12 s time limit (timeout_s of [workers.audit] in .nightshift.toml)" in message


RUNNER = textwrap.dedent(
    """
    import logging, sys, threading
    from pathlib import Path
    from pydantic import SecretStr
    from nightshift.agents.base import AgentRequest
    from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings
    from nightshift.cancellation import install_signal_handlers
    from nightshift.errors import AgentCancelledError
    from nightshift.runner import run_agent_checked

    logging.basicConfig(level=logging.INFO)
    install_signal_handlers()
    claude, url, work, home = sys.argv[1:5]
    adapter = ClaudeAdapter(ClaudeSettings(binary=Path(claude), base_url=url, api_key=SecretStr("k")))
    request = AgentRequest(prompt="hang", cwd=Path(work), model="haiku", home=Path(home), timeout_s=300)


    def agent():  # in a worker thread, as Prefect runs tasks: the signal lands in the main thread
        try:
            run_agent_checked(request, adapter=adapter)
        except AgentCancelledError as exc:
            print("CANCELLED:", exc, flush=True)

    worker = threading.Thread(target=agent)
    worker.start()
    worker.join()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_runner_stops_its_agent_first(tmp_path: Path, claude_bin: Path, sig: int) -> None:
    from nightshift.testing.fake_anthropic import Hang

    work = tmp_path / "work"
    work.mkdir()
    with FakeAnthropic([Hang()]) as api:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(claude_bin), api.url, str(work), str(tmp_path / "home")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not api.main_requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.main_requests, "the agent never called the model"
        sent = time.monotonic()
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    assert took < 10, f"{took:.1f} s to stop after {signal.Signals(sig).name}"
    assert proc.returncode in (0, 130, 143, 128 + sig, -sig), (proc.returncode, err[-2000:])
    # stopped by the handler, before the interpreter went down (not by the atexit SIGKILL)
    assert "stopping the agent: this process received " + signal.Signals(sig).name in err, err[-2000:]
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "home")], capture_output=True, text=True, check=False)
    assert not leftovers.stdout.strip(), leftovers.stdout
