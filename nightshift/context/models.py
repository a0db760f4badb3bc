"""The result shapes of context gathering.

A `ContextBundle` is what a worker renders into its prompt: the selected files (already
redacted), every file that was left out with the reason why, every secret that was
redacted (as a `SecretHit`, which never carries the value), and a `tree_hash` of the
candidate files so a worker can skip a run when nothing it would see has changed.

Token counts are estimates: ceil(characters / 4), no tokenizer is consulted.
"""

# The secret kinds below are names, not secrets:
# ruff: noqa: S105

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

TOKEN_ESTIMATE: Literal["ceil(chars/4)"] = "ceil(chars/4)"


class SecretKind(StrEnum):
    """Stable names of the kinds of secret `find_secrets` reports."""

    private_key = "private-key"
    aws_access_key_id = "aws-access-key-id"
    aws_secret_access_key = "aws-secret-access-key"
    github_token = "github-token"
    anthropic_key = "anthropic-key"
    openai_key = "openai-key"
    slack_token = "slack-token"
    slack_webhook = "slack-webhook"
    google_api_key = "google-api-key"
    jwt = "jwt"
    url_credentials = "url-credentials"
    env_value = "env-value"
    generic_secret = "generic-secret"


class SecretHit(BaseModel):
    """One secret found in a file. `preview` is the line with the secret redacted, never the value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="path relative to the repository root")
    line: int = Field(ge=1, description="1-based line where the secret starts")
    kind: SecretKind
    preview: str = Field(description="the line with every secret on it replaced by [REDACTED:<kind>]")


class SkipCode(StrEnum):
    """Why a candidate file is not in the bundle (the `reason` text says it for people)."""

    excluded = "excluded"
    vendored = "vendored"
    generated = "generated"
    binary = "binary"
    too_large = "too-large"
    minified = "minified"
    empty = "empty"
    symlink = "symlink"
    not_a_file = "not-a-file"
    missing = "missing"
    unreadable = "unreadable"
    over_budget = "over-budget"


class SkippedFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    code: SkipCode
    reason: str


class ContextFile(BaseModel):
    """A selected file. `content` is redacted (and maybe truncated).

    `sha256` is of the file on disk, or of the redacted content when secrets were redacted:
    the hash of the original would let a weak secret be confirmed by guessing offline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="path relative to the repository root, '/'-separated")
    content: str
    tokens: int = Field(ge=0, description=f"estimated tokens of `content`: {TOKEN_ESTIMATE}")
    reasons: list[str] = Field(description="why the file was selected and ranked where it is")
    truncated: bool = False
    sha256: str


class ContextBundle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="absolute, resolved repository path")
    files: list[ContextFile] = Field(description="selected files, best ranked first")
    skipped: list[SkippedFile]
    redactions: list[SecretHit]
    total_tokens: int = Field(ge=0, description=f"sum of the files' tokens ({TOKEN_ESTIMATE})")
    budget_tokens: int = Field(gt=0, description="token budget of one prompt (one chunk)")
    chunks: list[list[ContextFile]] = Field(
        description="the files split into prompts each within budget_tokens; one chunk unless chunking is on"
    )
    tree_hash: str = Field(
        description="sha256 over the candidate files' paths and content hashes, for skip-if-fresh; "
        "it covers unredacted contents, so keep it local"
    )
    token_estimate: Literal["ceil(chars/4)"] = TOKEN_ESTIMATE
    listed_with: Literal["git", "filesystem"] = Field(
        description="'git': git ls-files -co --exclude-standard; 'filesystem': a walk honouring .gitignore"
    )

    @model_validator(mode="after")
    def _chunks_hold_the_files(self) -> Self:
        chunked = sorted(f.path for chunk in self.chunks for f in chunk)
        if chunked != sorted(f.path for f in self.files):
            raise ValueError("chunks must hold every selected file exactly once")
        return self
