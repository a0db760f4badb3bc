"""Shared fixtures: an isolated Prefect home and harness, the real Claude Code binary.

Environment for Prefect is set before anything imports it. Import helpers from `tests.gitrepos`, never
from this module: importing `tests.conftest` would run it a second time (pytest loads it as `conftest`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="nightshift-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_TMP / "prefect-home")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.3"
os.environ["NIGHTSHIFT_STATE_DIR"] = str(_SESSION_TMP / "state")
for _leak in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "PREFECT_API_URL"):
    os.environ.pop(_leak, None)

import pytest  # noqa: E402

from nightshift.agents.claude import find_claude_binary  # noqa: E402


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The real, pinned Claude Code binary installed by scripts/setup.sh (never skipped)."""
    return find_claude_binary()


@pytest.fixture(scope="session")
def worker_image() -> str:
    """The sandbox image, built here by the project's own script (which installs/starts Docker if needed)."""
    image = os.environ.get("NIGHTSHIFT_IMAGE", "nightshift/worker:dev")
    build = Path(__file__).resolve().parents[1] / "scripts" / "build_image.sh"
    proc = subprocess.run(["bash", str(build)], capture_output=True, text=True, timeout=1700, check=False,
                          env={**os.environ, "NIGHTSHIFT_IMAGE": image})  # fmt: skip
    assert proc.returncode == 0, f"build_image.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return image


@pytest.fixture(scope="session", autouse=True)
def _sandbox_leftovers() -> Iterator[None]:
    """Containers of sandboxed runs must not outlive the session.

    Before: the orphan reaper removes what dead test sessions left (containers whose owner process is
    gone). After: nothing labelled io.nightshift.managed=true that this session created may remain;
    whatever does is reaped anyway (no litter) and the session fails. No-op without a Docker engine.
    """
    from nightshift.sandbox import engine, reaper

    if engine.engine_answers():
        reaper.reap()
    yield
    if not engine.engine_answers():
        return
    from nightshift.sandbox.pool import close_pools

    close_pools()  # warm pools are per process: they end with the session
    me = engine.owner_id()
    left = reaper.leftovers(owner=me)
    reaper.reap(owner=me)
    assert not left.containers, f"sandbox containers left behind: {left.containers}"
    assert not left.networks, f"labelled networks left behind: {left.networks}"
    assert not left.volumes, f"labelled volumes left behind: {left.volumes}"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("NIGHTSHIFT_STATE_DIR", str(path))
    return path
