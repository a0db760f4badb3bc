"""optimize: performance *suspects* found statically — heuristics, not measurements.

Nothing is run or profiled. Each finding is a pattern that is often slow; confirm with a profiler.

* `optimize/hotspot`: functions whose radon cyclomatic complexity × size (non-blank, non-comment lines)
  is at least `hotspot_score` — big branchy functions, where time and bugs tend to go. Severity medium
  from a score of 2000, low below.
* `optimize/nested-loops`: loops nested `max_loop_depth` (3) or more deep, comprehension `for`s
  included (reported once per outermost loop).
* Repeated work inside a loop body (any depth ≥ 1), by AST:
  - `optimize/list-membership-in-loop`: `x in names` where `names` was built as a list in the same
    function (list display, comprehension, `list(...)`, `sorted(...)`), or `x in [... for ...]`: a
    linear scan each iteration; a set is O(1).
  - `optimize/str-concat-in-loop`: `s += ...` / `s = s + ...` on a string (`s` initialised from a
    string literal, or a literal added): quadratic copying; collect parts and `"".join` them.
  - `optimize/regex-compile-in-loop`: `re.compile(...)` inside a loop: compile once outside.
  - `optimize/list-front-op-in-loop`: `.pop(0)` / `.insert(0, x)` in a loop: O(n) each; use
    `collections.deque`.

A function defined inside a loop starts again at depth 0 (its body runs when called, not per iteration).
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from nightshift.findings import Finding, Severity
from nightshift.local.complexity import function_complexity
from nightshift.local.models import (
    LocalResult,
    findings_table,
    local_result,
    markdown_table,
    package_tool,
    python_tool,
    rows,
    sort_findings,
)
from nightshift.local.pysource import PySource, load_python_sources
from nightshift.local.repofiles import is_test_path, list_files, python_files, repo_root

WORKER = "optimize"
HEURISTIC = "static heuristic (ast), not a measurement; confirm with a profiler before optimizing"

_ADVICE = {
    "optimize/list-membership-in-loop": "membership test on a list inside a loop is a linear scan per "
    "iteration; build a set once before the loop",
    "optimize/str-concat-in-loop": "string concatenation in a loop copies the string each time; collect "
    "the parts in a list and join them once",
    "optimize/regex-compile-in-loop": "re.compile inside a loop; compile the pattern once outside the loop",
    "optimize/list-front-op-in-loop": "pop(0)/insert(0, …) on a list is O(n); use collections.deque",
}
_TITLES = {
    "optimize/list-membership-in-loop": "List membership test inside a loop",
    "optimize/str-concat-in-loop": "String concatenation inside a loop",
    "optimize/regex-compile-in-loop": "Regex compiled inside a loop",
    "optimize/list-front-op-in-loop": "List front insert/pop inside a loop",
}


class Hotspot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    function: str
    line: int
    complexity: int
    sloc: int
    score: int


class PatternHit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    function: str
    line: int
    rule: str
    detail: str


class OptimizeReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: int
    hotspots: list[Hotspot]
    patterns: list[PatternHit]
    skipped: list[str]


def _is_list_builder(value: ast.expr | None) -> bool:
    if isinstance(value, ast.List | ast.ListComp):
        return True
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in {"list", "sorted"}


def _is_str_literal(value: ast.expr | None) -> bool:
    return isinstance(value, ast.JoinedStr) or (isinstance(value, ast.Constant) and isinstance(value.value, str))


def _annotation_name(annotation: ast.expr | None) -> str:
    target = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    return target.id if isinstance(target, ast.Name) else ""


class _Scope:
    """Names a function (or the module) binds to lists and to strings."""

    def __init__(self, body: list[ast.stmt]) -> None:
        self.lists: set[str] = set()
        self.strings: set[str] = set()
        stack: list[ast.AST] = list(body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                continue
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self._bind(target.id, node.value, None)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                self._bind(node.target.id, node.value, node.annotation)
            stack.extend(ast.iter_child_nodes(node))

    def _bind(self, name: str, value: ast.expr | None, annotation: ast.expr | None) -> None:
        kind = _annotation_name(annotation)
        if _is_list_builder(value) or kind in {"list", "List"}:
            self.lists.add(name)
        if _is_str_literal(value) or kind == "str":
            self.strings.add(name)


class _LoopVisitor(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module, max_loop_depth: int) -> None:
        self.path = path
        self.max_loop_depth = max_loop_depth
        self.hits: list[PatternHit] = []
        self.depth = 0
        self.function = "<module>"
        self.scope = _Scope(tree.body)
        self.outer_deepest = 0
        self.outer_deep_line = 0

    def hit(self, node: ast.AST, rule: str, detail: str) -> None:
        self.hits.append(
            PatternHit(
                file=self.path,
                function=self.function,
                line=getattr(node, "lineno", 0),
                rule=rule,
                detail=detail,
            )
        )

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        saved = (self.depth, self.function, self.scope, self.outer_deepest, self.outer_deep_line)
        outer = "" if self.function == "<module>" else f"{self.function}.<locals>."
        self.depth, self.function, self.scope = 0, f"{outer}{node.name}", _Scope(node.body)
        self.generic_visit(node)
        self.depth, self.function, self.scope, self.outer_deepest, self.outer_deep_line = saved

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        saved = self.function
        self.function = node.name if saved == "<module>" else f"{saved}.{node.name}"
        self.generic_visit(node)
        self.function = saved

    def _enter_loop(self, node: ast.AST, inner: list[ast.AST], levels: int = 1) -> None:
        outermost = self.depth == 0
        if outermost:
            self.outer_deepest, self.outer_deep_line = 0, 0
        self.depth += levels
        if self.depth > self.outer_deepest:
            if self.depth >= self.max_loop_depth and self.outer_deepest < self.max_loop_depth:
                self.outer_deep_line = getattr(node, "lineno", 0)
            self.outer_deepest = self.depth
        for child in inner:
            self.visit(child)
        self.depth -= levels
        if outermost and self.outer_deepest >= self.max_loop_depth:
            self.hits.append(
                PatternHit(
                    file=self.path,
                    function=self.function,
                    line=self.outer_deep_line,
                    rule="optimize/nested-loops",
                    detail=f"loops nested {self.outer_deepest} deep (the outermost starts at line "
                    f"{getattr(node, 'lineno', 0)}): the innermost body runs once per combination",
                )
            )

    def _visit_for(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.target)
        self.visit(node.iter)
        self._enter_loop(node, [*node.body])
        for child in node.orelse:
            self.visit(child)

    visit_For = _visit_for
    visit_AsyncFor = _visit_for

    def visit_While(self, node: ast.While) -> None:
        self._enter_loop(node, [node.test, *node.body])
        for child in node.orelse:
            self.visit(child)

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        first, *rest = node.generators
        self.visit(first.iter)
        inner: list[ast.AST] = [first.target, *first.ifs]
        for generator in rest:
            inner.extend([generator.target, generator.iter, *generator.ifs])
        inner.extend([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])
        self._enter_loop(node, inner, levels=len(node.generators))

    visit_ListComp = _visit_comprehension
    visit_SetComp = _visit_comprehension
    visit_GeneratorExp = _visit_comprehension
    visit_DictComp = _visit_comprehension

    def visit_Compare(self, node: ast.Compare) -> None:
        if self.depth:
            for op, right in zip(node.ops, node.comparators, strict=True):
                if not isinstance(op, ast.In | ast.NotIn):
                    continue
                if isinstance(right, ast.Name) and right.id in self.scope.lists:
                    self.hit(
                        node,
                        "optimize/list-membership-in-loop",
                        f"`in {right.id}` where {right.id} is a list",
                    )
                elif isinstance(right, ast.ListComp) or (
                    isinstance(right, ast.Call) and isinstance(right.func, ast.Name) and right.func.id == "list"
                ):
                    self.hit(node, "optimize/list-membership-in-loop", "`in` on a list built inside the loop")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if self.depth and isinstance(node.op, ast.Add) and isinstance(node.target, ast.Name):
            name = node.target.id
            if name in self.scope.strings or _is_str_literal(node.value):
                self.hit(node, "optimize/str-concat-in-loop", f"`{name} += ...` builds a string piece by piece")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        value = node.value
        if (
            self.depth
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(value, ast.BinOp)
            and isinstance(value.op, ast.Add)
            and isinstance(value.left, ast.Name)
            and value.left.id == node.targets[0].id
            and (value.left.id in self.scope.strings or _is_str_literal(value.right))
        ):
            name = value.left.id
            self.hit(node, "optimize/str-concat-in-loop", f"`{name} = {name} + ...` builds a string piece by piece")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if self.depth and isinstance(func, ast.Attribute):
            if func.attr == "compile" and isinstance(func.value, ast.Name) and func.value.id in {"re", "regex"}:
                self.hit(
                    node,
                    "optimize/regex-compile-in-loop",
                    f"`{func.value.id}.compile(...)` runs every iteration",
                )
            elif (
                func.attr in {"pop", "insert"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == 0
                and len(node.args) == (1 if func.attr == "pop" else 2)
            ):
                self.hit(
                    node,
                    "optimize/list-front-op-in-loop",
                    f"`.{func.attr}(0{', …' if func.attr == 'insert' else ''})` shifts every element",
                )
        self.generic_visit(node)


def loop_patterns(source: PySource, *, max_loop_depth: int = 3) -> list[PatternHit]:
    """The loop heuristics of one parsed file."""
    if source.tree is None:
        return []
    visitor = _LoopVisitor(source.path, source.tree, max_loop_depth)
    visitor.visit(source.tree)
    return visitor.hits


def analyse_performance(
    repo: Path,
    *,
    hotspot_score: int = 500,
    max_hotspots: int = 25,
    max_loop_depth: int = 3,
    include_tests: bool = False,
) -> OptimizeReport:
    """Hot spots (complexity × size) and loop patterns across the repository's Python files."""
    root = repo_root(repo)
    paths, _ = list_files(root)
    sources = load_python_sources(root, [p for p in python_files(paths) if include_tests or not is_test_path(p)])
    hotspots: list[Hotspot] = []
    patterns: list[PatternHit] = []
    skipped: list[str] = []
    for source in sources:
        if source.tree is None:
            skipped.append(f"{source.path}: {source.error}")
            continue
        try:
            patterns.extend(loop_patterns(source, max_loop_depth=max_loop_depth))
            measured = function_complexity(source)
        except RecursionError:
            skipped.append(f"{source.path}: syntax tree too deep to walk")
            continue
        hotspots.extend(
            Hotspot(
                file=fc.file,
                function=fc.function,
                line=fc.line,
                complexity=fc.complexity,
                sloc=fc.sloc,
                score=fc.complexity * fc.sloc,
            )
            for fc in measured
            if fc.complexity * fc.sloc >= hotspot_score
        )
    hotspots.sort(key=lambda h: (-h.score, h.file, h.line))
    patterns.sort(key=lambda p: (p.file, p.line, p.rule))
    return OptimizeReport(files=len(sources), hotspots=hotspots[:max_hotspots], patterns=patterns, skipped=skipped)


def optimize_findings(report: OptimizeReport) -> list[Finding]:
    findings = [
        Finding(
            worker=WORKER,
            rule="optimize/hotspot",
            severity=Severity.medium if h.score >= 2000 else Severity.low,
            file=h.file,
            line=h.line,
            title=f"Complexity hot spot: {h.function}",
            description=f"cyclomatic complexity {h.complexity} × {h.sloc} lines = {h.score}; {HEURISTIC}.",
            source="local",
        )
        for h in report.hotspots
    ]
    for p in report.patterns:
        title = _TITLES.get(p.rule, "Loops nested deeply")
        advice = _ADVICE.get(p.rule, "consider an index (dict/set) or a different algorithm for the inner loops")
        findings.append(
            Finding(
                worker=WORKER,
                rule=p.rule,
                severity=Severity.low,
                file=p.file,
                line=p.line,
                title=f"{title} in {p.function}",
                description=f"{p.detail}: {advice}. {HEURISTIC[0].upper()}{HEURISTIC[1:]}.",
                source="local",
            )
        )
    return sort_findings(findings)


def run_optimize(
    repo: Path, *, hotspot_score: int = 500, max_loop_depth: int = 3, include_tests: bool = False
) -> LocalResult:
    """The optimize worker as a `LocalResult` (static heuristics, clearly labelled)."""
    report = analyse_performance(
        repo, hotspot_score=hotspot_score, max_loop_depth=max_loop_depth, include_tests=include_tests
    )
    tools = [python_tool(), package_tool("radon")]
    method = (
        f"static heuristics only (nothing was run or profiled): radon complexity × function size ≥ "
        f"{hotspot_score} for hot spots, and ast patterns in {report.files} Python files — loops nested "
        f"≥{max_loop_depth} deep, list membership tests, string concatenation, re.compile and list "
        "pop(0)/insert(0) inside loops."
    )
    findings = optimize_findings(report)
    tables = {"hotspots": rows(report.hotspots), "patterns": rows(report.patterns)}
    return local_result(
        worker=WORKER,
        method=method,
        tools=tools,
        findings=findings,
        tables=tables,
        sections=[
            f"## Performance suspects (static heuristics)\n\n{len(report.hotspots)} complexity hot spots and "
            f"{len(report.patterns)} loop patterns. These are suspects to confirm with a profiler, not measured "
            "slowness.",
            "### Hot spots\n\n"
            + markdown_table(tables["hotspots"], ["file", "function", "line", "complexity", "sloc", "score"]),
            "### Loop patterns\n\n"
            + markdown_table(
                findings_table([f for f in findings if f.rule != "optimize/hotspot"]),
                ["rule", "file", "line", "title"],
            ),
        ],
        report=None,
    )
