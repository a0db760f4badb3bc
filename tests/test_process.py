"""The process module with real processes: groups, escalation, timeouts, cancellation, no leftovers."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from nightshift.process import StopPolicy, live_process_groups, run_command, stream_process

FAST = StopPolicy(interrupt_grace_s=0.5, terminate_grace_s=0.5, kill_grace_s=1.0)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def zombie_children() -> list[int]:
    me = str(os.getpid())
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            zombies.append(int(stat.parent.name))
    return zombies


def test_lines_reach_the_callback_in_order(tmp_path: Path) -> None:
    lines: list[bytes] = []
    result = stream_process(
        ["sh", "-c", "printf 'a\\nb\\n'; printf 'c'"],
        cwd=tmp_path,
        env=os.environ,
        on_stdout_line=lines.append,
    )
    assert lines == [b"a\n", b"b\n", b"c"]
    assert result.returncode == 0
    assert result.stop_reason == "exited"


def test_stdin_is_written_then_closed(tmp_path: Path) -> None:
    result = run_command(["cat"], cwd=tmp_path, stdin=b"the prompt\n", timeout_s=10)
    assert result.stdout == "the prompt\n"
    assert result.stop_reason == "exited"


def test_stderr_tail_is_kept(tmp_path: Path) -> None:
    result = run_command(["sh", "-c", "echo oops >&2; exit 3"], cwd=tmp_path, timeout_s=10)
    assert result.returncode == 3
    assert "oops" in result.stderr_tail


def test_multi_megabyte_line(tmp_path: Path) -> None:
    size = 6 * 1024 * 1024
    got: list[int] = []
    stream_process(
        [sys.executable, "-c", f"import sys; sys.stdout.write('x' * {size} + '\\n')"],
        cwd=tmp_path,
        env=os.environ,
        on_stdout_line=lambda line: got.append(len(line)),
    )
    assert got == [size + 1]


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    started = time.monotonic()
    result = run_command(
        ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; sleep 300"],
        cwd=tmp_path,
        timeout_s=1.0,
        policy=FAST,
    )
    assert result.stop_reason == "timeout"
    assert time.monotonic() - started < 5
    assert not group_alive(result.pid)
    assert not Path(f"/proc/{pidfile.read_text().strip()}").exists()
    assert zombie_children() == []


def test_cancel_event_stops_the_run(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    result = run_command(["sleep", "300"], cwd=tmp_path, cancel=cancel, policy=FAST)
    assert result.stop_reason == "cancelled"
    assert not group_alive(result.pid)


def test_escalates_to_sigkill_when_signals_are_ignored(tmp_path: Path) -> None:
    script = (
        "import signal, time\n"
        "for s in (signal.SIGINT, signal.SIGTERM):\n    signal.signal(s, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(300)\n"
    )
    result = run_command([sys.executable, "-c", script], cwd=tmp_path, timeout_s=1.0, policy=FAST)
    assert result.stop_reason == "timeout"
    assert result.returncode == -signal.SIGKILL
    assert not group_alive(result.pid)


def test_sigint_is_tried_first(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: (print('got SIGINT', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\ntime.sleep(300)\n"
    )
    result = run_command([sys.executable, "-c", script], cwd=tmp_path, timeout_s=1.0, policy=FAST)
    assert "got SIGINT" in result.stdout
    assert result.returncode == 0
    assert result.stop_reason == "timeout"


def test_leftover_background_child_holding_stdout_is_swept(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_command(["sh", "-c", "sleep 300 & echo leader-done"], cwd=tmp_path, timeout_s=60, policy=FAST)
    assert result.stdout == "leader-done\n"
    assert result.stop_reason == "exited"
    assert time.monotonic() - started < 5
    assert not group_alive(result.pid)


def test_callback_error_stops_the_process_and_propagates(tmp_path: Path) -> None:
    def explode(line: bytes) -> None:
        raise ValueError("bad line")

    with pytest.raises(ValueError, match="bad line"):
        stream_process(
            ["sh", "-c", "echo one; sleep 300"], cwd=tmp_path, env=os.environ, on_stdout_line=explode, policy=FAST
        )
    assert live_process_groups() == []
    assert zombie_children() == []


def test_missing_executable_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_command(["/nonexistent/agent-cli"], cwd=tmp_path, timeout_s=5)
