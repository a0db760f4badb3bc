"""The Claude adapter's pure argv/env builders, tested as lists and dicts."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from nightshift.agents.base import AgentRequest
from nightshift.agents.claude import ClaudeSettings, build_argv, build_env

BIN = Path("/opt/claude")


def test_minimal_request() -> None:
    request = AgentRequest(prompt="hello", cwd=Path("/repo"))
    assert build_argv(request, BIN) == [
        "/opt/claude", "-p", "--output-format", "stream-json", "--verbose",
        "--model", "sonnet", "--permission-mode", "default",
    ]  # fmt: skip


def test_every_option() -> None:
    session = uuid.UUID("12345678-1234-5678-1234-567812345678")
    request = AgentRequest(
        prompt="do it",
        cwd=Path("/repo"),
        model="haiku",
        max_turns=7,
        permission_mode="acceptEdits",
        tools=["Read", "Grep", "Glob"],
        allowed_tools=["Read", "Grep"],
        disallowed_tools=["Bash", "Write"],
        append_system_prompt="Be brief.",
        json_schema={"type": "object", "properties": {"a": {"type": "integer"}}},
        session_id=session,
        max_budget_usd=0.5,
    )
    assert build_argv(request, BIN, fallback_model="sonnet") == [
        "/opt/claude", "-p", "--output-format", "stream-json", "--verbose",
        "--model", "haiku", "--permission-mode", "acceptEdits",
        "--fallback-model", "sonnet",
        "--max-turns", "7",
        "--tools", "Read,Grep,Glob",
        "--allowedTools", "Read,Grep",
        "--disallowedTools", "Bash,Write",
        "--append-system-prompt", "Be brief.",
        "--json-schema", '{"properties":{"a":{"type":"integer"}},"type":"object"}',
        "--session-id", "12345678-1234-5678-1234-567812345678",
        "--max-budget-usd", "0.5",
    ]  # fmt: skip


def test_resume() -> None:
    request = AgentRequest(prompt="the answer is 42", cwd=Path("/repo"), resume_id="abc-123")
    argv = build_argv(request, BIN)
    assert argv[-2:] == ["--resume", "abc-123"]
    assert "--session-id" not in argv


def test_prompt_and_secrets_never_in_argv() -> None:
    request = AgentRequest(
        prompt="SECRET-PROMPT-TEXT",
        cwd=Path("/repo"),
        secret_env={"GITHUB_TOKEN": SecretStr("ghp_s3cr3t")},
    )
    settings = ClaudeSettings(api_key=SecretStr("sk-ant-k3y"), base_url="http://127.0.0.1:9")
    argv = " ".join(build_argv(request, BIN))
    for secret in ("SECRET-PROMPT-TEXT", "ghp_s3cr3t", "sk-ant-k3y"):
        assert secret not in argv
    env = build_env(request, Path("/home/run"), settings, parent={"PATH": "/bin"})
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-k3y"
    assert env["GITHUB_TOKEN"] == "ghp_s3cr3t"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert "sk-ant-k3y" not in repr(settings)


def test_env_is_minimal_and_home_is_ours() -> None:
    request = AgentRequest(prompt="x", cwd=Path("/repo"), extra_env={"FOO": "bar"})
    parent = {"PATH": "/usr/bin", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "leak", "LANG": "C.UTF-8"}
    env = build_env(request, Path("/tmp/h"), ClaudeSettings(), parent=parent)
    assert env["HOME"] == "/tmp/h"
    assert env["PATH"] == "/usr/bin"
    assert env["LANG"] == "C.UTF-8"
    assert env["FOO"] == "bar"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "ANTHROPIC_API_KEY" not in env


def test_secret_looking_plain_env_is_refused() -> None:
    with pytest.raises(ValidationError, match="secret_env"):
        AgentRequest(prompt="x", cwd=Path("/repo"), extra_env={"OPENAI_API_KEY": "sk-..."})


def test_dated_model_ids_are_refused() -> None:
    with pytest.raises(ValidationError):
        AgentRequest(prompt="x", cwd=Path("/repo"), model="claude-3-5-sonnet-20241022")  # type: ignore[arg-type]


def test_new_session_and_resume_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="only one"):
        AgentRequest(prompt="x", cwd=Path("/repo"), session_id=uuid.uuid4(), resume_id="abc")
