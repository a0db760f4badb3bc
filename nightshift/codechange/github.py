"""GitHub, behind a small interface: is the remote on GitHub, and what would we send it.

Only remotes on github.com are GitHub remotes (https, ssh and scp-like forms); every other remote
gets the pushed branch plus the diff artifact instead of a pull request. The payloads are plain
models so the decision and the exact request body are testable offline; `PyGithubClient` is the
one place that talks to the API (with the token of the `RepositoryTarget` block).
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

from github import Auth, Github, GithubException
from github.PullRequest import ReviewComment
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nightshift.codechange.review import ReviewFinding, ReviewReport, split_by_diff
from nightshift.codechange.target import PermissionLevel
from nightshift.errors import ConfigError, PullRequestError

GITHUB_HOSTS = frozenset({"github.com", "www.github.com"})
_GITHUB_URL = re.compile(
    r"^(?:https?://(?:[^@/]+@)?(?P<h1>[^/:]+)(?::\d+)?/|ssh://(?:[^@/]+@)?(?P<h2>[^/:]+)(?::\d+)?/|"
    r"[\w.-]+@(?P<h3>[^:/]+):)(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?$"
)
MAX_INLINE_COMMENTS = 50


class GitHubRepo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def github_repo_of(url: str) -> GitHubRepo | None:
    """The GitHub repository a remote URL points at, or None when the remote is not on GitHub."""
    match = _GITHUB_URL.match(url.strip())
    if match is None:
        return None
    host = (match.group("h1") or match.group("h2") or match.group("h3") or "").lower()
    if host not in GITHUB_HOSTS:
        return None
    return GitHubRepo(owner=match.group("owner"), name=match.group("name"))


def pull_request_repo(url: str, level: PermissionLevel, *, has_token: bool) -> GitHubRepo | None:
    """Where a change's pull request is opened: None when autonomous (push only) or not on GitHub
    (branch + diff artifact). A GitHub remote without a token is refused before any work is done."""
    repo = github_repo_of(url)
    if repo is None or level == "autonomous":
        return None
    if not has_token:
        raise ConfigError(
            f"{repo.full_name} is on GitHub and the permission level {level!r} opens a pull request: "
            "give a RepositoryTarget block with a token, or use permission_level='autonomous'"
        )
    return repo


class PullRequestPayload(BaseModel):
    """Body of `POST /repos/{owner}/{repo}/pulls`."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=256)
    body: str
    head: str = Field(description="the pushed branch")
    base: str
    draft: bool = False
    maintainer_can_modify: bool = True


class InlineComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    line: int = Field(ge=1)
    side: Literal["RIGHT"] = "RIGHT"
    body: str


class ReviewPayload(BaseModel):
    """Body of `POST /repos/{owner}/{repo}/pulls/{number}/reviews`."""

    model_config = ConfigDict(extra="forbid")

    commit_id: str
    event: Literal["COMMENT", "REQUEST_CHANGES", "APPROVE"] = "COMMENT"
    body: str
    comments: list[InlineComment] = Field(default_factory=list)


def _comment_text(finding: ReviewFinding) -> str:
    return f"**{finding.severity.value}** — {finding.comment}"


def review_payload(report: ReviewReport, patch: str, commit_id: str) -> ReviewPayload:
    """Findings on diff lines become inline comments; the rest are listed in the review body.

    The event is always COMMENT: a bot's review informs, the humans decide."""
    inline, general = split_by_diff(report.ranked(), patch)
    overflow = inline[MAX_INLINE_COMMENTS:]
    body = [f"### nightshift review\n\n{report.summary.strip()}"]
    outside = general + overflow
    if outside:
        body.append("\n**Findings outside the diff's lines:**\n")
        body += [f"- `{f.file}:{f.line}` {_comment_text(f)}" for f in outside]
    if not report.findings:
        body.append("\nNo findings.")
    return ReviewPayload(
        commit_id=commit_id,
        body="\n".join(body),
        comments=[InlineComment(path=f.file, line=f.line, body=_comment_text(f)) for f in inline[:MAX_INLINE_COMMENTS]],
    )


class PullRequestRefs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int
    base: str
    head_sha: str
    url: str


class GitHubClient(Protocol):
    def open_pull_request(self, repo: GitHubRepo, payload: PullRequestPayload) -> str:
        """Open the pull request; returns its URL."""
        ...

    def pull_request_refs(self, repo: GitHubRepo, number: int) -> PullRequestRefs: ...

    def post_review(self, repo: GitHubRepo, number: int, payload: ReviewPayload) -> str:
        """Post the review; returns its URL."""
        ...


class PyGithubClient:
    """`GitHubClient` on PyGithub; every API failure is a `PullRequestError` with GitHub's message."""

    def __init__(self, token: SecretStr, base_url: str = "https://api.github.com") -> None:
        self._github = Github(auth=Auth.Token(token.get_secret_value()), base_url=base_url, retry=2, timeout=30)

    def open_pull_request(self, repo: GitHubRepo, payload: PullRequestPayload) -> str:
        try:
            pull = self._github.get_repo(repo.full_name).create_pull(**payload.model_dump())
        except GithubException as exc:
            raise PullRequestError(f"GitHub refused the pull request on {repo.full_name}: {exc.data}") from exc
        return str(pull.html_url)

    def pull_request_refs(self, repo: GitHubRepo, number: int) -> PullRequestRefs:
        try:
            pull = self._github.get_repo(repo.full_name).get_pull(number)
        except GithubException as exc:
            raise PullRequestError(f"GitHub: pull request #{number} of {repo.full_name}: {exc.data}") from exc
        return PullRequestRefs(number=number, base=pull.base.ref, head_sha=pull.head.sha, url=pull.html_url)

    def post_review(self, repo: GitHubRepo, number: int, payload: ReviewPayload) -> str:
        try:
            github_repo = self._github.get_repo(repo.full_name)
            pull = github_repo.get_pull(number)
            comments: list[ReviewComment] = [
                {"path": c.path, "line": c.line, "side": c.side, "body": c.body} for c in payload.comments
            ]
            review = pull.create_review(
                commit=github_repo.get_commit(payload.commit_id),
                body=payload.body,
                event=payload.event,
                comments=comments,
            )
        except GithubException as exc:
            raise PullRequestError(f"GitHub refused the review of #{number} on {repo.full_name}: {exc.data}") from exc
        return str(review.html_url)
