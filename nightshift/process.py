"""The one module that starts processes.

Every child runs in its own process group (``start_new_session``) so a stop reaches the whole tree the
agent spawned (shells, test runners, servers). One owner decides when a process must die: the watchdog
thread of `stream_process`, which watches the deadline and the cancel token. Stopping escalates
SIGINT → SIGTERM → SIGKILL on the group with short grace periods; after the leader exits, whatever is
left in its group is swept the same way, so nothing outlives a run and nothing stays a zombie.

The caller's thread reads stdout line by line (lines of any length, several MB included) and hands each
line to a callback; an exception raised by the callback stops the process and is re-raised.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

StopReason = Literal["exited", "timeout", "cancelled"]

STDERR_TAIL_BYTES = 64 * 1024
T = TypeVar("T", int, str)


class StopPolicy(BaseModel):
    """Grace periods of the SIGINT → SIGTERM → SIGKILL escalation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interrupt_grace_s: float = Field(default=2.0, ge=0, description="wait after SIGINT before SIGTERM")
    terminate_grace_s: float = Field(default=2.0, ge=0, description="wait after SIGTERM before SIGKILL")
    kill_grace_s: float = Field(default=2.0, ge=0, description="wait after SIGKILL for the group to vanish")


class ProcessResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pid: int
    returncode: int | None
    stop_reason: StopReason
    duration_s: float
    stderr_tail: str


class CommandResult(ProcessResult):
    stdout: str
    stdout_truncated: bool = False


class LiveSet(Generic[T]):
    """A thread-safe set of things started here and not yet cleaned up (process groups, containers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: set[T] = set()

    def add(self, item: T) -> None:
        with self._lock:
            self._items.add(item)

    def discard(self, item: T) -> None:
        with self._lock:
            self._items.discard(item)

    def snapshot(self) -> list[T]:
        with self._lock:
            return sorted(self._items)


_live: LiveSet[int] = LiveSet()


def live_process_groups() -> list[int]:
    """Process groups this interpreter started that may still have members."""
    return _live.snapshot()


def kill_all_groups() -> None:
    """Last resort at exit: SIGKILL every group still registered."""
    for pgid in _live.snapshot():
        _signal_group(pgid, signal.SIGKILL)
        _live.discard(pgid)


atexit.register(kill_all_groups)


def install_termination_handler() -> None:
    """On SIGTERM (e.g. Prefect cancelling this flow run), stop our children before dying.

    Only possible from the main thread; a no-op elsewhere. The previous handler still runs after.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def _on_term(signum: int, frame: object) -> None:
        kill_all_groups()
        if callable(previous):
            previous(signum, frame)  # type: ignore[arg-type]
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, _on_term)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the group; False when no member is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)  # type: ignore[arg-type]


def _wait_group_gone(proc: subprocess.Popen[bytes], pgid: int, grace_s: float) -> bool:
    deadline = time.monotonic() + grace_s
    while True:
        proc.poll()
        if proc.returncode is not None and not _group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop_group(proc: subprocess.Popen[bytes], policy: StopPolicy) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the whole group, each followed by its grace period."""
    pgid = proc.pid
    steps = (
        (signal.SIGINT, policy.interrupt_grace_s),
        (signal.SIGTERM, policy.terminate_grace_s),
        (signal.SIGKILL, policy.kill_grace_s),
    )
    for sig, grace in steps:
        if not _signal_group(pgid, sig):
            break
        if _wait_group_gone(proc, pgid, grace):
            break
    proc.poll()


def _sweep_group(proc: subprocess.Popen[bytes], policy: StopPolicy) -> None:
    """After the leader exited: whatever it left behind in its group gets SIGTERM, then SIGKILL."""
    pgid = proc.pid
    if not _group_alive(pgid):
        return
    for sig, grace in ((signal.SIGTERM, policy.terminate_grace_s), (signal.SIGKILL, policy.kill_grace_s)):
        if not _signal_group(pgid, sig) or _wait_group_gone(proc, pgid, grace):
            return


class _TailBuffer:
    def __init__(self, limit: int) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._limit = limit

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        while self._size > self._limit and len(self._chunks) > 1:
            self._size -= len(self._chunks.popleft())

    def text(self) -> str:
        return b"".join(self._chunks)[-self._limit :].decode("utf-8", "replace")


def _drain(stream: IO[bytes], tail: _TailBuffer) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
        tail.feed(chunk)


def _feed_stdin(stream: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        stream.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        stream.close()


def stream_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_stdout_line: Callable[[bytes], None],
    stdin: bytes | None = None,
    timeout_s: float | None = None,
    cancel: threading.Event | None = None,
    policy: StopPolicy | None = None,
) -> ProcessResult:
    """Run `argv` in its own process group, feeding stdout lines to `on_stdout_line`.

    `stdin` is written and then closed (an empty stdin is closed at once). Returns when the process and
    everything in its group are gone; `stop_reason` says whether our timeout or `cancel` ended it.
    """
    policy = policy or StopPolicy()
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )
    _live.add(proc.pid)
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    tail = _TailBuffer(STDERR_TAIL_BYTES)
    helpers = [
        threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True, name=f"stderr-{proc.pid}"),
        threading.Thread(target=_feed_stdin, args=(proc.stdin, stdin or b""), daemon=True),
    ]
    for thread in helpers:
        thread.start()

    finished = threading.Event()
    stop_reason: list[StopReason] = []

    def _watchdog() -> None:
        deadline = None if timeout_s is None else started + timeout_s
        while not finished.is_set():
            if cancel is not None and cancel.is_set():
                stop_reason.append("cancelled")
                stop_group(proc, policy)
                return
            if deadline is not None and time.monotonic() >= deadline:
                stop_reason.append("timeout")
                stop_group(proc, policy)
                return
            if proc.poll() is not None:
                # The leader is gone; leftovers in its group may still hold stdout open.
                _sweep_group(proc, policy)
                return
            wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
            finished.wait(wait)

    watchdog = threading.Thread(target=_watchdog, daemon=True, name=f"watchdog-{proc.pid}")
    watchdog.start()
    try:
        for line in proc.stdout:
            on_stdout_line(line)
    except BaseException:
        stop_reason.append("cancelled")
        stop_group(proc, policy)
        raise
    finally:
        proc.stdout.close()
        proc.wait()
        finished.set()
        watchdog.join()
        _sweep_group(proc, policy)
        for thread in helpers:
            thread.join(timeout=policy.kill_grace_s)
        proc.stderr.close()
        _live.discard(proc.pid)
    return ProcessResult(
        pid=proc.pid,
        returncode=proc.returncode,
        stop_reason=stop_reason[0] if stop_reason else "exited",
        duration_s=time.monotonic() - started,
        stderr_tail=tail.text(),
    )


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout_s: float | None = None,
    cancel: threading.Event | None = None,
    max_stdout_bytes: int = 8 * 1024 * 1024,
    policy: StopPolicy | None = None,
) -> CommandResult:
    """Run a command to completion and keep its output (stdout capped, stderr tail).

    A missing executable raises FileNotFoundError, as `subprocess` does, for the caller to turn into a
    clear error of its own.
    """
    out = _TailBuffer(max_stdout_bytes)
    total = [0]

    def _collect(line: bytes) -> None:
        total[0] += len(line)
        out.feed(line)

    result = stream_process(
        argv,
        cwd=cwd,
        env=os.environ if env is None else env,
        on_stdout_line=_collect,
        stdin=stdin,
        timeout_s=timeout_s,
        cancel=cancel,
        policy=policy,
    )
    return CommandResult(
        **result.model_dump(),
        stdout=out.text(),
        stdout_truncated=total[0] > max_stdout_bytes,
    )
