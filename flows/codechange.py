"""The code-change workers as Prefect flows, with a human in the loop.

Flows (each a deployment): `feature`, `bugfix`, `test`, `docs`, `refactor-change` and `review`. The
code-change refactoring flow is `refactor-change` because the analysis worker already owns the flow
name `refactor` (flows/analysis.py).

    check source ─▶ clone ─▶ check test command ─▶ branch ─▶ loop (agent ⇄ tests ⇄ human) ─▶ commit
      ─▶ autonomous: push │ supervised: push + pull request (GitHub) or branch + diff artifact
                          │ human-required: diff artifact, pause for ApprovalInput, then push (+ PR)
      ─▶ workspace removed; kept (path in the report artifact) when the run did not finish

The flow only orchestrates: each step is a task around a plain function of `nightshift.codechange`;
what only a flow can do (pause for a human, publish artifacts) is supplied to the loop as callables.
Pauses are in-process (`pause_flow_run(wait_for_input=...)`): the agent's session continues in the
same cwd and HOME after the answer. After a pause timed out the run is still Paused on the server
and no task may start, so the failure path publishes with plain calls only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Cancelled
from pydantic import Field

from blocks.repository import RepositoryTarget
from flows.common import (
    agent_adapter,
    agent_task_options,
    cancelled_state,
    flow_options,
    no_more_flow_retries,
    rename_flow_run,
)
from nightshift.agents.base import AgentRequest, ModelAlias
from nightshift.artifacts import artifact_key, publish_markdown, publish_table, transcript_markdown
from nightshift.codechange import briefs, checks, workspace
from nightshift.codechange.github import (
    GitHubRepo,
    PullRequestPayload,
    PullRequestRefs,
    PyGithubClient,
    ReviewPayload,
    github_repo_of,
    pull_request_repo,
    review_payload,
)
from nightshift.codechange.kinds import ChangeKind, change_kind
from nightshift.codechange.loop import AgentTurn, LoopRecord, run_loop
from nightshift.codechange.report import (
    ChangeReport,
    approval_markdown,
    commit_message,
    cost_rows,
    diff_markdown,
    iteration_rows,
    pull_request_body,
    pull_request_title,
    question_markdown,
    report_markdown,
)
from nightshift.codechange.review import review_prompt, review_with_repairs
from nightshift.codechange.target import ChangeTarget, PermissionLevel, branch_name, resolve_target, target_key
from nightshift.codechange.workspace import CloneInfo, CommitInfo, DiffInfo, PushInfo, Workspace
from nightshift.errors import (
    AgentCancelledError,
    ApprovalRejectedError,
    BudgetRefusedError,
    ConfigError,
    HumanTimeoutError,
    is_retryable,
)
from nightshift.limits import agent_slot
from nightshift.runner import run_agent_checked
from nightshift.sandbox.select import sandbox_for

DEFAULT_PAUSE_POLL_S = 10
REVIEW_DEPTH = 50  # history fetched for a review; deepened until the merge base is found


class ClarificationInput(RunInput):
    """The human's answer to the agent's question (an empty answer is refused by the form)."""

    answer: str = Field(min_length=1, pattern=r"\S", description="Your answer; the agent continues with it.")


class ApprovalInput(RunInput):
    """Push the change (approve) or not (reject); the comment goes into the report and the pull request."""

    approve: bool = Field(description="Checked: push the branch. Unchecked: reject the change.")
    comment: str = Field(default="", description="Why, or what to tell the team.")


# ------------------------------------------------------------------------------------------ tasks


@task(name="check-source", cache_policy=NONE)
def check_source_task(target: ChangeTarget) -> str:
    return workspace.resolve_base_branch(target)


@task(name="clone", cache_policy=NONE)
def clone_task(target: ChangeTarget, ws: Workspace, branch: str, depth: int = 1) -> CloneInfo:
    info = workspace.clone(target, ws, branch, depth=depth)
    get_run_logger().info("cloned %s %s at %s (shallow %s)", target.display(), branch, info.base_sha[:12], info.shallow)
    return info


@task(name="check-test-command", cache_policy=NONE)
def check_test_command_task(command: str, ws: Workspace) -> None:
    checks.check_test_command(command, ws.repo)


@task(name="start-branch", cache_policy=NONE)
def start_branch_task(ws: Workspace, target: ChangeTarget, name: str) -> str:
    return workspace.start_branch(ws, target, name)


@task(name="run-agent", cache_policy=NONE, **agent_task_options())  # retries of transient failures only
def agent_task(request: AgentRequest, profile: str, worker: str) -> AgentTurn:
    """One agent call in the sandbox of `profile` (permissive: the clone read-write; strict: read-only)."""
    adapter = agent_adapter()
    sandbox = sandbox_for(profile, flow_run_id=_run_id(), worker=worker)
    try:
        with agent_slot(adapter.name):
            outcome = run_agent_checked(request, adapter=adapter, sandbox=sandbox)
    finally:
        sandbox.close()
    get_run_logger().info(
        "agent %s session %s: %s turns, $%.4f", "resumed" if request.resume_id else "started",
        outcome.session_id, outcome.num_turns, outcome.total_cost_usd or 0.0,
    )  # fmt: skip
    return AgentTurn(outcome=outcome, transcript=adapter.transcript(outcome))


@task(name="run-tests", cache_policy=NONE)
def tests_task(target: ChangeTarget, ws: Workspace, iteration: int) -> checks.TestRun:
    assert target.test_command is not None
    run = checks.run_tests(target.test_command, ws.repo, iteration=iteration, timeout_s=target.test_timeout_s)
    get_run_logger().info("tests: %s", run.short())
    return run


@task(name="diff", cache_policy=NONE)
def diff_task(ws: Workspace, base_sha: str) -> DiffInfo:
    return workspace.worktree_diff(ws, base_sha)


@task(name="commit", cache_policy=NONE)
def commit_task(ws: Workspace, message: str) -> CommitInfo | None:
    return workspace.commit_all(ws, message)


@task(name="push", cache_policy=NONE)
def push_task(ws: Workspace, target: ChangeTarget, branch: str) -> PushInfo:
    pushed = workspace.push_branch(ws, target, branch)
    get_run_logger().info("pushed %s at %s to %s", pushed.branch, pushed.sha[:12], pushed.remote)
    return pushed


@task(name="open-pull-request", cache_policy=NONE)
def pull_request_task(target: ChangeTarget, repo: GitHubRepo, payload: PullRequestPayload) -> str:
    assert target.token is not None
    return PyGithubClient(target.token).open_pull_request(repo, payload)


@task(name="pull-request-refs", cache_policy=NONE)
def pull_request_refs_task(target: ChangeTarget, repo: GitHubRepo, number: int) -> PullRequestRefs:
    assert target.token is not None
    return PyGithubClient(target.token).pull_request_refs(repo, number)


@task(name="post-review", cache_policy=NONE)
def post_review_task(target: ChangeTarget, repo: GitHubRepo, number: int, payload: ReviewPayload) -> str:
    assert target.token is not None
    return PyGithubClient(target.token).post_review(repo, number, payload)


@task(name="review-checkout", cache_policy=NONE)
def review_checkout_task(
    target: ChangeTarget, ws: Workspace, base: str, head_branch: str | None, pull_number: int | None
) -> workspace.ReviewCheckout:
    return workspace.checkout_for_review(
        target, ws, base, head_branch=head_branch, pull_number=pull_number, depth=REVIEW_DEPTH
    )


@task(name="remove-workspace", cache_policy=NONE)
def remove_workspace_task(ws: Workspace) -> None:
    workspace.remove_workspace(ws)


# -------------------------------------------------------------------------------- flow plumbing


def _run_id() -> str:
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else uuid.uuid4().hex


def _short_name(target: ChangeTarget) -> str:
    return target_key(target).rsplit("-", 1)[0]


def _pause_poll_s() -> int:
    return max(1, int(os.environ.get("NIGHTSHIFT_PAUSE_POLL_SECONDS", DEFAULT_PAUSE_POLL_S)))


def load_target(
    repository: str | None, base_branch: str | None, test_command: str | None, repository_block: str | None
) -> ChangeTarget:
    block: ChangeTarget | None = None
    if repository_block:
        try:
            loaded = RepositoryTarget.load(repository_block)
        except ValueError as exc:
            raise ConfigError(f"no RepositoryTarget block named {repository_block!r}: {exc}") from exc
        if not isinstance(loaded, RepositoryTarget):
            raise ConfigError(f"block {repository_block!r} is not a RepositoryTarget")
        block = loaded.target()
    return resolve_target(repository=repository, base_branch=base_branch, test_command=test_command, block=block)


class Publisher:
    """The run's artifacts, keyed `<flow>-<repository>-<kind>` (a version history per repository)."""

    def __init__(self, flow_name: str, repo_key: str) -> None:
        self.flow_name = flow_name
        self.repo_key = repo_key

    def key(self, kind: str) -> str:
        return artifact_key(self.flow_name, self.repo_key, kind)

    def markdown(self, kind: str, text: str, description: str) -> str:
        return publish_markdown(self.key(kind), text, description)

    def table(self, kind: str, rows: list[dict[str, Any]], description: str) -> str:
        return publish_table(self.key(kind), rows, description)

    def tests(self, runs: list[checks.TestRun]) -> None:
        self.table("tests", iteration_rows(runs), f"{self.flow_name}: test results per iteration")

    def diff(self, diff: DiffInfo, title: str) -> None:
        self.markdown("diff", diff_markdown(diff, title=title), f"{self.flow_name}: {title}")

    def final(self, report: ChangeReport) -> dict[str, str]:
        keys = {"report": self.markdown("report", report_markdown(report), f"{self.flow_name} report")}
        keys["tests"] = self.key("tests")
        self.tests(report.loop.test_runs)
        keys["cost"] = self.table("cost", cost_rows(report), f"{self.flow_name}: agent turns, tokens and cost")
        if report.loop.transcript:
            keys["transcript"] = self.markdown(
                "transcript", transcript_markdown(report.loop.transcript), f"{self.flow_name}: agent conversation"
            )
        return keys


class FlowSteps:
    """The loop's steps in a flow: agent and tests as tasks, questions as a pause for ClarificationInput."""

    def __init__(
        self, target: ChangeTarget, ws: Workspace, report: ChangeReport, publisher: Publisher, timeout_s: int
    ) -> None:
        self.target = target
        self.ws = ws
        self.report = report
        self.publisher = publisher
        self.timeout_s = timeout_s

    def agent(self, request: AgentRequest) -> AgentTurn:
        return agent_task(request, "permissive", self.publisher.flow_name)

    def tests(self, iteration: int) -> checks.TestRun | None:
        if self.target.test_command is None:
            return None
        run = tests_task(self.target, self.ws, iteration)
        self.publisher.tests([*self.report.loop.test_runs, run])
        return run

    def ask(self, question: str, record: LoopRecord) -> str:
        text = question_markdown(self.report.kind, question, workspace=str(self.ws.root), timeout_s=self.timeout_s)
        self.publisher.markdown("question", text, f"{self.publisher.flow_name}: the agent's question")
        get_run_logger().info("the agent asks: %s", question)
        form = ClarificationInput.with_initial_data(description=text)
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=self.timeout_s, poll_interval=_pause_poll_s())
        except FlowPauseTimeout as exc:
            raise HumanTimeoutError(
                f"nobody answered the agent's question within {self.timeout_s} s: {question}", question=question
            ) from exc
        return answer.answer.strip()


def preflight(profile: str, worker: str) -> None:
    """Fail before cloning when no agent can run in the worker's sandbox (no CLI, no engine or image)."""
    sandbox = sandbox_for(profile, flow_run_id=_run_id(), worker=worker)
    try:
        sandbox.binary(agent_adapter())
    finally:
        sandbox.close()


def ask_approval(
    report: ChangeReport, diff: DiffInfo, publisher: Publisher, timeout_s: int, *, action: str = "push the branch"
) -> ApprovalInput:
    text = approval_markdown(report, diff, timeout_s=timeout_s, action=action)
    publisher.markdown("approval", text, f"{publisher.flow_name}: approval requested")
    form = ApprovalInput.with_initial_data(description=text)
    try:
        return pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=_pause_poll_s())
    except FlowPauseTimeout as exc:
        message = f"nobody approved or rejected {report.branch} within {timeout_s} s; not done: {action}"
        raise HumanTimeoutError(message, question=f"approve: {action} ({report.branch})?") from exc


def _fail(report: ChangeReport, exc: BaseException, ws: Workspace, publisher: Publisher) -> None:
    """Record the failure, keep the workspace, publish what there is. Plain calls only: no task can
    start while the run may still be Paused (after a pause timed out)."""
    report.status = (
        "rejected" if isinstance(exc, ApprovalRejectedError)
        else "refused" if isinstance(exc, BudgetRefusedError)
        else "failed"
    )  # fmt: skip
    report.error = f"{type(exc).__name__}: {exc}"
    report.workspace = str(ws.root)
    if report.kind != "review" and report.base_sha and ws.repo.is_dir() and report.commit is None:
        try:
            diff = workspace.worktree_diff(ws, report.base_sha)
        except Exception:
            diff = None
        if diff is not None and diff.files:
            publisher.diff(diff, "changes so far (not pushed)")
    publisher.final(report)
    get_run_logger().error("%s failed: %s; workspace kept at %s", report.kind, exc, ws.root)


def _guarded(body: Callable[[], dict[str, Any]]) -> Any:
    """A budget refusal ends the run `Refused` (not retried, not a failure; the report says why); any
    other non-transient error fails it without flow retries (see flows.common.run_guarded)."""
    try:
        return body()
    except BudgetRefusedError as exc:
        return Cancelled(name="Refused", message=f"budget guard: {exc.reason}")
    except AgentCancelledError as exc:
        return cancelled_state(exc)
    except Exception as exc:
        if not is_retryable(exc):
            no_more_flow_retries()
        raise


def _result(report: ChangeReport, keys: dict[str, str]) -> dict[str, Any]:
    return {**report.model_dump(mode="json", exclude={"loop": {"transcript"}}), "artifacts": keys}


# ------------------------------------------------------------------------------ the change run


def run_change(
    kind: ChangeKind,
    *,
    task: str,
    repository: str | None,
    base_branch: str | None,
    test_command: str | None,
    permission_level: PermissionLevel,
    max_iterations: int,
    repository_block: str | None,
    model: ModelAlias,
    clarification_timeout_s: int,
    approval_timeout_s: int,
) -> dict[str, Any]:
    """Orchestrate one code-change run (see the module docstring)."""
    if not task.strip():
        raise ConfigError("the task description is empty")
    if max_iterations < 1:
        raise ConfigError("max_iterations must be at least 1")
    target = load_target(repository, base_branch, test_command, repository_block)
    run_id = _run_id()
    ws = workspace.new_workspace(run_id)
    publisher = Publisher(kind.flow_name, target_key(target))
    report = ChangeReport(
        kind=kind.name, run_id=run_id, task=task, repository=target.display(), permission_level=permission_level
    )
    rename_flow_run(f"{kind.flow_name}-{_short_name(target)}-{branch_name(kind.name, task).rsplit('/', 1)[-1]}")
    try:
        preflight("permissive", kind.flow_name)
        github = pull_request_repo(target.clone_url(), permission_level, has_token=target.token is not None)
        base = check_source_task(target)
        cloned = clone_task(target, ws, base)
        report.base_branch, report.base_sha = cloned.base_branch, cloned.base_sha
        if target.test_command:
            check_test_command_task(target.test_command, ws)
        report.branch = start_branch_task(ws, target, branch_name(kind.name, task))
        prompt = briefs.task_prompt(
            kind, task=task, repository=target.display(), base_branch=base, branch=report.branch,
            test_command=target.test_command, max_iterations=max_iterations,
        )  # fmt: skip
        first = briefs.change_request(kind, prompt, ws, model=model, test_command=target.test_command)
        steps = FlowSteps(target, ws, report, publisher, clarification_timeout_s)
        report.tests = run_loop(first, steps, report.loop, max_iterations=max_iterations)
        report.commit = commit_task(ws, commit_message(report, test_command=target.test_command, model=model))
        if report.commit is None:
            report.status = "no-changes"
        else:
            diff = diff_task(ws, cloned.base_sha)
            publisher.diff(diff, f"{report.branch} against {base}")
            if permission_level == "human-required":
                decision = ask_approval(report, diff, publisher, approval_timeout_s)
                report.approval_comment = decision.comment.strip() or None
                if not decision.approve:
                    raise ApprovalRejectedError(
                        f"a human rejected {report.branch}" + (f": {decision.comment}" if decision.comment else ""),
                        comment=decision.comment,
                    )
            report.push = push_task(ws, target, report.branch)
            report.status = "pushed"
            if github is not None:
                payload = PullRequestPayload(
                    title=pull_request_title(report),
                    body=pull_request_body(report, diff, test_command=target.test_command),
                    head=report.branch,
                    base=base,
                )
                report.pull_request_url = pull_request_task(target, github, payload)
                report.status = "pull-request"
    except BaseException as exc:
        _fail(report, exc, ws, publisher)
        raise
    keys = publisher.final(report)
    remove_workspace_task(ws)
    return _result(report, keys)


# ------------------------------------------------------------------------------ the review run


def run_review(
    *,
    task: str,
    repository: str | None,
    base_branch: str | None,
    head_branch: str | None,
    pull_request: int | None,
    test_command: str | None,
    permission_level: PermissionLevel,
    max_iterations: int,
    repository_block: str | None,
    model: ModelAlias,
    approval_timeout_s: int,
) -> dict[str, Any]:
    kind = change_kind("review")
    target = load_target(repository, base_branch, test_command, repository_block)
    github = github_repo_of(target.clone_url())
    run_id = _run_id()
    ws = workspace.new_workspace(run_id)
    publisher = Publisher(kind.flow_name, target_key(target))
    report = ChangeReport(
        kind="review", run_id=run_id, task=task or "general review", repository=target.display(),
        permission_level=permission_level,
    )  # fmt: skip
    try:
        preflight("strict", kind.flow_name)
        if pull_request is not None and (github is None or target.token is None):
            raise ConfigError("reviewing a pull request needs a GitHub remote and a RepositoryTarget block's token")
        if pull_request is None and not head_branch:
            raise ConfigError("give head_branch (the branch to review) or pull_request (its number on GitHub)")
        refs = pull_request_refs_task(target, github, pull_request) if github and pull_request else None
        if refs is not None:
            target = target.model_copy(update={"base_branch": refs.base})
        base = check_source_task(target)
        head_label = f"pull request #{pull_request}" if refs else f"branch {head_branch}"
        rename_flow_run(f"review-{_short_name(target)}-{head_branch or pull_request}")
        checkout = review_checkout_task(target, ws, base, head_branch, pull_request)
        report.base_branch, report.base_sha = base, checkout.merge_base
        report.branch = head_branch or f"pull/{pull_request}"
        publisher.diff(checkout.diff, f"{head_label} against {base}")
        tests = None
        if target.test_command:
            check_test_command_task(target.test_command, ws)
            tests = tests_task(target, ws, 1)
        prompt = review_prompt(
            task=task, repository=target.display(), head_label=head_label, base_branch=base,
            base_sha=checkout.merge_base, diff=checkout.diff.patch, diff_stat=checkout.diff.stat,
            tests=tests.model_dump() if tests else None,
        )  # fmt: skip
        request = briefs.review_request(kind, prompt, ws, model=model)
        agent = partial(agent_task, profile="strict", worker=kind.flow_name)
        review, report.loop = review_with_repairs(request, agent, max_iterations=max_iterations)
        if tests is not None:
            report.loop.test_runs.append(tests)
        findings = [{"file": f.file, "line": f.line, "severity": f.severity.value, "comment": f.comment}
                    for f in review.ranked()]  # fmt: skip
        publisher.table("findings", findings, f"review findings: {head_label}")
        if refs is not None and github is not None:
            payload = review_payload(review, checkout.diff.patch, checkout.head_sha)
            if permission_level == "human-required":
                action = "post the review on GitHub"
                decision = ask_approval(report, checkout.diff, publisher, approval_timeout_s, action=action)
                if not decision.approve:
                    raise ApprovalRejectedError("a human decided not to post the review", comment=decision.comment)
            report.pull_request_url = post_review_task(target, github, refs.number, payload)
            report.status = "review-posted"
        else:
            report.status = "reviewed"
    except BaseException as exc:
        _fail(report, exc, ws, publisher)
        raise
    keys = publisher.final(report)
    keys["findings"] = publisher.key("findings")
    remove_workspace_task(ws)
    return {**_result(report, keys), "review": review.model_dump(mode="json")}


# --------------------------------------------------------------------------------------- flows

_COMMON_DOC = """
    Args:
        task: what to do, in plain words (becomes the branch name, the prompt and the commit's "why").
        repository: URL (https/ssh/file) or local path; optional when repository_block gives it.
        base_branch: branch to start from; empty: the repository's default branch.
        test_command: shell command that runs the tests in the clone; empty: none (the change is not verified).
        permission_level: autonomous = push the branch; supervised = push and open a pull request (GitHub)
            or leave the branch and the diff artifact; human-required = pause for approval before any push.
        max_iterations: attempts at passing the tests, each failure fed back into the same agent session.
        repository_block: name of a RepositoryTarget block (URL, base branch, test command, token).
        model: model alias of the agent.
        clarification_timeout_s: how long a question of the agent waits for a human's answer.
        approval_timeout_s: how long a human-required change waits for approval.
"""


def _change_flow(kind_name: str) -> Any:
    kind = change_kind(kind_name)

    def change_flow(
        task: str,
        repository: str | None = None,
        base_branch: str | None = None,
        test_command: str | None = None,
        permission_level: PermissionLevel = "supervised",
        max_iterations: int = 3,
        repository_block: str | None = None,
        model: ModelAlias = "sonnet",
        clarification_timeout_s: int = 3600,
        approval_timeout_s: int = 86400,
    ) -> Any:
        return _guarded(lambda: run_change(
            kind, task=task, repository=repository, base_branch=base_branch, test_command=test_command,
            permission_level=permission_level, max_iterations=max_iterations, repository_block=repository_block,
            model=model, clarification_timeout_s=clarification_timeout_s, approval_timeout_s=approval_timeout_s,
        ))  # fmt: skip

    change_flow.__name__ = f"{kind.flow_name.replace('-', '_')}_flow"
    change_flow.__doc__ = f"{kind.description}\n{_COMMON_DOC}"
    return flow(name=kind.flow_name, description=kind.description, log_prints=True, **flow_options())(change_flow)


feature = _change_flow("feature")
bugfix = _change_flow("bugfix")
write_tests = _change_flow("test")  # flow `test`; not named test* here so pytest never collects it
docs = _change_flow("docs")
refactor_change = _change_flow("refactor")


@flow(name="review", description=change_kind("review").description, log_prints=True, **flow_options())
def review(
    task: str = "",
    repository: str | None = None,
    base_branch: str | None = None,
    head_branch: str | None = None,
    pull_request: int | None = None,
    test_command: str | None = None,
    permission_level: PermissionLevel = "supervised",
    max_iterations: int = 2,
    repository_block: str | None = None,
    model: ModelAlias = "sonnet",
    approval_timeout_s: int = 86400,
) -> Any:
    """Review a branch (head_branch) or a GitHub pull request (pull_request) against base_branch.

    Findings (file, line, severity, comment) go to a table artifact; on GitHub they are posted as a
    review (inline comments on diff lines, the rest in its body) unless permission_level is
    human-required and the human declines. max_iterations: agent turns allowed to produce a valid review.
    """
    return _guarded(lambda: run_review(
        task=task, repository=repository, base_branch=base_branch, head_branch=head_branch,
        pull_request=pull_request, test_command=test_command, permission_level=permission_level,
        max_iterations=max_iterations, repository_block=repository_block, model=model,
        approval_timeout_s=approval_timeout_s,
    ))  # fmt: skip


CODECHANGE_FLOWS: dict[str, Any] = {
    "feature": feature, "bugfix": bugfix, "test": write_tests, "docs": docs,
    "refactor-change": refactor_change, "review": review,
}  # fmt: skip
