"""Agent adapters: one module per coding-agent CLI behind the interface of `base`."""

from nightshift.agents.base import AgentAdapter, AgentOutcome, AgentRequest
from nightshift.agents.claude import ClaudeAdapter, ClaudeSettings

__all__ = ["AgentAdapter", "AgentOutcome", "AgentRequest", "ClaudeAdapter", "ClaudeSettings"]
