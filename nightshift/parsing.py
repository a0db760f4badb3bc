"""Turning an agent's answer into validated models.

JSON workers: the CLI's `structured_output` first, else a tolerant extraction from the final text
(the whole text, a fenced ```json block, or the first balanced {...}), then pydantic validation.
Markdown workers: `## ` sections, and findings from bullets of the form
`- [severity] path:line — title: description`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nightshift.findings import Finding, FindingSource, Severity
from nightshift.schemas import AuditReport, PredictReport, TriageVerdict, UltralearnReport, _Report

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)\n```", re.DOTALL)
_SECTION = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)
_FINDING = re.compile(
    r"^\s*[-*]\s*\[(?P<sev>critical|high|medium|low|info)\]\s*`?(?P<file>[^`\s:]+)(?::(?P<line>\d+))?`?"
    r"\s*(?:—|–|-{1,2}|:)\s*(?P<title>[^:\n]+?)(?::\s*(?P<desc>.*))?$",
    re.IGNORECASE | re.MULTILINE,
)


class ParsedJson(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    report: _Report | None
    errors: list[str]
    raw: str


def _balanced_object(text: str) -> str | None:
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for index in range(start, len(text)):
            char = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[start : index + 1]
        start = text.find("{", start + 1)
    return None


def extract_json(text: str) -> Any:
    """The JSON value in a model's text answer; raises ValueError when there is none."""
    candidates = [text.strip(), *(m.group(1) for m in _FENCE.finditer(text))]
    balanced = _balanced_object(text)
    if balanced:
        candidates.append(balanced)
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, TypeError):
            continue
    raise ValueError("no JSON object found in the answer")


def _error_lines(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()]


def parse_json_report(structured: Any, text: str, schema: type[_Report]) -> ParsedJson:
    """Validate the structured output (or the JSON found in `text`) against `schema`."""
    raw = json.dumps(structured) if structured is not None else text
    if structured is not None:
        value = structured
    else:
        try:
            value = extract_json(text)
        except ValueError as exc:
            return ParsedJson(report=None, errors=[str(exc)], raw=raw)
    try:
        return ParsedJson(report=schema.model_validate(value), errors=[], raw=raw)
    except ValidationError as exc:
        return ParsedJson(report=None, errors=_error_lines(exc), raw=raw)


_TRIAGE = re.compile(
    r"^\s*[-*]\s*`?(?P<id>L\d+)`?\s*[:—–-]\s*\**(?P<verdict>confirm|dismiss)\w*\**\s*(?:[:—–-]\s*)?(?P<reason>.*)$",
    re.IGNORECASE | re.MULTILINE,
)


class MarkdownReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str
    sections: dict[str, str]
    findings: list[Finding]
    triage: list[TriageVerdict] = Field(default_factory=list)


def parse_markdown_report(text: str, worker: str, *, source: FindingSource = "agent") -> MarkdownReport:
    """Sections by `## ` heading; findings from the bullet format the prompt asks for."""
    sections: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        sections[match.group(1).strip()] = text[match.end() : end].strip()
    findings_text = sections.get("Findings", text if not matches else "")
    findings = [
        Finding(
            worker=worker,
            rule="agent",
            severity=Severity(m.group("sev").lower()),
            file=m.group("file"),
            line=int(m.group("line")) if m.group("line") else None,
            title=m.group("title").strip().strip("`"),
            description=(m.group("desc") or "").strip(),
            source=source,
        )
        for m in _FINDING.finditer(findings_text)
    ]
    summary = sections.get("Summary") or (text.strip().split("\n\n", 1)[0] if text.strip() else "")
    triage = [
        TriageVerdict(id=m.group("id").upper(), verdict=m.group("verdict").lower(), reason=m.group("reason").strip())
        for m in _TRIAGE.finditer(sections.get("Triage", ""))
    ]
    return MarkdownReport(summary=summary, sections=sections, findings=findings, triage=triage)


_AUDIT_SEVERITY = {"high": Severity.high, "medium": Severity.medium, "low": Severity.low}


def report_findings(report: _Report, worker: str, *, source: FindingSource = "agent") -> list[Finding]:
    """The findings a JSON report carries (lessons and conventions are not findings)."""
    if isinstance(report, AuditReport):
        return [
            Finding(
                worker=worker,
                rule="vulnerability",
                severity=_AUDIT_SEVERITY[v.severity],
                file=v.file,
                line=v.line,
                title=v.description.split(". ")[0][:120],
                description=v.description,
                source=source,
            )
            for v in report.vulnerabilities
        ]
    if isinstance(report, PredictReport):
        return [
            Finding(
                worker=worker,
                rule="prediction",
                severity=Severity.info,
                file=p.file,
                title=f"likely to change next ({p.likelihood:.0%})",
                description=p.reason,
                source=source,
            )
            for p in report.predictions
        ]
    if isinstance(report, UltralearnReport):
        return []
    return []
