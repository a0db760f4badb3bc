"""The local workers and the local fallbacks as Prefect flows, on real repositories built here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.analysis import ANALYSIS_FLOWS
from flows.local import LOCAL_FLOWS
from nightshift.results import repo_key
from tests.gitrepos import git, make_repo

pytestmark = [pytest.mark.usefixtures("prefect_harness", "state_dir")]
ROOT = Path(__file__).resolve().parents[1]


def latest(worker: str, repo: Path, kind: str) -> Any:
    key = f"{worker}-{repo_key(repo)}-{kind}"
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC
        )
    assert found, f"no artifact {key}"
    data = found[0].data
    return json.loads(data) if isinstance(data, str) and data[:1] in "[{" else data


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = make_repo(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n\n\ndef fa():\n    return b.fb()\n",
            "pkg/b.py": "from pkg import a\n\n\ndef fb():\n    return 1\n",
            "pkg/tool.py": "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n",
            "tests/test_b.py": "from pkg.b import fb\n\n\ndef test_fb():\n    assert fb() == 1\n",
        },
    )
    for i in range(3):  # a.py and b.py always change together
        (repo / "pkg/a.py").write_text((repo / "pkg/a.py").read_text() + f"# a{i}\n")
        (repo / "pkg/b.py").write_text((repo / "pkg/b.py").read_text() + f"# b{i}\n")
        git(repo, "commit", "-qam", f"change a and b {i}")
    (repo / "pkg/a.py").write_text((repo / "pkg/a.py").read_text() + "# a alone\n")
    git(repo, "commit", "-qam", "change a alone: b is likely next")
    return repo


def test_map_flow(project: Path) -> None:
    result = LOCAL_FLOWS["map"](repo=str(project))
    assert result["mode"] == "local"
    report = latest("map", project, "report")
    assert "Local analysis (no AI agent)" in report
    assert "1 import cycles" in report or "import cycles" in report
    cycles = latest("map", project, "cycles")
    assert any("pkg.a" in json.dumps(row) and "pkg.b" in json.dumps(row) for row in cycles)


def test_consolidate_tracks_first_seen_and_resolution(project: Path) -> None:
    ANALYSIS_FLOWS["audit"](repo=str(project), mode="local")
    LOCAL_FLOWS["consolidate"](repo=str(project))
    open_rows = latest("consolidate", project, "open-findings")
    assert any(r["file"] == "pkg/tool.py" and r["worker"] == "audit" for r in open_rows)
    (project / "pkg/tool.py").write_text("def run(cmd):\n    return cmd\n")
    git(project, "commit", "-qam", "fix shell injection")
    ANALYSIS_FLOWS["audit"](repo=str(project), mode="local")
    LOCAL_FLOWS["consolidate"](repo=str(project))
    open_rows = latest("consolidate", project, "open-findings")
    assert not any(r["file"] == "pkg/tool.py" and "B602" in json.dumps(r) for r in open_rows)
    report = latest("consolidate", project, "report")
    assert "resolved" in report


def test_benchmark_trend_and_regression(project: Path) -> None:
    script = project / "bench.py"
    script.write_text("import time\ntime.sleep(0.05)\n")
    (project / ".nightshift.toml").write_text(f'[benchmark]\ncommand = "{sys.executable} bench.py"\nrepeat = 2\n')
    LOCAL_FLOWS["benchmark"](repo=str(project))
    assert "no baseline yet" in latest("benchmark", project, "report")
    script.write_text("import time\ntime.sleep(0.6)\n")  # the code under benchmark got slower
    LOCAL_FLOWS["benchmark"](repo=str(project))
    trend = latest("benchmark", project, "trend")
    assert len(trend) == 2
    assert trend[1]["median_s"] > trend[0]["median_s"]
    findings = latest("benchmark", project, "findings")
    assert findings[0]["rule"] == "benchmark/regression"
    report = latest("benchmark", project, "report")
    assert "regression" in report
    assert "data:image/svg+xml;base64," in report


def test_preload_reports_what_it_warmed(project: Path) -> None:
    LOCAL_FLOWS["preload"](repo=str(project))
    rows = latest("preload", project, "warmed")
    items = {r["item"]: r for r in rows}
    assert items["context index (audit)"]["status"] == "warm"
    assert items["agent binary"]["status"] == "warm"
    assert "2.1.330" in items["agent binary"]["detail"]


@pytest.mark.parametrize("worker", ["testgaps", "document", "refactor", "optimize", "predict"])
def test_local_fallback_of_agent_workers(worker: str, project: Path) -> None:
    result = ANALYSIS_FLOWS[worker](repo=str(project))
    assert result["mode"] == "local"
    report = latest(worker, project, "report")
    assert "LOCAL analysis (no AI)" in report
    if worker == "predict":
        predictions = latest(worker, project, "findings")
        assert predictions[0]["file"] == "pkg/b.py"


@pytest.mark.parametrize("worker", ["deepdive", "ultralearn"])
def test_agent_only_workers_say_they_need_an_agent(worker: str, project: Path) -> None:
    state = ANALYSIS_FLOWS[worker](repo=str(project), return_state=True)
    assert state.is_completed()
    assert state.result()["status"] == "needs-agent"
    assert "needs an agent" in latest(worker, project, "report")


def test_nightshift_run_audit_without_an_agent_says_local(project: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "PREFECT_API"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "NIGHTSHIFT_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "nightshift.cli", "run", "audit", "--repo", str(project)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "status: completed" in done.stdout
    assert f"artifact report: audit-{repo_key(project)}-report" in done.stdout
    assert "mode: local" in done.stdout
