"""Python sources for the local analyzers: parsing, dotted module names and import statements.

Module names come from the package layout alone (no import is executed): a file's name is built by
climbing from its directory while the directory holds an `__init__.py`; the first directory without one
is the file's *source root*. When that root lies under a `src/` directory, the name is taken from `src/`
instead, so namespace packages in a src layout get their full dotted name (`src/ns/pkg/mod.py` →
`ns.pkg.mod`). Two files may end up with the same name (two `conftest` modules, scripts in different
folders); an import then resolves to the one sharing the importer's source root, else the first.

Imports are read from statements only (expressions never hold them). Each carries two flags: `lazy`
(inside a function, so executed at call time, not import time) and `type_checking` (under
`if TYPE_CHECKING:`, never executed). Relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nightshift.local.repofiles import decode_python, read_bytes

MAX_PYTHON_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PySource:
    """One Python file: its text, and its syntax tree unless it failed to parse (`error` says why)."""

    path: str
    text: str
    tree: ast.Module | None
    error: str | None = None


def parse_python(text: str, path: str) -> tuple[ast.Module | None, str | None]:
    """`ast.parse`, with the repository's own SyntaxWarnings (invalid escapes …) kept out of our logs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return ast.parse(text, filename=path), None
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return None, f"{type(exc).__name__}: {exc}"


def load_python_source(root: Path, path: str) -> PySource | None:
    data = read_bytes(root, path, max_bytes=MAX_PYTHON_BYTES)
    if data is None:
        return None
    text = decode_python(data)
    tree, error = parse_python(text, path)
    return PySource(path=path, text=text, tree=tree, error=error)


def load_python_sources(root: Path, paths: Iterable[str]) -> list[PySource]:
    """Each readable file once; files over 4 MiB (generated code, data) are left out."""
    return [src for src in (load_python_source(root, p) for p in paths) if src is not None]


@dataclass(frozen=True)
class ModuleInfo:
    path: str
    name: str
    source_root: str
    is_package: bool


def module_info(path: str, package_dirs: set[str]) -> ModuleInfo:
    """The dotted name of `path` given the set of directories that hold an `__init__.py`."""
    pure = PurePosixPath(path)
    dirs = pure.parts[:-1]
    stem = pure.stem
    cut = len(dirs)
    while cut > 0 and "/".join(dirs[:cut]) in package_dirs:
        cut -= 1
    if "src" in dirs[:cut]:
        cut = len(dirs[:cut]) - list(reversed(dirs[:cut])).index("src")
    is_package = stem == "__init__"
    parts = list(dirs[cut:]) + ([] if is_package else [stem])
    name = ".".join(parts) if parts else "__init__"
    return ModuleInfo(path=path, name=name, source_root="/".join(dirs[:cut]), is_package=is_package)


class ModuleIndex:
    """Dotted names of the repository's Python files, and resolution of imported names to them."""

    def __init__(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        package_dirs = {str(PurePosixPath(p).parent) for p in paths if PurePosixPath(p).name == "__init__.py"}
        self.by_path: dict[str, ModuleInfo] = {}
        self.by_name: dict[str, list[ModuleInfo]] = {}
        for path in paths:
            info = module_info(path, package_dirs)
            self.by_path[path] = info
            self.by_name.setdefault(info.name, []).append(info)

    def lookup(self, name: str, importer: ModuleInfo | None = None) -> ModuleInfo | None:
        candidates = self.by_name.get(name)
        if not candidates:
            return None
        if importer is not None and len(candidates) > 1:
            for candidate in candidates:
                if candidate.source_root == importer.source_root:
                    return candidate
        return candidates[0]

    def longest_prefix(self, dotted: str, importer: ModuleInfo | None = None) -> ModuleInfo | None:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            found = self.lookup(".".join(parts[:end]), importer)
            if found is not None:
                return found
        return None

    def resolve(self, ref: ImportRef, importer: ModuleInfo) -> list[ModuleInfo]:
        """Internal modules an import statement refers to (empty for third-party and stdlib imports)."""
        targets: list[ModuleInfo] = []
        if ref.names:
            for name in ref.names:
                full = f"{ref.target}.{name}" if ref.target else name
                found = self.lookup(full, importer)
                if found is None and ref.target:
                    found = self.longest_prefix(ref.target, importer)
                if found is not None:
                    targets.append(found)
        elif ref.target:
            found = self.longest_prefix(ref.target, importer)
            if found is not None:
                targets.append(found)
        return targets


@dataclass(frozen=True)
class ImportRef:
    """One imported module: `target` is absolute (relative imports resolved); `names` for `from` imports."""

    target: str
    names: tuple[str, ...]
    line: int
    level: int
    lazy: bool
    type_checking: bool


def resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str | None:
    """`from ..x import y` inside `module` → the absolute base name; None when it climbs past the top."""
    if level == 0:
        return name or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    drop = level - 1
    if drop > len(parts):
        return None
    base = parts[: len(parts) - drop]
    if name:
        base += name.split(".")
    return ".".join(base) if base else None


_BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def iter_imports(tree: ast.Module, info: ModuleInfo) -> Iterator[ImportRef]:
    """Every import statement of the module, at any depth, with its lazy/type-checking flags."""
    stack: list[tuple[list[ast.AST], bool, bool]] = [(list(tree.body), False, False)]
    while stack:
        nodes, lazy, type_checking = stack.pop()
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield ImportRef(alias.name, (), node.lineno, 0, lazy, type_checking)
            elif isinstance(node, ast.ImportFrom):
                base = resolve_relative(info.name, info.is_package, node.level, node.module)
                if base is None:
                    continue
                names = tuple(alias.name for alias in node.names if alias.name != "*")
                yield ImportRef(base, names, node.lineno, node.level, lazy, type_checking)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                stack.append((list(node.body), True, type_checking))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                stack.append((list(node.body), lazy, True))
                stack.append((list(node.orelse), lazy, type_checking))
            else:
                for field in _BODY_FIELDS:
                    children = getattr(node, field, None)
                    if children:
                        stack.append((list(children), lazy, type_checking))


def is_public_name(name: str) -> bool:
    return not name.startswith("_")


def is_public_module_path(path: str) -> bool:
    """No path component starts with an underscore (package `__init__.py`/`__main__.py` excepted)."""
    parts = PurePosixPath(path).parts
    if any(part.startswith("_") for part in parts[:-1]):
        return False
    stem = PurePosixPath(parts[-1]).stem
    return stem in {"__init__", "__main__"} or not stem.startswith("_")


def function_nodes(tree: ast.AST) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method with its qualified name (`Class.method`, `outer.<locals>.inner`)."""
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{prefix}{child.name}"
                yield qualname, child
                stack.append((child, f"{qualname}.<locals>."))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, f"{prefix}{child.name}."))
            elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                stack.append((child, prefix))
