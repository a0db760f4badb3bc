"""Median wall time of nightshift's runner vs the bare `claude -p` command, same prompt, same fake API.

    uv run python bench/runner_overhead.py [--runs 15]

Both sides run the real pinned CLI against the scripted fake Anthropic API on 127.0.0.1 with a fresh
HOME per run; runs are interleaved so machine drift hits both alike. Prints medians and the ratio
(goal <= 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from nightshift.agents.base import AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings, build_argv, build_env, find_claude_binary
from nightshift.runner import run_agent
from nightshift.testing.fake_anthropic import FakeAnthropic, Text

PROMPT = "Reply with the word ready."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    binary = find_claude_binary()
    work = Path(tempfile.mkdtemp(prefix="nightshift-bench-"))
    bare_times: list[float] = []
    ours_times: list[float] = []
    with FakeAnthropic(lambda body: Text(text="ready")) as api:
        settings = ClaudeSettings(binary=binary, base_url=api.url, api_key=SecretStr("bench-key"), max_api_retries=0)
        adapter = ClaudeAdapter(settings)
        for index in range(args.runs + 1):
            bare_home, our_home = work / f"bare-{index}", work / f"ours-{index}"
            bare_home.mkdir()
            request = AgentRequest(prompt=PROMPT, cwd=work, model="haiku", home=our_home)
            argv = build_argv(request, binary)
            env = build_env(request, bare_home, settings)
            started = time.perf_counter()
            done = subprocess.run(argv, input=PROMPT.encode(), env=env, cwd=work, capture_output=True, check=False)
            bare = time.perf_counter() - started
            assert b'"is_error":false' in done.stdout, done.stdout[-500:]
            started = time.perf_counter()
            outcome = run_agent(request, adapter=adapter)
            ours = time.perf_counter() - started
            assert outcome.succeeded, outcome.final_text
            if index:  # the first pair warms the page cache for the 380 MB binary
                bare_times.append(bare)
                ours_times.append(ours)
    bare_median, ours_median = statistics.median(bare_times), statistics.median(ours_times)
    print(f"claude CLI {outcome.cli_version}, {args.runs} runs each, fake model API on {api.url}")
    print(f"bare `claude -p` median: {bare_median:.3f} s  (min {min(bare_times):.3f}, max {max(bare_times):.3f})")
    print(f"nightshift run_agent median: {ours_median:.3f} s  (min {min(ours_times):.3f}, max {max(ours_times):.3f})")
    print(f"ratio ours/bare: {ours_median / bare_median:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
