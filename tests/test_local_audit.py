"""Local audit: bandit and the secret scanner on a repository with planted problems."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_local_repos import AWS_KEY_ID, ENV_SECRET, make_repo, make_sample_repo

from nightshift.findings import Finding, Severity
from nightshift.local.audit import audit_repository, recommendations, risk_score, run_audit
from nightshift.schemas import AuditReport


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_repo(tmp_path_factory.mktemp("audit") / "shop")


def _finding(rule: str, severity: Severity, file: str = "x.py") -> Finding:
    return Finding(worker="audit", rule=rule, severity=severity, file=file, line=1, title=rule, source="local")


def test_bandit_finds_the_planted_vulnerabilities(sample: Path) -> None:
    from test_local_repos import line_of

    outcome = audit_repository(sample)
    found = {(f.rule, f.file, f.line, f.severity.value) for f in outcome.findings if not f.rule.startswith("secret/")}
    risky = "src/shop/risky.py"
    assert (("B602", risky, line_of(sample, risky, "MARK:shell"), "high")) in found
    assert ("B506", risky, line_of(sample, risky, "MARK:yaml"), "medium") in found
    assert ("B301", risky, line_of(sample, risky, "MARK:pickle"), "medium") in found
    assert ("B307", risky, line_of(sample, risky, "MARK:eval"), "medium") in found
    assert all(not f.file.startswith("tests/") for f in outcome.findings if f.file)
    assert outcome.secret_scanner
    assert outcome.python_files_scanned == 12  # tests/test_orders.py is not scanned by default
    with_tests = audit_repository(sample, include_tests=True)
    assert with_tests.python_files_scanned == 13
    assert [f for f in with_tests.findings if f.rule == "B101"] == []  # asserting is what tests do


def test_secrets_are_found_and_never_shown(sample: Path) -> None:
    outcome = audit_repository(sample)
    secrets = {(f.file, f.line): f for f in outcome.findings if f.rule.startswith("secret/")}
    assert secrets[("config/settings.ini", 2)].rule == "secret/aws-access-key-id"
    assert secrets[(".env", 1)].rule.startswith("secret/")
    assert all(f.severity is Severity.high for f in secrets.values())
    dumped = outcome.model_dump_json()
    assert AWS_KEY_ID not in dumped
    assert ENV_SECRET not in dumped
    assert "[REDACTED:aws-access-key-id]" in secrets[("config/settings.ini", 2)].description


def test_audit_report_fills_the_shared_schema(sample: Path) -> None:
    result = run_audit(sample)
    assert result.report is not None
    report = AuditReport.model_validate(result.report)
    by_place = {(v.file, v.line): v for v in report.vulnerabilities}
    assert by_place[("src/shop/risky.py", 10)].severity == "high"
    assert by_place[("src/shop/risky.py", 10)].description.startswith("[B602]")
    assert by_place[("config/settings.ini", 2)].severity == "high"
    # 2 secrets, 1 high (B602), 3 medium (B506, B301, B307), 2 low (B403, B404)
    assert report.riskScore == min(100, 25 * 2 + 15 * 1 + 5 * 3 + 2)
    assert report.recommendations[0].startswith("Remove the hard-coded secrets")
    assert any(r.startswith("B602") and "shell=True" in r for r in report.recommendations)
    assert any("yaml.safe_load" in r for r in report.recommendations)
    assert result.summary_markdown.startswith("**Local analysis (no AI agent).**")
    assert "bandit 1." in result.summary_markdown
    assert "bandit (in-process" in result.method
    assert "find_secrets" in result.method


def test_risk_score_formula_caps_each_severity() -> None:
    assert risk_score([]) == 0
    assert risk_score([_finding("B311", Severity.low, f"f{i}.py") for i in range(50)]) == 10
    assert risk_score([_finding("B506", Severity.medium, f"f{i}.py") for i in range(50)]) == 30
    assert risk_score([_finding("B602", Severity.high)] * 3) == 45
    assert risk_score([_finding("secret/private-key", Severity.high)] * 5) == 100


def test_recommendations_cover_unknown_rules() -> None:
    advice = recommendations([_finding("B999", Severity.low), _finding("B602", Severity.high)])
    assert advice[0].startswith("B602 (1 finding)")
    assert "B999" in advice[1]


def test_password_values_quoted_by_bandit_are_cut(tmp_path: Path) -> None:
    root = tmp_path / "pw"
    make_repo(root, {"app.py": 'password = "Zx9!correct-horse"\n'})
    outcome = audit_repository(root)
    b105 = [f for f in outcome.findings if f.rule == "B105"]
    assert b105
    assert "(value not shown)" in b105[0].title
    assert "correct-horse" not in outcome.model_dump_json()


def test_clean_repository_scores_zero(tmp_path: Path) -> None:
    root = tmp_path / "clean"
    make_repo(root, {"ok.py": '"""Fine."""\n\n\ndef add(a, b):\n    return a + b\n', "notes.md": "hello\n"})
    result = run_audit(root)
    assert result.findings == []
    report = AuditReport.model_validate(result.report)
    assert (report.vulnerabilities, report.riskScore, report.recommendations) == ([], 0, [])
