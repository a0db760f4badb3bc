"""document: the public API that has no docstring, found with `ast`.

Public means: a module whose path has no component starting with `_` (package `__init__.py` counts as
the package); at module level the names in `__all__` when the module defines it as a literal list/tuple
of strings, otherwise every name without a leading underscore; inside a public class, methods and nested
classes without a leading underscore (so dunder methods such as `__init__` are not required to have one).
Property setters/deleters and `@overload` stubs are skipped; functions nested in functions are not API.
Test files, `setup.py`, `conftest.py` and `__main__.py` are not API either.

Rules reuse pydocstyle's codes: D100 module, D101 class, D102 method, D103 function, D104 package.
A module's documentation coverage is documented public objects / public objects (the module included).
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict

from nightshift.findings import Finding, Severity
from nightshift.local.models import (
    LocalResult,
    local_result,
    markdown_table,
    python_tool,
    rows,
    sort_findings,
)
from nightshift.local.pysource import (
    ModuleIndex,
    PySource,
    is_public_module_path,
    is_public_name,
    load_python_sources,
)
from nightshift.local.repofiles import is_test_path, list_files, python_files, repo_root

WORKER = "document"
ObjectKind = Literal["module", "package", "class", "function", "method"]
RULES: dict[ObjectKind, str] = {
    "module": "D100",
    "class": "D101",
    "method": "D102",
    "function": "D103",
    "package": "D104",
}
_NOT_API = {"setup.py", "conftest.py", "__main__.py"}


class ApiObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    module: str
    kind: ObjectKind
    name: str
    line: int
    documented: bool


class ModuleDocCoverage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    module: str
    public_objects: int
    documented: int
    percent: float
    uses_all: bool


class DocReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objects: list[ApiObject]
    modules: list[ModuleDocCoverage]

    @property
    def undocumented(self) -> list[ApiObject]:
        return [o for o in self.objects if not o.documented]


def _assigns_all(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return isinstance(node.target, ast.Name) and node.target.id == "__all__"
    return False


def dunder_all(tree: ast.Module) -> set[str] | None:
    """Names of a literal `__all__` (assigned, annotated or extended at module level); None without one."""
    names: set[str] | None = None
    for node in tree.body:
        if not _assigns_all(node):
            continue
        assert isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
        if names is None or not isinstance(node, ast.AugAssign):
            names = set()
        if isinstance(node.value, ast.List | ast.Tuple):
            names.update(e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return names


def _skipped_decorator(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Attribute) and decorator.attr in {"setter", "deleter"}:
            return True
        name = decorator.attr if isinstance(decorator, ast.Attribute) else getattr(decorator, "id", "")
        if name == "overload":
            return True
    return False


def api_objects(source: PySource, module: str) -> list[ApiObject]:
    """The public objects of one module, documented or not."""
    assert source.tree is not None
    is_package = PurePosixPath(source.path).name == "__init__.py"
    objects = [
        ApiObject(
            file=source.path,
            module=module,
            kind="package" if is_package else "module",
            name=module,
            line=1,
            documented=ast.get_docstring(source.tree) is not None,
        )
    ]
    exported = dunder_all(source.tree)

    def visit_class(cls: ast.ClassDef, prefix: str) -> None:
        for node in cls.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if is_public_name(node.name) and not _skipped_decorator(node):
                    objects.append(
                        ApiObject(
                            file=source.path,
                            module=module,
                            kind="method",
                            name=f"{prefix}{node.name}",
                            line=node.lineno,
                            documented=ast.get_docstring(node) is not None,
                        )
                    )
            elif isinstance(node, ast.ClassDef) and is_public_name(node.name):
                add_class(node, prefix)

    def add_class(cls: ast.ClassDef, prefix: str) -> None:
        objects.append(
            ApiObject(
                file=source.path,
                module=module,
                kind="class",
                name=f"{prefix}{cls.name}",
                line=cls.lineno,
                documented=ast.get_docstring(cls) is not None,
            )
        )
        visit_class(cls, f"{prefix}{cls.name}.")

    for node in source.tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        public = node.name in exported if exported is not None else is_public_name(node.name)
        if not public:
            continue
        if isinstance(node, ast.ClassDef):
            add_class(node, "")
        elif not _skipped_decorator(node):
            objects.append(
                ApiObject(
                    file=source.path,
                    module=module,
                    kind="function",
                    name=node.name,
                    line=node.lineno,
                    documented=ast.get_docstring(node) is not None,
                )
            )
    return objects


def is_api_path(path: str) -> bool:
    return is_public_module_path(path) and not is_test_path(path) and PurePosixPath(path).name not in _NOT_API


def find_undocumented(repo: Path) -> DocReport:
    """Every public object of every public module, and per-module documentation coverage."""
    root = repo_root(repo)
    paths, _ = list_files(root)
    py_paths = python_files(paths)
    index = ModuleIndex(py_paths)
    sources = load_python_sources(root, [p for p in py_paths if is_api_path(p)])
    objects: list[ApiObject] = []
    modules: list[ModuleDocCoverage] = []
    for source in sources:
        if source.tree is None:
            continue
        module = index.by_path[source.path].name
        found = api_objects(source, module)
        documented = sum(1 for o in found if o.documented)
        objects.extend(found)
        modules.append(
            ModuleDocCoverage(
                file=source.path,
                module=module,
                public_objects=len(found),
                documented=documented,
                percent=round(100.0 * documented / len(found), 1),
                uses_all=dunder_all(source.tree) is not None,
            )
        )
    modules.sort(key=lambda m: (m.percent, m.file))
    return DocReport(objects=objects, modules=modules)


def document_findings(report: DocReport) -> list[Finding]:
    findings = [
        Finding(
            worker=WORKER,
            rule=RULES[obj.kind],
            severity=Severity.info if obj.kind == "method" else Severity.low,
            file=obj.file,
            line=obj.line,
            title=f"Public {obj.kind} {obj.name} has no docstring",
            description=f"{RULES[obj.kind]} (pydocstyle code): the public {obj.kind} `{obj.name}` in module "
            f"`{obj.module}` has no docstring (found by ast).",
            source="local",
        )
        for obj in report.undocumented
    ]
    return sort_findings(findings)


def run_document(repo: Path) -> LocalResult:
    """The document worker as a `LocalResult` (undocumented public API + coverage per module)."""
    report = find_undocumented(repo)
    tools = [python_tool()]
    method = (
        "parsed every public, non-test Python module with ast and listed public modules, classes, functions "
        "and methods (no leading underscore; `__all__` respected when present) that lack a docstring; "
        "coverage per module = documented public objects / public objects."
    )
    total = len(report.objects)
    documented = total - len(report.undocumented)
    overall = f"{100.0 * documented / total:.1f}%" if total else "n/a"
    tables = {
        "modules": rows(report.modules),
        "undocumented": rows(report.undocumented),
    }
    return local_result(
        worker=WORKER,
        method=method,
        tools=tools,
        findings=document_findings(report),
        tables=tables,
        sections=[
            f"## Documentation coverage\n\n{documented} of {total} public objects documented ({overall}) in "
            f"{len(report.modules)} modules.",
            "### Least documented modules\n\n"
            + markdown_table(tables["modules"], ["file", "public_objects", "documented", "percent"], limit=15),
            "### Undocumented public objects\n\n"
            + markdown_table(tables["undocumented"], ["file", "line", "kind", "name"], limit=30),
        ],
        report=None,
    )
