"""The only way out of a sandbox: the model API, over a unix socket, to one fixed upstream.

    container (--network none)                          host (this process)
    CLI -> 127.0.0.1:PORT -> entry's bridge -> /run/ns/api.sock ==mount==> Bridge -> UPSTREAM (fixed)
           entry's lease  -> /run/ns/lease.sock ===================mount==> lease server (held open)

The upstream comes from the CLI's API URL (`ANTHROPIC_BASE_URL`, default https://api.anthropic.com):

- `http://127.0.0.1:PORT` (a local proxy, the tests' fake API): the host end connects to it; inside,
  the same URL works because the entry listens on the container's own 127.0.0.1:PORT.
- `https://NAME[:PORT]`: a plain TCP forward to NAME:PORT. TLS runs end to end between the CLI and the
  API: the host never sees plaintext, the URL and the certificate check stay the same. Inside, NAME
  resolves to 127.0.0.1 (`--add-host`), the port is bound there (ports < 1024 via the namespaced sysctl
  `net.ipv4.ip_unprivileged_port_start=0`), and the host CA bundle is mounted for the certificate
  check (needed behind a TLS-intercepting proxy).
- `http://NAME:PORT`: the same forward, in clear text (a gateway on a trusted network).
- An IP literal that is not loopback: `http` is rewritten to 127.0.0.1 inside; `https` is refused
  (the certificate would not match).

Bytes are never parsed, so nothing the sandboxed CLI sends can pick another destination. The lease
socket is a dead man's switch: the entry kills every process of the container when the host end
closes, so a killed flow-run process (Prefect cancellation, SIGKILL, crash) takes its containers
with it even when nobody gets to run `docker rm -f`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from nightshift.errors import SandboxError
from nightshift.sandbox.bridge import Bridge, TcpAddress, UnixAddress

log = logging.getLogger("nightshift.sandbox")

API_SOCKET = "api.sock"
LEASE_SOCKET = "lease.sock"
T = TypeVar("T")


class Upstream(BaseModel):
    """Where the model API is, seen from the host and from inside the container."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["http", "https"]
    connect_host: str
    connect_port: int
    inner_port: int
    container_url: str
    add_host: str | None = None
    needs_ca: bool = False

    @property
    def connect(self) -> TcpAddress:
        return TcpAddress(self.connect_host, self.connect_port)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SandboxError(f"expected HOST:PORT, got {text!r}", backend="docker")
    return host.removeprefix("[").removesuffix("]"), int(port)


def resolve_upstream(api_url: str, *, override: str | None = None) -> Upstream:
    """Map the CLI's API URL onto the host end's fixed upstream and the URL the CLI uses inside."""
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SandboxError(f"model API URL must be http(s)://HOST[:PORT]: {api_url!r}", backend="docker")
    scheme: Literal["http", "https"] = "https" if parts.scheme == "https" else "http"
    host = parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    ip = _ip(host)
    connect_host, connect_port = (host, port)
    container_url = api_url
    add_host: str | None = None
    if host == "localhost" or (ip is not None and ip.is_loopback):
        if scheme == "https":
            raise SandboxError(f"an https API URL on a loopback address cannot be verified: {api_url}")
        connect_host = "127.0.0.1" if host == "localhost" else str(ip)
        container_url = urlunsplit(("http", f"127.0.0.1:{port}", parts.path, parts.query, parts.fragment))
    elif ip is not None:
        if scheme == "https":
            raise SandboxError(
                f"an https API URL with an IP address cannot be forwarded with a valid certificate: {api_url}",
                backend="docker",
            )
        container_url = urlunsplit(("http", f"127.0.0.1:{port}", parts.path, parts.query, parts.fragment))
    else:
        add_host = host
    if override:
        connect_host, connect_port = parse_hostport(override)
    return Upstream(
        scheme=scheme,
        connect_host=connect_host,
        connect_port=connect_port,
        inner_port=port,
        container_url=container_url,
        add_host=add_host,
        needs_ca=scheme == "https",
    )


class _LoopThread:
    """One asyncio loop in a daemon thread serving every host end of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="nightshift-egress", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result(timeout)


_LOOP = _LoopThread()


class Lease:
    """Accepts the containers' lease connections and holds them open until released.

    Each container writes one line `ready <name>` once its bridge listens. Closing a container's lease
    makes it kill itself at once; `wait_ready` waits for a container's line.
    """

    def __init__(self, path: Path, socket_mode: int) -> None:
        self.path = path
        self.socket_mode = socket_mode
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._by_name: dict[str, asyncio.StreamWriter] = {}
        self._ready: dict[str, asyncio.Event] = {}

    def _event(self, name: str) -> asyncio.Event:
        return self._ready.setdefault(name, asyncio.Event())

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._on_client, str(self.path))
        os.chmod(self.path, self.socket_mode)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        name = None
        try:
            line = await reader.readline()
            words = line.decode(errors="replace").split()
            if len(words) == 2 and words[0] == "ready":
                name = words[1]
                self._by_name[name] = writer
                self._event(name).set()
            await reader.read()  # held until the container goes or we release it
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            if name is not None and self._by_name.get(name) is writer:
                del self._by_name[name]
            writer.close()

    async def wait_ready(self, name: str, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._event(name).wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def release(self, name: str) -> None:
        """End one container's lease: it kills itself."""
        self._ready.pop(name, None)
        writer = self._by_name.pop(name, None)
        if writer is not None:
            writer.close()

    async def close(self) -> None:
        """End every lease and stop listening."""
        for writer in list(self._writers):
            writer.close()
        self._by_name.clear()
        self._ready.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class HostEnd:
    """The host half of one socket directory: the API bridge and the lease server."""

    def __init__(self, directory: Path, upstream: Upstream, *, gid: int | None) -> None:
        self.directory = directory
        self.upstream = upstream
        # Root: the directory is root:<container gid> 0750, so only the container's user (and root)
        # can reach the sockets in it. Otherwise the caller's own user runs inside: 0700 / 0600.
        mode = 0o666 if gid is not None else 0o600
        self.bridge = Bridge(UnixAddress(directory / API_SOCKET), upstream.connect, socket_mode=mode)
        self.lease = Lease(directory / LEASE_SOCKET, mode)
        self._gid = gid
        self._closed = False

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=False, mode=0o700)
        if self._gid is not None:
            os.chown(self.directory, 0, self._gid)
            os.chmod(self.directory, 0o750)  # noqa: S103 - group = the container's user

        async def _start() -> None:
            await self.bridge.start()
            await self.lease.start()

        try:
            _LOOP.run(_start())
        except BaseException:
            self.close()
            raise

    def wait_ready(self, name: str, timeout: float) -> bool:
        return _LOOP.run(self.lease.wait_ready(name, timeout), timeout + 5)

    def release(self, name: str) -> None:
        """End the lease of container `name`: it kills itself."""
        if not self._closed:
            _LOOP.run(self.lease.release(name))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def _stop() -> None:
            await self.lease.close()
            await self.bridge.close(grace=0)

        try:
            _LOOP.run(_stop(), timeout=10)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
