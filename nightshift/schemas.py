"""Report schemas of the JSON workers. Each is passed to the agent CLI as `--json-schema`
and validates what comes back; local fallbacks fill the same models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TriageVerdict(BaseModel):
    """The agent's verdict on one finding of the local analyzers (hybrid runs)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="the local finding's id as listed in the prompt, e.g. L3")
    verdict: Literal["confirm", "dismiss"]
    reason: str


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    triage: list[TriageVerdict] = Field(
        default_factory=list, description="verdicts on the listed local-analyzer findings, when any are listed"
    )

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema()


class Vulnerability(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Literal["high", "medium", "low"]
    file: str = Field(description="path relative to the repository root")
    line: int = Field(ge=0, description="1-based line, 0 when the whole file is concerned")
    description: str


class AuditReport(_Report):
    vulnerabilities: list[Vulnerability]
    riskScore: int = Field(ge=0, le=100, description="0 = no risk, 100 = critical exposure")
    recommendations: list[str]


class Prediction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    likelihood: float = Field(ge=0, le=1, description="chance this file is edited next")
    reason: str


class PredictReport(_Report):
    predictions: list[Prediction]
    summary: str


class Lesson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str
    insight: str
    files: list[str] = Field(default_factory=list)


class UltralearnReport(_Report):
    lessons: list[Lesson]
    conventions: list[str]
    open_questions: list[str]
