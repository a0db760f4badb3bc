"""The plain parts of the code-change workers: names, targets, git auth, workspaces with real git,
the test command, reply parsing, review diffs, and the GitHub decision and payloads (no network)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from flows.codechange import ApprovalInput, ClarificationInput
from nightshift.agents.base import AgentOutcome, AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings
from nightshift.codechange import checks, workspace
from nightshift.codechange.briefs import change_request, review_request, task_prompt
from nightshift.codechange.gitauth import auth_header, git_env, redact_token
from nightshift.codechange.github import (
    PullRequestPayload,
    github_repo_of,
    pull_request_repo,
    review_payload,
)
from nightshift.codechange.kinds import CHANGE_KINDS, change_kind
from nightshift.codechange.loop import AgentTurn, LoopRecord
from nightshift.codechange.replies import parse_reply
from nightshift.codechange.report import ChangeReport, commit_message
from nightshift.codechange.review import (
    ReviewFinding,
    ReviewReport,
    new_side_lines,
    review_with_repairs,
    split_by_diff,
)
from nightshift.codechange.target import ChangeTarget, branch_name, resolve_target, slugify, target_key
from nightshift.errors import ConfigError, PushRejectedError, TestCommandError, WorkspaceError
from nightshift.process import run_command
from nightshift.runner import run_agent_checked
from nightshift.testing.fake_anthropic import FakeAnthropic, StructuredOutput, Text
from tests.gitrepos import git, make_repo

TOKEN = "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"


# ------------------------------------------------------------------------------------ names, targets


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Add a farewell() helper!", "add-a-farewell-helper"),
        ("  Fix   crash in  parser  ", "fix-crash-in-parser"),
        ("Übersetze die Dokumentation", "ubersetze-die-dokumentation"),
        ("???", "change"),
        (
            "make the very long task description fit into a branch name that git and humans like",
            "make-the-very-long-task-description-fit-into-a",
        ),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug
    assert len(slug) <= 48


def test_branch_name_uses_the_first_line_of_the_task() -> None:
    assert (
        branch_name("bugfix", "\nFix the crash on empty input\n\nDetails: ...")
        == "nightshift/bugfix/fix-the-crash-on-empty-input"
    )


def test_local_paths_are_cloned_through_file_urls(tmp_path: Path) -> None:
    target = ChangeTarget(repository=str(tmp_path / "repo"))
    assert target.is_local
    assert target.clone_url() == (tmp_path / "repo").resolve().as_uri()
    assert ChangeTarget(repository="git@github.com:acme/shop.git").clone_url() == "git@github.com:acme/shop.git"
    assert target_key(ChangeTarget(repository="https://github.com/acme/shop.git")).startswith("shop-")


def test_credentials_in_the_url_are_refused_and_never_displayed() -> None:
    with pytest.raises(ValidationError, match="RepositoryTarget block"):
        ChangeTarget(repository=f"https://x:{TOKEN}@github.com/acme/shop.git")
    assert (
        ChangeTarget(repository="https://bot@example.com:8443/a/b.git").display() == "https://example.com:8443/a/b.git"
    )


def test_explicit_parameters_win_over_the_block_and_the_token_comes_only_from_it() -> None:
    block = ChangeTarget(
        repository="https://github.com/acme/shop.git",
        base_branch="develop",
        test_command="make test",
        token=SecretStr(TOKEN),
    )
    target = resolve_target(repository=None, base_branch="main", test_command=None, block=block)
    assert (target.repository, target.base_branch, target.test_command) == (block.repository, "main", "make test")
    assert target.token is not None
    assert target.token.get_secret_value() == TOKEN
    plain = resolve_target(repository="/srv/repo", base_branch=" ", test_command="", block=None)
    assert plain.token is None
    assert plain.base_branch is None
    assert plain.test_command is None
    with pytest.raises(ConfigError, match="give a repository"):
        resolve_target(repository=None, base_branch=None, test_command=None)


# ------------------------------------------------------------------------------------------ git auth


def test_the_token_reaches_git_through_its_environment_only(tmp_path: Path) -> None:
    env = git_env("https://github.com/acme/shop.git", SecretStr(TOKEN))
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraheader"
    assert env["GIT_CONFIG_VALUE_0"] == auth_header(SecretStr(TOKEN))
    encoded = env["GIT_CONFIG_VALUE_0"].rsplit(" ", 1)[1]
    assert base64.b64decode(encoded).decode() == f"x-access-token:{TOKEN}"
    # real git reads it from the environment, scoped to the remote's origin
    result = run_command(
        ["git", "config", "--get-urlmatch", "http.extraheader", "https://github.com/acme/shop.git"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )
    assert result.stdout.strip() == auth_header(SecretStr(TOKEN))
    other = run_command(
        ["git", "config", "--get-urlmatch", "http.extraheader", "https://evil.example/x.git"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )
    assert other.stdout.strip() == ""
    assert "GIT_CONFIG_COUNT" not in git_env("file:///srv/repo.git", SecretStr(TOKEN))
    assert "GIT_CONFIG_COUNT" not in git_env("git@github.com:acme/shop.git", SecretStr(TOKEN))


def test_redact_token_removes_both_forms() -> None:
    header = auth_header(SecretStr(TOKEN))
    text = redact_token(f"fatal: {TOKEN} and {header}", SecretStr(TOKEN))
    assert TOKEN not in text
    assert header.rsplit(" ", 1)[1] not in text


# ---------------------------------------------------------------------------------- real workspaces


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    source = make_repo(tmp_path / "source", {"a.py": "x = 1\n"})
    for index in range(3):
        (source / "a.py").write_text(f"x = {index + 2}\n")
        git(source, "commit", "-qam", f"change {index}")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    return bare


def test_clone_of_a_local_path_is_shallow_and_isolated(remote: Path, state_dir: Path) -> None:
    target = ChangeTarget(repository=str(remote))
    assert workspace.resolve_base_branch(target) == "main"  # the default branch, from the remote's HEAD
    ws = workspace.new_workspace("run-1")
    info = workspace.clone(target, ws, "main")
    assert info.shallow
    assert git(ws.repo, "rev-list", "--count", "HEAD").strip() == "1"
    assert ws.repo.parent == ws.home.parent == state_dir / "changes" / "run-1"
    (ws.repo / "__pycache__").mkdir()
    (ws.repo / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert workspace.commit_all(ws, "nothing") is None  # test byproducts are never committed
    (ws.repo / "b.py").write_text("y = 2\n")
    diff = workspace.worktree_diff(ws, info.base_sha)
    assert diff.files == ["b.py"]
    assert "+y = 2" in diff.patch
    commit = workspace.commit_all(ws, "add b")
    assert commit is not None
    assert commit.files == ["b.py"]
    assert git(ws.repo, "log", "-1", "--format=%an <%ae>").strip() == "nightshift <nightshift@localhost>"


def test_branch_names_do_not_collide_with_remote_branches(remote: Path, state_dir: Path) -> None:
    target = ChangeTarget(repository=str(remote))
    first = workspace.new_workspace("run-a")
    workspace.clone(target, first, "main")
    assert workspace.start_branch(first, target, "nightshift/feature/x") == "nightshift/feature/x"
    (first.repo / "c.py").write_text("z = 3\n")
    workspace.commit_all(first, "add c")
    pushed = workspace.push_branch(first, target, "nightshift/feature/x")
    assert git(remote, "rev-parse", "nightshift/feature/x").strip() == pushed.sha
    second = workspace.new_workspace("run-b")
    workspace.clone(target, second, "main")
    assert workspace.start_branch(second, target, "nightshift/feature/x") == "nightshift/feature/x-2"


def test_source_problems_are_workspace_errors(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="repository not found"):
        workspace.resolve_base_branch(ChangeTarget(repository=str(tmp_path / "nope")))
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorkspaceError, match="not a git repository"):
        workspace.resolve_base_branch(ChangeTarget(repository=str(tmp_path / "plain")))
    with pytest.raises(WorkspaceError, match="base branch 'release' not found"):
        workspace.resolve_base_branch(ChangeTarget(repository=str(remote), base_branch="release"))
    with pytest.raises(WorkspaceError, match="cannot be read"):
        workspace.resolve_base_branch(ChangeTarget(repository="file:///nonexistent/repo.git"))
    source = tmp_path / "source"
    (source / "new.txt").write_text("untracked\n")
    with pytest.raises(WorkspaceError, match=r"uncommitted changes \(\?\? new.txt\)"):
        workspace.resolve_base_branch(ChangeTarget(repository=str(source)))
    git(source, "checkout", "-q", "-b", "other")  # dirty, but not on the base branch: fine
    assert workspace.resolve_base_branch(ChangeTarget(repository=str(source), base_branch="main")) == "main"


def test_a_rejected_push_says_why(remote: Path, state_dir: Path) -> None:
    hook = remote / "hooks" / "update"
    hook.write_text('#!/bin/sh\necho "branch $1 is protected" >&2\nexit 1\n')
    hook.chmod(0o755)
    target = ChangeTarget(repository=str(remote))
    ws = workspace.new_workspace("run-p")
    workspace.clone(target, ws, "main")
    (ws.repo / "d.py").write_text("d = 4\n")
    workspace.commit_all(ws, "add d")
    with pytest.raises(PushRejectedError, match="branch refs/heads/nightshift/x is protected") as info:
        workspace.push_branch(ws, target, "nightshift/x")
    assert info.value.branch == "nightshift/x"


def test_review_merge_base_is_found_beyond_the_shallow_depth(remote: Path, tmp_path: Path, state_dir: Path) -> None:
    work = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "topic")
    for index in range(4):
        (work / "a.py").write_text(f"x = {index + 10}\n")
        git(work, "commit", "-qam", f"topic {index}")
    git(work, "push", "-q", "origin", "topic")
    fork = git(work, "rev-parse", "main").strip()
    target = ChangeTarget(repository=str(remote))
    ws = workspace.new_workspace("run-r")
    head = workspace.clone(target, ws, "topic", depth=2).base_sha
    workspace.fetch_branch(ws, target, "refs/heads/main", "refs/nightshift/base", depth=1)
    assert workspace.merge_base(ws, target, "refs/nightshift/base", head) == fork
    diff = workspace.range_diff(ws, fork, head)
    assert diff.files == ["a.py"]
    assert "+x = 13" in diff.patch


# -------------------------------------------------------------------------------------- test command


def test_test_command_is_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(TestCommandError, match="test command not found: 'pytset'"):
        checks.check_test_command("pytset -q", tmp_path)
    with pytest.raises(TestCommandError, match=r"not an executable file"):
        checks.check_test_command("./run-tests.sh", tmp_path)
    checks.check_test_command(f"{sys.executable} -c pass", tmp_path)
    checks.check_test_command("FOO=1 sh -c true", tmp_path)
    checks.check_test_command("cd sub && make test", tmp_path)  # the shell decides


def test_run_tests_tells_failures_from_missing_programs(tmp_path: Path) -> None:
    passed = checks.run_tests("echo ok", tmp_path, iteration=1, timeout_s=30)
    assert passed.passed
    assert passed.output == "ok"
    failed = checks.run_tests("echo boom >&2; exit 3", tmp_path, iteration=2, timeout_s=30)
    assert not failed.passed
    assert failed.exit_code == 3
    assert "boom" in failed.output
    with pytest.raises(TestCommandError, match="could not start"):
        checks.run_tests("no-such-program-xyz", tmp_path, iteration=1, timeout_s=30)
    slow = checks.run_tests("sleep 30", tmp_path, iteration=1, timeout_s=1)
    assert slow.timed_out
    assert not slow.passed


def test_the_suite_sees_no_secrets() -> None:
    env = checks.suite_env(
        {
            "PATH": "/bin",
            "ANTHROPIC_API_KEY": "k",
            "GITHUB_TOKEN": "t",
            "PREFECT_API_URL": "u",
            "DB_PASSWORD": "p",
            "LANG": "C.UTF-8",
        }
    )
    assert env["PATH"] == "/bin"
    assert env["LANG"] == "C.UTF-8"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not {"ANTHROPIC_API_KEY", "GITHUB_TOKEN", "PREFECT_API_URL", "DB_PASSWORD"} & set(env)


# ------------------------------------------------------------------------------------------- replies


def outcome(structured: Any = None, text: str = "") -> AgentOutcome:
    return AgentOutcome(
        agent="claude",
        status="success",
        is_error=False,
        structured_output=structured,
        final_text=text,
        home=Path("/h"),
        cwd=Path("/c"),
        duration_s=1.0,
    )


def test_replies_structured_and_from_text() -> None:
    done = parse_reply(outcome({"status": "done", "summary": "Added it."}))
    assert (done.status, done.summary, done.structured) == ("done", "Added it.", True)
    asked = parse_reply(outcome({"status": "question", "question": "Tabs or spaces?", "summary": "style"}))
    assert (asked.status, asked.question) == ("question", "Tabs or spaces?")
    from_json = parse_reply(outcome(None, '```json\n{"status": "question", "summary": "Which API version?"}\n```'))
    assert (from_json.status, from_json.question, from_json.structured) == ("question", "Which API version?", False)
    from_text = parse_reply(outcome(None, "I looked at the code.\n\nShould the cache be per user or global?"))
    assert from_text.status == "question"
    assert from_text.question == "Should the cache be per user or global?"
    plain = parse_reply(outcome(None, "Done: added the flag."))
    assert (plain.status, plain.summary) == ("done", "Done: added the flag.")
    empty_question = parse_reply(outcome({"status": "question", "question": "", "summary": ""}, "All done."))
    assert empty_question.status == "done"


def test_human_input_forms_refuse_empty_answers() -> None:
    with pytest.raises(ValidationError):
        ClarificationInput(answer="   ")
    with pytest.raises(ValidationError):
        ClarificationInput(answer="")
    assert ClarificationInput(answer="Goodbye").answer == "Goodbye"
    schema = ClarificationInput.model_json_schema()["properties"]["answer"]
    assert schema["minLength"] == 1
    assert schema["pattern"] == r"\S"
    with pytest.raises(ValidationError):
        ApprovalInput.model_validate({"comment": "no decision"})
    assert ApprovalInput(approve=False, comment="wrong file").approve is False


# ------------------------------------------------------------------------------------- kinds, prompts


def test_each_kind_has_its_prompts_and_tools(tmp_path: Path, state_dir: Path) -> None:
    ws = workspace.new_workspace("run-k")
    for kind in CHANGE_KINDS.values():
        if kind.name == "review":
            request = review_request(kind, "review this", ws, model="haiku")
            assert request.tools == ["Read", "Grep", "Glob"]
            assert request.permission_mode == "default"
            continue
        prompt = task_prompt(
            kind,
            task="Do X",
            repository="repo",
            base_branch="main",
            branch=f"nightshift/{kind.name}/do-x",
            test_command="make test",
            max_iterations=3,
        )
        request = change_request(kind, prompt, ws, model="haiku", test_command="make test")
        assert "Do X" in prompt
        assert "make test" in prompt
        assert '"status": "question"' in prompt
        assert request.permission_mode == "acceptEdits"
        assert request.cwd == ws.repo
        assert request.home == ws.home
        assert request.append_system_prompt
        assert "unattended" in request.append_system_prompt
        assert request.json_schema is not None
        assert request.json_schema["required"] == ["status", "summary"]
        assert {"Write", "Edit"} <= set(request.tools or [])
        assert ("Bash" in (request.tools or [])) is (kind.name != "docs")
        if kind.name != "docs":
            assert "Bash(make test:*)" in request.allowed_tools
            assert "Bash(git push:*)" in request.disallowed_tools
    assert change_kind("refactor").flow_name == "refactor-change"
    assert "Bash(a, b:*)" not in change_kind("feature").allowed_tools("a, b")  # would split the tool list
    with pytest.raises(ConfigError):
        change_kind("deploy")


def test_commit_message_says_what_why_and_how_it_was_tested() -> None:
    report = ChangeReport(
        kind="bugfix",
        run_id="r1",
        task="Fix the crash on empty input\n\nIt raises IndexError.",
        repository="repo",
        permission_level="autonomous",
        loop=LoopRecord(summary="Guarded the empty case in parse() and added a regression test."),
    )
    report.loop.test_runs.append(
        checks.TestRun(iteration=1, command="make test", passed=False, exit_code=1, duration_s=1.0, output="E")
    )
    report.loop.test_runs.append(
        checks.TestRun(iteration=2, command="make test", passed=True, exit_code=0, duration_s=1.0, output="ok")
    )
    message = commit_message(report, test_command="make test", model="sonnet")
    subject, blank, *body = message.splitlines()
    assert subject == "fix: Fix the crash on empty input"
    assert blank == ""
    text = "\n".join(body)
    assert "What changed:\nGuarded the empty case" in text
    assert "Why:\nFix the crash on empty input\n\nIt raises IndexError." in text
    assert "Tests: `make test` passed on iteration 2 (earlier failures fed back to the agent: 1)." in text


# ---------------------------------------------------------------------------------- GitHub, reviews


@pytest.mark.parametrize(
    ("url", "full_name"),
    [
        ("https://github.com/acme/shop.git", "acme/shop"),
        ("https://github.com/acme/shop", "acme/shop"),
        ("git@github.com:acme/shop.git", "acme/shop"),
        ("ssh://git@github.com/acme/shop.git", "acme/shop"),
        ("https://gitlab.com/acme/shop.git", None),
        ("https://github.example.com/acme/shop.git", None),
        ("file:///srv/git/shop.git", None),
    ],
)
def test_github_remote_detection(url: str, full_name: str | None) -> None:
    repo = github_repo_of(url)
    assert (repo.full_name if repo else None) == full_name


def test_the_pull_request_decision() -> None:
    github = "https://github.com/acme/shop.git"
    assert pull_request_repo(github, "autonomous", has_token=False) is None  # push only
    assert pull_request_repo("file:///srv/shop.git", "supervised", has_token=False) is None  # branch + diff artifact
    repo = pull_request_repo(github, "supervised", has_token=True)
    assert repo is not None
    assert repo.full_name == "acme/shop"
    with pytest.raises(ConfigError, match="with a token"):
        pull_request_repo(github, "human-required", has_token=False)


def test_pull_request_payload_is_the_api_body() -> None:
    payload = PullRequestPayload(title="feat: add farewell", body="Body", head="nightshift/feature/x", base="main")
    assert payload.model_dump() == {"title": "feat: add farewell", "body": "Body", "head": "nightshift/feature/x",
                                    "base": "main", "draft": False, "maintainer_can_modify": True}  # fmt: skip


DIFF = """diff --git a/app.py b/app.py
index 1111111..2222222 100644
--- a/app.py
+++ b/app.py
@@ -1,4 +1,5 @@
 import os
-x = 1
+x = 2
+y = x + 1

 def f():
@@ -10,2 +11,2 @@ def g():
-    return 1
+    return 2
     # end
diff --git a/new.py b/new.py
new file mode 100644
--- /dev/null
+++ b/new.py
@@ -0,0 +1,2 @@
+++counter
+print(1)
"""


def test_new_side_lines_of_a_diff() -> None:
    assert new_side_lines(DIFF) == {"app.py": {1, 2, 3, 4, 5, 11, 12}, "new.py": {1, 2}}


def test_review_payload_puts_findings_on_diff_lines_inline() -> None:
    report = ReviewReport(
        summary="Mostly fine.",
        findings=[
            ReviewFinding(file="app.py", line=3, severity="medium", comment="y is unused"),
            ReviewFinding(file="app.py", line=40, severity="high", comment="g() leaks a file handle"),
            ReviewFinding(file="./new.py", line=2, severity="low", comment="print in library code"),
        ],
    )
    inline, general = split_by_diff(report.findings, DIFF)
    assert [(f.file, f.line) for f in inline] == [("app.py", 3), ("new.py", 2)]
    assert [(f.file, f.line) for f in general] == [("app.py", 40)]
    payload = review_payload(report, DIFF, "abc123")
    body = json.loads(payload.model_dump_json())
    assert body["commit_id"] == "abc123"
    assert body["event"] == "COMMENT"
    assert body["comments"] == [
        {"path": "app.py", "line": 3, "side": "RIGHT", "body": "**medium** — y is unused"},
        {"path": "new.py", "line": 2, "side": "RIGHT", "body": "**low** — print in library code"},
    ]
    assert "Mostly fine." in body["body"]
    assert "`app.py:40` **high** — g() leaks a file handle" in body["body"]


# --------------------------------------------------------------- a token over real smart HTTP


class _GitHttpHandler(BaseHTTPRequestHandler):
    """`git http-backend` (git's own smart-HTTP server) behind Basic auth with one accepted header."""

    server: _GitHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        self.server.seen_auth.append(self.headers.get("Authorization") or "")
        if self.headers.get("Authorization") != self.server.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        env = {
            "PATH": "/usr/bin:/bin", "GIT_PROJECT_ROOT": str(self.server.root), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": "bot",
            "CONTENT_TYPE": self.headers.get("Content-Type") or "", "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding") or "",
        }  # fmt: skip
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _GitHttpServer(ThreadingHTTPServer):
    def __init__(self, root: Path, expected: str) -> None:
        super().__init__(("127.0.0.1", 0), _GitHttpHandler)
        self.root = root
        self.expected = expected
        self.seen_auth: list[str] = []


def test_a_token_from_the_block_authenticates_clone_and_push_over_https_like_http(
    remote: Path, state_dir: Path
) -> None:
    server = _GitHttpServer(remote.parent, auth_header(SecretStr(TOKEN)).split(": ", 1)[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{remote.name}"
        anonymous = ChangeTarget(repository=url)
        with pytest.raises(WorkspaceError, match="cannot be read") as info:
            workspace.resolve_base_branch(anonymous)  # no token: a clear failure, no prompt, no hang
        assert "terminal prompts disabled" in str(info.value)
        assert "give a RepositoryTarget block with a token" in str(info.value)
        target = ChangeTarget(repository=url, token=SecretStr(TOKEN))
        assert workspace.resolve_base_branch(target) == "main"
        ws = workspace.new_workspace("run-http")
        workspace.clone(target, ws, "main")
        (ws.repo / "e.py").write_text("e = 5\n")
        workspace.commit_all(ws, "add e")
        workspace.push_branch(ws, target, "nightshift/feature/e")
    finally:
        server.shutdown()
        server.server_close()
    assert git(remote, "show", "nightshift/feature/e:e.py") == "e = 5\n"
    assert server.expected in server.seen_auth  # the token did authenticate ...
    config = (ws.repo / ".git" / "config").read_text()
    assert TOKEN not in config  # ... and is nowhere on disk in the clone
    assert server.expected not in config
    assert git(ws.repo, "remote", "get-url", "origin").strip() == url


# ------------------------------------------------------------ review repair turns, real CLI


def test_an_invalid_review_gets_a_repair_turn_on_the_same_session(
    tmp_path: Path, state_dir: Path, claude_bin: Path
) -> None:
    finding = {"file": "a.py", "line": 1, "severity": "low", "comment": "name x better"}
    script = [
        Text(text="Looks fine to me."),
        Text(text="Really fine."),
        StructuredOutput(value={"summary": "ok", "findings": [finding]}),
    ]
    ws = workspace.new_workspace("run-review")
    ws.repo.mkdir()
    with FakeAnthropic(script) as api:
        adapter = ClaudeAdapter(
            ClaudeSettings(binary=claude_bin, base_url=api.url, api_key=SecretStr("x"), max_api_retries=0)
        )

        def agent(request: AgentRequest) -> AgentTurn:
            outcome = run_agent_checked(request, adapter=adapter)
            return AgentTurn(outcome=outcome, transcript=adapter.transcript(outcome))

        request = review_request(change_kind("review"), "Review this.", ws, model="haiku")
        review, record = review_with_repairs(request, agent, max_iterations=2)
        repair = json.dumps(api.main_requests[-1].body["messages"])
    assert [f.model_dump(mode="json") for f in review.findings] == [finding]
    assert [turn.purpose for turn in record.turns] == ["task", "repair"]
    assert len({turn.session_id for turn in record.turns}) == 1
    assert "could not be used" in repair
    assert "Looks fine to me." in repair  # the same conversation
