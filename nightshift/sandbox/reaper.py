"""The orphan reaper: remove what sandboxed runs left behind (call it when a worker starts).

Every run removes its own container; the lease makes a container kill itself when its owner process
dies. What can still be left (the engine restarted, a pool root mount after a SIGKILL...) is found by
label and removed here:

- containers with `io.nightshift.owner=<host:pid:start>` whose owner process is gone (or any owner
  when `include_live_owners`, or exactly `owner`), created more than `older_than_s` ago;
- containers that only inherited `io.nightshift.managed=true` from the image (no owner label: flow runs
  of the docker work pool, manual runs) only when they are no longer running;
- labelled networks and volumes (nightshift creates none today) older than `older_than_s`;
- this host's run directories (`<state_root>/<owner>/`: sockets, pool mounts) of dead owners,
  unmounting what is still mounted under them first.

    from nightshift.sandbox.reaper import reap
    report = reap()            # at worker start: orphans of dead processes
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nightshift.sandbox import engine
from nightshift.sandbox.settings import LABEL_OWNER, MANAGED_SELECTOR, SandboxSettings

log = logging.getLogger("nightshift.sandbox")
_RUNNING = frozenset({"running", "restarting", "paused", "removing"})


class ReapReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    containers: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)
    directories: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.containers or self.networks or self.volumes or self.directories)


def _age_s(created: str) -> float:
    """Seconds since an engine timestamp (`2026-11-21T12:00:00.123456789Z`)."""
    text = created.rstrip("Z")
    main, _, fraction = text.partition(".")
    stamp = datetime.fromisoformat(main + "+00:00").timestamp() + float(f"0.{fraction or 0}"[:12])
    return time.time() - stamp


def _container_matches(
    attrs: dict[str, Any], *, older_than_s: float, include_live_owners: bool, owner: str | None
) -> bool:
    labels = attrs.get("Config", {}).get("Labels") or {}
    if _age_s(attrs.get("Created", "1970-01-01T00:00:00Z")) < older_than_s:
        return False
    their_owner = labels.get(LABEL_OWNER)
    if their_owner is None:
        return attrs.get("State", {}).get("Status") not in _RUNNING
    if owner is not None:
        return bool(their_owner == owner)
    return include_live_owners or not engine.owner_alive(their_owner)


def leftovers(label: str = MANAGED_SELECTOR, *, owner: str | None = None) -> ReapReport:
    """What exists with `label` (containers only of `owner` when given), removing nothing."""
    found = ReapReport()
    api = engine.client()
    for container in api.containers.list(all=True, filters={"label": label}):
        labels = container.attrs.get("Config", {}).get("Labels") or {}
        if owner is None or labels.get(LABEL_OWNER) == owner:
            found.containers.append(container.name)
    found.networks = [n.name for n in api.networks.list(filters={"label": label})]
    found.volumes = [v.name for v in api.volumes.list(filters={"label": label})]
    return found


def reap(
    label: str = MANAGED_SELECTOR,
    *,
    older_than_s: float = 0.0,
    include_live_owners: bool = False,
    owner: str | None = None,
    settings: SandboxSettings | None = None,
) -> ReapReport:
    """Remove labelled leftovers (see the module docstring); returns what was removed."""
    import docker.errors

    report = ReapReport()
    api = engine.client()
    for container in api.containers.list(all=True, filters={"label": label}):
        if _container_matches(
            container.attrs, older_than_s=older_than_s, include_live_owners=include_live_owners, owner=owner
        ):
            with contextlib.suppress(docker.errors.NotFound):
                engine.remove_container(container.name)
                report.containers.append(container.name)
    for network in api.networks.list(filters={"label": label}):
        if _age_s(network.attrs.get("Created", "1970-01-01T00:00:00Z")) >= older_than_s:
            try:
                network.remove()
                report.networks.append(network.name)
            except docker.errors.APIError as exc:
                log.warning("reaper: network %s kept: %s", network.name, exc)
    for volume in api.volumes.list(filters={"label": label}):
        if _age_s(volume.attrs.get("CreatedAt", "1970-01-01T00:00:00Z")) >= older_than_s:
            try:
                volume.remove(force=True)
                report.volumes.append(volume.name)
            except docker.errors.APIError as exc:
                log.warning("reaper: volume %s kept: %s", volume.name, exc)
    report.directories = reap_directories(
        settings or SandboxSettings.from_env(), include_live_owners=include_live_owners, owner=owner
    )
    if not report.empty:
        log.info("reaper removed %s", report.model_dump(exclude_defaults=True))
    return report


def _mounts_under(root: Path) -> list[Path]:
    prefix = str(root.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if (point + "/").startswith(prefix):
            points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def reap_directories(
    settings: SandboxSettings, *, include_live_owners: bool = False, owner: str | None = None
) -> list[str]:
    """Remove `<state_root>/<owner>/` folders of dead owners (unmounting pool mounts under them)."""
    root = settings.state_root
    if not root.is_dir():
        return []
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    removed = []
    for folder in sorted(root.iterdir()):
        their_owner = folder.name.replace("_", ":")
        if owner is not None:
            if their_owner != owner:
                continue
        elif not include_live_owners and engine.owner_alive(their_owner):
            continue
        for point in _mounts_under(folder):
            libc.umount2(str(point).encode(), 2)  # MNT_DETACH
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(str(folder))
    return removed
