"""`AgentSettings`: how nightshift's deployments reach the agent CLI and its model API, saved in Prefect.

    AgentSettings(api_key=SecretStr("sk-ant-..."), concurrency=2).save("default")

Flow runs of the deployments load the document named by `NIGHTSHIFT_AGENT_SETTINGS_BLOCK` (prefect.yaml
sets `default`) through `flows.common.agent_settings`; a field left empty falls back to the worker's
environment (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, ...). Without an API key anywhere, the agent
workers run their local fallback and say so in their report.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from nightshift.agents.claude import ClaudeSettings


class AgentSettings(Block):
    """Which agent CLI nightshift runs headless, with which credentials, and how many at once."""

    _block_type_name: ClassVar[str] = "Nightshift Agent Settings"
    _block_type_slug: ClassVar[str] = "nightshift-agent-settings"
    _description: ClassVar[str] = (
        "The coding-agent CLI nightshift's workers run headless (Claude Code), its API key and endpoint, and "
        "how many agent runs may be alive at once. Empty fields fall back to the worker's environment."
    )

    backend: Literal["claude"] = Field(
        default="claude", description="Agent CLI to run. Claude Code is the only backend so far."
    )
    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="Anthropic API key (ANTHROPIC_API_KEY). Empty: the worker's environment, else no agent "
        "runs and the analysis workers fall back to local analysis.",
    )
    base_url: str | None = Field(
        default=None,
        title="API base URL",
        description="ANTHROPIC_BASE_URL, e.g. a proxy or gateway. Empty: Anthropic's API.",
    )
    binary: str | None = Field(
        default=None,
        description="Path of the `claude` executable on the worker. Empty: the one scripts/setup.sh installed.",
    )
    fallback_model: str | None = Field(
        default=None, description="Model alias used when the chosen model is overloaded, e.g. `sonnet`."
    )
    max_api_retries: int | None = Field(
        default=None,
        ge=0,
        title="CLI API retries",
        description="How often the CLI itself retries a failed API call (CLAUDE_CODE_MAX_RETRIES). Empty: its "
        "default (10, with backoff up to ~3 min).",
    )
    concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Agent runs alive at once across all workers: the size of the global concurrency limit "
        "`agent-<backend>` (applied by `python -m deployments.bootstrap` / `nightshift up`).",
    )

    def claude_settings(self, fallback: ClaudeSettings | None = None) -> ClaudeSettings:
        """The adapter settings: this block's fields, the empty ones taken from `fallback` (the environment)."""
        base = fallback or ClaudeSettings()
        return ClaudeSettings(
            binary=Path(self.binary) if self.binary else base.binary,
            base_url=self.base_url or base.base_url,
            api_key=self.api_key if self.api_key is not None and self.api_key.get_secret_value() else base.api_key,
            fallback_model=self.fallback_model or base.fallback_model,
            max_api_retries=self.max_api_retries if self.max_api_retries is not None else base.max_api_retries,
        )
