"""testgaps: functions the tests never run, from real coverage data when there is any.

Where the coverage comes from, in this order (the result's `method` names the one used):

1. `coverage-file`: a data file given by the caller, else one found at the repository root
   (`coverage.json` from `coverage json`, or `.coverage`, coverage.py's SQLite data). It is used as
   recorded; when it is older than the newest Python file the result says it may be stale.
2. `coverage-run`: the test command run under coverage.py in the repository, through
   `nightshift.process.run_command` with a timeout: `<python> -m coverage run --branch
   --data-file=<temp> --source=. -m <module> <args>`. The command must be `python -m <module> ...` or
   `pytest ...`; by default, when the repository has tests, `python -m pytest -q -p no:cacheprovider`
   with the repository's `.venv`/`venv` interpreter when it has pytest and coverage, else this one.
   This runs the repository's test code: pass `run_tests=False` where that is not wanted. Failing
   tests still yield coverage; a run that produced no data falls through.
3. `structural-heuristic`: no coverage data at all. Source modules that no test file imports (imports
   resolved as in the map) and whose dotted name no test file mentions are reported. This is a guess
   about test *presence*, not a measurement.

Coverage data → functions: coverage.py's own statement analysis (`Coverage.analysis2`, honouring the
repository's exclusion config) gives each file's statements and missing lines; a function's statements
are those from its first body line to its last, minus the bodies of functions and classes nested in it.
None ran → `untested`; fewer than `low_threshold` percent ran → `low`. Stubs (only a docstring, `pass`,
`...` or `raise NotImplementedError`; `@overload`, `@abstractmethod`) and test files are left out.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nightshift.errors import ConfigError
from nightshift.findings import Finding, Severity
from nightshift.local.models import (
    LocalResult,
    ToolInfo,
    local_result,
    markdown_table,
    package_tool,
    python_tool,
    rows,
    sort_findings,
)
from nightshift.local.pysource import (
    ModuleIndex,
    PySource,
    function_nodes,
    is_public_name,
    iter_imports,
    load_python_sources,
)
from nightshift.local.repofiles import is_test_path, list_files, python_files, repo_root
from nightshift.process import run_command

WORKER = "testgaps"
DEFAULT_TIMEOUT_S = 900.0
GapMethod = Literal["coverage-file", "coverage-run", "structural-heuristic"]
FunctionStatus = Literal["untested", "low", "covered"]


class FunctionCoverage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    function: str = Field(description="qualified name, e.g. Class.method")
    line: int
    statements: int
    covered: int
    percent: float
    status: FunctionStatus


class ModuleCoverage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    statements: int
    covered: int
    percent: float
    functions: int
    untested_functions: int


class UnreferencedModule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    module: str
    functions: int


class TestGaps(BaseModel):
    """What was measured (or guessed) and how."""

    __test__ = False  # not a pytest test class despite its name
    model_config = ConfigDict(extra="forbid")

    method: GapMethod
    method_detail: str = Field(description="exactly what ran or what was read")
    notes: list[str] = Field(default_factory=list, description="why earlier methods were not used, staleness …")
    functions: list[FunctionCoverage] = Field(default_factory=list)
    modules: list[ModuleCoverage] = Field(default_factory=list)
    unreferenced: list[UnreferencedModule] = Field(default_factory=list)
    test_returncode: int | None = None


class _LineData(BaseModel):
    """Per repository file: statement lines and the ones that never ran."""

    model_config = ConfigDict(extra="forbid")

    statements: set[int]
    missing: set[int]


def _repo_path(measured: str, root: Path, known: set[str]) -> str | None:
    """A measured path (absolute, relative, or from another checkout) as a repository path."""
    pure = PurePosixPath(measured.replace("\\", "/"))
    if pure.is_absolute():
        try:
            rel = pure.relative_to(PurePosixPath(root.as_posix())).as_posix()
        except ValueError:
            rel = None
        if rel is not None and rel in known:
            return rel
    parts = pure.parts
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if candidate in known:
            return candidate
    return None


def _coverage_config(root: Path) -> str | bool:
    """The repository's coverage.py configuration file, so its exclusions apply to the analysis."""
    rc = root / ".coveragerc"
    if rc.is_file():
        return str(rc)
    for name, marker in (
        ("pyproject.toml", "[tool.coverage"),
        ("setup.cfg", "[coverage:"),
        ("tox.ini", "[coverage:"),
    ):
        candidate = root / name
        try:
            if candidate.is_file() and marker in candidate.read_text(errors="replace"):
                return str(candidate)
        except OSError:
            continue
    return False


def _read_sqlite_data(data_file: Path, root: Path, known: set[str]) -> dict[str, _LineData]:
    import coverage

    cov = coverage.Coverage(data_file=str(data_file), config_file=_coverage_config(root))
    cov.load()
    data = cov.get_data()
    measured: dict[str, str] = {}
    for name in data.measured_files():
        path = _repo_path(name, root, known)
        if path is not None:
            measured.setdefault(path, name)
    out: dict[str, _LineData] = {}
    for path in sorted(known):
        local = str(root / path)
        # coverage.py's own statement analysis; files absent from the data come out all missing.
        _, statements, _, missing, _ = cov.analysis2(local)
        recorded = measured.get(path)
        if recorded is not None and recorded != local:  # recorded in another checkout of the same repository
            executed = set(data.lines(recorded) or ())
            missing = [line for line in statements if line not in executed]
        out[path] = _LineData(statements=set(statements), missing=set(missing))
    return out


def _read_json_data(data_file: Path, root: Path, known: set[str]) -> dict[str, _LineData]:
    try:
        payload = json.loads(data_file.read_text())
        files = payload["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not a coverage.py JSON report: {data_file} ({exc})") from exc
    out: dict[str, _LineData] = {}
    for measured, entry in files.items():
        path = _repo_path(measured, root, known)
        if path is None:
            continue
        executed = set(entry.get("executed_lines", []))
        missing = set(entry.get("missing_lines", []))
        out[path] = _LineData(statements=executed | missing, missing=missing)
    return out


def read_coverage(data_file: Path, root: Path, known: set[str]) -> dict[str, _LineData]:
    """Statement/missing lines per repository file from a `.coverage` (SQLite) or coverage JSON file."""
    with data_file.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3"):
        return _read_sqlite_data(data_file, root, known)
    return _read_json_data(data_file, root, known)


def _is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in {"overload", "abstractmethod"}:
            return True
    for stmt in node.body:
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue
        if isinstance(stmt, ast.Raise) and stmt.exc is not None:
            exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                continue
        return False
    return True


def _nested_ranges(node: ast.AST) -> list[tuple[int, int]]:
    """Line ranges of the bodies of functions and classes directly nested in `node`'s body."""
    ranges: list[tuple[int, int]] = []
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if child.body:
                ranges.append((child.body[0].lineno, child.end_lineno or child.body[-1].lineno))
            continue
        stack.extend(ast.iter_child_nodes(child))
    return ranges


def function_coverage(
    source: PySource, lines: _LineData, low_threshold: float
) -> tuple[list[FunctionCoverage], ModuleCoverage]:
    """Map one file's statement/missing lines onto its functions."""
    results: list[FunctionCoverage] = []
    assert source.tree is not None
    for qualname, node in function_nodes(source.tree):
        if _is_stub(node) or not node.body:
            continue
        start, end = node.body[0].lineno, node.end_lineno or node.body[-1].lineno
        nested = _nested_ranges(node)
        own = {
            line for line in lines.statements if start <= line <= end and not any(lo <= line <= hi for lo, hi in nested)
        }
        if not own:
            continue
        covered = len(own - lines.missing)
        percent = round(100.0 * covered / len(own), 1)
        status: FunctionStatus = "untested" if covered == 0 else "low" if percent < low_threshold else "covered"
        results.append(
            FunctionCoverage(
                file=source.path,
                function=qualname,
                line=node.lineno,
                statements=len(own),
                covered=covered,
                percent=percent,
                status=status,
            )
        )
    results.sort(key=lambda f: f.line)
    total = len(lines.statements)
    covered_total = len(lines.statements - lines.missing)
    module = ModuleCoverage(
        file=source.path,
        statements=total,
        covered=covered_total,
        percent=round(100.0 * covered_total / total, 1) if total else 100.0,
        functions=len(results),
        untested_functions=sum(1 for f in results if f.status == "untested"),
    )
    return results, module


def _wrap_in_coverage(test_command: Sequence[str], python: str, data_file: Path) -> list[str]:
    """`python -m X args` / `pytest args` → the same run under `coverage run --branch`."""
    argv = list(test_command)
    coverage_args = ["-m", "coverage", "run", "--branch", f"--data-file={data_file}", "--source=."]
    if len(argv) >= 3 and PurePosixPath(argv[0]).name.startswith("python") and argv[1] == "-m":
        return [argv[0], *coverage_args, "-m", *argv[2:]]
    if argv and PurePosixPath(argv[0]).name in {"pytest", "py.test"}:
        return [python, *coverage_args, "-m", "pytest", *argv[1:]]
    raise ConfigError(
        f"cannot run {argv!r} under coverage: the test command must be 'python -m <module> ...' or 'pytest ...'"
    )


def default_test_command(root: Path, paths: Sequence[str], python: str) -> list[str] | None:
    """`python -m pytest -q` when the repository has tests, else None."""
    has_tests = (
        (root / "tests").is_dir()
        or (root / "test").is_dir()
        or any(is_test_path(p) for p in paths if p.endswith(".py"))
    )
    return [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"] if has_tests else None


def pick_python(root: Path) -> str:
    """The repository's own virtualenv interpreter when it has pytest and coverage, else this one.

    The repository's environment has its dependencies, so its tests can import what they need.
    """
    for venv in (".venv", "venv"):
        candidate = root / venv / "bin" / "python"
        if not candidate.is_file():
            continue
        try:
            probe = run_command([str(candidate), "-c", "import coverage, pytest"], cwd=root, timeout_s=60)
        except OSError:
            continue
        if probe.returncode == 0:
            return str(candidate)
    return sys.executable


def _test_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    extra = [str(root)] + ([str(root / "src")] if (root / "src").is_dir() else [])
    env["PYTHONPATH"] = os.pathsep.join(extra + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _tail(text: str, lines: int = 5) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _heuristic(sources: list[PySource], test_sources: list[PySource], index: ModuleIndex) -> list[UnreferencedModule]:
    referenced: set[str] = set()
    test_text = "\n".join(src.text for src in test_sources)
    for src in test_sources:
        if src.tree is None:
            continue
        importer = index.by_path[src.path]
        for ref in iter_imports(src.tree, importer):
            referenced.update(target.path for target in index.resolve(ref, importer))
    out: list[UnreferencedModule] = []
    for src in sources:
        if src.tree is None or src.path in referenced:
            continue
        name = index.by_path[src.path].name
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", test_text):
            continue
        functions = sum(1 for _ in function_nodes(src.tree))
        if functions:
            out.append(UnreferencedModule(file=src.path, module=name, functions=functions))
    return out


def find_test_gaps(
    repo: Path,
    *,
    coverage_file: Path | None = None,
    test_command: Sequence[str] | None = None,
    run_tests: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    low_threshold: float = 50.0,
    python: str | None = None,
) -> TestGaps:
    """Untested and poorly tested functions (see the module docstring for the order of methods)."""
    root = repo_root(repo)
    paths, _ = list_files(root)
    py_paths = python_files(paths)
    all_sources = load_python_sources(root, py_paths)
    sources = [s for s in all_sources if not is_test_path(s.path) and s.tree is not None]
    known = {s.path for s in sources}
    notes: list[str] = []

    data: dict[str, _LineData] | None = None
    method: GapMethod = "structural-heuristic"
    detail = ""
    returncode: int | None = None

    if coverage_file is not None:
        data_path = coverage_file if coverage_file.is_absolute() else root / coverage_file
        if not data_path.is_file():
            raise ConfigError(f"coverage data file not found: {data_path}")
        candidates = [data_path]
    else:
        candidates = [p for p in (root / "coverage.json", root / ".coverage") if p.is_file()]
    for candidate in candidates:
        try:
            data = read_coverage(candidate, root, known)
        except Exception as exc:  # a corrupt or foreign data file: say so and try the next way
            notes.append(f"could not read {candidate.name}: {type(exc).__name__}: {exc}")
            continue
        where = candidate.relative_to(root) if candidate.is_relative_to(root) else candidate
        method, detail = "coverage-file", f"read existing coverage data {where}"
        newest = max(((root / s.path).stat().st_mtime for s in sources), default=0.0)
        if candidate.stat().st_mtime < newest:
            notes.append(f"{candidate.name} is older than the newest Python file: line data may be stale")
        break

    if data is None and run_tests:
        python = python or pick_python(root)
        command = list(test_command) if test_command else default_test_command(root, paths, python)
        if command is None:
            notes.append("no coverage data file and no tests found to run")
        else:
            with tempfile.TemporaryDirectory(prefix="nightshift-cov-") as tmp:
                data_file = Path(tmp) / ".coverage"
                argv = _wrap_in_coverage(command, python, data_file)
                try:
                    result = run_command(argv, cwd=root, env=_test_env(root), timeout_s=timeout_s)
                except FileNotFoundError as exc:
                    notes.append(f"could not start the test command: {exc}")
                else:
                    returncode = result.returncode
                    shown = " ".join(command)
                    if result.stop_reason == "timeout":
                        notes.append(f"the test run hit its {timeout_s:.0f} s timeout: coverage is partial")
                    if result.returncode not in (0, 1, None):
                        notes.append(
                            f"the test command exited with {result.returncode} (not a clean pass/fail run): "
                            f"coverage may be incomplete — {_tail(result.stdout or result.stderr_tail, 3)}"
                        )
                    if data_file.is_file():
                        data = read_coverage(data_file, root, known)
                        method = "coverage-run"
                        detail = (
                            f"ran `{shown}` under `coverage run --branch --source=.` (exit code "
                            f"{result.returncode}, {result.duration_s:.1f} s) and analysed the data"
                        )
                    else:
                        notes.append(
                            f"`{shown}` under coverage produced no data (exit code {result.returncode}): "
                            f"{_tail(result.stderr_tail or result.stdout)}"
                        )
    elif data is None:
        notes.append("running the tests was disabled")

    if data is not None:
        functions: list[FunctionCoverage] = []
        modules: list[ModuleCoverage] = []
        for src in sources:
            lines = data.get(src.path)
            if lines is None:
                continue
            per_function, module = function_coverage(src, lines, low_threshold)
            functions.extend(per_function)
            modules.append(module)
        return TestGaps(
            method=method,
            method_detail=detail
            + f"; statement coverage mapped onto functions by ast (low = under {low_threshold:g}%)",
            notes=notes,
            functions=functions,
            modules=sorted(modules, key=lambda m: (m.percent, m.file)),
            test_returncode=returncode,
        )

    index = ModuleIndex(s.path for s in all_sources)
    tests = [s for s in all_sources if is_test_path(s.path)]
    return TestGaps(
        method="structural-heuristic",
        method_detail="no coverage data: source modules with no test file referencing them (no test file "
        f"imports them or names their dotted module name; {len(tests)} test files read)",
        notes=notes,
        unreferenced=_heuristic(sources, tests, index),
        test_returncode=returncode,
    )


def testgap_findings(gaps: TestGaps) -> list[Finding]:
    findings: list[Finding] = []
    label = {"coverage-file": "recorded coverage data", "coverage-run": "a coverage run of the tests"}.get(
        gaps.method, "structural heuristic"
    )
    for fn in gaps.functions:
        public = all(is_public_name(part) for part in fn.function.split(".") if part != "<locals>")
        if fn.status == "untested":
            findings.append(
                Finding(
                    worker=WORKER,
                    rule="testgaps/untested-function",
                    severity=Severity.medium if public else Severity.low,
                    file=fn.file,
                    line=fn.line,
                    title=f"Untested function {fn.function}",
                    description=f"None of its {fn.statements} statements ran according to {label}.",
                    source="local",
                )
            )
        elif fn.status == "low":
            findings.append(
                Finding(
                    worker=WORKER,
                    rule="testgaps/low-coverage",
                    severity=Severity.low,
                    file=fn.file,
                    line=fn.line,
                    title=f"Low test coverage in {fn.function}",
                    description=f"{fn.covered} of {fn.statements} statements ({fn.percent:g}%) ran according "
                    f"to {label}.",
                    source="local",
                )
            )
    for module in gaps.unreferenced:
        findings.append(
            Finding(
                worker=WORKER,
                rule="testgaps/no-test-reference",
                severity=Severity.low,
                file=module.file,
                title=f"No test references module {module.module}",
                description=f"Structural heuristic, no coverage data: no test file imports {module.module} or "
                f"names it; it defines {module.functions} functions.",
                source="local",
            )
        )
    return sort_findings(findings)


def testgaps_tools() -> list[ToolInfo]:
    return [python_tool(), package_tool("coverage")]


def run_testgaps(
    repo: Path,
    *,
    coverage_file: Path | None = None,
    test_command: Sequence[str] | None = None,
    run_tests: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    low_threshold: float = 50.0,
    python: str | None = None,
) -> LocalResult:
    """The testgaps worker as a `LocalResult`; `method` starts with the method used."""
    gaps = find_test_gaps(
        repo,
        coverage_file=coverage_file,
        test_command=test_command,
        run_tests=run_tests,
        timeout_s=timeout_s,
        low_threshold=low_threshold,
        python=python,
    )
    tools = testgaps_tools()
    method = f"{gaps.method}: {gaps.method_detail}." + "".join(f" Note: {n}." for n in gaps.notes)
    findings = testgap_findings(gaps)
    gap_rows = [f for f in gaps.functions if f.status != "covered"]
    tables = {
        "functions": rows(gaps.functions),
        "modules": rows(gaps.modules),
        "unreferenced_modules": rows(gaps.unreferenced),
    }
    if gaps.method == "structural-heuristic":
        body = (
            f"## Test gaps (structural heuristic, no coverage data)\n\n{len(gaps.unreferenced)} source modules "
            "are not referenced by any test file.\n\n"
            + markdown_table(tables["unreferenced_modules"], ["file", "module", "functions"])
        )
    else:
        untested = sum(1 for f in gaps.functions if f.status == "untested")
        low = sum(1 for f in gaps.functions if f.status == "low")
        statements = sum(m.statements for m in gaps.modules)
        covered = sum(m.covered for m in gaps.modules)
        overall = f"{100.0 * covered / statements:.1f}%" if statements else "n/a"
        body = (
            f"## Test gaps (measured coverage)\n\nStatement coverage {overall} over {len(gaps.modules)} files; "
            f"{untested} untested and {low} poorly tested functions out of {len(gaps.functions)}.\n\n"
            + markdown_table(rows(gap_rows), ["file", "function", "line", "statements", "percent", "status"])
        )
    return local_result(
        worker=WORKER,
        method=method,
        tools=tools,
        findings=findings,
        tables=tables,
        sections=[body],
    )
