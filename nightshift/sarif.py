"""SARIF 2.1.0 for audit reports, so GitHub code scanning (and any SARIF viewer) can show them."""

from __future__ import annotations

from typing import Any

from nightshift import __version__
from nightshift.findings import Finding, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.critical: "error",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}
_SECURITY_SEVERITY = {
    Severity.critical: "9.5",
    Severity.high: "8.0",
    Severity.medium: "5.5",
    Severity.low: "3.0",
}


def to_sarif(
    findings: list[Finding], *, tool_name: str, run_properties: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One SARIF log with one run; rules are the findings' distinct rule ids."""
    rule_ids = sorted({f.rule for f in findings})
    rules = [
        {
            "id": rule_id,
            "name": rule_id.replace("/", "-"),
            "shortDescription": {"text": rule_id},
            "properties": {"tags": ["security"]},
        }
        for rule_id in rule_ids
    ]
    results = []
    for finding in findings:
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "ruleIndex": rule_ids.index(finding.rule),
            "level": _LEVEL[finding.severity],
            "message": {"text": finding.description or finding.title},
            "partialFingerprints": {"nightshift/v1": finding.fingerprint},
            "properties": {"severity": finding.severity.value, "source": finding.source},
        }
        if finding.severity in _SECURITY_SEVERITY:
            result["properties"]["security-severity"] = _SECURITY_SEVERITY[finding.severity]
        if finding.file:
            region = {"startLine": max(1, finding.line or 1)}
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": finding.file, "uriBaseId": "SRCROOT"},
                        "region": region,
                    }
                }
            ]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": tool_name,
                        "version": __version__,
                        "informationUri": "https://github.com/nightshift/nightshift",
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"SRCROOT": {"description": {"text": "repository root"}}},
                "results": results,
                "properties": run_properties or {},
            }
        ],
    }
