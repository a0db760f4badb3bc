"""Median wall time of one agent call as a plain process, in a cold container, in a warm-pool container.

    uv run python bench/sandbox.py [--runs 10] [--cpus 1]

The same `run_agent` call (real pinned claude, scripted fake model API on the host's 127.0.0.1, fresh
HOME per run, strict profile for the containers) three ways, interleaved so machine drift hits all
alike; the first round warms caches and is not counted. Warm runs wait for the pool to have a ready
container first (that is what "warm" means); the time of a run includes closing it (container removed,
mounts undone). Goals: cold <= process + 1 s, warm <= process + 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from nightshift.agents.base import AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings, find_claude_binary
from nightshift.runner import run_agent
from nightshift.sandbox.base import ProcessSandbox, Sandbox
from nightshift.sandbox.container import DockerSandbox
from nightshift.sandbox.egress import resolve_upstream
from nightshift.sandbox.pool import WarmPool
from nightshift.sandbox.settings import SandboxSettings
from nightshift.testing.fake_anthropic import FakeAnthropic, Text

PROMPT = "Reply with the word ready."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cpus", type=float, default=None, help="--cpus of the containers (default: settings)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nightshift-bench-sandbox-"))
    repo = work / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("# bench\n")
    settings = SandboxSettings.from_env()
    if args.cpus is not None:
        settings = settings.model_copy(update={"cpus": args.cpus})
    times: dict[str, list[float]] = {"process": [], "cold": [], "warm": []}
    with FakeAnthropic(lambda body: Text(text="ready")) as api:
        claude = ClaudeSettings(
            binary=find_claude_binary(), base_url=api.url, api_key=SecretStr("bench-key"), max_api_retries=0
        )
        adapter = ClaudeAdapter(claude)
        pool = WarmPool(settings, resolve_upstream(api.url), size=1).start()
        try:
            sandboxes: dict[str, Sandbox] = {
                "process": ProcessSandbox(),
                "cold": DockerSandbox("strict", settings=settings, flow_run_id="bench"),
                "warm": DockerSandbox("strict", settings=settings, flow_run_id="bench", pool=pool),
            }
            for index in range(args.runs + 1):
                for mode, sandbox in sandboxes.items():
                    if mode == "warm" and not pool.wait_ready(timeout=120):
                        raise SystemExit("the warm pool did not refill within 120 s")
                    request = AgentRequest(prompt=PROMPT, cwd=repo, model="haiku", home=work / f"{mode}-{index}")
                    started = time.perf_counter()
                    outcome = run_agent(request, adapter=adapter, sandbox=sandbox)
                    elapsed = time.perf_counter() - started
                    assert outcome.succeeded, (mode, outcome.final_text, outcome.stderr_tail[-500:])
                    if index:  # round 0 warms the page cache (380 MB binary, image layers)
                        times[mode].append(elapsed)
        finally:
            pool.close()
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    print(f"claude {outcome.cli_version}, image {settings.image}, --cpus {settings.cpus:g}, {args.runs} runs each")
    for mode, values in times.items():
        delta = "" if mode == "process" else f"  ({medians[mode] - medians['process']:+.3f} s)"
        print(f"{mode:>8} median {medians[mode]:.3f} s  min {min(values):.3f}  max {max(values):.3f}{delta}")
    cold_ok = medians["cold"] - medians["process"] <= 1.0
    warm_ok = medians["warm"] - medians["process"] <= 0.3
    print(f"goal cold <= +1.0 s: {'met' if cold_ok else 'MISSED'}; warm <= +0.3 s: {'met' if warm_ok else 'MISSED'}")


if __name__ == "__main__":
    main()
