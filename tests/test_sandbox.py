"""The sandbox interface without running an agent: upstreams, environment split, the docker command line,
backend selection, the in-container mount checks. The real engine answers the image/engine checks."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from nightshift.agents.base import is_secret_env_name as is_secret
from nightshift.errors import ConfigError, SandboxError
from nightshift.sandbox import engine
from nightshift.sandbox.base import Launch, ProcessSandbox, active_sandbox, use_sandbox
from nightshift.sandbox.container import DockerSandbox, live_containers, split_env
from nightshift.sandbox.egress import resolve_upstream
from nightshift.sandbox.entry import check_mounts
from nightshift.sandbox.select import reset_backend_cache, resolve_backend, sandbox_for
from nightshift.sandbox.settings import SandboxSettings

IMAGE = os.environ.get("NIGHTSHIFT_IMAGE", "nightshift/worker:dev")


# ---- the model API upstream ------------------------------------------------------------------------


def test_loopback_http_keeps_its_url_inside() -> None:
    up = resolve_upstream("http://127.0.0.1:41234")
    assert (up.connect_host, up.connect_port, up.inner_port) == ("127.0.0.1", 41234, 41234)
    assert up.container_url == "http://127.0.0.1:41234"
    assert up.add_host is None
    assert not up.needs_ca
    assert resolve_upstream("http://localhost:8080/v1").container_url == "http://127.0.0.1:8080/v1"


def test_https_name_is_forwarded_end_to_end() -> None:
    up = resolve_upstream("https://api.anthropic.com")
    assert (up.connect_host, up.connect_port, up.inner_port) == ("api.anthropic.com", 443, 443)
    assert up.container_url == "https://api.anthropic.com"  # TLS and the certificate check unchanged
    assert up.add_host == "api.anthropic.com"
    assert up.needs_ca
    over = resolve_upstream("https://api.anthropic.com", override="127.0.0.1:9443")
    assert (over.connect_host, over.connect_port, over.inner_port) == ("127.0.0.1", 9443, 443)


def test_unforwardable_urls_are_refused() -> None:
    with pytest.raises(SandboxError, match="IP address"):
        resolve_upstream("https://203.0.113.7")
    with pytest.raises(SandboxError, match="loopback"):
        resolve_upstream("https://127.0.0.1:8443")
    with pytest.raises(SandboxError, match="http"):
        resolve_upstream("ftp://example.invalid")
    with pytest.raises(SandboxError, match="HOST:PORT"):
        resolve_upstream("https://api.anthropic.com", override="nope")
    assert isinstance(SandboxError("x"), ConfigError)  # never retried


# ---- environment -----------------------------------------------------------------------------------


def test_secrets_go_by_name_and_host_only_variables_stay_behind() -> None:
    settings = SandboxSettings(ca_bundle=None)
    env = {
        "PATH": "/host/bin",
        "HOME": "/host/home",
        "TMPDIR": "/host/tmp",
        "ANTHROPIC_API_KEY": "sk-test-secret",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:5000",
        "GITHUB_TOKEN": "ghp_x",
        "DISABLE_TELEMETRY": "1",
    }
    plain, secret = split_env(env, resolve_upstream(env["ANTHROPIC_BASE_URL"]), settings, ca_mounted=False)
    assert secret == {"ANTHROPIC_API_KEY": "sk-test-secret", "GITHUB_TOKEN": "ghp_x"}
    assert plain == {
        "HOME": "/home/nightshift",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:5000",
        "DISABLE_TELEMETRY": "1",
    }
    assert all(is_secret(n) for n in ("ANTHROPIC_AUTH_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY"))
    with pytest.raises(SandboxError, match="docker client"):
        split_env({"DOCKER_AUTH_CONFIG": "x"}, resolve_upstream("http://127.0.0.1:1"), settings, ca_mounted=False)


def test_settings_from_env() -> None:
    settings = SandboxSettings.from_env(
        {
            "NIGHTSHIFT_SANDBOX_BACKEND": "process",
            "NIGHTSHIFT_IMAGE": "example/img:1",
            "NIGHTSHIFT_SANDBOX_CPUS": "0.5",
            "NIGHTSHIFT_SANDBOX_WARM_POOL": "2",
            "NIGHTSHIFT_SANDBOX_CA_BUNDLE": "",
        }
    )
    assert (settings.backend, settings.image, settings.cpus, settings.warm_pool) == ("process", "example/img:1", 0.5, 2)
    assert settings.ca_bundle is None
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's validation error
        SandboxSettings.from_env({"NIGHTSHIFT_SANDBOX_BACKEND": "podman"})


# ---- the launch objects ----------------------------------------------------------------------------


def test_process_sandbox_is_the_plain_command(tmp_path: Path) -> None:
    sandbox = ProcessSandbox()
    env = {"API_KEY": "val-xyz"}
    launch = sandbox.launch(["claude", "-p"], env, cwd=tmp_path, home=tmp_path / "h")
    assert (launch.argv, launch.env, launch.cwd, launch.backend) == (["claude", "-p"], env, tmp_path, "process")
    launch.close()
    launch.close()
    assert "val-xyz" not in repr(launch)


def test_launch_close_runs_closers_once_last_first() -> None:
    order: list[str] = []
    launch = Launch(argv=["x"], env={"SECRET_KEY": "s3cr3t-value"}, cwd=Path("/"), backend="process")
    launch.on_close(lambda: order.append("first-added"))
    launch.on_close(lambda: order.append("last-added"))
    launch.close()
    launch.close()
    assert order == ["last-added", "first-added"]
    assert "s3cr3t-value" not in repr(launch)


def test_use_sandbox_sets_the_active_one_and_closes_it() -> None:
    sandbox = ProcessSandbox("strict")
    assert active_sandbox() is None
    with use_sandbox(sandbox):
        assert active_sandbox() is sandbox
    assert active_sandbox() is None


@pytest.mark.timeout(1800)
def test_docker_command_line(worker_image: str, tmp_path: Path) -> None:
    repo, home = tmp_path / "repo", tmp_path / "home"
    repo.mkdir()
    home.mkdir()
    settings = SandboxSettings(image=worker_image, ca_bundle=None)
    sandbox = DockerSandbox("strict", settings=settings, flow_run_id="flow-123")
    env = {"ANTHROPIC_API_KEY": "sk-never-on-argv", "ANTHROPIC_BASE_URL": "http://127.0.0.1:4567", "PATH": "/x"}
    launch = sandbox.launch(["claude", "-p", "--verbose"], env, cwd=repo, home=home)
    try:
        argv = launch.argv
        joined = " ".join(argv)
        assert argv[:4] == ["docker", "run", "-i", "--rm"]
        assert "sk-never-on-argv" not in joined
        assert launch.env["ANTHROPIC_API_KEY"] == "sk-never-on-argv"
        assert "-e ANTHROPIC_API_KEY " in joined
        assert "--label io.nightshift.flow-run=flow-123" in joined
        assert "--label io.nightshift.managed=true" in joined
        assert f"{repo}:/workspace:ro" in argv
        assert f"{home}:/home/nightshift:rw" in argv
        for flag in ("--network none", "--read-only", "--cap-drop ALL", "--security-opt no-new-privileges",
                     "--pids-limit 256", "--memory 2g", "--memory-swap 2g", "--init", "--pull never"):  # fmt: skip
            assert flag in joined, flag
        assert "-e PATH" not in joined
        assert argv[argv.index(worker_image) + 1 :][:3] == ["python", "-m", "nightshift.sandbox.entry"]
        assert argv[-4:] == ["--", "claude", "-p", "--verbose"]
        socket_dir = Path(argv[argv.index("-v", argv.index(f"{home}:/home/nightshift:rw")) + 1].split(":")[0])
        assert (socket_dir / "api.sock").is_socket()
        assert (socket_dir / "lease.sock").is_socket()
        if os.geteuid() == 0:
            assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o750
            assert home.stat().st_uid == 10001  # lent to the container user for the run
            assert repo.stat().st_uid == 0  # strict: the repository is never touched
    finally:
        launch.close()
    assert not socket_dir.exists()
    assert home.stat().st_uid == os.geteuid()  # given back
    assert launch.container not in live_containers()


def test_a_missing_image_is_a_sandbox_error(tmp_path: Path) -> None:
    settings = SandboxSettings(image="nightshift/does-not-exist:never")
    with pytest.raises(SandboxError, match="does not exist"):
        DockerSandbox("strict", settings=settings).launch(["claude"], {}, cwd=tmp_path, home=tmp_path)
    with pytest.raises(SandboxError):
        DockerSandbox("disabled", settings=settings)


# ---- backend selection -----------------------------------------------------------------------------


def test_disabled_profile_is_a_plain_process_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nightshift.sandbox"):
        sandbox = sandbox_for("disabled", settings=SandboxSettings(backend="docker"))
    assert isinstance(sandbox, ProcessSandbox)
    assert caplog.records == []


def test_process_backend_degrades_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nightshift.sandbox"):
        sandbox = sandbox_for("strict", settings=SandboxSettings(backend="process"), worker="audit")
    assert isinstance(sandbox, ProcessSandbox)
    assert sandbox.profile == "strict"
    assert "sandbox degraded: audit wants the strict sandbox" in caplog.text


def test_auto_without_the_image_degrades_and_docker_refuses(caplog: pytest.LogCaptureFixture) -> None:
    reset_backend_cache()
    missing = SandboxSettings(image="nightshift/does-not-exist:never")
    with caplog.at_level(logging.WARNING, logger="nightshift.sandbox"):
        assert isinstance(sandbox_for("permissive", settings=missing), ProcessSandbox)
    assert "does not exist" in caplog.text
    with pytest.raises(SandboxError, match="NIGHTSHIFT_SANDBOX_BACKEND=docker"):
        sandbox_for("strict", settings=missing.model_copy(update={"backend": "docker"}))
    with pytest.raises(SandboxError, match="profile"):
        sandbox_for("lenient")


@pytest.mark.timeout(1800)
def test_auto_picks_docker_when_engine_and_image_exist(worker_image: str) -> None:
    reset_backend_cache()
    settings = SandboxSettings(image=worker_image)
    assert resolve_backend(settings)[0] == "docker"
    sandbox = sandbox_for("permissive", settings=settings, flow_run_id="f")
    assert isinstance(sandbox, DockerSandbox)
    assert (sandbox.profile, sandbox.flow_run_id) == ("permissive", "f")
    assert engine.engine_answers()


# ---- the entrypoint's mount checks -----------------------------------------------------------------


def test_entry_mount_checks(tmp_path: Path) -> None:
    assert check_mounts([], [str(tmp_path)]) is None
    assert "should be read-only" in (check_mounts([str(tmp_path)], []) or "")
    assert "should be writable" in (check_mounts([], [str(tmp_path / "missing")]) or "")
    assert "missing" in (check_mounts([str(tmp_path / "missing")], []) or "")
