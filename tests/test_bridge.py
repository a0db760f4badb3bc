"""The sandbox bridge: TCP <-> unix-socket forwarding, on the host and out of a --network none container.

The container tests build the worker image themselves (scripts/build_image.sh, which also
installs and starts Docker when needed): nothing here is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightshift.sandbox.bridge import Bridge, TcpAddress, UnixAddress, parse_tcp

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("NIGHTSHIFT_IMAGE", "nightshift/worker:dev")
MARKER = "nightshift-bridge-marker-7f3a"

# The strict sandbox's flags; tests/test_bridge.py is their executable documentation.
SANDBOX_FLAGS = [
    "--network",
    "none",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "10001:10001",
    "--pids-limit",
    "256",
]


def wait_for_line(log: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        for line in text.splitlines():
            if needle in line:
                return line
        if proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode} before {needle!r}: {text}")
        time.sleep(0.05)
    raise AssertionError(f"no {needle!r} within {timeout}s: {log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[int]:
    """`python -m http.server` on an ephemeral 127.0.0.1 port serving marker.txt."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "marker.txt").write_text(MARKER)
    log = tmp_path / "http.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        line = wait_for_line(log, "Serving HTTP on 127.0.0.1 port", proc)
        yield int(line.split(" port ")[1].split()[0])
    finally:
        stop(proc)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A socket directory the container's uid 10001 can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="ns-bridge-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def start_bridge(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nightshift.sandbox.bridge", *args], stdout=out, stderr=subprocess.STDOUT
        )
    wait_for_line(log, "bridge ready:", proc)
    return proc


def http_get_unix(path: Path, url_path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(f"GET {url_path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode()


# ---- addresses ----------------------------------------------------------------------------------


def test_parse_tcp_accepts_loopback_only() -> None:
    assert parse_tcp("127.0.0.1:8080") == TcpAddress("127.0.0.1", 8080)
    assert parse_tcp("127.0.0.2:1") == TcpAddress("127.0.0.2", 1)
    assert parse_tcp("[::1]:443") == TcpAddress("::1", 443)
    for bad in ("10.0.0.1:80", "172.17.0.1:80", "192.168.1.1:80", "0.0.0.0:80", "localhost:80", "8080"):
        with pytest.raises(ValueError):  # noqa: PT011
            parse_tcp(bad)
    with pytest.raises(ValueError, match="out of range"):
        parse_tcp("127.0.0.1:70000")


def test_cli_refuses_a_non_loopback_upstream() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nightshift.sandbox.bridge",
            "--listen-tcp",
            "127.0.0.1:0",
            "--to-tcp",
            "10.1.2.3:80",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr


def test_bridge_needs_one_tcp_and_one_unix_side(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one side of each"):
        Bridge(TcpAddress("127.0.0.1", 0), TcpAddress("127.0.0.1", 1))
    with pytest.raises(ValueError, match="one side of each"):
        Bridge(UnixAddress(tmp_path / "a"), UnixAddress(tmp_path / "b"))


# ---- in-process forwarding ----------------------------------------------------------------------


async def _upper_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the client's half-close
    writer.write(data.upper())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def test_tcp_to_unix_to_tcp_round_trip_keeps_half_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        upstream = await asyncio.start_server(_upper_server, "127.0.0.1", 0)
        up_port = upstream.sockets[0].getsockname()[1]
        sock = tmp_path / "s" / "api.sock"
        async with (
            upstream,
            Bridge(UnixAddress(sock), TcpAddress("127.0.0.1", up_port)),
            Bridge(TcpAddress("127.0.0.1", 0), UnixAddress(sock)) as inner,
        ):
            assert isinstance(inner.bound, TcpAddress)
            payload = b"x" * 300_000 + b"end"
            for _ in range(3):  # several connections through the same pair
                reader, writer = await asyncio.open_connection("127.0.0.1", inner.bound.port)
                writer.write(payload)
                writer.write_eof()
                got = await asyncio.wait_for(reader.read(), 10)
                writer.close()
                await writer.wait_closed()
                assert got == payload.upper()
        assert not sock.exists()

    asyncio.run(scenario())


def test_unreachable_upstream_closes_the_client_and_keeps_serving(tmp_path: Path) -> None:
    async def scenario() -> None:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        sock = tmp_path / "api.sock"
        async with Bridge(UnixAddress(sock), TcpAddress("127.0.0.1", dead_port)) as bridge:
            for _ in range(2):
                reader, writer = await asyncio.open_unix_connection(str(sock))
                assert await asyncio.wait_for(reader.read(), 10) == b""
                writer.close()
                await writer.wait_closed()
            assert bridge.active_connections == 0

    asyncio.run(scenario())


def test_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens

    async def scenario() -> None:
        async with Bridge(UnixAddress(sock), TcpAddress("127.0.0.1", 9)):
            second = Bridge(UnixAddress(sock), TcpAddress("127.0.0.1", 9))
            with pytest.raises(FileExistsError, match="in use"):
                await second.start()

    asyncio.run(scenario())
    (tmp_path / "plain").write_text("not a socket")
    with pytest.raises(FileExistsError, match="not a socket"):
        asyncio.run(Bridge(UnixAddress(tmp_path / "plain"), TcpAddress("127.0.0.1", 9)).start())


# ---- the CLI on the host ------------------------------------------------------------------------


def test_cli_forwards_http_and_exits_cleanly_on_sigterm(http_server: int, socket_dir: Path, tmp_path: Path) -> None:
    sock = socket_dir / "api.sock"
    outer = start_bridge(["--listen-unix", str(sock), "--to-tcp", f"127.0.0.1:{http_server}"], tmp_path / "o.log")
    try:
        assert sock.is_socket()
        assert oct(sock.stat().st_mode & 0o777) == "0o666"
        reply = http_get_unix(sock, "/marker.txt")
        assert reply.startswith("HTTP/1.0 200")
        assert reply.endswith(MARKER)
    finally:
        rc = stop(outer)
    assert rc == 0
    assert not sock.exists()


# ---- out of a --network none container ----------------------------------------------------------

IN_CONTAINER = r"""
import json, os, signal, subprocess, sys, urllib.request

host_port = int(sys.argv[1])
result = {"uid": os.getuid(), "interfaces": sorted(os.listdir("/sys/class/net"))}

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError as exc:
        return f"ERROR {type(exc).__name__}: {exc}"

# The host's 127.0.0.1 is not this container's 127.0.0.1: there is no way to it.
result["direct"] = get(f"http://127.0.0.1:{host_port}/marker.txt")
bridge = subprocess.Popen(
    [sys.executable, "-m", "nightshift.sandbox.bridge",
     "--listen-tcp", "127.0.0.1:8080", "--to-unix", "/run/ns/api.sock"],
    stderr=subprocess.PIPE, text=True,
)
result["ready"] = bridge.stderr.readline().strip()
result["via_bridge"] = get("http://127.0.0.1:8080/marker.txt")
bridge.send_signal(signal.SIGTERM)
result["bridge_rc"] = bridge.wait(10)
print(json.dumps(result))
"""


@pytest.fixture(scope="session")
def worker_image() -> str:
    """The worker image, built (and Docker installed/started) by the project's own scripts."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_image.sh")],
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
        env={**os.environ, "NIGHTSHIFT_IMAGE": IMAGE},
    )
    assert proc.returncode == 0, f"build_image.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return IMAGE


@pytest.mark.timeout(1800)
def test_network_none_container_reaches_host_loopback_only_through_the_bridge(
    worker_image: str, http_server: int, socket_dir: Path, tmp_path: Path
) -> None:
    sock = socket_dir / "api.sock"
    outer = start_bridge(["--listen-unix", str(sock), "--to-tcp", f"127.0.0.1:{http_server}"], tmp_path / "o.log")
    try:
        proc = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                *SANDBOX_FLAGS,
                "-v",
                f"{socket_dir}:/run/ns:ro",
                worker_image,
                "python",
                "-c",
                IN_CONTAINER,
                str(http_server),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        assert stop(outer) == 0
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["uid"] == 10001
    assert result["interfaces"] == ["lo"]
    assert result["direct"].startswith("ERROR"), result["direct"]
    assert "Connection refused" in result["direct"]
    assert result["ready"] == "bridge ready: 127.0.0.1:8080 -> unix:/run/ns/api.sock"
    assert result["via_bridge"] == MARKER
    assert result["bridge_rc"] == 0


@pytest.mark.timeout(1800)
def test_worker_image_has_pinned_claude_and_the_project(worker_image: str) -> None:
    script = (
        "import json, os, subprocess, nightshift, prefect; "
        "v = subprocess.run(['claude', '--version'], capture_output=True, text=True, check=True).stdout; "
        "print(json.dumps({'uid': os.getuid(), 'claude': v.strip(), 'prefect': prefect.__version__, "
        "'keys': sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k)}))"
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", *SANDBOX_FLAGS, worker_image, "python", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["uid"] == 10001
    assert result["claude"].startswith("2.1.330")
    assert result["prefect"] == "3.9.1"
    assert result["keys"] == []
    labels = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", worker_image],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert json.loads(labels)["io.nightshift.managed"] == "true"
