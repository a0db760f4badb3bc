"""Agent-only workers without an agent: a clear, non-failing result; and the local entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_local_repos import make_repo

from nightshift.errors import ConfigError
from nightshift.local.models import LocalResult
from nightshift.local.needs_agent import NeedsAgent, needs_agent_result
from nightshift.local.workers import LOCAL_ANALYSES, has_local_analysis, run_local


def test_needs_agent_is_a_completed_result_that_says_why_and_how() -> None:
    result = needs_agent_result("deepdive", "the Claude Code CLI is not installed")
    assert result.status == "needs-agent"
    assert result.findings == []
    assert result.tables == {}
    assert result.report is not None
    needs = NeedsAgent.model_validate(result.report)
    assert needs.reason == "the Claude Code CLI is not installed"
    assert not needs.retryable
    assert "ANTHROPIC_API_KEY" in needs.how_to_enable
    assert "scripts/setup.sh" in needs.how_to_enable
    assert "needs an agent" in result.summary_markdown
    assert "not a failure" in result.summary_markdown
    assert result.summary_markdown.startswith("**Local analysis (no AI agent).**")
    assert LocalResult.model_validate_json(result.model_dump_json()) == result


def test_run_local_dispatches(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"m.py": "def f():\n    return 1\n"})
    assert run_local("ultralearn", root, no_agent_reason="no credentials").status == "needs-agent"
    mapped = run_local("map", root)
    assert mapped.worker == "map"
    assert mapped.tables["modules"][0]["module"] == "m"
    documented = run_local("document", root)
    assert [f.rule for f in documented.findings] == ["D100", "D103"]
    assert has_local_analysis("audit")
    assert not has_local_analysis("deepdive")
    assert set(LOCAL_ANALYSES) == {"map", "audit", "testgaps", "document", "refactor", "optimize", "predict"}
    with pytest.raises(ConfigError, match="no local analysis"):
        run_local("consolidate", root)


def test_local_result_forbids_extra_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        LocalResult.model_validate({"worker": "map", "method": "m", "summary_markdown": "s", "oops": 1})
