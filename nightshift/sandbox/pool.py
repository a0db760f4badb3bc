"""A warm pool: containers started ahead of time, each used by one run and then removed.

A container's mounts are fixed when it starts, but a run's workspace and home are only known at the
run. So each pool container mounts two empty *slot* directories with `rslave` propagation, from a pool
root that is a shared bind mount on the host:

    host: <root> (shared)  /slot-<id>/workspace  ──rslave──▶  container: /workspace
                           /slot-<id>/home       ──rslave──▶             /home/nightshift
                           /ns (api.sock, lease.sock)  ──ro──▶           /run/ns

At launch the run's directory is bind-mounted over the slot on the host (read-only for `strict`: a
private staging bind is remounted read-only first, so the copy that propagates is read-only), the
mount is verified from the host in the container's /proc/<pid>/mountinfo, and the CLI is started with
`docker exec -i` (same env, same secrets by name, same stdin/stdout as `docker run -i`). At close the
container's lease is ended (it kills itself), it is force-removed, the slot is unmounted and the pool
starts a replacement in the background.

Needs root (mount(2)); elsewhere, or when the pool is empty or built for another model API, launches
fall back to cold containers. Pool containers carry `io.nightshift.pool=<id>` and
`io.nightshift.flow-run=pool` (labels cannot change once a container exists).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from nightshift.errors import SandboxError
from nightshift.process import run_command
from nightshift.sandbox import engine
from nightshift.sandbox.base import Launch
from nightshift.sandbox.container import (
    _LENDER,
    _live,
    client_env,
    container_user,
    egress_flags,
    entry_command,
    hardening_flags,
    owner_dir,
    split_env,
)
from nightshift.sandbox.egress import HostEnd, Upstream
from nightshift.sandbox.settings import (
    CONTAINER_HOME,
    CONTAINER_SOCKET_DIR,
    CONTAINER_WORKDIR,
    LABEL_FLOW_RUN,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_PROFILE,
    LABEL_RUN,
    SandboxSettings,
)

if TYPE_CHECKING:
    from nightshift.sandbox.container import DockerSandbox

log = logging.getLogger("nightshift.sandbox")

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(source: str, target: Path, flags: int) -> None:
    if _libc.mount(source.encode(), str(target).encode(), None, flags, None) != 0:
        errno = ctypes.get_errno()
        raise SandboxError(f"mount {source} on {target} failed: {os.strerror(errno)}", backend="docker")


def _umount(target: Path) -> None:
    _libc.umount2(str(target).encode(), MNT_DETACH)


def bind(source: Path, target: Path, *, read_only: bool, stage_dir: Path) -> None:
    """Bind `source` over `target`; read-only binds are made read-only before they reach `target`."""
    if not read_only:
        _mount(str(source), target, MS_BIND)
        return
    stage = stage_dir / f"stage-{uuid.uuid4().hex[:8]}"
    stage.mkdir(mode=0o700)
    try:
        _mount(str(source), stage, MS_BIND)
        try:
            _mount("none", stage, MS_PRIVATE)
            _mount("none", stage, MS_REMOUNT | MS_BIND | MS_RDONLY)
            _mount(str(stage), target, MS_BIND)
        finally:
            _umount(stage)
    finally:
        stage.rmdir()


def _wait_dead(pid: int, timeout: float) -> bool:
    """Wait until process `pid` has exited (gone or a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.005)
    return False


def mounts_of(pid: int, mount_point: str) -> list[list[str]]:
    """The mountinfo lines (split) of a process for one mount point, bottom to top."""
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    return [fields for fields in (line.split() for line in lines) if fields[4] == mount_point]


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    directory: Path
    pid: int
    base_mounts: dict[str, str]  # mount point -> mount id of the empty slot mount


class WarmPool:
    """`size` started containers for one model API upstream, refilled in the background."""

    def __init__(self, settings: SandboxSettings, upstream: Upstream, *, size: int | None = None) -> None:
        self.settings = settings
        self.upstream = upstream
        self.size = size if size is not None else settings.warm_pool
        self.id = uuid.uuid4().hex[:8]
        self.root = owner_dir(settings) / f"pool-{self.id}"
        self.uid, self.gid = container_user(settings)
        self._lock = threading.Lock()
        self._ready: list[Slot] = []
        self._starting = 0
        self._closed = False
        self._host_end: HostEnd | None = None
        self._threads: list[threading.Thread] = []

    # ---- life cycle

    def start(self) -> WarmPool:
        if os.geteuid() != 0:
            raise SandboxError("the warm pool needs root (it bind-mounts each run's directories)")
        engine.require_image(self.settings.image)
        self.root.mkdir(parents=True, mode=0o755)
        try:
            _mount(str(self.root), self.root, MS_BIND)
            _mount("none", self.root, MS_SHARED)
            self._host_end = HostEnd(self.root / "ns", self.upstream, gid=self.gid)
            self._host_end.start()
        except BaseException:
            self._closed = True
            _umount(self.root)
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.fill()
        return self

    def fill(self) -> None:
        """Start containers in the background until `size` are ready or starting."""
        with self._lock:
            missing = self.size - len(self._ready) - self._starting
            if self._closed or missing <= 0:
                return
            self._starting += missing
        for _ in range(missing):
            thread = threading.Thread(target=self._spawn_guarded, name=f"pool-{self.id}-fill", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def wait_ready(self, count: int | None = None, timeout: float = 60.0) -> bool:
        want = self.size if count is None else count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._ready) >= want:
                    return True
            time.sleep(0.05)
        return False

    @property
    def ready(self) -> int:
        with self._lock:
            return len(self._ready)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slots, self._ready = self._ready, []
        while True:
            with self._lock:
                pending = [t for t in self._threads if t.is_alive() and t is not threading.current_thread()]
            if not pending:
                break
            for thread in pending:
                thread.join(timeout=30)
        with self._lock:
            slots += self._ready
            self._ready = []
        for slot in slots:
            self._retire(slot)
        if self._host_end is not None:
            self._host_end.close()
        _umount(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- containers

    def _spawn_guarded(self) -> None:
        try:
            slot = self._spawn()
        except Exception as exc:
            log.warning("warm pool %s: could not start a container: %s", self.id, exc)
            slot = None
        with self._lock:
            self._starting -= 1
            if slot is not None and not self._closed:
                self._ready.append(slot)
                slot = None
        if slot is not None:
            self._retire(slot)

    def _spawn(self) -> Slot:
        assert self._host_end is not None
        run_id = uuid.uuid4().hex[:12]
        name = f"ns-w{run_id}"
        directory = self.root / f"slot-{run_id}"
        for sub in ("workspace", "home"):
            (directory / sub).mkdir(parents=True, mode=0o755)
        egress, _ = egress_flags(self.upstream, self.settings)
        labels = {LABEL_MANAGED: "true", LABEL_FLOW_RUN: "pool", LABEL_RUN: run_id, LABEL_PROFILE: "warm",
                  LABEL_OWNER: engine.owner_id(), LABEL_POOL: self.id}  # fmt: skip
        command = [self.settings.docker_cli, "run", "-d", "--rm", "--name", name]
        for key, value in labels.items():
            command += ["--label", f"{key}={value}"]
        command += hardening_flags(self.settings, self.uid, self.gid) + egress
        command += [
            "-v", f"{directory / 'workspace'}:{CONTAINER_WORKDIR}:rw,rslave",
            "-v", f"{directory / 'home'}:{CONTAINER_HOME}:rw,rslave",
            "-v", f"{self._host_end.directory}:{CONTAINER_SOCKET_DIR}:ro",
            "-w", CONTAINER_WORKDIR,
            self.settings.image,
            *entry_command(name, self.upstream, expect_ro=[], expect_rw=[]), "--serve",
        ]  # fmt: skip
        _live.add(name)
        try:
            result = run_command(command, cwd=Path("/"), env=client_env({}), timeout_s=60)
            if result.returncode != 0:
                raise SandboxError(f"docker run -d failed: {result.stderr_tail.strip()[-500:]}", backend="docker")
            if not self._host_end.wait_ready(name, timeout=30):
                raise SandboxError(f"pool container {name} did not report ready", backend="docker")
            pid = int(engine.client().containers.get(name).attrs["State"]["Pid"])
            base = {point: mounts_of(pid, point)[-1][0] for point in (CONTAINER_WORKDIR, CONTAINER_HOME)}
        except BaseException:
            self._remove(name, directory)
            raise
        return Slot(name=name, directory=directory, pid=pid, base_mounts=base)

    def _remove(self, name: str, directory: Path) -> None:
        try:
            if self._host_end is not None:
                self._host_end.release(name)
            engine.remove_container(name)
        finally:
            _live.discard(name)
            for sub in ("workspace", "home"):
                _umount(directory / sub)
            shutil.rmtree(directory, ignore_errors=True)

    def _retire(self, slot: Slot) -> None:
        try:
            self._remove(slot.name, slot.directory)
        except Exception as exc:
            log.warning("warm pool %s: could not remove %s: %s", self.id, slot.name, exc)
        self.fill()

    def _stop(self, slot: Slot) -> None:
        """End the container's lease (it kills itself) and wait until its init is gone."""
        if self._host_end is not None:
            self._host_end.release(slot.name)
        if not _wait_dead(slot.pid, timeout=5.0):
            engine.remove_container(slot.name)

    def _in_background(self, target: Callable[[Slot], None], slot: Slot) -> None:
        thread = threading.Thread(target=target, args=(slot,), name=f"pool-{self.id}-retire", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _take(self) -> Slot | None:
        while True:
            with self._lock:
                if not self._ready:
                    return None
                slot = self._ready.pop(0)
            if Path(f"/proc/{slot.pid}").exists():
                return slot
            self._retire(slot)  # died while waiting (e.g. its lease broke)

    # ---- runs

    def launch(
        self,
        sandbox: DockerSandbox,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path,
        home: Path,
        upstream: Upstream,
    ) -> Launch | None:
        """A launch in a ready container, or None (the caller starts a cold one)."""
        if self._closed or upstream != self.upstream or container_user(sandbox.settings) != (self.uid, self.gid):
            return None
        slot = self._take()
        if slot is None:
            self.fill()
            return None
        read_only = sandbox.read_only_workspace
        _, ca_mounted = egress_flags(upstream, self.settings)
        plain, secret = split_env(env, upstream, self.settings, ca_mounted=ca_mounted)
        command = [self.settings.docker_cli, "exec", "-i", "-u", f"{self.uid}:{self.gid}", "-w", CONTAINER_WORKDIR]
        for key, value in sorted(plain.items()):
            command += ["-e", f"{key}={value}"]
        for key in sorted(secret):
            command += ["-e", key]
        command += [slot.name, *argv]
        launch = Launch(argv=command, env=client_env(secret), cwd=cwd, backend="docker", container=slot.name, warm=True)
        lent: list[Path] = []

        def _close() -> None:
            try:
                self._stop(slot)  # the container first: nothing may write while ownership goes back
            finally:
                for path in reversed(lent):
                    _LENDER.give_back(path)
                self._in_background(self._retire, slot)  # removal, unmounts, then a replacement

        launch.on_close(_close)
        try:
            if not read_only:
                lent.append(_LENDER.lend(cwd, self.uid, self.gid))
            lent.append(_LENDER.lend(home, self.uid, self.gid))
            bind(cwd.resolve(), slot.directory / "workspace", read_only=read_only, stage_dir=self.root)
            bind(home.resolve(), slot.directory / "home", read_only=False, stage_dir=self.root)
            self._verify(slot, read_only=read_only)
        except BaseException:
            launch.close()
            raise
        return launch

    @staticmethod
    def _verify(slot: Slot, *, read_only: bool) -> None:
        """From the host: the container sees the run's mounts on top, with the promised mode."""
        for point, want_ro in ((CONTAINER_WORKDIR, read_only), (CONTAINER_HOME, False)):
            stack = mounts_of(slot.pid, point)
            top = stack[-1] if stack else None
            if top is None or top[0] == slot.base_mounts[point]:
                raise SandboxError(f"{point} did not reach pool container {slot.name}", backend="docker")
            is_ro = "ro" in top[5].split(",")
            if is_ro != want_ro:
                raise SandboxError(f"{point} in {slot.name} is {'ro' if is_ro else 'rw'}", backend="docker")


_pools_lock = threading.Lock()
_pools: dict[tuple[SandboxSettings, Upstream], WarmPool] = {}


def shared_pool(settings: SandboxSettings) -> PoolRouter | None:
    """The process-wide pools of these settings (one per model API upstream), or None when off."""
    if settings.warm_pool <= 0 or os.geteuid() != 0:
        return None
    return PoolRouter(settings)


class PoolRouter:
    """What a DockerSandbox holds: finds (or starts, for the next runs) the pool of a launch's upstream."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings

    def launch(
        self,
        sandbox: DockerSandbox,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path,
        home: Path,
        upstream: Upstream,
    ) -> Launch | None:
        key = (self.settings, upstream)
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = WarmPool(self.settings, upstream)
                try:
                    pool.start()
                except SandboxError as exc:
                    log.warning("warm pool unavailable: %s", exc)
                    return None
                _pools[key] = pool
        return pool.launch(sandbox, argv, env, cwd=cwd, home=home, upstream=upstream)


def close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        with contextlib.suppress(Exception):
            pool.close()


atexit.register(close_pools)
