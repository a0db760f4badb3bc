"""The eight analysis workers as Prefect flows, through the real Claude Code CLI and the fake model API.

Each test builds a small real git repository, runs a worker flow in the Prefect test harness, and reads
the artifacts back through the Prefect client, as a user of the UI would see them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.analysis import ANALYSIS_FLOWS
from nightshift.results import repo_key
from nightshift.testing.fake_anthropic import FakeAnthropic, StructuredOutput, Text, ToolUse
from tests.gitrepos import make_repo

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness", "state_dir")]
ROOT = Path(__file__).resolve().parents[1]
SARIF_SCHEMA = ROOT / "tools/node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json"
AWS_KEY = "AKIAIOSFODNN7EXAMPLQ"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEQ"
DB_PASSWORD = "hunter2-Sup3rS3cret-pw"
GH_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"

APP = '''"""A tiny service."""
import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)


def add(a, b):
    return a + b
'''

AUDIT_REPORT = {
    "vulnerabilities": [
        {"severity": "high", "file": "app.py", "line": 6, "description": "Shell injection: subprocess with shell=True."}
    ],
    "riskScore": 72,
    "recommendations": ["Pass an argument list and shell=False."],
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "service",
        {
            "app.py": APP,
            "config.py": f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\nAWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"\n',
            ".env": f"DB_PASSWORD={DB_PASSWORD}\nGITHUB_TOKEN={GH_TOKEN}\n",
            "tests/test_app.py": "from app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
            "README.md": "# service\n",
        },
    )


@pytest.fixture
def agent_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    with FakeAnthropic([]) as api:
        for name, value in api.cli_env(max_retries=0).items():
            monkeypatch.setenv(name, value)
        yield api


def script(api: FakeAnthropic, *turns: Any) -> None:
    api._script = type(api._script)(list(turns))


def artifacts(worker: str, repo: Path, kind: str) -> list[Any]:
    key = f"{worker}-{repo_key(repo)}-{kind}"
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC
        )


def latest(worker: str, repo: Path, kind: str) -> Any:
    found = artifacts(worker, repo, kind)
    assert found, f"no {kind} artifact for {worker}"
    return found[0].data


def test_audit_flow_end_to_end(repo: Path, agent_env: FakeAnthropic) -> None:
    script(agent_env, StructuredOutput(value=AUDIT_REPORT))
    result = ANALYSIS_FLOWS["audit"](repo=str(repo))
    assert result["status"] == "completed"
    report = latest("audit", repo, "report")
    assert "Risk score 72/100" in report
    assert "Shell injection" in report
    assert "HYBRID: local + AI triage" in report  # bandit + the secret scanner steered the agent
    findings = latest("audit", repo, "findings")
    rows = json.loads(findings) if isinstance(findings, str) else findings
    assert rows[0]["severity"] == "high"
    assert rows[0]["file"] == "app.py"
    assert rows[0]["line"] == 6
    cost = latest("audit", repo, "cost")
    cost_rows = json.loads(cost) if isinstance(cost, str) else cost
    assert cost_rows[0]["cli_version"] == "2.1.330"
    assert cost_rows[0]["agent_calls"] == 1
    assert cost_rows[0]["output_tokens"] > 0
    transcript = latest("audit", repo, "transcript")
    assert "StructuredOutput" in transcript
    run_dir = Path(result["run_dir"])
    sarif = json.loads((run_dir / "audit.sarif").read_text())
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    assert sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "app.py"
    # strict sandbox: only read-only tools were offered to the model
    tools = {tool["name"] for tool in agent_env.main_requests[0].body.get("tools", [])}
    assert {"Read", "Grep", "Glob", "StructuredOutput"} <= tools
    assert not tools & {"Write", "Edit", "MultiEdit", "NotebookEdit", "Bash", "WebFetch"}
    assert "StructuredOutput" in tools


def test_planted_secrets_never_leave(repo: Path, agent_env: FakeAnthropic, caplog: pytest.LogCaptureFixture) -> None:
    script(agent_env, StructuredOutput(value=AUDIT_REPORT))
    result = ANALYSIS_FLOWS["audit"](repo=str(repo), force=True)
    sent = agent_env.all_text()
    assert "config.py" in sent
    assert "[REDACTED:" in sent
    everything = [sent, caplog.text]
    everything += [
        str(a.data) for kind in ("report", "findings", "cost", "transcript") for a in artifacts("audit", repo, kind)
    ]
    everything += [p.read_text() for p in Path(result["run_dir"]).iterdir()]
    for secret in (AWS_KEY, AWS_SECRET, DB_PASSWORD, GH_TOKEN):
        for text in everything:
            assert secret not in text
    assert "Secrets redacted before the prompt:" in latest("audit", repo, "report")


def test_unchanged_repo_makes_zero_model_calls(repo: Path, agent_env: FakeAnthropic) -> None:
    script(agent_env, StructuredOutput(value=AUDIT_REPORT))
    first = ANALYSIS_FLOWS["audit"](repo=str(repo), force=True)
    calls = len(agent_env.main_requests)
    second = ANALYSIS_FLOWS["audit"](repo=str(repo))
    assert len(agent_env.main_requests) == calls
    assert second["status"] == "reused"
    report = latest("audit", repo, "report")
    assert "0 model calls" in report
    assert "Risk score 72/100" in report
    assert first["status"] == "completed"
    (repo / "app.py").write_text(APP + "\n# changed\n")
    script(agent_env, StructuredOutput(value=AUDIT_REPORT))
    third = ANALYSIS_FLOWS["audit"](repo=str(repo))
    assert third["status"] == "completed"
    assert len(agent_env.main_requests) == calls + 1


def test_invalid_json_gets_one_repair_turn(repo: Path, agent_env: FakeAnthropic) -> None:
    # The model answers in prose twice (the CLI nudges it once to call StructuredOutput, then ends with
    # success but no structured output); nightshift's repair turn on the same session gets valid JSON.
    script(
        agent_env,
        Text(text="I found a shell injection, riskScore high."),
        Text(text="Really, it is high."),
        StructuredOutput(value=AUDIT_REPORT),
    )
    result = ANALYSIS_FLOWS["audit"](repo=str(repo), force=True)
    assert result["status"] == "completed"
    repair_request = json.dumps(agent_env.main_requests[-1].body["messages"])
    assert "could not be used" in repair_request
    assert "I found a shell injection" in repair_request  # same session: the history is there
    assert "Risk score 72/100" in latest("audit", repo, "report")


def test_still_invalid_json_fails_and_keeps_the_raw_output(repo: Path, agent_env: FakeAnthropic) -> None:
    script(
        agent_env,
        Text(text="not json at all"),
        Text(text="still not json"),
        Text(text='{"riskScore": "very high"}'),
        Text(text='{"riskScore": "very high"}'),
    )
    state = ANALYSIS_FLOWS["audit"](repo=str(repo), force=True, return_state=True)
    assert state.is_failed()
    report = latest("audit", repo, "report")
    assert "failed" in report
    assert '{"riskScore": "very high"}' in report


MARKDOWN_ANSWER = """## Summary
The code is small; one issue stands out.

## Findings
- [medium] app.py:6 — {title}: explain and fix it.

## Details
Nothing else.
"""
JSON_ANSWERS: dict[str, dict[str, Any]] = {
    "ultralearn": {"lessons": [{"topic": "shell", "insight": "run() shells out", "files": ["app.py"]}],
                   "conventions": ["tests live in tests/"], "open_questions": ["who calls run()?"]},
    "predict": {"predictions": [{"file": "app.py", "likelihood": 0.8, "reason": "changed most"}],
                "summary": "app.py is hot."},
}  # fmt: skip


@pytest.mark.parametrize(
    "worker", ["optimize", "testgaps", "document", "refactor", "deepdive", "ultralearn", "predict"]
)
def test_each_other_agent_worker(worker: str, repo: Path, agent_env: FakeAnthropic) -> None:
    if worker in JSON_ANSWERS:
        script(agent_env, StructuredOutput(value=JSON_ANSWERS[worker]))
    else:
        script(agent_env, Text(text=MARKDOWN_ANSWER.format(title=f"{worker} finding")))
    result = ANALYSIS_FLOWS[worker](repo=str(repo), force=True)
    assert result["status"] == "completed"
    report = latest(worker, repo, "report")
    rows = latest(worker, repo, "findings")
    rows = json.loads(rows) if isinstance(rows, str) else rows
    if worker == "ultralearn":
        assert "1 lessons" in report
    elif worker == "predict":
        assert rows[0]["file"] == "app.py"
        assert "app.py is hot." in report
    else:
        assert f"{worker} finding" in report
        assert rows[0]["severity"] == "medium"
        assert rows[0]["line"] == 6
    request = agent_env.main_requests[0].body
    prompt = json.dumps(request["messages"])
    assert "app.py" in prompt
    model_alias = {"optimize": "sonnet", "testgaps": "sonnet", "document": "haiku", "refactor": "sonnet",
                   "deepdive": "opus", "ultralearn": "opus", "predict": "haiku"}[worker]  # fmt: skip
    assert model_alias in request["model"]


def test_permissive_worker_writes_only_in_its_workspace(repo: Path, agent_env: FakeAnthropic) -> None:
    script(
        agent_env,
        ToolUse(name="Write", input={"file_path": "scratch.txt", "content": "agent scratch"}),
        Text(text=MARKDOWN_ANSWER.format(title="optimize finding")),
    )
    result = ANALYSIS_FLOWS["optimize"](repo=str(repo), force=True)
    assert result["status"] == "completed"
    assert not (repo / "scratch.txt").exists()


def test_big_repo_is_split_into_chunks_and_merged(tmp_path: Path, agent_env: FakeAnthropic) -> None:
    files = {f"pkg/mod{i}.py": f'"""Module {i}."""\n' + "x = 1\n" * 900 for i in range(6)}
    big = make_repo(tmp_path / "big", files)
    (big / ".nightshift.toml").write_text("[workers.audit]\nbudget_tokens = 2000\nmax_chunks = 3\n")

    def answer(body: dict[str, Any]) -> Any:
        text = json.dumps(body["messages"])
        module = next(f"pkg/mod{i}.py" for i in range(6) if f"pkg/mod{i}.py" in text)
        return StructuredOutput(value={"vulnerabilities": [{"severity": "low", "file": module, "line": 1,
                                                            "description": f"issue in {module}"}],
                                       "riskScore": 10, "recommendations": ["r"]})  # fmt: skip

    script(agent_env, answer, answer, answer)
    result = ANALYSIS_FLOWS["audit"](repo=str(big), force=True)
    assert result["status"] == "completed"
    assert len(agent_env.main_requests) == 3
    report = latest("audit", big, "report")
    assert "Chunks:** 3" in report
    assert report.count("issue in pkg/mod") == 3
    progress = artifacts("audit", big, "progress")
    assert progress
    assert float(progress[0].data) == 100.0


def test_bad_input_is_a_clear_error(tmp_path: Path, agent_env: FakeAnthropic) -> None:
    state = ANALYSIS_FLOWS["audit"](repo=str(tmp_path / "missing"), return_state=True)
    assert state.is_failed()
    assert "missing" in str(state.result(raise_on_failure=False))
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    (repo / ".nightshift.toml").write_text('[workers.audit]\ninclude = ["../outside/**"]\n')
    state = ANALYSIS_FLOWS["audit"](repo=str(repo), return_state=True)
    assert state.is_failed()
    assert ".." in str(state.result(raise_on_failure=False))
    assert agent_env.main_requests == []


def test_hybrid_audit_agent_triages_local_findings(repo: Path, agent_env: FakeAnthropic) -> None:
    def answer(body: dict[str, Any]) -> Any:
        prompt = json.dumps(body["messages"])
        assert "Findings of local analyzers to triage" in prompt
        assert "B602" in prompt  # bandit: subprocess call with shell=True
        return StructuredOutput(
            value={**AUDIT_REPORT, "triage": [
                {"id": "L1", "verdict": "confirm", "reason": "real: reachable with user input"},
                {"id": "L2", "verdict": "dismiss", "reason": "example credentials in a fixture"},
            ]}
        )  # fmt: skip

    script(agent_env, answer)
    result = ANALYSIS_FLOWS["audit"](repo=str(repo), force=True)
    assert result["status"] == "completed"
    rows = latest("audit", repo, "triage")
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert [(r["id"], r["verdict"]) for r in rows] == [("L1", "confirm"), ("L2", "dismiss")]
    assert all(r["file"] for r in rows)
    report = latest("audit", repo, "report")
    assert "Triage of local findings (1 confirmed, 1 dismissed)" in report


def test_no_agent_runs_the_local_fallback(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    state = ANALYSIS_FLOWS["audit"](repo=str(repo), return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["mode"] == "local"
    report = latest("audit", repo, "report")
    assert "LOCAL analysis (no AI)" in report
    assert "Local analysis (no AI agent)" in report
    assert "B602" in report
    for secret in (AWS_KEY, AWS_SECRET, DB_PASSWORD, GH_TOKEN):
        assert secret not in report
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert flow_run.name == f"audit-local-{repo.name}"
