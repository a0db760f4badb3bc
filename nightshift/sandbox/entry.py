"""The in-container entrypoint of a sandboxed run (standard library + `bridge` only: it starts fast).

    python -m nightshift.sandbox.entry --listen 127.0.0.1:PORT --socket-dir /run/ns --name NAME \\
        [--expect-ro PATH]... [--expect-rw PATH]... -- claude -p ...
    python -m nightshift.sandbox.entry --listen 127.0.0.1:PORT --socket-dir /run/ns --name NAME --serve

1. Checks the mounts are what the profile promised (`--expect-ro`: a read-only file system;
   `--expect-rw`: writable), and refuses to start the agent otherwise (exit 125).
2. Forks the bridge: the container's 127.0.0.1:PORT -> SOCKET_DIR/api.sock (the host end forwards to
   the model API, nothing else), and connects to SOCKET_DIR/lease.sock, saying `ready NAME`.
3. When the bridge listens, replaces itself with the command (`exec`): stdin, stdout, the exit code
   and signals (docker -> tini -> the CLI) are the CLI's own, as for a plain process.

The lease is a dead man's switch: when the host end closes it (the run is over, or the process that
owns the run died), the bridge process kills every process of the container (`kill(-1, SIGKILL)`).
`--serve` (warm pool) runs only step 2, in the foreground, until the lease ends; the agent is then
started with `docker exec`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from nightshift.sandbox.bridge import Bridge, UnixAddress, parse_tcp

EXIT_SETUP = 125


def _fail(message: str) -> int:
    print(f"nightshift sandbox: {message}", file=sys.stderr, flush=True)
    return EXIT_SETUP


def check_mounts(read_only: Sequence[str], writable: Sequence[str]) -> str | None:
    """None when every path is mounted as promised, else what is wrong."""
    for path in read_only:
        try:
            flags = os.statvfs(path).f_flag
        except OSError as exc:
            return f"{path}: {exc}"
        if not flags & os.ST_RDONLY:
            return f"{path} should be read-only but is writable"
    for path in writable:
        if not os.path.isdir(path) or not os.access(path, os.W_OK):
            return f"{path} should be writable but is not"
    return None


async def _serve(listen: str, socket_dir: Path, name: str, ready_fd: int | None) -> None:
    bridge = Bridge(parse_tcp(listen), UnixAddress(socket_dir / "api.sock"))
    await bridge.start()
    reader, writer = await asyncio.open_unix_connection(str(socket_dir / "lease.sock"))
    writer.write(f"ready {name}\n".encode())
    await writer.drain()
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    with contextlib.suppress(ConnectionError, OSError):
        await reader.read()  # EOF: the host end is gone


def _kill_everything() -> None:
    """Every process of this container but PID 1 (tini) and us; tini then exits and docker removes it."""
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGKILL)


def _bridge_main(listen: str, socket_dir: Path, name: str, ready_fd: int | None) -> int:
    try:
        asyncio.run(_serve(listen, socket_dir, name, ready_fd))
    except (OSError, ValueError) as exc:
        print(f"nightshift sandbox: bridge failed: {exc}", file=sys.stderr, flush=True)
        return EXIT_SETUP
    _kill_everything()
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m nightshift.sandbox.entry", description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, metavar="127.0.0.1:PORT")
    ap.add_argument("--socket-dir", required=True, type=Path)
    ap.add_argument("--name", required=True, help="this container's name, sent on the lease")
    ap.add_argument("--expect-ro", action="append", default=[], metavar="PATH")
    ap.add_argument("--expect-rw", action="append", default=[], metavar="PATH")
    ap.add_argument("--serve", action="store_true", help="warm pool: only the bridge, in the foreground")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = [c for c in args.command]
    if command[:1] == ["--"]:
        command = command[1:]
    problem = check_mounts(args.expect_ro, args.expect_rw)
    if problem:
        return _fail(problem)
    if args.serve:
        return _bridge_main(args.listen, args.socket_dir, args.name, None)
    if not command:
        return _fail("no command to run")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the bridge: off stdin/stdout, which belong to the agent
        os.close(read_fd)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        os._exit(_bridge_main(args.listen, args.socket_dir, args.name, write_fd))
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as ready:
        if ready.readline() != b"ready\n":
            return _fail("the bridge to the model API did not start")
    try:
        os.execvp(command[0], command)  # noqa: S606 - becomes the agent CLI (see docstring)
    except OSError as exc:
        return _fail(f"cannot run {command[0]}: {exc}")
    return EXIT_SETUP  # not reached


if __name__ == "__main__":
    sys.exit(main())
