"""Which sandbox a worker gets: its profile, and the backend this machine offers.

`NIGHTSHIFT_SANDBOX_BACKEND=docker|process|auto` (default auto). Auto picks docker when the engine
answers and the worker image exists; otherwise it falls back to plain processes and says so in a
WARNING log line every time a profile that wanted a container runs without one (never silently).
`docker` set explicitly and not available is an error (`SandboxError`), not a fallback.
"""

from __future__ import annotations

import logging
import threading
import time

from nightshift.errors import SandboxError
from nightshift.sandbox import engine
from nightshift.sandbox.base import Backend, ProcessSandbox, Sandbox
from nightshift.sandbox.container import DockerSandbox
from nightshift.sandbox.settings import SandboxSettings

log = logging.getLogger("nightshift.sandbox")

_AUTO_RECHECK_S = 60.0
_lock = threading.Lock()
_auto: dict[str, tuple[float, Backend, str]] = {}


def docker_unavailable_reason(settings: SandboxSettings) -> str | None:
    """None when containers can run here, else why not."""
    if not engine.engine_answers():
        return "the Docker engine does not answer (scripts/ensure_docker.sh starts one)"
    if not engine.image_exists(settings.image):
        return f"the worker image {settings.image} does not exist (scripts/build_image.sh builds it)"
    return None


def resolve_backend(settings: SandboxSettings | None = None) -> tuple[Backend, str]:
    """(backend, why): the explicit choice, or what auto found (re-checked once a minute)."""
    settings = settings or SandboxSettings.from_env()
    if settings.backend == "process":
        return "process", "NIGHTSHIFT_SANDBOX_BACKEND=process"
    if settings.backend == "docker":
        reason = docker_unavailable_reason(settings)
        if reason:
            raise SandboxError(f"NIGHTSHIFT_SANDBOX_BACKEND=docker but {reason}", backend="docker")
        return "docker", "NIGHTSHIFT_SANDBOX_BACKEND=docker"
    with _lock:
        cached = _auto.get(settings.image)
        if cached and time.monotonic() - cached[0] < _AUTO_RECHECK_S:
            return cached[1], cached[2]
        reason = docker_unavailable_reason(settings)
        found: tuple[Backend, str] = ("process", reason) if reason else ("docker", "auto: engine and image found")
        _auto[settings.image] = (time.monotonic(), *found)
        return found


def reset_backend_cache() -> None:
    with _lock:
        _auto.clear()


def sandbox_for(
    profile: str | None,
    *,
    settings: SandboxSettings | None = None,
    flow_run_id: str | None = None,
    worker: str = "agent",
) -> Sandbox:
    """The sandbox of a worker profile: `disabled` is a process; strict/permissive a container when
    the backend is docker, else a process with a WARNING that the worker runs degraded."""
    settings = settings or SandboxSettings.from_env()
    chosen = profile or "strict"
    if chosen == "disabled":
        return ProcessSandbox("disabled")
    if chosen not in ("strict", "permissive"):
        raise SandboxError(f"unknown sandbox profile {chosen!r} (strict, permissive or disabled)")
    backend, why = resolve_backend(settings)
    if backend == "process":
        log.warning(
            "sandbox degraded: %s wants the %s sandbox but runs as a plain process on this host (%s); "
            "set NIGHTSHIFT_SANDBOX_BACKEND=docker to refuse instead",
            worker,
            chosen,
            why,
        )
        return ProcessSandbox(chosen)
    from nightshift.sandbox.pool import shared_pool

    return DockerSandbox(chosen, settings=settings, flow_run_id=flow_run_id, pool=shared_pool(settings))
