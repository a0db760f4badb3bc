"""Findings: the one shape every worker (agent, local or hybrid) reports problems in."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

FindingSource = Literal["agent", "local", "hybrid"]


class Severity(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"

    @property
    def rank(self) -> int:
        return ["critical", "high", "medium", "low", "info"].index(self.value)


_SPACES = re.compile(r"\s+")


class Finding(BaseModel):
    """One problem a worker found, with a fingerprint that is stable across runs."""

    model_config = ConfigDict(extra="forbid")

    worker: str = Field(description="worker type that reported it, e.g. 'audit'")
    rule: str = Field(description="what kind of finding: an analyzer rule id, or 'agent'")
    severity: Severity
    file: str | None = Field(default=None, description="path relative to the repository root")
    line: int | None = Field(default=None, ge=0)
    title: str
    description: str = ""
    source: FindingSource = "agent"

    @model_validator(mode="before")
    @classmethod
    def _derived_fingerprint_is_not_input(cls, data: Any) -> Any:
        """A dumped finding carries its fingerprint; it is recomputed, not read back."""
        if isinstance(data, dict) and "fingerprint" in data:
            data = {k: v for k, v in data.items() if k != "fingerprint"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fingerprint(self) -> str:
        """Same problem, same fingerprint: line numbers are left out so edits above it do not churn it."""
        title = _SPACES.sub(" ", self.title.strip().lower())
        key = "\x1f".join([self.worker, self.rule, self.file or "", title])
        return hashlib.sha256(key.encode()).hexdigest()[:16]
