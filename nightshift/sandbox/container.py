"""DockerSandbox: the agent CLI in a locked-down, labelled, single-use container.

`launch` turns the adapter's command into

    docker run -i --rm --init --pull never --name ns-<run> --log-driver none
        --label io.nightshift.managed=true --label io.nightshift.flow-run=<id> --label io.nightshift.run=<run>
        --label io.nightshift.profile=<strict|permissive> --label io.nightshift.owner=<host:pid:start>
        --network none [--add-host api.anthropic.com:127.0.0.1] [--sysctl net.ipv4.ip_unprivileged_port_start=0]
        --read-only --tmpfs /tmp:rw,nosuid,nodev,size=256m
        --cap-drop ALL --security-opt no-new-privileges --user 10001:10001 --ulimit core=0
        --memory 2g --memory-swap 2g --cpus 1 --pids-limit 256
        -v <repo>:/workspace:ro            (strict)   |  -v <workspace copy>:/workspace:rw  (permissive)
        -v <session home>:/home/nightshift:rw          the same host dir on resume: --resume finds it
        -v <run socket dir>:/run/ns:ro                 the only way out (see egress.py)
        [-v <host CA bundle>:/etc/ssl/certs/ca-certificates.crt:ro]   (https model API)
        -w /workspace -e HOME=/home/nightshift -e NAME=value ... -e ANTHROPIC_API_KEY
        nightshift/worker:dev python -m nightshift.sandbox.entry ... -- claude -p ...

Secrets (names with KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL) are passed as `-e NAME`: the value is in
the docker client's environment only, never on a command line or in the image. `close()` force-removes
the container through the engine API (a SIGKILLed `docker run` client does not stop its container),
closes the host end (the container's lease ends: it kills itself even if removal failed) and gives the
lent directories back to their owner.

Running as root, directories the container writes (the session home, a permissive workspace) are
lent to uid 10001 for the duration of the runs using them and given back afterwards; as another user,
the container runs with that user's uid:gid and nothing is lent.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from nightshift.agents.base import AgentAdapter, is_secret_env_name
from nightshift.errors import SandboxError
from nightshift.process import LiveSet
from nightshift.sandbox import engine
from nightshift.sandbox.base import Backend, Launch
from nightshift.sandbox.egress import HostEnd, Upstream, resolve_upstream
from nightshift.sandbox.settings import (
    CONTAINER_CA_BUNDLE,
    CONTAINER_HOME,
    CONTAINER_SOCKET_DIR,
    CONTAINER_UID,
    CONTAINER_WORKDIR,
    LABEL_FLOW_RUN,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_PROFILE,
    LABEL_RUN,
    SandboxSettings,
)

log = logging.getLogger("nightshift.sandbox")

# Host-side variables the container must not inherit: its own PATH, HOME, temp dir and CA settings apply.
HOST_ONLY_ENV = frozenset({"PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "PWD"})
# What the docker client itself needs from our environment.
CLIENT_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH",
              "DOCKER_TLS_VERIFY", "LANG", "LC_ALL")  # fmt: skip


class WarmSource(Protocol):
    """A warm pool (see pool.py): a launch in an already started container, or None."""

    def launch(
        self,
        sandbox: DockerSandbox,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path,
        home: Path,
        upstream: Upstream,
    ) -> Launch | None: ...


def container_user(settings: SandboxSettings) -> tuple[int, int]:
    """uid, gid inside: the configured one, else 10001 when we are root, else our own (never root)."""
    if settings.user:
        uid_s, _, gid_s = settings.user.partition(":")
        return int(uid_s), int(gid_s or uid_s)
    if os.geteuid() == 0:
        return CONTAINER_UID, CONTAINER_UID
    return os.geteuid(), os.getegid()


def owner_dir(settings: SandboxSettings) -> Path:
    """This process's folder of run directories (the reaper removes those of dead processes)."""
    return settings.state_root / engine.owner_id().replace(":", "_")


# ---- lending directories to the container's user -------------------------------------------------


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                os.lchown(os.path.join(dirpath, name), uid, gid)
            except FileNotFoundError:  # the agent removed it meanwhile
                continue


class _Lender:
    """Reference-counted `chown -R` of host directories to the container user, and back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lent: dict[Path, tuple[int, int, int]] = {}  # path -> (count, owner uid, owner gid)

    def lend(self, path: Path, uid: int, gid: int) -> Path:
        path = path.resolve()
        with self._lock:
            if path in self._lent:
                count, owner_uid, owner_gid = self._lent[path]
                self._lent[path] = (count + 1, owner_uid, owner_gid)
                return path
            st = path.stat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                _chown_tree(path, uid, gid)
            self._lent[path] = (1, st.st_uid, st.st_gid)
            return path

    def give_back(self, path: Path) -> None:
        with self._lock:
            count, owner_uid, owner_gid = self._lent[path]
            if count > 1:
                self._lent[path] = (count - 1, owner_uid, owner_gid)
                return
            del self._lent[path]
            if path.exists():
                _chown_tree(path, owner_uid, owner_gid)


_LENDER = _Lender()


# ---- live containers: removed at interpreter exit ------------------------------------------------


_live: LiveSet[str] = LiveSet()


def live_containers() -> list[str]:
    """Containers this process started and has not removed yet."""
    return _live.snapshot()


def remove_live_containers() -> None:
    """Force-remove every container this process still has (atexit; callable from a SIGTERM handler)."""
    for name in _live.snapshot():
        try:
            engine.remove_container(name, wait_s=5)
        except Exception as exc:
            log.warning("could not remove container %s: %s", name, exc)
        _live.discard(name)


atexit.register(remove_live_containers)


# ---- the command line -----------------------------------------------------------------------------


def split_env(
    env: Mapping[str, str], upstream: Upstream, settings: SandboxSettings, *, ca_mounted: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """(plain variables for `-e NAME=value`, secrets for `-e NAME` with the value in the client's env)."""
    inner = {k: v for k, v in env.items() if k not in HOST_ONLY_ENV}
    inner["HOME"] = CONTAINER_HOME
    inner[settings.api_url_env] = upstream.container_url
    if ca_mounted:
        inner["SSL_CERT_FILE"] = CONTAINER_CA_BUNDLE
        inner["NODE_EXTRA_CA_CERTS"] = CONTAINER_CA_BUNDLE
    plain = {k: v for k, v in inner.items() if not is_secret_env_name(k)}
    secret = {k: v for k, v in inner.items() if is_secret_env_name(k)}
    clash = sorted(k for k in secret if k in CLIENT_ENV or k.startswith("DOCKER_"))
    if clash:
        raise SandboxError(f"secret variables would change the docker client itself: {clash}", backend="docker")
    return plain, secret


def hardening_flags(settings: SandboxSettings, uid: int, gid: int) -> list[str]:
    """Flags every nightshift container gets, cold or warm."""
    return [
        "--init",
        "--pull", "never",
        "--log-driver", "none",
        "--network", "none",
        "--read-only",
        "--tmpfs", f"/tmp:rw,nosuid,nodev,size={settings.tmp_size}",  # noqa: S108 - the container's own /tmp
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--user", f"{uid}:{gid}",
        "--ulimit", "core=0",
        "--memory", settings.memory,
        "--memory-swap", settings.memory,
        "--cpus", f"{settings.cpus:g}",
        "--pids-limit", str(settings.pids_limit),
    ]  # fmt: skip


def egress_flags(upstream: Upstream, settings: SandboxSettings) -> tuple[list[str], bool]:
    """Name resolution and port binding for the model API inside; (flags, whether the CA is mounted)."""
    flags: list[str] = []
    if upstream.add_host:
        flags += ["--add-host", f"{upstream.add_host}:127.0.0.1"]
    if upstream.inner_port < 1024:
        flags += ["--sysctl", "net.ipv4.ip_unprivileged_port_start=0"]
    ca_mounted = bool(upstream.needs_ca and settings.ca_bundle and settings.ca_bundle.is_file())
    if ca_mounted:
        assert settings.ca_bundle is not None
        flags += ["-v", f"{settings.ca_bundle.resolve()}:{CONTAINER_CA_BUNDLE}:ro"]
    return flags, ca_mounted


def entry_command(name: str, upstream: Upstream, *, expect_ro: Sequence[str], expect_rw: Sequence[str]) -> list[str]:
    argv = ["python", "-m", "nightshift.sandbox.entry", "--listen", f"127.0.0.1:{upstream.inner_port}",
            "--socket-dir", CONTAINER_SOCKET_DIR, "--name", name]  # fmt: skip
    for path in expect_ro:
        argv += ["--expect-ro", path]
    for path in expect_rw:
        argv += ["--expect-rw", path]
    return argv


def client_env(secret: Mapping[str, str]) -> dict[str, str]:
    env = {name: os.environ[name] for name in CLIENT_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env | dict(secret)


class DockerSandbox:
    """`strict` or `permissive`: one fresh container per launch (or one from a warm pool)."""

    backend: Backend = "docker"

    def __init__(
        self,
        profile: str,
        *,
        settings: SandboxSettings | None = None,
        flow_run_id: str | None = None,
        pool: WarmSource | None = None,
    ) -> None:
        if profile not in ("strict", "permissive"):
            raise SandboxError(f"a container runs the strict or permissive profile, not {profile!r}")
        self.profile: str = profile
        self.read_only_workspace = profile == "strict"
        self.settings = settings or SandboxSettings.from_env()
        self.flow_run_id = flow_run_id or "none"
        self.pool = pool
        self._lock = threading.Lock()
        self._open: list[Launch] = []

    def __repr__(self) -> str:
        return f"DockerSandbox(profile={self.profile!r}, image={self.settings.image!r})"

    def binary(self, adapter: AgentAdapter) -> Path:
        return Path(adapter.name)  # on the image's PATH (/usr/local/bin/claude)

    def labels(self, run_id: str) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_FLOW_RUN: self.flow_run_id,
            LABEL_RUN: run_id,
            LABEL_PROFILE: self.profile,
            LABEL_OWNER: engine.owner_id(),
        }

    def upstream(self, env: Mapping[str, str]) -> Upstream:
        url = env.get(self.settings.api_url_env) or self.settings.default_api_url
        return resolve_upstream(url, override=self.settings.upstream)

    def launch(self, argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, home: Path) -> Launch:
        if not argv:
            raise SandboxError("nothing to launch", backend="docker")
        engine.require_image(self.settings.image)
        upstream = self.upstream(env)
        if self.pool is not None:
            warm = self.pool.launch(self, argv, env, cwd=cwd, home=home, upstream=upstream)
            if warm is not None:
                return self._track(warm)
        return self._track(self._cold(argv, env, cwd=cwd, home=home, upstream=upstream))

    def _track(self, launch: Launch) -> Launch:
        with self._lock:
            self._open = [item for item in self._open if not item.closed] + [launch]
        return launch

    def lend(self, launch: Launch, path: Path, uid: int, gid: int) -> None:
        """Make `path` writable by the container user until the launch closes (root only)."""
        if os.geteuid() != 0:
            return
        lent = _LENDER.lend(path, uid, gid)
        launch.on_close(lambda: _LENDER.give_back(lent))

    def expectations(self) -> tuple[list[str], list[str]]:
        if self.read_only_workspace:
            return [CONTAINER_WORKDIR], [CONTAINER_HOME]
        return [], [CONTAINER_WORKDIR, CONTAINER_HOME]

    def _cold(
        self, argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, home: Path, upstream: Upstream
    ) -> Launch:
        run_id = uuid.uuid4().hex[:12]
        name = f"ns-{run_id}"
        uid, gid = container_user(self.settings)
        egress, ca_mounted = egress_flags(upstream, self.settings)
        plain, secret = split_env(env, upstream, self.settings, ca_mounted=ca_mounted)
        socket_dir = owner_dir(self.settings) / run_id
        mode = "ro" if self.read_only_workspace else "rw"
        expect_ro, expect_rw = self.expectations()
        command = [self.settings.docker_cli, "run", "-i", "--rm", "--name", name]
        for key, value in self.labels(run_id).items():
            command += ["--label", f"{key}={value}"]
        command += hardening_flags(self.settings, uid, gid) + egress
        command += [
            "-v", f"{cwd.resolve()}:{CONTAINER_WORKDIR}:{mode}",
            "-v", f"{home.resolve()}:{CONTAINER_HOME}:rw",
            "-v", f"{socket_dir}:{CONTAINER_SOCKET_DIR}:ro",
            "-w", CONTAINER_WORKDIR,
        ]  # fmt: skip
        for key, value in sorted(plain.items()):
            command += ["-e", f"{key}={value}"]
        for key in sorted(secret):
            command += ["-e", key]
        command += [self.settings.image, *entry_command(name, upstream, expect_ro=expect_ro, expect_rw=expect_rw)]
        command += ["--", *argv]

        launch = Launch(argv=command, env=client_env(secret), cwd=cwd, backend="docker", container=name)
        try:
            if mode == "rw":
                self.lend(launch, cwd, uid, gid)
            self.lend(launch, home, uid, gid)
            host_end = HostEnd(socket_dir, upstream, gid=gid if os.geteuid() == 0 else None)
            host_end.start()
            launch.on_close(host_end.close)
            _live.add(name)
            launch.on_close(lambda: self._remove(name))
        except BaseException:
            launch.close()
            raise
        return launch

    @staticmethod
    def _remove(name: str) -> None:
        try:
            engine.remove_container(name)
        finally:
            _live.discard(name)

    def close(self) -> None:
        with self._lock:
            launches, self._open = self._open, []
        for launch in launches:
            launch.close()
