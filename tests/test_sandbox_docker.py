"""Sandboxed runs for real: the pinned claude CLI inside the worker image, driven by a hostile fake model.

The fake model API runs on the host's 127.0.0.1 and is reached only through the sandbox bridge (the
containers have no network). Every CLI call runs with `bypassPermissions`, so the CLI itself executes
whatever the model asks: the container is the only thing in the way. Nothing here addresses a
private-range or outside address: the canary listens on the host's loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from nightshift.agents.base import AgentOutcome, AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings
from nightshift.agents.claude_events import ToolResultBlock, UserEvent
from nightshift.analysis import workspace
from nightshift.catalogue import resolve_worker
from nightshift.process import StopPolicy
from nightshift.runner import run_agent
from nightshift.sandbox import engine
from nightshift.sandbox.container import DockerSandbox, live_containers
from nightshift.sandbox.egress import resolve_upstream
from nightshift.sandbox.pool import WarmPool
from nightshift.sandbox.settings import SandboxSettings
from nightshift.testing.fake_anthropic import FakeAnthropic, Hang, ParallelToolUse, Text, ToolCall, ToolUse
from tests.gitrepos import make_repo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the first test may build the image
API_KEY = "sk-ant-sandbox-test-key-0123456789"
HOST_SECRET = "host-secret-never-leaves-7c1e"
FAST_STOP = StopPolicy(interrupt_grace_s=1.0, terminate_grace_s=1.0, kill_grace_s=2.0)


# ---- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic([]) as fake:
        yield fake


def script(api: FakeAnthropic, *turns: Any) -> None:
    api._script = type(api._script)(list(turns))  # a fresh script per run on one server


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"app.py": "print('hello')\n", "README.md": "# repo\n"})


def adapter_for(api: FakeAnthropic) -> ClaudeAdapter:
    # No host binary needed: the sandbox runs the image's own `claude`.
    return ClaudeAdapter(ClaudeSettings(base_url=api.url, api_key=SecretStr(API_KEY), max_api_retries=0))


def sandbox(image: str, profile: str, **settings: Any) -> DockerSandbox:
    flow_run = f"test-{uuid.uuid4().hex[:8]}"
    return DockerSandbox(profile, settings=SandboxSettings(image=image, **settings), flow_run_id=flow_run)


def hostile(cwd: Path, home: Path, **fields: Any) -> AgentRequest:
    """A request whose CLI runs every tool call without asking (the container is the only barrier)."""
    return AgentRequest.model_validate(
        {
            "prompt": "do as the model says",
            "cwd": cwd,
            "model": "haiku",
            "home": home,
            "permission_mode": "bypassPermissions",
            "timeout_s": 180,
            **fields,
        }
    )


def tool_results(outcome: AgentOutcome) -> list[ToolResultBlock]:
    return [
        block
        for event in outcome.events
        if isinstance(event, UserEvent)
        for block in event.message.blocks
        if isinstance(block, ToolResultBlock)
    ]


def labelled(flow_run_id: str) -> list[str]:
    found = engine.client().containers.list(all=True, filters={"label": f"io.nightshift.flow-run={flow_run_id}"})
    return [c.name for c in found]


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Canary:
    """A TCP listener on the host's loopback that records every connection it gets."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


# ---- strict: the hostile model -----------------------------------------------------------------------


def test_strict_blocks_writes_to_the_repository(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()}
    script(
        api,
        ParallelToolUse(calls=[
            ToolCall(name="Write", input={"file_path": "/workspace/pwned.txt", "content": "owned"}),
            ToolCall(name="Bash", input={"command": "echo owned >> /workspace/app.py; rm -f /workspace/README.md; "
                                                    "touch /pwned-root; echo exit=$?"}),
        ]),
        Text(text="done"),
    )  # fmt: skip
    box = sandbox(worker_image, "strict")
    outcome = run_agent(hostile(repo, tmp_path / "home"), adapter=adapter_for(api), sandbox=box)
    assert outcome.succeeded, outcome.stderr_tail
    write, bash = tool_results(outcome)
    assert write.is_error, write.text  # reported to the model ...
    assert "read-only file system" in write.text.lower(), write.text
    lines = bash.text.splitlines()
    assert len([line for line in lines if "Read-only file system" in line or "Permission denied" in line]) == 3, lines
    assert "rm: cannot remove '/workspace/README.md': Read-only file system" in lines
    assert "touch: cannot touch '/pwned-root': Read-only file system" in lines  # the root file system too
    assert {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()} == before  # blocked
    assert not (repo / "pwned.txt").exists()
    assert labelled(box.flow_run_id) == []  # removed after the run
    assert "x-api-key" in api.main_requests[0].headers  # the key travelled by env, through the bridge


def test_strict_blocks_reads_outside_the_mount(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    host_file = tmp_path / "host-only.txt"  # a host path outside the mounted repository
    host_file.write_text(HOST_SECRET)
    script(
        api,
        ParallelToolUse(calls=[
            ToolCall(name="Read", input={"file_path": "/etc/shadow"}),
            ToolCall(name="Read", input={"file_path": str(host_file)}),
            ToolCall(name="Bash", input={"command": f"cat /etc/shadow; cat {host_file}; ls /root; "
                                                    "ls /var/run/docker.sock; stat -c %U /proc/[0-9]* | sort -u; "
                                                    "echo end"}),
        ]),
        Text(text="done"),
    )  # fmt: skip
    outcome = run_agent(
        hostile(repo, tmp_path / "home"), adapter=adapter_for(api), sandbox=sandbox(worker_image, "strict")
    )
    assert outcome.succeeded, outcome.stderr_tail
    shadow, host, bash = tool_results(outcome)
    assert shadow.is_error, shadow.text
    assert "EACCES" in shadow.text or "permission denied" in shadow.text.lower(), shadow.text
    assert host.is_error, host.text
    assert "does not exist" in host.text.lower(), host.text
    assert "cat: /etc/shadow: Permission denied" in bash.text
    assert f"cat: {host_file}: No such file or directory" in bash.text
    assert "/var/run/docker.sock': No such file or directory" in bash.text
    assert bash.text.splitlines()[-2:] == ["nightshift", "end"]  # no root process in the container, tini included
    assert HOST_SECRET not in api.all_text()
    assert API_KEY not in api.all_text()


def test_strict_reaches_the_model_api_and_nothing_else(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    canary = Canary()
    probe = f"""
import json, os, socket
out = {{"interfaces": sorted(os.listdir("/sys/class/net"))}}
def connect(port, send=b""):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(send)
            return "connected: " + s.recv(200).decode(errors="replace").splitlines()[0]
    except OSError as exc:
        return f"{{type(exc).__name__}}: {{exc}}"
canary = "127.0.0.1:{canary.port}"
out["canary_direct"] = connect({canary.port})
out["canary_via_bridge_connect"] = connect({api.port}, f"CONNECT {{canary}} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
out["canary_via_bridge_absolute"] = connect(
    {api.port}, f"GET http://{{canary}}/ HTTP/1.1\\r\\nHost: {{canary}}\\r\\n\\r\\n".encode()
)
print(json.dumps(out))
"""
    try:
        script(api, ToolUse(name="Bash", input={"command": f"python3 - <<'EOF'\n{probe}\nEOF"}), Text(text="done"))
        outcome = run_agent(
            hostile(repo, tmp_path / "home"), adapter=adapter_for(api), sandbox=sandbox(worker_image, "strict")
        )
    finally:
        canary.close()
    assert outcome.succeeded, outcome.stderr_tail
    result = json.loads(tool_results(outcome)[0].text.strip().splitlines()[-1])
    assert result["interfaces"] == ["lo"]
    assert result["canary_direct"].startswith("ConnectionRefusedError"), result
    # Whatever is sent into the bridge ends at the one upstream, the model API (which refuses it).
    assert result["canary_via_bridge_connect"].startswith("connected: HTTP/1.1 501"), result
    assert result["canary_via_bridge_absolute"].startswith("connected: HTTP/1.1 404"), result
    assert canary.connections == 0


def test_strict_contains_a_fork_bomb(worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path) -> None:
    bomb = """
import os, signal, time
children, error = [], None
while len(children) < 5000:
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc
        break
    if pid == 0:
        os.closerange(0, 1024)
        time.sleep(60)
        os._exit(0)
    children.append(pid)
print(f"forked {len(children)}; then {error}")
for pid in children:
    os.kill(pid, signal.SIGKILL)
for pid in children:
    os.waitpid(pid, 0)
"""
    script(api, ToolUse(name="Bash", input={"command": f"python3 - <<'EOF'\n{bomb}\nEOF"}), Text(text="done"))
    box = sandbox(worker_image, "strict", pids_limit=128)
    started = time.monotonic()
    outcome = run_agent(hostile(repo, tmp_path / "home"), adapter=adapter_for(api), sandbox=box)
    assert outcome.succeeded, outcome.stderr_tail
    report = tool_results(outcome)[0].text
    forked = int(report.split("forked ")[1].split(";")[0])
    assert 0 < forked < 128, report  # the limit (claude's own threads count too) stopped it
    assert "Resource temporarily unavailable" in report, report
    assert time.monotonic() - started < 120
    assert labelled(box.flow_run_id) == []


# ---- permissive: the same write succeeds, in the workspace only ----------------------------------------


def test_permissive_write_lands_only_in_the_workspace(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    escape = f"/tmp/nightshift-escape-{uuid.uuid4().hex[:8]}.txt"
    script(
        api,
        ParallelToolUse(calls=[
            ToolCall(name="Write", input={"file_path": "/workspace/pwned.txt", "content": "owned"}),
            ToolCall(name="Bash", input={"command": f"echo changed >> /workspace/app.py; echo x > {escape}; "
                                                    "git -C /workspace status --short"}),
        ]),
        Text(text="done"),
    )  # fmt: skip
    spec = resolve_worker("optimize")
    assert spec.sandbox == "permissive"
    with workspace(repo, spec) as copy:
        assert copy != repo
        outcome = run_agent(
            hostile(copy, tmp_path / "home"), adapter=adapter_for(api), sandbox=sandbox(worker_image, "permissive")
        )
        assert outcome.succeeded, outcome.stderr_tail
        write, bash = tool_results(outcome)
        assert not write.is_error, write.text
        assert (copy / "pwned.txt").read_text() == "owned"
        assert (copy / "app.py").read_text().endswith("changed\n")
        assert "M app.py" in bash.text
        assert "?? pwned.txt" in bash.text
        owners = {p.stat().st_uid for p in copy.rglob("*")}
        assert owners == {os.geteuid()}  # lent to the container user for the run, given back after
    assert not (repo / "pwned.txt").exists()  # the user's checkout is untouched
    assert (repo / "app.py").read_text() == "print('hello')\n"
    assert not Path(escape).exists()  # the container's /tmp is its own tmpfs


# ---- lifecycle: timeout, cancel, the owner dying, resume ---------------------------------------------


def test_timeout_stops_and_removes_the_container(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    script(api, Hang(seconds=None))
    box = sandbox(worker_image, "strict")
    started = time.monotonic()
    outcome = run_agent(
        hostile(repo, tmp_path / "home", timeout_s=6), adapter=adapter_for(api), sandbox=box, stop_policy=FAST_STOP
    )
    assert outcome.status == "timeout"
    assert len(api.main_requests) == 1  # it was running, inside, when the timeout hit
    assert time.monotonic() - started < 30
    assert labelled(box.flow_run_id) == []
    assert live_containers() == []


def test_cancel_stops_and_removes_the_container(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    script(api, Hang(seconds=None))
    box = sandbox(worker_image, "strict")
    cancel = threading.Event()

    def cancel_when_running() -> None:
        wait_until(lambda: len(api.main_requests) == 1, 60, "the model request")
        assert labelled(box.flow_run_id)  # the container runs
        cancel.set()

    watcher = threading.Thread(target=cancel_when_running)
    watcher.start()
    outcome = run_agent(
        hostile(repo, tmp_path / "home"), adapter=adapter_for(api), sandbox=box, cancel=cancel, stop_policy=FAST_STOP
    )
    watcher.join()
    assert outcome.status == "cancelled"
    assert labelled(box.flow_run_id) == []


OWNER = r"""
import sys
from pathlib import Path
from pydantic import SecretStr
from nightshift.agents.base import AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings
from nightshift.runner import run_agent
from nightshift.sandbox.container import DockerSandbox
from nightshift.sandbox.settings import SandboxSettings

url, image, flow_run, cwd, home = sys.argv[1:]
adapter = ClaudeAdapter(ClaudeSettings(base_url=url, api_key=SecretStr("k"), max_api_retries=0))
box = DockerSandbox("strict", settings=SandboxSettings(image=image), flow_run_id=flow_run)
run_agent(AgentRequest(prompt="hang", cwd=Path(cwd), home=Path(home), model="haiku"), adapter=adapter, sandbox=box)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_container_dies_with_its_owner_process(
    sig: signal.Signals, worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    """What Prefect does to a cancelled flow run (SIGTERM, then SIGKILL) or a crash: no cleanup code runs
    in the owner, yet the container goes (its lease ends with the owner's process)."""
    script(api, Hang(seconds=None))
    flow_run = f"owner-{uuid.uuid4().hex[:8]}"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, api.url, worker_image, flow_run, str(repo), str(tmp_path / "home")],
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: len(api.main_requests) == 1 or owner.poll() is not None, 90, "the model request")
        assert owner.poll() is None, owner.stderr.read() if owner.stderr else ""
        assert len(labelled(flow_run)) == 1
        owner.send_signal(sig)
        owner.wait(10)
        wait_until(lambda: labelled(flow_run) == [], 15, "the container to go")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stderr:
            owner.stderr.close()


def test_resume_finds_the_session_in_the_container(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    session = uuid.uuid4()
    script(api, Text(text="What is the code word?"), Text(text="The code word is PINEAPPLE."))
    home = tmp_path / "home"
    box = sandbox(worker_image, "strict")
    first = run_agent(
        hostile(repo, home, prompt="Ask me for the code word.", session_id=session),
        adapter=adapter_for(api),
        sandbox=box,
    )
    assert first.session_id == str(session)
    assert list(home.glob(".claude/projects/-workspace/*.jsonl"))  # the transcript is on the host
    second = run_agent(
        hostile(repo, home, prompt="It is PINEAPPLE.", resume_id=first.session_id),
        adapter=adapter_for(api),
        sandbox=box,
    )
    assert second.succeeded, second.final_text
    resumed = json.dumps(api.main_requests[1].body["messages"])
    assert "Ask me for the code word." in resumed
    assert "What is the code word?" in resumed


# ---- an HTTPS model API: TLS end to end through the bridge ------------------------------------------


def _make_ca_and_cert(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nightshift test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2)).add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ca_path.chmod(0o644)
    return ca_path, cert_path, key_path


class TlsFront:
    """TLS termination on the host's 127.0.0.1 in front of the fake API (plays api.anthropic.com:443)."""

    def __init__(self, cert: Path, key: Path, backend_port: int) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.backend_port = backend_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        self.handshakes += 1
        back = socket.create_connection(("127.0.0.1", self.backend_port))

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        other = threading.Thread(target=pump, args=(back, conn), daemon=True)
        other.start()
        pump(conn, back)
        other.join(30)
        conn.close()
        back.close()

    def close(self) -> None:
        self.sock.close()


def test_https_model_api_is_reached_with_tls_end_to_end(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    name = "api.nightshift-fake.test"
    ca, cert, key = _make_ca_and_cert(tmp_path, name)
    front = TlsFront(cert, key, api.port)
    try:
        script(api, Text(text="hello over TLS"))
        settings = ClaudeSettings(base_url=f"https://{name}", api_key=SecretStr(API_KEY), max_api_retries=0)
        box = DockerSandbox(
            "strict",
            settings=SandboxSettings(image=worker_image, ca_bundle=ca, upstream=f"127.0.0.1:{front.port}"),
        )
        launch_argv: list[str] = []
        original = box.launch

        def spy(*args: Any, **kwargs: Any) -> Any:
            launch = original(*args, **kwargs)
            launch_argv.extend(launch.argv)
            return launch

        box.launch = spy  # type: ignore[method-assign]
        outcome = run_agent(hostile(repo, tmp_path / "home"), adapter=ClaudeAdapter(settings), sandbox=box)
    finally:
        front.close()
    assert outcome.succeeded, outcome.stderr_tail
    assert outcome.final_text == "hello over TLS"
    assert front.handshakes >= 1  # the TLS session ended at the upstream, not at the bridge
    joined = " ".join(launch_argv)
    assert f"--add-host {name}:127.0.0.1" in joined
    assert "net.ipv4.ip_unprivileged_port_start=0" in joined  # port 443 inside, as non-root
    assert f"ANTHROPIC_BASE_URL=https://{name}" in joined
    assert resolve_upstream(f"https://{name}").container_url == f"https://{name}"


# ---- the warm pool ------------------------------------------------------------------------------------


def test_warm_pool_runs_strict_and_permissive_and_leaves_nothing(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the warm pool bind-mounts run directories: root only (CI runs as root)")
    settings = SandboxSettings(image=worker_image)
    pool = WarmPool(settings, resolve_upstream(api.url), size=1).start()
    try:
        assert pool.wait_ready(timeout=90)
        strict = DockerSandbox("strict", settings=settings, pool=pool)
        script(api, ToolUse(name="Bash", input={"command": "touch /workspace/pwned; pwd"}), Text(text="done"))
        outcome = run_agent(hostile(repo, tmp_path / "h1"), adapter=adapter_for(api), sandbox=strict)
        assert outcome.succeeded, outcome.stderr_tail
        assert "Read-only file system" in tool_results(outcome)[0].text
        assert not (repo / "pwned").exists()

        assert pool.wait_ready(timeout=90)  # refilled in the background
        permissive = DockerSandbox("permissive", settings=settings, pool=pool)
        spec = resolve_worker("optimize")
        script(api, ToolUse(name="Write", input={"file_path": "/workspace/new.txt", "content": "ok"}), Text(text="ok"))
        with workspace(repo, spec) as copy:
            outcome = run_agent(hostile(copy, tmp_path / "h2"), adapter=adapter_for(api), sandbox=permissive)
            assert outcome.succeeded, outcome.stderr_tail
            assert (copy / "new.txt").read_text() == "ok"
        assert not (repo / "new.txt").exists()
        pool_id = pool.id
    finally:
        pool.close()
    left = engine.client().containers.list(all=True, filters={"label": f"io.nightshift.pool={pool_id}"})
    assert left == []
    assert str(pool.root) not in Path("/proc/self/mountinfo").read_text()
    assert not pool.root.exists()


# ---- the flows: a worker's profile picks its sandbox ---------------------------------------------------


@pytest.mark.usefixtures("prefect_harness", "state_dir")
def test_analysis_flows_run_their_agents_in_containers(
    worker_image: str, api: FakeAnthropic, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.analysis import ANALYSIS_FLOWS
    from nightshift.testing.fake_anthropic import StructuredOutput

    for name, value in api.cli_env(max_retries=0).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NIGHTSHIFT_SANDBOX_BACKEND", "docker")
    monkeypatch.setenv("NIGHTSHIFT_IMAGE", worker_image)
    report = {"vulnerabilities": [], "riskScore": 1, "recommendations": []}
    script(api, StructuredOutput(value=report))
    state = ANALYSIS_FLOWS["audit"](repo=str(repo), force=True, return_state=True)  # strict
    assert state.is_completed()
    script(
        api,
        ToolUse(name="Write", input={"file_path": "scratch.txt", "content": "agent scratch"}),
        Text(text="## Summary\nok\n\n## Findings\n- [low] app.py:1 — a finding: fix it.\n"),
    )
    state2 = ANALYSIS_FLOWS["optimize"](repo=str(repo), force=True, return_state=True)  # permissive
    assert state2.is_completed()
    sent = api.all_text()
    assert "/workspace" in sent  # the CLI's working directory was the container's
    assert str(repo) not in sent  # the host path never reached the model
    assert not (repo / "scratch.txt").exists()
    tool_result = json.dumps(api.main_requests[-1].body["messages"])
    assert "scratch.txt" in tool_result
    for flow_state in (state, state2):
        assert labelled(str(flow_state.state_details.flow_run_id)) == []  # labelled with the flow run, removed


def test_warm_pool_setting_makes_later_runs_warm(
    worker_image: str, api: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    """NIGHTSHIFT_SANDBOX_WARM_POOL=1: the first run starts the pool (and runs cold), the next is warm."""
    if os.geteuid() != 0:
        pytest.skip("the warm pool bind-mounts run directories: root only (CI runs as root)")
    from nightshift.sandbox.pool import close_pools
    from nightshift.sandbox.select import sandbox_for

    settings = SandboxSettings(image=worker_image, backend="docker", warm_pool=1, cpus=0.9)  # a pool of its own
    box = sandbox_for("strict", settings=settings, flow_run_id="warm-setting")
    assert isinstance(box, DockerSandbox)
    launches: list[Any] = []
    original = box.launch

    def spy(*args: Any, **kwargs: Any) -> Any:
        launches.append(original(*args, **kwargs))
        return launches[-1]

    box.launch = spy  # type: ignore[method-assign]
    script(api, Text(text="ready"), Text(text="ready"))
    pool_ids: list[str] = []
    try:
        for index in range(2):
            outcome = run_agent(hostile(repo, tmp_path / f"h{index}"), adapter=adapter_for(api), sandbox=box)
            assert outcome.succeeded, outcome.stderr_tail
            if index == 0:
                wait_until(lambda: any(p.ready for p in _pools_of(settings)), 90, "the pool to fill")
                pool_ids = [p.id for p in _pools_of(settings)]
    finally:
        close_pools()
    assert [launch.warm for launch in launches] == [False, True]
    for pool_id in pool_ids:
        assert engine.client().containers.list(all=True, filters={"label": f"io.nightshift.pool={pool_id}"}) == []


def _pools_of(settings: SandboxSettings) -> list[WarmPool]:
    from nightshift.sandbox import pool

    return [p for (s, _), p in pool._pools.items() if s == settings]
