"""The sandbox interface: turn an adapter's command into the command that runs it sandboxed.

    launch = sandbox.launch(argv, env, cwd=..., home=...)    # host view in, the command to start out
    try:
        process.stream_process(launch.argv, cwd=launch.cwd, env=launch.env, ...)   # the ONE process owner
    finally:
        launch.close()                                        # container force-removed, sockets gone

`argv`, `env`, `cwd` and `home` are what the agent would get as a plain process on this host; a
backend rewrites them (the binary and HOME as seen inside, the mounts, the secrets passed by name).
Stdin and stdout are untouched, so the stream is parsed exactly as for a process.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from nightshift.agents.base import AgentAdapter

Backend = Literal["process", "docker"]


class Launch(BaseModel):
    """The command to start for one run, and how to clean up after it (idempotent `close`)."""

    model_config = ConfigDict(extra="forbid")

    argv: list[str]
    env: dict[str, str] = Field(repr=False, description="environment of the started client (secrets too)")
    cwd: Path
    backend: Backend
    container: str | None = Field(default=None, description="container name, when there is one")
    warm: bool = Field(default=False, description="started in a container of the warm pool")
    _closers: list[Callable[[], None]] = PrivateAttr(default_factory=list)
    _closed: bool = PrivateAttr(default=False)

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run `closer` at `close()`; closers run last-added first."""
        self._closers.append(closer)

    def close(self) -> None:
        """Stop and remove whatever the launch created; safe to call twice, never raises twice."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        while self._closers:
            try:
                self._closers.pop()()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    @property
    def closed(self) -> bool:
        return self._closed


class Sandbox(Protocol):
    """A way to run an agent CLI; `select.sandbox_for` picks one from a worker's profile."""

    backend: Backend
    profile: str

    def binary(self, adapter: AgentAdapter) -> Path:
        """The agent executable as the sandboxed command names it."""
        ...

    def launch(self, argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, home: Path) -> Launch: ...

    def close(self) -> None:
        """Close every launch of this sandbox that is still open."""
        ...


class ProcessSandbox:
    """`disabled`: the CLI as a plain process of this host, exactly as the runner always ran it."""

    backend: Backend = "process"

    def __init__(self, profile: str = "disabled") -> None:
        self.profile = profile

    def binary(self, adapter: AgentAdapter) -> Path:
        return adapter.binary()

    def launch(self, argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, home: Path) -> Launch:
        return Launch(argv=list(argv), env=dict(env), cwd=cwd, backend="process")

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"ProcessSandbox(profile={self.profile!r})"


_active: contextvars.ContextVar[Sandbox | None] = contextvars.ContextVar("nightshift_sandbox", default=None)


def active_sandbox() -> Sandbox | None:
    """The sandbox set by `use_sandbox` in this context (thread / task), if any."""
    return _active.get()


@contextlib.contextmanager
def use_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    """Runs started in this context without an explicit `sandbox=` use this one; closed on exit."""
    token = _active.set(sandbox)
    try:
        yield sandbox
    finally:
        _active.reset(token)
        sandbox.close()
