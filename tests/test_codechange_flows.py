"""The code-change flows end to end: real git repositories with local bare remotes, the real Claude Code
CLI scripted by the fake model API, the Prefect test harness, and humans answering through the Prefect API
from another thread.
"""

from __future__ import annotations

import contextvars
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.flow_runs import resume_flow_run
from pydantic import SecretStr

from blocks.repository import RepositoryTarget
from flows.codechange import CODECHANGE_FLOWS, bugfix, docs, feature, review
from nightshift.errors import (
    ApprovalRejectedError,
    HumanTimeoutError,
    PushRejectedError,
    TestCommandError,
    TestsFailingError,
    WorkspaceError,
)
from nightshift.testing.fake_anthropic import FakeAnthropic, StructuredOutput, ToolUse
from tests.gitrepos import git, make_repo

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness", "state_dir")]

GREET = 'def greet(name):\n    return f"Hello, {name}!"\n'
CHECK = """import sys
from greet import greet

try:
    from farewell import farewell
except ImportError as exc:
    sys.exit(f"FAIL: {exc}")
got = farewell("Ada")
if got != "Goodbye, Ada!":
    sys.exit(f"FAIL: farewell('Ada') returned {got!r}, expected 'Goodbye, Ada!'")
assert greet("Ada") == "Hello, Ada!"
print("all checks passed")
"""
TEST_COMMAND = f"{sys.executable} check.py"
TASK = "Add a farewell(name) function in farewell.py"
BRANCH = "nightshift/feature/add-a-farewell-name-function-in-farewell-py"
WRONG = 'def farewell(name):\n    return f"Bye {name}"\n'
RIGHT = 'def farewell(name):\n    return f"Goodbye, {name}!"\n'
TOKEN = "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"


def done(summary: str = "Added farewell() in farewell.py.") -> StructuredOutput:
    return StructuredOutput(value={"status": "done", "summary": summary})


def write_farewell(text: str) -> ToolUse:
    return ToolUse(name="Write", input={"file_path": "farewell.py", "content": text})


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository (the remote) holding `main` with greet.py and the test script."""
    source = make_repo(tmp_path / "source", {"greet.py": GREET, "check.py": CHECK, "README.md": "# greet\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    return bare


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, claude_bin: Path) -> Iterator[FakeAnthropic]:
    with FakeAnthropic([]) as fake:
        for name, value in fake.cli_env(max_retries=0).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("NIGHTSHIFT_CLAUDE_BIN", str(claude_bin))
        monkeypatch.setenv("NIGHTSHIFT_PAUSE_POLL_SECONDS", "1")
        monkeypatch.setenv("NIGHTSHIFT_SANDBOX_BACKEND", "process")  # the host's claude_bin, not the image's
        yield fake


def script(api: FakeAnthropic, *turns: Any) -> None:
    api._script = type(api._script)(list(turns))


def run(flow: Any, **params: Any) -> Any:
    return flow(return_state=True, **params)


def artifacts_of(flow_run_id: UUID) -> dict[str, Any]:
    """key → data of the newest artifact of each key this flow run created."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact.data for artifact in sorted(found, key=lambda a: str(a.created)) if artifact.key}


def by_kind(arts: dict[str, Any], kind: str) -> Any:
    matches = [data for key, data in arts.items() if key == kind or key.endswith(f"-{kind}")]
    assert matches, f"no {kind} artifact among {sorted(arts)}"
    data = matches[-1]
    return json.loads(data) if isinstance(data, str) and data.startswith("[") else data


def remote_log(remote: Path, ref: str) -> str:
    return git(remote, "log", "--format=%H%n%B%n--end--", ref)


def remote_has(remote: Path, ref: str) -> bool:
    return bool(git(remote, "for-each-ref", f"refs/heads/{ref}").strip())


def workspaces(state: Path) -> list[Path]:
    root = state / "changes"
    return sorted(root.iterdir()) if root.is_dir() else []


# ------------------------------------------------------------------------- humans in another thread


def paused_run(flow_name: str, timeout_s: float = 60) -> FlowRun:
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
            for flow_run in runs:
                if flow_run.name.startswith(flow_name):
                    return flow_run
            time.sleep(0.3)
    raise AssertionError(f"no paused {flow_name} run within {timeout_s} s")


def pause_description(flow_run: FlowRun) -> str:
    keyset = flow_run.state.state_details.run_input_keyset if flow_run.state else None
    assert keyset is not None
    with get_client(sync_client=True) as client:
        return str(client.read_flow_run_input(flow_run.id, keyset["description"]))


class Human:
    """Answers pauses from another thread, through the Prefect API, as the UI's Resume button does."""

    def __init__(self, flow_name: str, act: Callable[[FlowRun], None]) -> None:
        self.flow_name = flow_name
        self.act = act
        self.error: BaseException | None = None
        context = contextvars.copy_context()  # the harness's API settings live in context variables
        self.thread = threading.Thread(target=context.run, args=(self._run,), daemon=True)

    def _run(self) -> None:
        try:
            self.act(paused_run(self.flow_name))
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Human:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=60)
        if self.error is not None:
            raise self.error


# ------------------------------------------------------------------------------------------- tests


def test_feature_fails_once_then_passes_in_the_same_session_and_pushes(
    remote: Path, api: FakeAnthropic, state_dir: Path
) -> None:
    script(
        api,
        write_farewell(WRONG),
        done("Added farewell()."),
        ToolUse(
            name="Edit",
            input={"file_path": "farewell.py", "old_string": 'f"Bye {name}"', "new_string": 'f"Goodbye, {name}!"'},
        ),
        done("Added farewell(name) returning 'Goodbye, <name>!' as the check expects."),
    )
    state = run(
        feature, task=TASK, repository=str(remote), base_branch="main", test_command=TEST_COMMAND,
        permission_level="autonomous", max_iterations=3,
    )  # fmt: skip
    assert state.is_completed(), state.message
    result = state.result()
    assert result["status"] == "pushed"
    assert result["branch"] == BRANCH
    assert [t["passed"] for t in result["loop"]["test_runs"]] == [False, True]

    # the remote has the branch, with our commit on top of main, carrying what and why
    log = remote_log(remote, BRANCH)
    assert result["commit"]["sha"] in log
    assert "feat: Add a farewell(name) function in farewell.py" in log
    assert "What changed:" in log
    assert "Goodbye, <name>!" in log
    assert "Why:" in log
    assert "passed on iteration 2" in log
    assert git(remote, "show", f"{BRANCH}:farewell.py") == RIGHT
    assert git(remote, "rev-parse", f"{BRANCH}~1") == git(remote, "rev-parse", "main")

    # the failure went back into the same session: the third request resumes with history + failure
    assert len(api.main_requests) == 4
    resumed = json.dumps(api.main_requests[2].body["messages"])
    assert "Add a farewell(name) function" in resumed  # the first prompt: same conversation
    assert "Bye {name}" in resumed  # the agent's first Write
    assert "The tests failed" in resumed
    assert "expected 'Goodbye, Ada!'" in resumed
    sessions = {turn["session_id"] for turn in result["loop"]["turns"]}
    assert len(sessions) == 1
    assert None not in sessions
    assert [turn["resumed"] for turn in result["loop"]["turns"]] == [False, True]
    # a resumed run reports the session's running total; each turn is charged only its own share
    turn_costs = [turn["cost_usd"] for turn in result["loop"]["turns"]]
    assert all(cost > 0 for cost in turn_costs)
    assert result["loop"]["cost"]["cost_usd"] == pytest.approx(sum(turn_costs))

    # the tools of a feature worker; the system prompt of its kind
    first = api.main_requests[0].body
    assert {"Write", "Edit", "Read", "Bash", "StructuredOutput"} <= {t["name"] for t in first["tools"]}
    assert "adding a feature" in json.dumps(first["system"])

    arts = artifacts_of(state.state_details.flow_run_id)
    assert '+    return f"Goodbye, {name}!"' in by_kind(arts, "diff")
    rows = by_kind(arts, "tests")
    assert [(r["iteration"], r["passed"]) for r in rows] == [(1, False), (2, True)]
    assert "expected 'Goodbye, Ada!'" in rows[0]["output_tail"]
    assert "Write" in by_kind(arts, "transcript")
    cost = by_kind(arts, "cost")
    assert cost[-1]["turn"] == "total"
    assert cost[-1]["cost_usd"] > 0
    assert "Status:** pushed" in by_kind(arts, "report")
    assert workspaces(state_dir) == []  # removed after success


def test_clarification_pauses_and_the_answer_resumes_the_same_session(
    remote: Path, api: FakeAnthropic, state_dir: Path
) -> None:
    question = "Should farewell() say 'Goodbye' or 'Bye'?"
    script(
        api,
        StructuredOutput(value={"status": "question", "question": question, "summary": "The task is ambiguous."}),
        write_farewell(RIGHT),
        done("Added farewell() saying Goodbye, as answered."),
    )
    seen: dict[str, Any] = {}

    def answer(flow_run: FlowRun) -> None:
        seen["description"] = pause_description(flow_run)
        seen["requests_while_paused"] = len(api.main_requests)
        with pytest.raises(RuntimeError, match="Cannot resume"):
            resume_flow_run(flow_run.id, run_input={"answer": "   "})  # refused by the form's schema
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run.id).state
            assert state is not None
            assert state.is_paused()
        resume_flow_run(flow_run.id, run_input={"answer": "Goodbye, with a comma and an exclamation mark."})

    with Human("feature", answer):
        state = run(
            feature, task=TASK, repository=str(remote), test_command=TEST_COMMAND,
            permission_level="supervised", clarification_timeout_s=60,
        )  # fmt: skip
    assert state.is_completed(), state.message
    result = state.result()
    assert question in seen["description"]
    assert seen["requests_while_paused"] == 1
    # supervised, not GitHub: the branch is pushed, no pull request, the diff is an artifact
    assert result["status"] == "pushed"
    assert result["pull_request_url"] is None
    assert remote_has(remote, BRANCH)
    assert result["loop"]["exchanges"] == [
        {"question": question, "answer": "Goodbye, with a comma and an exclamation mark."}
    ]
    resumed = api.main_requests[1].body
    history = json.dumps(resumed["messages"])
    assert "Add a farewell(name) function" in history  # the original prompt
    assert question in history  # the agent's own question
    assert "Goodbye, with a comma and an exclamation mark." in history  # the answer
    assert resumed["metadata"] == api.main_requests[0].body["metadata"]  # the same session
    arts = artifacts_of(state.state_details.flow_run_id)
    assert question in by_kind(arts, "question")
    assert "Questions and answers" in by_kind(arts, "report")
    assert "farewell.py" in by_kind(arts, "diff")


def test_clarification_timeout_ends_the_run_and_keeps_question_and_workspace(
    remote: Path, api: FakeAnthropic, state_dir: Path
) -> None:
    question = "Which greeting language do you want?"
    script(api, StructuredOutput(value={"status": "question", "question": question, "summary": "unclear"}))
    state = run(
        feature, task=TASK, repository=str(remote), test_command=TEST_COMMAND,
        permission_level="autonomous", clarification_timeout_s=2,
    )  # fmt: skip
    # Once a pause has expired the server fails the run with its own message, whatever the flow raised
    # after it; our error (and the question) is in the report artifact and the logs.
    assert state.is_failed()
    assert "never resumed" in str(state.message)
    (kept,) = workspaces(state_dir)
    assert (kept / "repo" / "check.py").is_file()
    assert (kept / "home" / ".claude" / "projects").is_dir()  # the session is still there to resume by hand
    report = by_kind(artifacts_of(state.state_details.flow_run_id), "report")
    assert question in report
    assert str(kept) in report
    assert "Status:** failed" in report
    assert f"{HumanTimeoutError.__name__}: nobody answered the agent's question within 2 s" in report
    assert not remote_has(remote, BRANCH)


def _approval_run(remote: Path, api: FakeAnthropic, approve: bool, **params: Any) -> tuple[Any, dict[str, Any]]:
    script(api, write_farewell(RIGHT), done())
    seen: dict[str, Any] = {}

    def decide(flow_run: FlowRun) -> None:
        seen["description"] = pause_description(flow_run)
        seen["pushed_before_approval"] = remote_has(remote, BRANCH)
        with pytest.raises(RuntimeError, match="Cannot resume"):
            resume_flow_run(flow_run.id, run_input={"comment": "no decision"})  # `approve` is required
        resume_flow_run(
            flow_run.id, run_input={"approve": approve, "comment": "looks right" if approve else "wrong file"}
        )

    with Human("feature", decide):
        state = run(feature, task=TASK, test_command=TEST_COMMAND, permission_level="human-required", **params)
    return state, seen


def test_human_required_pushes_only_after_approval(remote: Path, api: FakeAnthropic, state_dir: Path) -> None:
    RepositoryTarget(url=str(remote), base_branch="main", token=SecretStr(TOKEN)).save("greet-repo", overwrite=True)
    state, seen = _approval_run(remote, api, approve=True, repository_block="greet-repo")
    assert state.is_completed(), state.message
    assert seen["pushed_before_approval"] is False
    assert "Approve the feature change?" in seen["description"]
    assert "farewell.py" in seen["description"]
    assert remote_has(remote, BRANCH)
    result = state.result()
    assert result["approval_comment"] == "looks right"
    arts = artifacts_of(state.state_details.flow_run_id)
    assert "farewell.py" in by_kind(arts, "diff")
    assert "looks right" in by_kind(arts, "report")
    everything = json.dumps(arts) + json.dumps(result) + api.all_text()
    assert TOKEN not in everything  # the block's token never reaches artifacts, results or the model


def test_human_required_rejection_pushes_nothing(remote: Path, api: FakeAnthropic, state_dir: Path) -> None:
    state, _ = _approval_run(remote, api, approve=False, repository=str(remote))
    assert state.is_failed()
    with pytest.raises(ApprovalRejectedError, match="wrong file"):
        state.result()
    assert not remote_has(remote, BRANCH)
    (kept,) = workspaces(state_dir)
    assert git(kept / "repo", "log", "-1", "--format=%s").startswith("feat: Add a farewell")
    report = by_kind(artifacts_of(state.state_details.flow_run_id), "report")
    assert "Status:** rejected" in report
    assert "wrong file" in report
    assert str(kept) in report


def test_approval_timeout_pushes_nothing_and_keeps_the_commit(
    remote: Path, api: FakeAnthropic, state_dir: Path
) -> None:
    script(api, write_farewell(RIGHT), done())
    state = run(
        feature, task=TASK, repository=str(remote), test_command=TEST_COMMAND,
        permission_level="human-required", approval_timeout_s=2,
    )  # fmt: skip
    assert state.is_failed()
    assert "never resumed" in str(state.message)
    assert not remote_has(remote, BRANCH)
    (kept,) = workspaces(state_dir)
    assert git(kept / "repo", "log", "-1", "--format=%s").startswith("feat: Add a farewell")
    arts = artifacts_of(state.state_details.flow_run_id)
    report = by_kind(arts, "report")
    assert "nobody approved or rejected" in report
    assert str(kept) in report
    assert "Approve the feature change?" in by_kind(arts, "approval")


def test_tests_still_failing_after_max_iterations(remote: Path, api: FakeAnthropic, state_dir: Path) -> None:
    script(api, write_farewell(WRONG), done())
    state = run(
        bugfix, task="farewell is missing", repository=str(remote), test_command=TEST_COMMAND,
        permission_level="autonomous", max_iterations=1,
    )  # fmt: skip
    with pytest.raises(TestsFailingError, match="still fail after 1 iteration"):
        state.result()
    (kept,) = workspaces(state_dir)
    assert (kept / "repo" / "farewell.py").read_text() == WRONG
    arts = artifacts_of(state.state_details.flow_run_id)
    assert "changes so far" in by_kind(arts, "diff")
    assert by_kind(arts, "tests")[0]["passed"] is False
    assert "fixing a bug" in api.all_text()  # the bugfix system prompt


def test_push_rejected_keeps_the_workspace(remote: Path, api: FakeAnthropic, state_dir: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are frozen for the release' >&2\nexit 1\n")
    hook.chmod(0o755)
    script(api, write_farewell(RIGHT), done())
    state = run(feature, task=TASK, repository=str(remote), test_command=TEST_COMMAND, permission_level="autonomous")
    with pytest.raises(PushRejectedError, match="pushes are frozen for the release") as info:
        state.result()
    assert "pre-receive hook declined" in str(info.value)
    (kept,) = workspaces(state_dir)
    assert git(kept / "repo", "log", "-1", "--format=%s").startswith("feat:")
    assert not remote_has(remote, BRANCH)
    assert str(kept) in by_kind(artifacts_of(state.state_details.flow_run_id), "report")


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unknown repository", WorkspaceError, "repository not found"),
        ("missing base branch", WorkspaceError, "base branch 'develop' not found"),
        ("dirty base branch", WorkspaceError, "has uncommitted changes"),
        ("test command not found", TestCommandError, "test command not found: 'pytset'"),
    ],
)
def test_bad_input_fails_clearly_before_any_model_call(
    case: str, error: type[Exception], message: str, remote: Path, tmp_path: Path, api: FakeAnthropic, state_dir: Path
) -> None:
    params: dict[str, Any] = {"repository": str(remote), "base_branch": "main", "test_command": TEST_COMMAND}
    if case == "unknown repository":
        params["repository"] = str(tmp_path / "no-such-repo")
    elif case == "missing base branch":
        params["base_branch"] = "develop"
    elif case == "dirty base branch":
        working = tmp_path / "source"
        (working / "greet.py").write_text(GREET + "# work in progress\n")
        params["repository"] = str(working)
    else:
        params["test_command"] = "pytset -q"
    state = run(feature, task=TASK, permission_level="autonomous", **params)
    assert state.is_failed()
    with pytest.raises(error, match=message):
        state.result()
    assert api.main_requests == []
    (kept,) = workspaces(state_dir)
    report = by_kind(artifacts_of(state.state_details.flow_run_id), "report")
    assert message.split(":")[0] in report
    assert str(kept) in report


def test_docs_worker_has_no_shell_and_a_no_change_run_pushes_nothing(
    remote: Path, api: FakeAnthropic, state_dir: Path
) -> None:
    script(api, done("The README already documents greet(); nothing to change."))
    result = docs(task="Document greet() in the README", repository=str(remote), permission_level="autonomous")
    assert result["status"] == "no-changes"
    assert result["tests"] == "untested"
    tools = {t["name"] for t in api.main_requests[0].body["tools"]}
    assert {"Write", "Edit", "Read"} <= tools
    assert "Bash" not in tools
    assert not remote_has(remote, "nightshift/docs/document-greet-in-the-readme")


def test_review_of_a_branch_publishes_findings(
    remote: Path, api: FakeAnthropic, state_dir: Path, tmp_path: Path
) -> None:
    work = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "topic")
    (work / "greet.py").write_text(GREET + "\n\ndef shout(name):\n    return greet(name).upper\n")
    git(work, "commit", "-qam", "add shout")
    git(work, "push", "-q", "origin", "topic")
    finding = {"file": "greet.py", "line": 6, "severity": "high", "comment": "`.upper` is not called: add ()."}
    script(api, StructuredOutput(value={"summary": "Adds shout(); it returns a method.", "findings": [finding]}))
    state = run(review, task="correctness", repository=str(remote), base_branch="main", head_branch="topic")
    assert state.is_completed(), state.message
    result = state.result()
    assert result["status"] == "reviewed"
    assert result["review"]["findings"] == [finding]
    prompt = api.all_text()
    assert "+    return greet(name).upper" in prompt  # the diff reached the reviewer
    tools = {t["name"] for t in api.main_requests[0].body["tools"]}
    assert not tools & {"Write", "Edit", "Bash"}
    arts = artifacts_of(state.state_details.flow_run_id)
    rows = by_kind(arts, "findings")
    assert rows == [finding]
    assert "shout" in by_kind(arts, "diff")
    assert workspaces(state_dir) == []


def test_the_six_flows_and_their_parameters() -> None:
    assert {name: f.name for name, f in CODECHANGE_FLOWS.items()} == {
        "feature": "feature", "bugfix": "bugfix", "test": "test", "docs": "docs",
        "refactor-change": "refactor-change", "review": "review",
    }  # fmt: skip
    for name, flow in CODECHANGE_FLOWS.items():
        properties = flow.parameters.properties
        for parameter in ("repository", "base_branch", "test_command", "permission_level", "max_iterations"):
            assert parameter in properties, (name, parameter)
        assert "task" in properties
        assert "repository_block" in properties
