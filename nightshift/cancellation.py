"""Who may stop a running agent besides its own timeout: a person, and this process's end.

Three sources set the one `threading.Event` that `nightshift.process` watches for an agent launch:

- the caller's own cancel event (tests, embedding code);
- the flow run turning *Cancelling*/*Cancelled* on the Prefect server (UI, `prefect flow-run cancel`):
  polled every `NIGHTSHIFT_CANCEL_POLL_S` (default 2 s) while the agent lives. A worker would kill a
  flow-run process it started anyway; a flow called in-process (`nightshift run`) has nobody else
  watching, and a killed flow-run process would leave its agent thread running until it ends;
- SIGTERM or SIGINT to this process (`install_signal_handlers`, installed by the `nightshift` command
  and by every flow-run process that loads a worker flow).

`StopWatch.reason` says which one fired, for the run's error message and state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any
from uuid import UUID

log = logging.getLogger("nightshift.cancellation")

DEFAULT_POLL_S = 2.0
_SHUTDOWN = threading.Event()
_shutdown_reason: list[str] = []
_STOPPING_STATES = frozenset({"CANCELLING", "CANCELLED"})
SHUTDOWN_WAIT_S = 10.0
_ACTIVE = threading.Condition()
_launch_threads: list[int] = []  # idents of the threads running an agent launch now (one entry per launch)


def shutdown_requested() -> str | None:
    """Why this process is shutting down (a signal's name), or None."""
    return _shutdown_reason[0] if _SHUTDOWN.is_set() and _shutdown_reason else None


def request_shutdown(reason: str) -> None:
    """Stop every agent this process runs (their watchdogs escalate SIGINT → SIGTERM → SIGKILL)."""
    if not _SHUTDOWN.is_set():
        _shutdown_reason.append(reason)
        _SHUTDOWN.set()


def wait_for_agents(timeout_s: float) -> bool:
    """Block until no agent launch of other threads is running (True), or `timeout_s` passed (False).

    Launches of the calling thread are not waited for: they unwind when the caller raises.
    """
    me = threading.get_ident()
    with _ACTIVE:
        return _ACTIVE.wait_for(lambda: all(t == me for t in _launch_threads), timeout=timeout_s)


def _poll_s() -> float:
    try:
        return max(0.2, float(os.environ.get("NIGHTSHIFT_CANCEL_POLL_S", DEFAULT_POLL_S)))
    except ValueError:
        return DEFAULT_POLL_S


def install_signal_handlers() -> None:
    """SIGTERM and SIGINT first stop this process's agents, then end the process as they would have.

    SIGINT still raises KeyboardInterrupt; SIGTERM raises SystemExit(143) so `finally` blocks run (the
    Prefect flow engine swaps in its own SIGTERM handler while a flow runs, marks the run Crashed, and
    sends the signal again, which lands here). Only the main thread can install handlers: elsewhere this
    is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        request_shutdown(name)
        # Wait here: once the main thread unwinds, Python may exit without joining the agent's thread.
        wait_for_agents(SHUTDOWN_WAIT_S)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def _current_flow_run_id() -> UUID | None:
    try:
        from prefect.context import FlowRunContext
    except ImportError:  # pragma: no cover - prefect is a dependency
        return None
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return context.flow_run.id


def _flow_run_state(client: Any, flow_run_id: UUID) -> str | None:
    run = client.read_flow_run(flow_run_id)
    return run.state.type.value if run.state is not None else None


class StopWatch:
    """One agent launch's stop event, set by whichever source fires first (see the module docstring)."""

    def __init__(self, cancel: threading.Event | None = None, flow_run_id: UUID | None = None) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self._caller_cancel = cancel
        self._flow_run_id = flow_run_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="nightshift-stopwatch")

    def _fire(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            log.info("stopping the agent: %s", reason)
        self.event.set()

    def _check_local(self) -> bool:
        if self._caller_cancel is not None and self._caller_cancel.is_set():
            self._fire("cancelled by the caller")
        elif _SHUTDOWN.is_set():
            self._fire(f"this process received {shutdown_requested() or 'a shutdown request'}")
        return self.event.is_set()

    def _watch(self) -> None:
        if self._flow_run_id is None:
            while not self._done.wait(0.1):
                if self._check_local():
                    return
            return
        from prefect.client.orchestration import get_client

        poll_s = _poll_s()
        next_poll = time.monotonic()
        with get_client(sync_client=True) as client:
            while not self._done.is_set():
                if self._check_local():
                    return
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + poll_s
                    try:
                        state = _flow_run_state(client, self._flow_run_id)
                    except Exception as exc:  # the API may be briefly away; the timeout still holds
                        log.debug("cannot read the flow run's state: %s", exc)
                        state = None
                    if state in _STOPPING_STATES:
                        self._fire(f"the flow run was cancelled in Prefect (state {str(state).title()})")
                        return
                self._done.wait(0.1)

    def __enter__(self) -> StopWatch:
        with _ACTIVE:
            _launch_threads.append(threading.get_ident())
        self._check_local()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        with _ACTIVE:
            _launch_threads.remove(threading.get_ident())
            _ACTIVE.notify_all()


@contextlib.contextmanager
def stop_watch(cancel: threading.Event | None = None) -> Iterator[StopWatch]:
    """The stop event of one agent launch inside the current flow run (or outside any)."""
    with StopWatch(cancel, _current_flow_run_id()) as watch:
        yield watch
