"""audit, locally: bandit on the Python files and the shared secret scanner on every text file.

* **bandit** runs in-process (`BanditManager`, default profile, every plugin) on each listed `*.py`
  file outside test code (tests/, test_*.py, *_test.py, conftest.py), as `bandit -x tests` is usually
  run; `include_tests=True` scans them too, and then `assert` in test code (B101) is still dropped:
  asserting is what tests do. Severities map one to one (HIGH → high, MEDIUM → medium, LOW → low); the
  rule is bandit's test id (`B602`). The text of the hard-coded-password tests (B105–B107) is cut
  before the value they quote.
* **secrets**: `nightshift.context.secrets.find_secrets` on every listed text file up to 1 MiB (test
  files included: a real key in a fixture leaks just the same); each hit
  is a high finding with rule `secret/<kind>`. Only its redacted preview is kept, never the value.

Files are listed with `git ls-files -co --exclude-standard`, so a .gitignored `.env` is not read (it is
not in the repository); a committed one is.

Risk score (0–100), from counts of findings by severity, each severity's share capped so that many
minor findings never look like one critical one:

    riskScore = min(100, 25·secrets + 15·high + min(30, 5·medium) + min(10, low))
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from nightshift.findings import Finding, Severity
from nightshift.local.models import (
    LocalResult,
    ToolInfo,
    findings_table,
    local_result,
    markdown_table,
    package_tool,
    python_tool,
    sort_findings,
)
from nightshift.local.repofiles import (
    decode_text,
    is_binary,
    is_test_path,
    list_files,
    python_files,
    read_bytes,
    repo_root,
)
from nightshift.schemas import AuditReport, Vulnerability

WORKER = "audit"
MAX_SECRET_SCAN_BYTES = 1024 * 1024
_BANDIT_SEVERITY = {"HIGH": Severity.high, "MEDIUM": Severity.medium, "LOW": Severity.low}
_QUOTES_VALUE = {"B105", "B106", "B107"}

RISK_FORMULA = "riskScore = min(100, 25·secrets + 15·high + min(30, 5·medium) + min(10, low))"

# What to do about a rule, keyed by bandit test id; rules not listed get a pointer to bandit's docs.
_ADVICE: dict[str, str] = {
    "B102": "Remove `exec` on data that can come from outside; dispatch to known functions instead.",
    "B103": "Do not make files world-writable; use the narrowest permissions (e.g. 0o600 / 0o644).",
    "B104": "Bind servers to 127.0.0.1 or a configured interface rather than 0.0.0.0.",
    "B105": "Move hard-coded passwords out of the code into the environment or a secret manager.",
    "B106": "Move hard-coded passwords out of the code into the environment or a secret manager.",
    "B107": "Do not give password parameters literal defaults; require them from configuration.",
    "B108": "Use `tempfile.mkstemp`/`TemporaryDirectory` instead of fixed paths under /tmp.",
    "B110": "Do not swallow exceptions with `except: pass`; log them or catch a narrow type.",
    "B112": "Do not `continue` past every exception; catch a narrow type and log it.",
    "B113": "Give every `requests` call a `timeout=` so a dead server cannot hang the process.",
    "B201": "Never run Flask with `debug=True` in production: it exposes an interactive debugger.",
    "B301": "Do not unpickle untrusted data; use JSON or another data-only format.",
    "B302": "Do not unmarshal untrusted data; use JSON or another data-only format.",
    "B303": "Replace MD5/SHA1 with SHA-256 or better (or pass `usedforsecurity=False` for non-security use).",
    "B304": "Replace weak ciphers with an authenticated modern cipher (AES-GCM, ChaCha20-Poly1305).",
    "B306": "Replace `tempfile.mktemp` with `mkstemp` or `NamedTemporaryFile` (mktemp is racy).",
    "B307": "Replace `eval` with `ast.literal_eval` or explicit parsing.",
    "B310": "Validate URL schemes before `urlopen` (it also opens file:// and custom schemes).",
    "B311": "Use `secrets` (not `random`) for tokens, passwords and anything security-related.",
    "B314": "Parse untrusted XML with `defusedxml` instead of the standard library parsers.",
    "B320": "Parse untrusted XML with `defusedxml` instead of lxml's defaults.",
    "B324": "Replace MD5/SHA1 with SHA-256 or better (or pass `usedforsecurity=False` for non-security use).",
    "B403": "Make sure pickled data only ever comes from trusted sources.",
    "B404": "Make sure subprocess arguments never include unvalidated input.",
    "B501": "Do not disable TLS certificate verification (`verify=False`).",
    "B502": "Use TLS 1.2+ only; drop SSLv2/v3 and TLS 1.0/1.1 protocol versions.",
    "B506": "Replace `yaml.load` with `yaml.safe_load` (or pass `Loader=yaml.SafeLoader`).",
    "B602": "Avoid `shell=True`: pass an argument list to subprocess so no shell parses the input.",
    "B603": "Check that subprocess arguments never include unvalidated input.",
    "B604": "Avoid `shell=True`: pass an argument list so no shell parses the input.",
    "B605": "Replace `os.system`/`os.popen` with `subprocess.run([...])` without a shell.",
    "B607": "Start processes by absolute path, or resolve the executable with `shutil.which` first.",
    "B608": "Build SQL with parameterised queries, never string formatting.",
    "B609": "Avoid wildcards in shell commands; list the files explicitly.",
    "B701": "Create jinja2 environments with `autoescape=True` (or `select_autoescape()`).",
    "B702": "Enable escaping in Mako templates (`default_filters=['h']`).",
    "B703": "Avoid `mark_safe` on data that may contain user input.",
}
LEAKED_CREDENTIALS_ADVICE = (
    "Remove the hard-coded secrets ({kinds}) from the repository, rotate them (they stay in git history), "
    "and load them from the environment or a secret manager."
)


class SkippedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    reason: str


class AuditOutcome(BaseModel):
    """Findings, the schema report, and what was scanned."""

    model_config = ConfigDict(extra="forbid")

    findings: list[Finding]
    report: AuditReport
    python_files_scanned: int
    text_files_scanned: int
    secret_scanner: bool
    skipped: list[SkippedFile]
    listed_with: str


def _quiet_bandit_import() -> Any:
    """Import bandit's manager; stevedore warns about an argument bandit passes (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The verify_requirements argument", category=DeprecationWarning)
        from bandit.core import config, extension_loader, manager  # type: ignore[import-untyped]
    return config, manager, extension_loader


def _bandit_rule_name(extension_loader: Any, test_id: str, fallback: str) -> str:
    plugin = extension_loader.MANAGER.plugins_by_id.get(test_id)
    if plugin is not None:
        return str(plugin.plugin.__name__)
    listed = extension_loader.MANAGER.blacklist_by_id.get(test_id)
    return str(listed["name"]) if listed is not None else fallback


def run_bandit(root: Path, paths: list[str]) -> tuple[list[Finding], list[SkippedFile]]:
    """bandit (in-process, default profile) on `paths`; B101 in test files is dropped."""
    bandit_config, bandit_manager, extension_loader = _quiet_bandit_import()
    # bandit draws a progress bar when its logger is at INFO or below (Prefect sets INFO); we want none.
    bandit_log = logging.getLogger("bandit")
    if bandit_log.getEffectiveLevel() < logging.WARNING:
        bandit_log.setLevel(logging.WARNING)
    manager = bandit_manager.BanditManager(bandit_config.BanditConfig(), "file")
    manager.files_list = [str(root / p) for p in paths]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        manager.run_tests()
    prefix = str(root) + "/"

    def relative(name: str) -> str:
        return name[len(prefix) :] if name.startswith(prefix) else name

    findings: list[Finding] = []
    for issue in manager.get_issue_list():
        path = relative(issue.fname)
        test_id = str(issue.test_id)
        if test_id == "B101" and is_test_path(path):
            continue
        text = str(issue.text)
        if test_id in _QUOTES_VALUE:
            text = text.split(":", 1)[0] + " (value not shown)"
        name = _bandit_rule_name(extension_loader, test_id, str(issue.test or ""))
        cwe = f", CWE-{issue.cwe.id}" if getattr(issue.cwe, "id", 0) else ""
        findings.append(
            Finding(
                worker=WORKER,
                rule=test_id,
                severity=_BANDIT_SEVERITY.get(str(issue.severity), Severity.low),
                file=path,
                line=int(issue.lineno or 0),
                title=f"{name}: {text}",
                description=f"bandit {test_id} ({name}), severity {issue.severity}, confidence "
                f"{issue.confidence}{cwe}: {text}",
                source="local",
            )
        )
    skipped = [SkippedFile(path=relative(str(name)), reason=str(reason)) for name, reason in manager.get_skipped()]
    return findings, skipped


def scan_secrets(root: Path, paths: list[str]) -> tuple[list[Finding], int] | None:
    """`find_secrets` over every text file up to 1 MiB; None when the secret scanner is not installed."""
    try:
        from nightshift.context.secrets import find_secrets
    except ImportError:
        return None
    findings: list[Finding] = []
    scanned = 0
    for path in paths:
        data = read_bytes(root, path, max_bytes=MAX_SECRET_SCAN_BYTES)
        if data is None or is_binary(data):
            continue
        scanned += 1
        for hit in find_secrets(decode_text(data), path):
            kind = str(hit.kind)
            preview = hit.preview.strip()
            preview = preview if len(preview) <= 160 else preview[:157] + "..."
            findings.append(
                Finding(
                    worker=WORKER,
                    rule=f"secret/{kind}",
                    severity=Severity.high,
                    file=hit.path,
                    line=hit.line,
                    title=f"Hard-coded secret ({kind})",
                    description=f"secret scanner rule secret/{kind}: a value of kind {kind} is committed in this "
                    f"file (value redacted): `{preview}`",
                    source="local",
                )
            )
    return findings, scanned


def risk_score(findings: list[Finding]) -> int:
    """The documented formula (see RISK_FORMULA) over the findings' severities."""
    secrets = sum(1 for f in findings if f.rule.startswith("secret/"))
    counts = Counter(f.severity for f in findings if not f.rule.startswith("secret/"))
    high = counts[Severity.high] + counts[Severity.critical]
    score = 25 * secrets + 15 * high + min(30, 5 * counts[Severity.medium]) + min(10, counts[Severity.low])
    return min(100, score)


def recommendations(findings: list[Finding]) -> list[str]:
    """One recommendation per rule found, the rules with the worst findings first."""
    by_rule: dict[str, list[Finding]] = {}
    for finding in findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    advice: list[str] = []
    secret_kinds = sorted(rule.split("/", 1)[1] for rule in by_rule if rule.startswith("secret/"))
    if secret_kinds:
        advice.append(LEAKED_CREDENTIALS_ADVICE.format(kinds=", ".join(secret_kinds)))
    bandit_rules = sorted(
        (rule for rule in by_rule if not rule.startswith("secret/")),
        key=lambda r: (min(f.severity.rank for f in by_rule[r]), -len(by_rule[r]), r),
    )
    seen: set[str] = set()
    for rule in bandit_rules:
        text = _ADVICE.get(rule) or f"Review the {rule} findings (see bandit's documentation for {rule})."
        count = len(by_rule[rule])
        line = f"{rule} ({count} finding{'s' if count != 1 else ''}): {text}"
        if text not in seen:
            advice.append(line)
            seen.add(text)
    return advice


def _vulnerability_severity(severity: Severity) -> Literal["high", "medium", "low"]:
    if severity in (Severity.critical, Severity.high):
        return "high"
    return "medium" if severity is Severity.medium else "low"


def audit_repository(repo: Path, *, include_tests: bool = False) -> AuditOutcome:
    """bandit + secret scan of the repository, as findings and an `AuditReport`."""
    root = repo_root(repo)
    paths, listed_with = list_files(root)
    py_paths = [p for p in python_files(paths) if include_tests or not is_test_path(p)]
    bandit_findings, skipped = run_bandit(root, py_paths) if py_paths else ([], [])
    scanned = scan_secrets(root, paths)
    secret_findings, text_files = scanned if scanned is not None else ([], 0)
    findings = sort_findings(bandit_findings + secret_findings)
    vulnerabilities = [
        Vulnerability(
            severity=_vulnerability_severity(f.severity),
            file=f.file or "",
            line=f.line or 0,
            description=f"[{f.rule}] {f.title}",
        )
        for f in findings
        if f.severity is not Severity.info
    ]
    report = AuditReport(
        vulnerabilities=vulnerabilities,
        riskScore=risk_score(findings),
        recommendations=recommendations(findings),
    )
    return AuditOutcome(
        findings=findings,
        report=report,
        python_files_scanned=len(py_paths) - len(skipped),
        text_files_scanned=text_files,
        secret_scanner=scanned is not None,
        skipped=skipped,
        listed_with=listed_with,
    )


def audit_tools() -> list[ToolInfo]:
    return [
        python_tool(),
        package_tool("bandit"),
        ToolInfo(name="nightshift secret scanner", version="built-in"),
    ]


def run_audit(repo: Path, *, include_tests: bool = False) -> LocalResult:
    """The local audit worker: `audit_repository` as a `LocalResult` whose report is an `AuditReport`."""
    outcome = audit_repository(repo, include_tests=include_tests)
    tools = audit_tools()
    secrets_part = (
        f"nightshift's secret scanner (find_secrets) on {outcome.text_files_scanned} text files"
        if outcome.secret_scanner
        else "NO secret scan (nightshift.context.secrets is not installed)"
    )
    method = (
        f"bandit (in-process, default profile) on {outcome.python_files_scanned} "
        f"{'' if include_tests else 'non-test '}Python files and "
        f"{secrets_part}, files listed with {outcome.listed_with}; risk score {RISK_FORMULA}."
    )
    by_rule = Counter((f.rule, f.severity.value) for f in outcome.findings)
    rule_rows = [
        {"rule": rule, "severity": severity, "findings": count}
        for (rule, severity), count in sorted(by_rule.items(), key=lambda kv: (Severity(kv[0][1]).rank, -kv[1]))
    ]
    tables = {
        "findings": findings_table(outcome.findings),
        "rules": rule_rows,
        "skipped": [s.model_dump() for s in outcome.skipped],
    }
    report = outcome.report
    return local_result(
        worker=WORKER,
        method=method,
        tools=tools,
        findings=outcome.findings,
        tables=tables,
        sections=[
            f"## Security audit\n\nRisk score **{report.riskScore}/100**; {len(report.vulnerabilities)} findings "
            f"({sum(1 for v in report.vulnerabilities if v.severity == 'high')} high).",
            "### Findings\n\n" + markdown_table(tables["findings"], ["severity", "rule", "file", "line", "title"]),
            "### Recommendations\n\n" + ("\n".join(f"- {r}" for r in report.recommendations) or "_none_"),
        ],
        report=report.model_dump(mode="json"),
    )
