"""Long-lived background processes (the Prefect server, the worker) with pid files, started and stopped
by `nightshift up` / `nightshift down`.

Each process is started detached in its own session (it outlives `nightshift up`), its output appended
to a log file, and recorded in `<ops dir>/<name>.json` with its pid and the kernel's start time of that
pid, so that a later `down` signals exactly that process and never a stranger that reused the pid.
Stopping escalates SIGINT → SIGTERM → SIGKILL on the process group (a Prefect worker wants SIGINT twice).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ProcRecord(BaseModel):
    """What a pid file holds."""

    model_config = ConfigDict(extra="forbid")

    name: str
    pid: int
    start_ticks: int = Field(description="field 22 of /proc/<pid>/stat: tells a reused pid apart")
    argv: list[str]
    log: str
    started_at: datetime


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall; fields[0] is field 3 (state)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")


class ManagedProcess:
    """One named background process and its pid file in `directory`."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.pid_file = directory / f"{name}.json"
        self.log_file = directory / f"{name}.log"

    def record(self) -> ProcRecord | None:
        try:
            return ProcRecord.model_validate_json(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> ProcRecord | None:
        """The record when its process is still the one we started and still running."""
        record = self.record()
        if record is None:
            return None
        if start_ticks(record.pid) != record.start_ticks or _zombie(record.pid):
            return None
        return record

    def start(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> ProcRecord:
        """Start detached (own session, stdin closed, output to the log) and write the pid file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {datetime.now(UTC).isoformat()} nightshift starts: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        ticks = start_ticks(proc.pid)
        record = ProcRecord(
            name=self.name,
            pid=proc.pid,
            start_ticks=ticks if ticks is not None else -1,
            argv=list(argv),
            log=str(self.log_file),
            started_at=datetime.now(UTC),
        )
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(record.model_dump_json(indent=2))
        tmp.replace(self.pid_file)
        proc.returncode = 0  # detached on purpose: never waited for here (keeps Popen.__del__ quiet)
        return record

    def exited_early(self, record: ProcRecord) -> bool:
        return start_ticks(record.pid) != record.start_ticks or _zombie(record.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, interrupts: int = 1, grace_s: float = 10.0) -> str:
        """Stop the recorded process (if it is still ours) and remove the pid file; says what happened."""
        record = self.alive()
        if record is None:
            self.pid_file.unlink(missing_ok=True)
            return f"{self.name}: not running"
        steps = [signal.SIGINT] * interrupts + [signal.SIGTERM, signal.SIGKILL]
        for sig in steps:
            try:
                os.killpg(record.pid, sig)
            except ProcessLookupError:
                break
            except PermissionError:
                os.kill(record.pid, sig)
            if self._wait_gone(record, grace_s if sig != signal.SIGKILL else 5.0):
                self.pid_file.unlink(missing_ok=True)
                return f"{self.name}: stopped pid {record.pid} ({sig.name})"
        gone = self._wait_gone(record, 0)
        if gone:
            self.pid_file.unlink(missing_ok=True)
        return f"{self.name}: pid {record.pid} " + ("stopped" if gone else "did NOT stop")

    def _wait_gone(self, record: ProcRecord, grace_s: float) -> bool:
        deadline = time.monotonic() + grace_s
        while True:
            if self.exited_early(record):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
