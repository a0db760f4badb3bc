"""nightshift's deployments on a real Prefect server with a real process worker, from one `nightshift up`.

The session's stack is started exactly as a user does it: `nightshift up` (as a subprocess) starts
`prefect server start` (SQLite, its own PREFECT_HOME) and `prefect worker start --type process`, runs the
bootstrap and `prefect deploy --all` from prefect.yaml, triggers audit/default and waits for it; the
session ends with `nightshift down`, which must stop exactly those processes. Claude Code is the real
CLI; its model API is the standalone fake (`python -m nightshift.testing.fake_anthropic`), one process
per test on a fixed port that the worker's environment (and the agent-settings block) points at.

The stack fixture is shared by test_budget.py and test_ui.py (they import it): whichever module sets
it up first owns it and stops it at the end of the session.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

from nightshift.catalogue import CATALOGUE
from nightshift.results import repo_key
from nightshift.testing.fake_anthropic import RecordedRequest, StructuredOutput, Turn
from tests.gitrepos import make_repo

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
CODECHANGE = {"feature": "feature", "bugfix": "bugfix", "test": "write_tests", "docs": "docs",
              "refactor-change": "refactor_change", "review": "review"}  # fmt: skip

APP = '''"""A tiny service."""
import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)
'''


def audit_report(description: str) -> dict[str, Any]:
    return {
        "vulnerabilities": [{"severity": "high", "file": "app.py", "line": 5, "description": description}],
        "riskScore": 72,
        "recommendations": ["Pass an argument list and shell=False."],
    }


UP_FINDING = "Shell injection found by the up run: subprocess with shell=True."


# ------------------------------------------------------------------------------------ the stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeModel:
    """A standalone fake model API process; its requests are read back from its JSONL log."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def requests(self) -> list[RecordedRequest]:
        if not self.log.exists():
            return []
        lines = [line for line in self.log.read_text().splitlines() if line.strip()]
        return [RecordedRequest.model_validate_json(line) for line in lines]

    def main_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests() if r.kind == "main"]


@contextmanager
def fake_model(port: int, turns: list[Turn], workdir: Path) -> Iterator[FakeModel]:
    """`python -m nightshift.testing.fake_anthropic --port PORT --script ... --log ...` for one test."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "script.json"
    script.write_text(json.dumps([turn.model_dump(mode="json") for turn in turns]))
    log = workdir / "requests.jsonl"
    argv = [sys.executable, "-m", "nightshift.testing.fake_anthropic", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--script", str(script), "--log", str(log)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        assert ready == f"PORT={port}", f"fake model did not start: {ready!r}"
        yield FakeModel(log)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class StackInfo:
    state: Path
    port: int
    fake_port: int
    repo: Path
    work: Path
    env: dict[str, str]
    up_output: str = ""
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def nightshift(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nightshift.cli", *args, "--state-dir", str(self.state)],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def prefect(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "PREFECT_API_URL": self.api_url, "PREFECT_HOME": str(self.state / "prefect")}
        return subprocess.run(
            [sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def fake(self, turns: list[Turn], name: str) -> Any:
        return fake_model(self.fake_port, turns, self.work / name)

    @contextmanager
    def client(self) -> Iterator[Any]:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            yield client

    @contextmanager
    def api(self) -> Iterator[None]:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            yield

    def wait_final(self, flow_run_ids: list[UUID], timeout: float = 300) -> dict[UUID, Any]:
        deadline = time.monotonic() + timeout
        done: dict[UUID, Any] = {}
        with self.client() as client:
            while len(done) < len(flow_run_ids):
                for run_id in flow_run_ids:
                    if run_id not in done:
                        run = client.read_flow_run(run_id)
                        if run.state is not None and run.state.is_final():
                            done[run_id] = run
                if time.monotonic() > deadline:
                    pending = {str(i): client.read_flow_run(i).state for i in flow_run_ids if i not in done}
                    raise AssertionError(f"flow runs not final after {timeout:g} s: {pending}")
                time.sleep(1.0)
        return done

    def artifact(self, key: str) -> Any:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
        from prefect.client.schemas.sorting import ArtifactSort

        with self.client() as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC
            )
        assert found, f"no artifact {key}"
        return found[0]

    def report_key(self, worker: str, kind: str = "report") -> str:
        return f"{worker}-{repo_key(self.repo)}-{kind}"


def _start_stack() -> StackInfo:
    work = Path(tempfile.mkdtemp(prefix="nightshift-stack-"))
    repo = make_repo(work / "service", {"app.py": APP, "README.md": "# service\n"})
    fake_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "ANTHROPIC_"))}
    env |= {
        "ANTHROPIC_API_KEY": "sk-ant-fake-key-for-tests",  # stored by the bootstrap in the agent-settings block
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake_port}",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
        # agents as plain processes of this host: the Docker sandbox has its own tests, and here every
        # agent process must be visible to the test that counts them
        "NIGHTSHIFT_SANDBOX_BACKEND": "process",
    }
    info = StackInfo(state=work / "state", port=free_port(), fake_port=fake_port, repo=repo, work=work, env=env)
    with info.fake([StructuredOutput(value=audit_report(UP_FINDING))], "up"):
        up = info.nightshift("up", "--port", str(info.port), "--repo", str(repo), "--no-install", "--wait", "300")
    info.up_output = up.stdout + up.stderr
    for name in ("server", "worker"):
        pid_file = info.state / "ops" / f"{name}.json"
        if pid_file.exists():
            info.pids[name] = json.loads(pid_file.read_text())["pid"]
    if up.returncode != 0:
        _stop_stack(info)
        raise AssertionError(f"nightshift up failed ({up.returncode}):\n{info.up_output}")
    return info


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _stop_stack(info: StackInfo) -> subprocess.CompletedProcess[str]:
    return info.nightshift("down", timeout=120)


_OWNER: list[StackInfo] = []


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    """The session's server + worker + deployments (see the module docstring)."""
    if _OWNER:
        yield _OWNER[0]
        return
    info = _start_stack()
    _OWNER.append(info)
    yield info
    down = _stop_stack(info)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "worker: stopped" in down.stdout, down.stdout
    assert "server: stopped" in down.stdout, down.stdout
    for name, pid in info.pids.items():
        assert not _alive(pid), f"{name} pid {pid} survived nightshift down"
    shutil.rmtree(info.work, ignore_errors=True)  # kept when something failed: the logs are in state/ops/


# ------------------------------------------------------------------------------- prefect.yaml


def _deployments() -> list[dict[str, Any]]:
    return list(yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"])


def test_prefect_yaml_has_one_deployment_per_worker_with_the_catalogue_settings() -> None:
    from prefect.flows import load_flow_from_entrypoint

    by_flow: dict[str, dict[str, Any]] = {}
    for deployment in _deployments():
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name not in by_flow, f"two deployments of {flow.name}"
        assert deployment["name"] == "default"
        by_flow[flow.name] = deployment
    assert set(by_flow) == set(CATALOGUE) | set(CODECHANGE)
    queues = {"critical", "normal", "low"}
    for name, spec in CATALOGUE.items():
        deployment = by_flow[name]
        assert deployment["work_pool"]["name"] == "nightshift"
        assert deployment["work_pool"]["work_queue_name"] == spec.priority
        assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        schedules = deployment.get("schedules") or []
        if spec.every_minutes is None:
            assert schedules == [], f"{name} is manual: no schedule"
        else:
            assert schedules == [{"interval": spec.every_minutes * 60, "active": spec.enabled}], name
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["NIGHTSHIFT_AGENT_SETTINGS_BLOCK"] == "default"
        assert "prefect.blocks.nightshift-repository-target.default.url" in deployment["parameters"]["repo"]
        assert f"mode:{spec.mode}" in deployment["tags"]
        if spec.mode == "agent":
            assert f"sandbox:{spec.sandbox}" in deployment["tags"]
            assert int(env["NIGHTSHIFT_AGENT_RETRIES"]) >= 1
            assert [float(x) for x in env["NIGHTSHIFT_AGENT_RETRY_DELAYS"].split(",")] == [10.0, 60.0]
            assert int(env["NIGHTSHIFT_FLOW_TIMEOUT_S"]) > 0
    for name in CODECHANGE:
        assert by_flow[name].get("schedules") is None
        assert by_flow[name]["work_pool"]["work_queue_name"] in queues
        env = by_flow[name]["work_pool"]["job_variables"]["env"]
        assert env["NIGHTSHIFT_FLOW_RETRIES"] == "0"  # a change may be half pushed: never re-run it whole
        assert "NIGHTSHIFT_FLOW_TIMEOUT_S" not in env  # it may wait for a human for a day
    text = (ROOT / "prefect.yaml").read_text()
    assert "&env_common" in text
    assert "<<: *agent" in text
    assert not re.search(r"sk-ant-|api_key\s*:|ANTHROPIC_API_KEY\s*:|token\s*:", text)


# ------------------------------------------------------------------------------- on the server


def test_up_started_server_worker_and_ran_the_audit(stack: StackInfo) -> None:
    out = stack.up_output
    for step in ("prerequisites", "server", "bootstrap", "deploy", "worker", "audit run"):
        assert f"[up] {step}" in out, out
    assert "18 deployments from prefect.yaml" in out
    assert "audit/default: Completed" in out
    assert f"UI:        {stack.ui_url}" in out
    artifact = re.search(rf"artifact:  {re.escape(stack.ui_url)}/artifacts/artifact/([0-9a-f-]{{36}})", out)
    assert artifact, out
    artifact_line = next(line for line in out.splitlines() if line.startswith("  artifact:"))
    assert "LOCAL" not in artifact_line  # the key reached the agent-settings block: the agent ran
    with stack.client() as client:
        (report,) = client.read_artifacts(artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact.group(1)])))
    assert report.key == stack.report_key("audit")
    assert UP_FINDING in report.data
    assert "claude-code haiku" in report.data

    again = stack.nightshift("up", "--no-run", "--no-install", timeout=300)  # idempotent: reuses what runs
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"running, reused (pid {stack.pids['server']})" in again.stdout
    assert f"running, reused (pid {stack.pids['worker']}" in again.stdout
    assert "deployments kept" in again.stdout
    with stack.client() as client:
        queues = {q.name: q.priority for q in client.read_work_queues(work_pool_name="nightshift")}
        limit = client.read_global_concurrency_limit_by_name("agent-claude")
        block_types = {b.slug for b in client.read_block_types()}
    assert (queues["critical"], queues["normal"], queues["low"]) == (1, 2, 3)
    assert limit.limit == 2
    assert {"nightshift-agent-settings", "nightshift-budget", "nightshift-sandbox-profile",
            "nightshift-repository-target"} <= block_types  # fmt: skip


def test_prefect_deployment_run_from_the_command_line(stack: StackInfo) -> None:
    finding = "Shell injection reported through prefect deployment run."
    with stack.fake([StructuredOutput(value=audit_report(finding))], "cli-run") as fake:
        run = stack.prefect("deployment", "run", "audit/default", "--param", "force=true")
        assert run.returncode == 0, run.stdout + run.stderr
        match = re.search(r"UUID:\s*([0-9a-f-]{36})", run.stdout)
        assert match, run.stdout
        flow_run_id = UUID(match.group(1))
        final = stack.wait_final([flow_run_id], timeout=240)[flow_run_id]
        assert final.state.is_completed(), final.state
        assert len(fake.main_requests()) == 1
    report = stack.artifact(stack.report_key("audit"))
    assert report.flow_run_id == flow_run_id
    assert finding in report.data
    assert "Risk score 72/100" in report.data
    assert "claude-code haiku" in report.data
    assert "LOCAL analysis" not in report.data
    cost = stack.artifact(stack.report_key("audit", "cost"))
    rows = json.loads(cost.data) if isinstance(cost.data, str) else cost.data
    assert rows[0]["agent_calls"] == 1
    assert rows[0]["output_tokens"] > 0
    assert rows[0]["cost_usd"] > 0


def _agent_launches(state: Path, flow_runs: set[str]) -> dict[int, bytes]:
    """Agent CLIs of this stack's runs alive right now, by process group (the runner starts each agent CLI
    in a group of its own; Claude Code forks helpers with the same command line into it) → what identifies
    the run: a `claude` whose HOME (one per agent run) is under the stack's state directory, or (Docker
    sandbox) the `docker run` of a container labelled with one of `flow_runs`."""
    home = f"HOME={state}/".encode()
    labels = {f"io.nightshift.flow-run={run}".encode() for run in flow_runs}
    found: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith((b"/claude", b"docker")):
                continue
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] in ("Z", "X"):
                continue
            group = int(stat[2])
            if argv[0].endswith(b"/claude") and b"-p" in argv:
                homes = [e for e in (entry / "environ").read_bytes().split(b"\0") if e.startswith(home)]
                if homes:
                    found[group] = homes[0]
            elif argv[1:2] == [b"run"] and labels & set(argv):
                found[group] = next(a for a in argv if a.startswith(b"ns-"))
        except (OSError, IndexError, StopIteration):
            continue
    return found


def _describe(pid: int) -> str:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:160].decode(errors="replace")
    except OSError:
        return "gone"
    return f"state={fields[0]} ppid={fields[1]} pgid={fields[2]} sid={fields[3]} start={fields[19]} {argv}"


def test_global_limit_allows_two_agent_processes_for_eight_runs(stack: StackInfo) -> None:
    """8 agent runs triggered at once (2 flow runs, i.e. 2 processes, of 4 chunks each) against a slow model:
    never more than 2 agent CLIs alive, all 8 complete."""
    big = make_repo(
        stack.work / "big",
        {f"pkg/mod{i}.py": f'"""Module {i}."""\n' + "x = 1\n" * 900 for i in range(8)}
        | {".nightshift.toml": "[workers.audit]\nbudget_tokens = 2000\nmax_chunks = 4\n"},
    )
    finding = {"severity": "low", "file": "pkg/mod0.py", "line": 1, "description": "slow finding"}
    answer = {"vulnerabilities": [finding], "riskScore": 10, "recommendations": ["r"]}
    turns: list[Turn] = [StructuredOutput(value=answer, delay_s=2.5) for _ in range(8)]
    with stack.client() as client:
        audit = client.read_deployment_by_name("audit/default")
        load_test = client.create_deployment(  # like audit/default, without the one-run-at-a-time limit
            flow_id=audit.flow_id, name="load-test", work_pool_name="nightshift", work_queue_name="critical",
            entrypoint=audit.entrypoint, pull_steps=audit.pull_steps, parameters=audit.parameters,
            parameter_openapi_schema=audit.parameter_openapi_schema, job_variables=audit.job_variables,
            tags=audit.tags,
        )  # fmt: skip
    alive: list[int] = []
    launches: dict[int, bytes] = {}
    crowded: list[dict[int, str]] = []
    ids: list[UUID] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            now = _agent_launches(stack.state, {str(i) for i in ids})
            launches.update(now)
            alive.append(len(now))
            if len(now) > 2:
                crowded.append({group: _describe(group) for group in now})
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    with stack.fake(turns, "eight") as fake:
        sampler.start()
        try:
            with stack.client() as client:
                parameters = {"force": True, "repo": str(big)}
                ids += [client.create_flow_run_from_deployment(load_test, parameters=parameters).id for _ in range(2)]
            runs = stack.wait_final(ids, timeout=240)
        finally:
            stop.set()
            sampler.join(timeout=5)
            with stack.client() as client:
                client.delete_deployment(load_test)
        states = [run.state.name for run in runs.values()]
        assert states == ["Completed", "Completed"], states
        assert len(fake.main_requests()) == 8
    assert max(alive) <= 2, f"more than 2 agent CLIs alive at once: {crowded[:3]}"
    assert max(alive) == 2, "the agent runs never overlapped: the test proves nothing"
    assert len(set(launches.values())) == 8, launches  # 8 agent runs, each seen alive
    report = stack.artifact(f"audit-{repo_key(big)}-report")
    assert "Chunks:** 4" in report.data
    assert report.data.count("slow finding") >= 4


def test_status_shows_every_deployment(stack: StackInfo) -> None:
    result = stack.nightshift("status", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("DEPLOYMENT"))
    for column in ("MODE", "SANDBOX", "QUEUE", "SCHEDULE", "LAST RUN", "LAST RUN AT", "NEXT RUN", "COST TODAY"):
        assert column in header
    rows = {line.split()[0]: line for line in lines if "/default" in line.split()[0]}
    assert len(rows) == 18
    audit = rows["audit/default"].split()
    assert audit[1:5] == ["agent", "strict", "critical", "every"]
    assert "Completed" in rows["audit/default"]
    assert rows["audit/default"].rstrip().endswith("runs)")
    assert "every 120 min (off)" in rows["document/default"]
    assert "manual" in rows["deepdive/default"]
    assert "budget guard:" in result.stdout


def screenshot_dir() -> Path:
    path = OUTPUT / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path
