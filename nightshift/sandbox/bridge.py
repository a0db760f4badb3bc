"""A TCP <-> unix-socket forwarder: the only way out of a `--network none` sandbox.

A strict sandbox container has no network interface but `lo`. One service on the host
(say an API proxy on 127.0.0.1:PORT) is made reachable through a unix socket that is
bind-mounted into the container; the two halves of this module carry the bytes:

    container                                   |  host
    client -> 127.0.0.1:8080 (container's lo)   |
           -> bridge --listen-tcp ... --to-unix /run/ns/api.sock
                                  == bind mount ==> bridge --listen-unix PATH --to-tcp 127.0.0.1:PORT
                                                |     -> upstream 127.0.0.1:PORT

    python -m nightshift.sandbox.bridge --listen-unix /srv/ns/api.sock --to-tcp 127.0.0.1:PORT   # host
    python -m nightshift.sandbox.bridge --listen-tcp 127.0.0.1:8080 --to-unix /run/ns/api.sock   # container

The host half connects every accepted connection to its single fixed upstream: bytes are
copied verbatim, never parsed, so nothing a sandboxed client sends can pick another
destination. On the command line both listening and upstream TCP addresses must be loopback
IP literals; in-process (`nightshift.sandbox.egress`) the upstream may also be the model API's
host name from trusted configuration (e.g. api.anthropic.com:443: TLS then runs end to end
through the bridge). Standard library only, so the file also runs on a bare python3.

It prints one line `bridge ready: <listen> -> <upstream>` on stderr once it accepts
connections, and on SIGTERM/SIGINT stops accepting, gives open connections a grace
period, closes the rest, removes its socket file and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("nightshift.sandbox.bridge")

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixAddress:
    path: Path

    def __str__(self) -> str:
        return f"unix:{self.path}"


Address = TcpAddress | UnixAddress


def parse_tcp(text: str) -> TcpAddress:
    """Parse `HOST:PORT` or `[V6]:PORT`; the host must be a loopback IP literal."""
    host, sep, port_s = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.removeprefix("[").removesuffix("]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP literal (names are not resolved)") from None
    if not ip.is_loopback:
        raise ValueError(f"{host} is not a loopback address; the bridge only uses loopback")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"bad port {port_s!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return TcpAddress(str(ip), port)


class Bridge:
    """Accept on `listen` and pipe every connection to the one fixed `upstream`."""

    def __init__(
        self,
        listen: Address,
        upstream: Address,
        *,
        socket_mode: int = 0o666,
        max_connections: int = 256,
        connect_timeout: float = 10.0,
    ) -> None:
        if isinstance(listen, TcpAddress) == isinstance(upstream, TcpAddress):
            raise ValueError("a bridge joins TCP and a unix socket: one side of each")
        self.listen = listen
        self.upstream = upstream
        self.socket_mode = socket_mode
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._owned_socket: Path | None = None

    @property
    def bound(self) -> Address:
        """The address actually listened on (the real port when asked for port 0)."""
        if self._server is None:
            raise RuntimeError("bridge not started")
        if isinstance(self.listen, TcpAddress):
            sockname = self._server.sockets[0].getsockname()
            return TcpAddress(self.listen.host, int(sockname[1]))
        return self.listen

    @property
    def active_connections(self) -> int:
        return len(self._handlers)

    async def start(self) -> None:
        if isinstance(self.listen, TcpAddress):
            self._server = await asyncio.start_server(
                self._on_client, self.listen.host, self.listen.port, reuse_address=True
            )
        else:
            path = self.listen.path
            _remove_stale_socket(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._server = await asyncio.start_unix_server(self._on_client, str(path))
            self._owned_socket = path
            os.chmod(path, self.socket_mode)

    async def close(self, grace: float = 2.0) -> None:
        """Stop accepting, wait up to `grace` s for open connections, then cut them."""
        if self._server is not None:
            self._server.close()
        if self._handlers and grace > 0:
            await asyncio.wait(set(self._handlers), timeout=grace)
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._owned_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self._owned_socket.unlink()
            self._owned_socket = None

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(grace=0)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if isinstance(self.upstream, TcpAddress):
            coro = asyncio.open_connection(self.upstream.host, self.upstream.port)
        else:
            coro = asyncio.open_unix_connection(str(self.upstream.path))
        return await asyncio.wait_for(coro, self.connect_timeout)

    async def _on_client(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._handlers) >= self.max_connections:
            log.warning("connection limit %d reached; refusing a connection", self.max_connections)
            await _close(client_w)
            return
        self._handlers.add(task)
        try:
            try:
                up_r, up_w = await self._open_upstream()
            except (OSError, TimeoutError) as exc:
                log.warning("upstream %s unreachable: %s", self.upstream, exc)
                await _close(client_w)
                return
            try:
                await asyncio.gather(_pump(client_r, up_w), _pump(up_r, client_w))
            finally:
                await _close(up_w)
                await _close(client_w)
        finally:
            self._handlers.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the write side so request/response framing survives."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
            return
    raise FileExistsError(f"{path} is in use by another listener")


async def run(bridge: Bridge, *, grace: float = 2.0) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
        print(f"bridge ready: {bridge.bound} -> {bridge.upstream}", file=sys.stderr, flush=True)
        await stop.wait()
        log.info("stopping (%d open connections)", bridge.active_connections)
    finally:
        await bridge.close(grace=grace)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m nightshift.sandbox.bridge",
        description="Forward connections between a loopback TCP port and a unix socket.",
    )
    listen = ap.add_mutually_exclusive_group(required=True)
    listen.add_argument("--listen-tcp", metavar="HOST:PORT", help="loopback address to listen on")
    listen.add_argument("--listen-unix", metavar="PATH", help="unix socket path to listen on")
    to = ap.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-unix", metavar="PATH", help="unix socket to forward to")
    to.add_argument("--to-tcp", metavar="HOST:PORT", help="the one loopback upstream to forward to")
    ap.add_argument("--socket-mode", default="666", help="octal mode of the listening socket (default 666)")
    ap.add_argument("--max-connections", type=int, default=256)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("--grace", type=float, default=2.0, help="seconds open connections get on shutdown")
    ap.add_argument("--log-level", default="WARNING")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="bridge %(levelname)s %(message)s")
    try:
        listen: Address = parse_tcp(args.listen_tcp) if args.listen_tcp else UnixAddress(Path(args.listen_unix))
        upstream: Address = parse_tcp(args.to_tcp) if args.to_tcp else UnixAddress(Path(args.to_unix))
        bridge = Bridge(
            listen,
            upstream,
            socket_mode=int(args.socket_mode, 8),
            max_connections=args.max_connections,
            connect_timeout=args.connect_timeout,
        )
    except ValueError as exc:
        ap.error(str(exc))
    try:
        asyncio.run(run(bridge, grace=args.grace))
    except OSError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
