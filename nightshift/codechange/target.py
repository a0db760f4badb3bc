"""The repository a code-change run works on, and the names derived from it and from the task.

A repository is a URL (https, ssh, git, file) or a local path. Local paths are cloned through a
`file://` URL: git ignores `--depth` for plain local paths, so only the URL form gives the shallow
clone every run starts from. Credentials never travel in the URL: a token comes from the
`RepositoryTarget` block as a `SecretStr` and reaches git through its environment (`gitauth.py`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from nightshift.errors import ConfigError

PermissionLevel = Literal["autonomous", "supervised", "human-required"]

_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG = 48


class ChangeTarget(BaseModel):
    """Where to work: repository, base branch, how to test, and the token (secret) to push with."""

    model_config = ConfigDict(extra="forbid")

    repository: str = Field(min_length=1, description="URL (https/ssh/git/file) or local path")
    base_branch: str | None = Field(default=None, description="None: the remote's default branch")
    test_command: str | None = Field(default=None, description="shell command run in the clone; None: no tests")
    test_timeout_s: float = Field(default=900.0, gt=0)
    token: SecretStr | None = Field(default=None, description="for https remotes and the GitHub API")

    @field_validator("repository")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        value = value.strip()
        if is_url(value) and urlsplit(value).password:
            raise ValueError("the repository URL carries a password or token: put it in a RepositoryTarget block")
        return value

    @field_validator("base_branch", "test_command")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def is_local(self) -> bool:
        return not is_url(self.repository)

    def clone_url(self) -> str:
        """What git clones: URLs as given, local paths as `file://` URLs (so `--depth` applies)."""
        if not self.is_local:
            return self.repository
        return Path(self.repository).expanduser().resolve().as_uri()

    def display(self) -> str:
        """The repository as shown to people: any user part of a URL removed."""
        if self.is_local:
            return str(Path(self.repository).expanduser())
        if _SCP_LIKE.match(self.repository):
            return self.repository
        parts = urlsplit(self.repository)
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_url(repository: str) -> bool:
    return repository.startswith(_URL_SCHEMES) or bool(_SCP_LIKE.match(repository))


def slugify(text: str, max_len: int = MAX_SLUG) -> str:
    """`Add a farewell() helper!` → `add-a-farewell-helper`; cut at a word boundary; never empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[: max_len + 1]
        slug = cut[: cut.rfind("-")] if "-" in cut[1:] else slug[:max_len]
    return slug.strip("-") or "change"


def branch_name(kind: str, task: str) -> str:
    """`nightshift/<kind>/<slug of the task's first line>`."""
    first_line = next((line for line in task.strip().splitlines() if line.strip()), task)
    return f"nightshift/{kind}/{slugify(first_line)}"


def target_key(target: ChangeTarget) -> str:
    """Artifact-key-safe name of the repository: `<name>-<hash of where it lives>`."""
    location = target.clone_url()
    name = location.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    slug = _NOT_SLUG.sub("-", name.lower()).strip("-")[:40] or "repo"
    return f"{slug}-{hashlib.sha256(location.encode()).hexdigest()[:8]}"


def resolve_target(
    *,
    repository: str | None,
    base_branch: str | None,
    test_command: str | None,
    block: ChangeTarget | None = None,
) -> ChangeTarget:
    """Explicit flow parameters win over the block's values; the token only ever comes from the block."""
    if block is None and not repository:
        raise ConfigError("give a repository (URL or path) or the name of a RepositoryTarget block")
    fields = block.model_dump() if block is not None else {}  # python mode: the token stays a SecretStr
    for name, value in (("repository", repository), ("base_branch", base_branch), ("test_command", test_command)):
        if value:
            fields[name] = value
    try:
        return ChangeTarget.model_validate(fields)
    except ValueError as exc:
        raise ConfigError(f"invalid repository target: {exc}") from exc
