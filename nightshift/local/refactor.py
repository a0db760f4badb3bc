"""refactor: duplicated code and overly complex functions, measured statically.

* Duplication: normalized token-window hashing across all Python files (see `duplication`), reported as
  pairs of blocks of at least `min_lines` similar lines with both locations.
* Complexity: radon's cyclomatic complexity per function and method (see `complexity`); functions above
  `max_complexity` (default 10, i.e. radon rank C or worse) are reported, most complex first. Severity
  follows radon's rank: C low, D–E medium, F high.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from nightshift.findings import Finding, Severity
from nightshift.local.complexity import FunctionComplexity, function_complexity
from nightshift.local.duplication import DuplicateBlock, find_duplicates
from nightshift.local.models import (
    LocalResult,
    local_result,
    markdown_table,
    package_tool,
    python_tool,
    rows,
)
from nightshift.local.pysource import load_python_sources
from nightshift.local.repofiles import is_test_path, list_files, python_files, repo_root

WORKER = "refactor"
_RANK_SEVERITY = {"C": Severity.low, "D": Severity.medium, "E": Severity.medium, "F": Severity.high}


class RefactorReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: int
    functions: int
    max_complexity: int
    min_duplicate_lines: int
    complex_functions: list[FunctionComplexity]
    duplicates: list[DuplicateBlock]


def analyse_refactoring(
    repo: Path, *, max_complexity: int = 10, min_duplicate_lines: int = 6, include_tests: bool = False
) -> RefactorReport:
    """Complex functions (ranked) and duplicated blocks of the repository's Python files."""
    root = repo_root(repo)
    paths, _ = list_files(root)
    sources = load_python_sources(root, [p for p in python_files(paths) if include_tests or not is_test_path(p)])
    measured = [fc for src in sources for fc in function_complexity(src)]
    complex_functions = sorted(
        (fc for fc in measured if fc.complexity > max_complexity),
        key=lambda fc: (-fc.complexity, -fc.sloc, fc.file, fc.line),
    )
    return RefactorReport(
        files=len(sources),
        functions=len(measured),
        max_complexity=max_complexity,
        min_duplicate_lines=min_duplicate_lines,
        complex_functions=complex_functions,
        duplicates=find_duplicates([s for s in sources if s.tree is not None], min_lines=min_duplicate_lines),
    )


def refactor_findings(report: RefactorReport) -> list[Finding]:
    findings: list[Finding] = []
    for rank, fc in enumerate(report.complex_functions, start=1):
        findings.append(
            Finding(
                worker=WORKER,
                rule="refactor/complexity",
                severity=_RANK_SEVERITY.get(fc.rank, Severity.low),
                file=fc.file,
                line=fc.line,
                title=f"High cyclomatic complexity in {fc.function}",
                description=f"radon cyclomatic complexity {fc.complexity} (rank {fc.rank}, threshold "
                f"{report.max_complexity}) over {fc.sloc} lines; #{rank} most complex. Split it into smaller "
                "functions or simplify its branching.",
                source="local",
            )
        )
    for block in report.duplicates:
        findings.append(
            Finding(
                worker=WORKER,
                rule="refactor/duplicate-block",
                severity=Severity.medium if block.lines >= 20 else Severity.low,
                file=block.file_a,
                line=block.start_a,
                title=f"Duplicated block also in {block.file_b}",
                description=f"{block.lines} similar lines (identifiers and literals normalized): "
                f"{block.file_a}:{block.start_a}-{block.end_a} and {block.file_b}:{block.start_b}-{block.end_b}. "
                "Extract the shared code into one function.",
                source="local",
            )
        )
    return findings


def run_refactor(
    repo: Path, *, max_complexity: int = 10, min_duplicate_lines: int = 6, include_tests: bool = False
) -> LocalResult:
    """The refactor worker as a `LocalResult`: complex functions first, then duplicated blocks."""
    report = analyse_refactoring(
        repo,
        max_complexity=max_complexity,
        min_duplicate_lines=min_duplicate_lines,
        include_tests=include_tests,
    )
    tools = [python_tool(), package_tool("radon")]
    scope = "all Python files" if include_tests else "non-test Python files"
    method = (
        f"radon cyclomatic complexity of every function and method in {report.files} {scope} (reported "
        f"above {max_complexity}), and duplicated blocks of ≥{min_duplicate_lines} similar lines found by "
        "hashing windows of normalized tokens (identifiers/literals replaced) across files."
    )
    tables = {
        "complex_functions": rows(report.complex_functions),
        "duplicates": rows(report.duplicates),
    }
    return local_result(
        worker=WORKER,
        method=method,
        tools=tools,
        findings=refactor_findings(report),
        tables=tables,
        sections=[
            f"## Refactoring candidates\n\n{len(report.complex_functions)} of {report.functions} functions above "
            f"complexity {max_complexity}; {len(report.duplicates)} duplicated block pairs.",
            "### Most complex functions\n\n"
            + markdown_table(tables["complex_functions"], ["file", "function", "line", "complexity", "rank", "sloc"]),
            "### Duplicated blocks\n\n"
            + markdown_table(
                tables["duplicates"], ["file_a", "start_a", "end_a", "file_b", "start_b", "end_b", "lines"]
            ),
        ],
        report=None,
    )
