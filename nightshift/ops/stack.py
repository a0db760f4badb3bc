"""The server-backed main job: a Prefect server, nightshift's deployments and a worker on this machine.

    nightshift up      prerequisites → server → bootstrap → prefect deploy --all → worker → audit run
    nightshift down    stops exactly the server and worker `up` started (pid files), nothing else
    nightshift status  the deployments table (`nightshift.ops.status`)

Everything lives under the state directory (`$NIGHTSHIFT_STATE_DIR`, default ~/.local/share/nightshift):

    ops/server.json, ops/worker.json   pid files (pid + kernel start time), see `nightshift.ops.procs`
    ops/server.log, ops/worker.log     their output
    ops/stack.json                     port, URLs, repository, fingerprint of the last deploy
    prefect/                           PREFECT_HOME of the server: its SQLite database prefect.db

`up` is idempotent: a server or worker it started that still runs is reused, the deployments are only
deployed again when prefect.yaml, the flows or the repository changed, and the bootstrap keeps what
people edited in the UI.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nightshift.errors import ConfigError, OpsError
from nightshift.ops.procs import ManagedProcess, read_json, write_json
from nightshift.process import run_command
from nightshift.results import state_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 4200
HOST = "127.0.0.1"
POOL = "nightshift"
AUDIT_DEPLOYMENT = "audit/default"
SERVER_START_TIMEOUT_S = 180.0
WORKER_START_TIMEOUT_S = 90.0
Say = Callable[[str], None]


class UpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(default=None, ge=1, le=65535, description="None: the running stack's, else 4200")
    repo: Path | None = Field(
        default=None, description="repository the deployments work on; None: the running stack's, else this checkout"
    )
    install: bool = Field(default=True, description="run scripts/setup.sh --no-system when the agent CLI is missing")
    run_audit: bool = Field(default=True, description="trigger audit/default and wait for it")
    force: bool = Field(default=False, description="the audit run ignores a fresh earlier result")
    wait_s: float = Field(default=1800.0, gt=0, description="how long to wait for the audit run")
    redeploy: bool = Field(default=False, description="deploy even when nothing changed")
    concurrency: int | None = Field(default=None, ge=1, description="agent runs alive at once")


class Stack:
    """Paths, URLs and processes of the stack in one state directory."""

    def __init__(self, state: Path | None = None, port: int | None = None) -> None:
        self.state = (state or state_dir()).expanduser().resolve()
        self.ops_dir = self.state / "ops"
        self.prefect_home = self.state / "prefect"
        self.record_file = self.ops_dir / "stack.json"
        recorded = read_json(self.record_file).get("port")
        self.port = port or (int(recorded) if isinstance(recorded, int) else DEFAULT_PORT)
        self.server = ManagedProcess("server", self.ops_dir)
        self.worker = ManagedProcess("worker", self.ops_dir)

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of everything `up` starts: this stack's API, Prefect home and state directory."""
        env = dict(os.environ if base is None else base)
        env |= {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.prefect_home),
            "NIGHTSHIFT_STATE_DIR": str(self.state),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        env.pop("PREFECT_PROFILE", None)
        return env

    @contextmanager
    def api(self) -> Iterator[None]:
        """This process talks to the stack's API inside the block."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            yield

    def healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=timeout_s) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def port_in_use(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((HOST, self.port)) == 0

    def remember(self, **fields: Any) -> None:
        data = read_json(self.record_file)
        data |= {"port": self.port, "api_url": self.api_url, "ui_url": self.ui_url, **fields}
        write_json(self.record_file, data)


# ----------------------------------------------------------------------------------------- steps


@contextmanager
def step(say: Say, name: str) -> Iterator[list[str]]:
    """Time one step; the lines it appends are printed with its duration."""
    started = time.monotonic()
    lines: list[str] = []
    yield lines
    took = time.monotonic() - started
    first, *rest = lines or ["done"]
    say(f"[up] {name:<13} {first}  ({took:.1f} s)")
    for line in rest:
        say(f"[up] {'':<13} {line}")


def check_prerequisites(options: UpOptions) -> list[str]:
    from nightshift.agents.claude import find_claude_binary
    from nightshift.errors import AgentNotFoundError

    lines: list[str] = []
    try:
        binary = find_claude_binary()
    except AgentNotFoundError:
        if not options.install:
            raise
        result = run_command(["bash", "scripts/setup.sh", "--no-system"], cwd=PROJECT_ROOT, timeout_s=1800)
        if result.returncode != 0:
            raise OpsError(f"scripts/setup.sh failed ({result.returncode}): {result.stderr_tail[-1000:]}") from None
        lines.append("installed the agent CLI (scripts/setup.sh --no-system)")
        binary = find_claude_binary()
    lines.insert(0, f"agent CLI {binary}")
    chromium = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
    lines.append(f"chromium {chromium}" if chromium else "chromium: not installed (only the UI tests need it)")
    return lines


def ensure_server(stack: Stack) -> str:
    record = stack.server.alive()
    if record is not None and stack.healthy():
        return f"running, reused (pid {record.pid}) at {stack.ui_url}"
    if record is not None:
        stack.server.stop()
    if stack.port_in_use():
        raise OpsError(f"port {stack.port} is taken by a process nightshift did not start; choose another with --port")
    stack.prefect_home.mkdir(parents=True, exist_ok=True)
    env = stack.env()
    env.setdefault("PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS", "5")
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(stack.port)]
    record = stack.server.start(argv, env=env, cwd=stack.state)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not stack.healthy():
        if stack.server.exited_early(record):
            raise OpsError(f"the Prefect server exited at start; {stack.server.log_file}:\n{stack.server.log_tail()}")
        if time.monotonic() > deadline:
            raise OpsError(f"the Prefect server did not answer within {SERVER_START_TIMEOUT_S:g} s; see {record.log}")
        time.sleep(0.5)
    stack.remember()
    return f"started pid {record.pid} at {stack.ui_url} (SQLite {stack.prefect_home / 'prefect.db'})"


def deploy_fingerprint(stack: Stack, repo: Path) -> str:
    digest = hashlib.sha256()
    for path in [PROJECT_ROOT / "prefect.yaml", *sorted((PROJECT_ROOT / "flows").glob("*.py"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(f"{repo}\0{stack.api_url}".encode())
    return digest.hexdigest()


def deploy(stack: Stack, repo: Path, *, force: bool) -> str:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    fingerprint = deploy_fingerprint(stack, repo)
    if not force and read_json(stack.record_file).get("deploy_fingerprint") == fingerprint:
        with get_client(sync_client=True) as client:
            try:
                client.read_deployment_by_name(AUDIT_DEPLOYMENT)
            except ObjectNotFound:
                pass
            else:
                return "prefect.yaml, flows and repository unchanged: deployments kept"
    argv = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    result = run_command(argv, cwd=PROJECT_ROOT, env=stack.env(), timeout_s=900)
    if result.returncode != 0:
        raise OpsError(f"prefect deploy --all failed ({result.returncode}):\n{result.stdout[-3000:]}")
    count = result.stdout.count("successfully created") + result.stdout.count("successfully updated")
    stack.remember(deploy_fingerprint=fingerprint, repo=str(repo))
    return f"prefect deploy --all: {count} deployments from prefect.yaml"


def ensure_worker(stack: Stack) -> str:
    from prefect.client.orchestration import get_client

    record = stack.worker.alive()
    if record is not None:
        return f"running, reused (pid {record.pid}, pool {POOL})"
    reaped = reap_orphans()
    name = f"nightshift-{socket.gethostname()}-{stack.port}"
    env = stack.env()
    env.pop("ANTHROPIC_API_KEY", None)  # flow runs read the key from the agent-settings block
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process", "--name", name]
    record = stack.worker.start(argv, env=env, cwd=PROJECT_ROOT)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while True:
        if stack.worker.exited_early(record):
            raise OpsError(f"the worker exited at start; {stack.worker.log_file}:\n{stack.worker.log_tail()}")
        with get_client(sync_client=True) as client:
            if any(w.name == name for w in client.read_workers_for_work_pool(POOL)):
                break
        if time.monotonic() > deadline:
            raise OpsError(f"the worker did not report within {WORKER_START_TIMEOUT_S:g} s; see {record.log}")
        time.sleep(1.0)
    return f"started pid {record.pid} (process worker {name}, pool {POOL}); {reaped}"


def reap_orphans() -> str:
    """At worker start: remove sandbox containers, networks and volumes left by dead owners."""
    from nightshift.sandbox.reaper import reap

    try:
        report = reap()
    except Exception as exc:  # no Docker engine here: nothing can be left over
        return f"orphan reaper skipped ({type(exc).__name__}: {str(exc)[:120]})"
    return f"orphan reaper: {report.model_dump_json()}"


class AuditRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow_run_id: str
    flow_run_name: str
    state: str
    state_type: str
    message: str | None = None
    artifact_key: str | None = None
    artifact_id: str | None = None
    local_fallback: bool = False
    description: str | None = None


def run_audit(stack: Stack, *, force: bool, wait_s: float, say: Say) -> AuditRun:
    """Trigger audit/default (what `prefect deployment run audit/default` does) and wait for its end."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    parameters = {"force": True} if force else {}
    deadline = time.monotonic() + wait_s
    last = ""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(AUDIT_DEPLOYMENT)
        flow_run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        say(f"[up] {'':<13} triggered {AUDIT_DEPLOYMENT}: {stack.ui_url}/runs/flow-run/{flow_run.id}")
        while True:
            current = client.read_flow_run(flow_run.id)
            state = current.state
            if state is not None and state.name != last:  # a new state: say so once
                last = state.name or ""
                say(f"[up] {'':<13} {current.name}: {state.name}")
            if state is not None and state.is_final():
                break
            if time.monotonic() > deadline:
                raise OpsError(f"{AUDIT_DEPLOYMENT} did not finish within {wait_s:g} s (state {last})")
            time.sleep(1.0)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    report = next((a for a in artifacts if a.key and a.key.endswith("-report")), None)
    return AuditRun(
        flow_run_id=str(flow_run.id),
        flow_run_name=current.name,
        state=state.name,
        state_type=state.type.value,
        message=state.message,
        artifact_key=report.key if report else None,
        artifact_id=str(report.id) if report else None,
        local_fallback=bool(report and "LOCAL" in (report.description or "")),
        description=report.description if report else None,
    )


def agent_key_configured() -> bool:
    from blocks.agent import AgentSettings

    try:
        block = AgentSettings.load("default")
    except ValueError:
        return False
    return isinstance(block, AgentSettings) and block.api_key is not None and bool(block.api_key.get_secret_value())


# ----------------------------------------------------------------------------------------- commands


def up(options: UpOptions, *, stack: Stack | None = None, say: Say = print) -> int:
    """`nightshift up`: see the module docstring. Returns the exit code."""
    stack = stack or Stack(port=options.port)
    recorded = read_json(stack.record_file).get("repo")  # a second `up` keeps the repository of the first
    repo = (options.repo or (Path(recorded) if isinstance(recorded, str) else PROJECT_ROOT)).expanduser().resolve()
    if not repo.is_dir():
        raise ConfigError(f"repository not found: {repo}")
    started = time.monotonic()
    say(f"nightshift up: state in {stack.state}, repository {repo}")
    with step(say, "prerequisites") as lines:
        lines += check_prerequisites(options)
    with step(say, "server") as lines:
        lines.append(ensure_server(stack))
    with stack.api():
        from deployments.bootstrap import bootstrap

        with step(say, "bootstrap") as lines:
            lines += bootstrap(repo=repo, concurrency=options.concurrency)
        with step(say, "deploy") as lines:
            lines.append(deploy(stack, repo, force=options.redeploy))
        with step(say, "worker") as lines:
            lines.append(ensure_worker(stack))
        has_key = agent_key_configured()
        if not has_key:
            say(
                "[up] NOTE: no API key (ANTHROPIC_API_KEY unset, agent-settings block empty): the agent workers run "
                "their LOCAL fallback (no AI) and say so in their reports"
            )
        audit: AuditRun | None = None
        if options.run_audit:
            with step(say, "audit run") as lines:
                audit = run_audit(stack, force=options.force, wait_s=options.wait_s, say=say)
                lines.append(f"{AUDIT_DEPLOYMENT}: {audit.state}" + (f" ({audit.message})" if audit.message else ""))
    say(f"nightshift is up ({time.monotonic() - started:.1f} s)")
    say(f"  UI:        {stack.ui_url}")
    if audit is not None:
        say(f"  flow run:  {stack.ui_url}/runs/flow-run/{audit.flow_run_id}")
        if audit.artifact_id:
            say(f"  artifact:  {stack.ui_url}/artifacts/artifact/{audit.artifact_id}  ({audit.description})")
    say(f"  API:       export PREFECT_API_URL={stack.api_url}   (then: prefect deployment run audit/default)")
    say("  status:    nightshift status        stop: nightshift down")
    if audit is not None and audit.state_type != "COMPLETED":
        return 1
    return 0


def down(*, stack: Stack | None = None, say: Say = print) -> int:
    """`nightshift down`: stop the worker, then the server, that `up` started (by pid file)."""
    stack = stack or Stack()
    say(stack.worker.stop(interrupts=2, grace_s=10.0))
    say(stack.server.stop(interrupts=1, grace_s=15.0))
    return 0
