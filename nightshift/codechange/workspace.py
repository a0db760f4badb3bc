"""The isolated workspace of one run and every git operation on it (GitPython, no shell).

    $NIGHTSHIFT_STATE_DIR/changes/<run-id>/
    ├── repo/     shallow clone of the base branch; the agent's cwd; the branch is made here
    └── home/     HOME of the agent CLI: same cwd + same HOME is what lets `--resume` find the session

The source is checked before anything is cloned: a repository that does not exist, a base branch
the remote does not have, or a local working copy whose base branch has uncommitted changes (they
would silently not be part of the work) each stop the run with a `WorkspaceError` that says so.
Remote operations run with `gitauth.git_env` (token in the environment, never in argv or the URL).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import git
from pydantic import BaseModel, ConfigDict, Field

from nightshift.codechange.gitauth import git_env, redact_token
from nightshift.codechange.target import ChangeTarget
from nightshift.errors import PushRejectedError, WorkspaceError
from nightshift.results import state_dir

# Never committed: byproducts of running tests in the clone (added to .git/info/exclude only).
LOCAL_EXCLUDES = (
    "__pycache__/", "*.py[cod]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".coverage",
    ".tox/", "node_modules/", ".venv/", ".nightshift/",
)  # fmt: skip
_PROBLEM_PREFIXES = ("fatal:", "error:", "remote:", "!", "warning: could not")
_QUOTED_STREAM = re.compile(r"^(?:stderr|stdout): '")
_AUTH_MARKERS = ("terminal prompts disabled", "Authentication failed", "could not read Username")


class Workspace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path
    repo: Path = Field(description="the clone; the agent's working directory")
    home: Path = Field(description="HOME of the agent CLI for every turn of the run")


class CloneInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_branch: str
    base_sha: str
    shallow: bool


class CommitInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha: str
    branch: str
    message: str
    files: list[str]


class PushInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch: str
    sha: str
    remote: str = Field(description="the remote as shown to people (no credentials)")


class DiffInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_sha: str
    patch: str
    stat: str
    files: list[str]


def new_workspace(run_id: str) -> Workspace:
    """A fresh workspace for the run; what a previous attempt of the same flow run left is replaced."""
    root = state_dir() / "changes" / run_id
    if root.exists():
        shutil.rmtree(root)
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Workspace(root=root, repo=root / "repo", home=home)


def remove_workspace(workspace: Workspace) -> None:
    shutil.rmtree(workspace.root, ignore_errors=True)


def git_problem(exc: git.GitCommandError, target: ChangeTarget | None = None) -> str:
    """The lines of a failed git command that say what went wrong (token removed)."""
    raw = f"{exc.stdout or ''}\n{exc.stderr or ''}"
    lines = [_QUOTED_STREAM.sub("", line.strip()).rstrip("'").strip() for line in raw.splitlines()]
    lines = [line for line in lines if line]
    useful = [line for line in lines if line.lower().startswith(_PROBLEM_PREFIXES)]
    text = "; ".join(dict.fromkeys(useful)) or (lines[-1] if lines else f"git exited {exc.status}")
    if any(marker in text for marker in _AUTH_MARKERS):
        text += " (the remote wants credentials: give a RepositoryTarget block with a token)"
    return redact_token(text.replace("\t", " "), target.token if target else None)


def _ls_remote(target: ChangeTarget, option: str, pattern: str) -> str:
    try:
        url = target.clone_url()
        return str(git.Git().ls_remote(option, url, pattern, env=git_env(url, target.token)))
    except git.GitCommandError as exc:
        raise WorkspaceError(
            f"repository {target.display()} cannot be read: {git_problem(exc, target)}", repository=target.display()
        ) from exc


def _check_local_source(target: ChangeTarget) -> git.Repo:
    path = Path(target.repository).expanduser()
    if not path.exists():
        raise WorkspaceError(f"repository not found: {path} does not exist", repository=str(path))
    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise WorkspaceError(f"not a git repository: {path}", repository=str(path)) from exc


def _uncommitted(repo: git.Repo) -> list[str]:
    return [line for line in str(repo.git.status("--porcelain")).splitlines() if line.strip()]


def require_branch(target: ChangeTarget, branch: str, *, role: str = "branch") -> None:
    """`WorkspaceError` unless the remote has `refs/heads/<branch>` (and can be read at all)."""
    if not _ls_remote(target, "--heads", f"refs/heads/{branch}").strip():
        raise WorkspaceError(f"{role} {branch!r} not found in {target.display()}", repository=target.display())


def checkout(workspace: Workspace, ref: str) -> str:
    """Check out `ref` (detached); returns its sha."""
    repo = git.Repo(workspace.repo)
    repo.git.checkout("--detach", ref)
    return str(repo.head.commit.hexsha)


def resolve_base_branch(target: ChangeTarget) -> str:
    """The base branch to work from, after checking that the source can be worked on at all."""
    local = _check_local_source(target) if target.is_local else None
    if target.base_branch is None:
        symref = _ls_remote(target, "--symref", "HEAD")
        match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", symref, re.MULTILINE)
        if match is None:
            raise WorkspaceError(
                f"repository {target.display()} has no default branch (empty?); give base_branch",
                repository=target.display(),
            )
        base = match.group(1)
    else:
        base = target.base_branch
        require_branch(target, base, role="base branch")
    if local is not None and not local.bare and not local.head.is_detached and local.active_branch.name == base:
        dirty = _uncommitted(local)
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            raise WorkspaceError(
                f"base branch {base!r} of {target.display()} has uncommitted changes ({shown}): "
                "commit or stash them first; nightshift works from committed history only",
                repository=target.display(),
            )
    return base


def _configure_clone(repo: git.Repo) -> None:
    with repo.config_writer() as config:
        config.set_value("user", "name", os.environ.get("NIGHTSHIFT_GIT_AUTHOR_NAME", "nightshift"))
        config.set_value("user", "email", os.environ.get("NIGHTSHIFT_GIT_AUTHOR_EMAIL", "nightshift@localhost"))
        config.set_value("commit", "gpgsign", "false")
    exclude = Path(repo.git_dir) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as handle:
        handle.write("\n# nightshift: test byproducts\n" + "\n".join(LOCAL_EXCLUDES) + "\n")


def clone(target: ChangeTarget, workspace: Workspace, branch: str, *, depth: int = 1) -> CloneInfo:
    """Shallow, single-branch clone of `branch` into the workspace."""
    try:
        repo = git.Repo.clone_from(
            target.clone_url(),
            workspace.repo,
            depth=depth,
            branch=branch,
            single_branch=True,
            env=git_env(target.clone_url(), target.token),
        )
    except git.GitCommandError as exc:
        raise WorkspaceError(
            f"cloning {target.display()} ({branch}) failed: {git_problem(exc, target)}",
            repository=target.display(),
        ) from exc
    _configure_clone(repo)
    return CloneInfo(
        base_branch=branch,
        base_sha=repo.head.commit.hexsha,
        shallow=(Path(repo.git_dir) / "shallow").exists(),
    )


def _remote_branches(repo: git.Repo, target: ChangeTarget, prefix: str) -> set[str]:
    env = git_env(target.clone_url(), target.token)
    try:
        listing = str(repo.git.ls_remote("--heads", "origin", f"refs/heads/{prefix}*", env=env))
    except git.GitCommandError as exc:
        raise WorkspaceError(f"listing branches of {target.display()} failed: {git_problem(exc, target)}") from exc
    return {line.split("refs/heads/", 1)[1] for line in listing.splitlines() if "refs/heads/" in line}


def start_branch(workspace: Workspace, target: ChangeTarget, name: str) -> str:
    """Create and check out `name`, or `name-2`, `name-3`... when the remote already has it."""
    repo = git.Repo(workspace.repo)
    taken = _remote_branches(repo, target, name)
    chosen = name
    counter = 2
    while chosen in taken:
        chosen = f"{name}-{counter}"
        counter += 1
    repo.git.checkout("-b", chosen)
    return chosen


def worktree_diff(workspace: Workspace, base_sha: str) -> DiffInfo:
    """Everything that differs from `base_sha`: committed, staged, unstaged and new files."""
    repo = git.Repo(workspace.repo)
    repo.git.add("--intent-to-add", "--all")
    return DiffInfo(
        base_sha=base_sha,
        patch=str(repo.git.diff(base_sha)),
        stat=str(repo.git.diff("--stat", base_sha)),
        files=[f for f in str(repo.git.diff("--name-only", base_sha)).splitlines() if f],
    )


def commit_all(workspace: Workspace, message: str) -> CommitInfo | None:
    """Stage everything and commit it; None when there is nothing to commit."""
    repo = git.Repo(workspace.repo)
    repo.git.add("--all")
    files = [f for f in str(repo.git.diff("--cached", "--name-only")).splitlines() if f]
    if not files:
        return None
    repo.git.commit("--no-verify", "-m", message)
    return CommitInfo(sha=repo.head.commit.hexsha, branch=repo.active_branch.name, message=message, files=files)


def push_branch(workspace: Workspace, target: ChangeTarget, branch: str) -> PushInfo:
    """Push HEAD to `refs/heads/<branch>` on origin and check that the remote now has exactly it."""
    repo = git.Repo(workspace.repo)
    env = git_env(target.clone_url(), target.token)
    sha = repo.head.commit.hexsha
    try:
        repo.git.push("--porcelain", "origin", f"HEAD:refs/heads/{branch}", env=env)
    except git.GitCommandError as exc:
        detail = git_problem(exc, target)
        raise PushRejectedError(
            f"{target.display()} refused the push of branch {branch!r}: {detail}", branch=branch, detail=detail
        ) from exc
    remote_sha = str(repo.git.ls_remote("--heads", "origin", f"refs/heads/{branch}", env=env)).split("\t", 1)[0]
    if remote_sha != sha:
        raise PushRejectedError(
            f"after the push, {target.display()} has {branch!r} at {remote_sha or 'nothing'}, not {sha}",
            branch=branch,
        )
    return PushInfo(branch=branch, sha=sha, remote=target.display())


def fetch_branch(workspace: Workspace, target: ChangeTarget, ref: str, local_ref: str, *, depth: int) -> str:
    """Fetch `ref` of origin into `local_ref`; returns its sha."""
    repo = git.Repo(workspace.repo)
    try:
        env = git_env(target.clone_url(), target.token)
        repo.git.fetch(f"--depth={depth}", "origin", f"+{ref}:{local_ref}", env=env)
    except git.GitCommandError as exc:
        raise WorkspaceError(f"fetching {ref} from {target.display()} failed: {git_problem(exc, target)}") from exc
    return str(repo.git.rev_parse(local_ref))


def merge_base(workspace: Workspace, target: ChangeTarget, base_ref: str, head_ref: str) -> str:
    """The fork point of head from base, deepening the shallow history until it is found."""
    repo = git.Repo(workspace.repo)
    env = git_env(target.clone_url(), target.token)
    for deepen in ("--deepen=200", "--unshallow"):
        try:
            return str(repo.git.merge_base(base_ref, head_ref))
        except git.GitCommandError:
            if not (Path(repo.git_dir) / "shallow").exists():
                break
            try:
                repo.git.fetch(deepen, "origin", env=env)
            except git.GitCommandError as exc:
                raise WorkspaceError(f"fetching history of {target.display()} failed: {git_problem(exc)}") from exc
    try:
        return str(repo.git.merge_base(base_ref, head_ref))
    except git.GitCommandError as exc:
        raise WorkspaceError(f"{head_ref} and {base_ref} share no history in {target.display()}") from exc


def range_diff(workspace: Workspace, base_sha: str, head_sha: str) -> DiffInfo:
    repo = git.Repo(workspace.repo)
    return DiffInfo(
        base_sha=base_sha,
        patch=str(repo.git.diff(base_sha, head_sha)),
        stat=str(repo.git.diff("--stat", base_sha, head_sha)),
        files=[f for f in str(repo.git.diff("--name-only", base_sha, head_sha)).splitlines() if f],
    )


class ReviewCheckout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    head_sha: str
    merge_base: str
    diff: DiffInfo


def checkout_for_review(
    target: ChangeTarget,
    workspace: Workspace,
    base: str,
    *,
    head_branch: str | None,
    pull_number: int | None,
    depth: int,
) -> ReviewCheckout:
    """Clone the reviewed head (a branch, or GitHub's `refs/pull/<n>/head`), fetch the base, and diff the
    head against their merge base: what the change itself adds, whatever happened on the base since."""
    if pull_number is None:
        if head_branch is None:
            raise WorkspaceError("nothing to review: give a branch or a pull request number")
        require_branch(target, head_branch, role="branch to review")
        head_sha = clone(target, workspace, head_branch, depth=depth).base_sha
    else:
        clone(target, workspace, base, depth=depth)
        head_sha = fetch_branch(workspace, target, f"refs/pull/{pull_number}/head", "refs/nightshift/head", depth=depth)
        checkout(workspace, head_sha)
    fetch_branch(workspace, target, f"refs/heads/{base}", "refs/nightshift/base", depth=depth)
    fork = merge_base(workspace, target, "refs/nightshift/base", head_sha)
    return ReviewCheckout(head_sha=head_sha, merge_base=fork, diff=range_diff(workspace, fork, head_sha))
