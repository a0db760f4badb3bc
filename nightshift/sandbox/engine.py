"""The Docker engine, through its API (docker SDK): checks, removal, listing. No process is started here.

Runs themselves go through the `docker` client started by `nightshift.process` (its stdout is the
agent's stream); everything else (is the engine up, does the image exist, force-remove a container,
list labelled leftovers) is an API call on the engine's socket: fast, and safe in cleanup paths.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from nightshift.errors import SandboxError

_lock = threading.Lock()
_client: Any = None
_images_seen: dict[str, float] = {}
_IMAGE_RECHECK_S = 60.0


def client() -> Any:
    """A shared docker SDK client (DOCKER_HOST or the default socket); SandboxError if none answers."""
    global _client
    with _lock:
        if _client is None:
            import docker

            try:
                candidate = docker.from_env(timeout=30)
                candidate.ping()
            except Exception as exc:
                raise SandboxError(f"the Docker engine does not answer: {exc}", backend="docker") from exc
            _client = candidate
        return _client


def engine_answers() -> bool:
    try:
        client()
    except SandboxError:
        return False
    return True


def image_exists(image: str) -> bool:
    """True when the engine has `image` locally (positive answers cached for a minute)."""
    seen = _images_seen.get(image)
    if seen is not None and time.monotonic() - seen < _IMAGE_RECHECK_S:
        return True
    import docker.errors

    try:
        client().images.get(image)
    except docker.errors.ImageNotFound:
        return False
    _images_seen[image] = time.monotonic()
    return True


def require_image(image: str) -> None:
    if not image_exists(image):
        raise SandboxError(
            f"the worker image {image} does not exist; build it with scripts/build_image.sh", backend="docker"
        )


def remove_container(name: str, *, wait_s: float = 10.0) -> bool:
    """Force-remove a container (kill + remove); True when it existed. Waits until it is gone."""
    import docker.errors

    existed = False
    deadline = time.monotonic() + wait_s
    while True:
        try:
            container = client().containers.get(name)
        except docker.errors.NotFound:
            return existed
        existed = True
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            return existed
        except docker.errors.APIError as exc:  # 409: removal already in progress (--rm)
            if time.monotonic() >= deadline:
                raise SandboxError(f"could not remove container {name}: {exc}", backend="docker") from exc
            time.sleep(0.05)


def _start_time(pid: int) -> str | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[19]  # field 22 of stat: start time in clock ticks since boot


def owner_id(pid: int | None = None) -> str:
    """`host:pid:starttime` of a process: unique on this host even when pids are reused."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def owner_alive(owner: str) -> bool:
    """Whether the owner of a labelled resource still runs. Owners on other hosts count as alive."""
    host, _, rest = owner.partition(":")
    pid_s, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True
    if not pid_s.isdigit():
        return False
    current = _start_time(int(pid_s))
    return current is not None and current == started
