"""map: a repository's shape, measured — tree, languages, size, and the Python import graph.

Every listed file (see `repofiles.list_files`) is read once. Text files are counted (physical lines;
code lines = non-blank lines not starting with a line comment); Python files are also parsed with `ast`
from those same bytes. Module names and import resolution follow `pysource` (package layout, src-layout
aware, relative imports resolved). An edge A → B means module A imports internal module B; fan-in is the
number of modules importing a module, fan-out the number it imports. Cycles are the strongly connected
components of more than one module (Tarjan's algorithm, iterative); a cycle is flagged `import_time`
when it persists using only module-level imports outside `if TYPE_CHECKING:` — the kind that can fail
with a partially initialised module.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from nightshift.findings import Finding, Severity
from nightshift.local.languages import count_lines, language_of
from nightshift.local.models import (
    LocalResult,
    local_result,
    markdown_table,
    python_tool,
    rows,
    sort_findings,
)
from nightshift.local.pysource import ModuleIndex, iter_imports, parse_python
from nightshift.local.repofiles import decode_python, is_binary, list_files, repo_root

MAX_READ_BYTES = 8 * 1024 * 1024
WORKER = "map"


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TreeRow(_Row):
    path: str = Field(description="top-level directory, or '.' for files at the root")
    files: int
    lines: int
    bytes: int


class LanguageRow(_Row):
    language: str
    files: int
    lines: int
    code_lines: int
    bytes: int


class FileRow(_Row):
    path: str
    language: str
    bytes: int
    lines: int | None = Field(description="None for binary files and files over 8 MiB (not read)")


class ModuleRow(_Row):
    module: str
    path: str
    lines: int
    fan_in: int
    fan_out: int
    in_cycle: bool
    parse_error: str | None = None


class EdgeRow(_Row):
    source: str
    target: str
    source_path: str
    target_path: str
    line: int = Field(description="line of the first import statement making this edge")
    statements: int = Field(description="import statements making this edge")
    import_time: bool = Field(description="at least one of them runs at import time (module level)")


class ExternalRow(_Row):
    package: str = Field(description="top-level name of a module not found in the repository")
    stdlib: bool
    importers: int


class CycleRow(_Row):
    cycle: int
    size: int
    import_time: bool
    modules: list[str]
    example: list[str] = Field(
        description="one closed import path inside the cycle, first module repeated; made of module-level "
        "imports when import_time"
    )


class RepoMap(_Row):
    root: str
    listed_with: str
    seconds: float
    files: int
    bytes: int
    lines: int
    code_lines: int
    python_files: int
    tree: list[TreeRow]
    languages: list[LanguageRow]
    largest_files: list[FileRow]
    modules: list[ModuleRow]
    edges: list[EdgeRow]
    external_imports: list[ExternalRow]
    cycles: list[CycleRow]


def strongly_connected_components(nodes: Iterable[str], successors: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (import graphs can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors.get(root, ())))]
        while work:
            node, children = work[-1]
            descended = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors.get(child, ()))))
                    descended = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _example_cycle(members: set[str], successors: Mapping[str, Iterable[str]]) -> list[str]:
    """Shortest closed path from the smallest member back to itself, staying inside the component."""
    start = min(members)
    parents: dict[str, str] = {}
    queue: deque[str] = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(successors.get(node, ())):
            if child not in members:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in parents:
                parents[child] = node
                queue.append(child)
    return [start]


class _Tally:
    def __init__(self) -> None:
        self.files = 0
        self.lines = 0
        self.code_lines = 0
        self.bytes = 0

    def add(self, size: int, lines: int, code: int) -> None:
        self.files += 1
        self.bytes += size
        self.lines += lines
        self.code_lines += code


def build_repo_map(repo: Path, *, largest: int = 20) -> RepoMap:
    """Measure the repository at `repo` (see the module docstring for what each figure means)."""
    started = time.monotonic()
    root = repo_root(repo)
    paths, listed_with = list_files(root)

    by_dir: dict[str, _Tally] = defaultdict(_Tally)
    by_language: dict[str, _Tally] = defaultdict(_Tally)
    sizes: list[FileRow] = []
    python_texts: dict[str, str] = {}
    python_lines: dict[str, int] = {}
    total = _Tally()

    for path in paths:
        full = root / path
        try:
            size = full.stat().st_size
            data = full.read_bytes() if size <= MAX_READ_BYTES else None
        except OSError:
            continue
        language, comment_prefixes = language_of(path)
        lines: int | None = None
        code = 0
        if data is not None and not is_binary(data):
            lines, code = count_lines(data, comment_prefixes)
            if path.endswith(".py"):
                python_texts[path] = decode_python(data)
                python_lines[path] = lines
        elif data is not None:
            language = "binary"
        top = PurePosixPath(path).parts[0] if "/" in path else "."
        for tally in (by_dir[top], by_language[language], total):
            tally.add(size, lines or 0, code)
        sizes.append(FileRow(path=path, language=language, bytes=size, lines=lines))

    index = ModuleIndex(python_texts)
    edges: dict[tuple[str, str], EdgeRow] = {}
    external: dict[str, set[str]] = defaultdict(set)
    parse_errors: dict[str, str] = {}
    for path, text in python_texts.items():
        tree, error = parse_python(text, path)
        if tree is None:
            parse_errors[path] = error or "unparsable"
            continue
        importer = index.by_path[path]
        for ref in iter_imports(tree, importer):
            targets = index.resolve(ref, importer)
            if not targets and ref.level == 0 and ref.target:
                external[ref.target.split(".")[0]].add(path)
            for target in targets:
                if target.path == path:
                    continue
                key = (path, target.path)
                runs_at_import = not ref.lazy and not ref.type_checking
                edge = edges.get(key)
                if edge is None:
                    edges[key] = EdgeRow(
                        source=importer.name,
                        target=target.name,
                        source_path=path,
                        target_path=target.path,
                        line=ref.line,
                        statements=1,
                        import_time=runs_at_import,
                    )
                else:
                    edge.statements += 1
                    edge.import_time = edge.import_time or runs_at_import
                    edge.line = min(edge.line, ref.line)

    successors: dict[str, set[str]] = defaultdict(set)
    eager_successors: dict[str, set[str]] = defaultdict(set)
    for (source_path, target_path), edge in edges.items():
        successors[source_path].add(target_path)
        if edge.import_time:
            eager_successors[source_path].add(target_path)
    nodes = sorted(python_texts)
    cyclic = [sorted(c) for c in strongly_connected_components(nodes, successors) if len(c) > 1]
    eager_cyclic = [set(c) for c in strongly_connected_components(nodes, eager_successors) if len(c) > 1]
    name_of = {path: info.name for path, info in index.by_path.items()}

    cycles: list[CycleRow] = []
    for number, members in enumerate(sorted(cyclic, key=lambda c: (-len(c), c)), start=1):
        member_set = set(members)
        eager = next((e for e in eager_cyclic if e <= member_set), None)
        # The example shows an import-time loop when there is one, since that is the one that can break.
        example = _example_cycle(eager, eager_successors) if eager else _example_cycle(member_set, successors)
        cycles.append(
            CycleRow(
                cycle=number,
                size=len(members),
                import_time=eager is not None,
                modules=[name_of[m] for m in members],
                example=[name_of[m] for m in example],
            )
        )
    in_cycle = {m for c in cyclic for m in c}

    fan_in: Counter[str] = Counter(target for _, target in edges)
    fan_out: Counter[str] = Counter(source for source, _ in edges)
    modules = [
        ModuleRow(
            module=name_of[path],
            path=path,
            lines=python_lines[path],
            fan_in=fan_in[path],
            fan_out=fan_out[path],
            in_cycle=path in in_cycle,
            parse_error=parse_errors.get(path),
        )
        for path in nodes
    ]
    modules.sort(key=lambda m: (-m.fan_in, -m.fan_out, m.module))
    stdlib = sys.stdlib_module_names
    externals = sorted(
        (
            ExternalRow(package=name, stdlib=name in stdlib, importers=len(importers))
            for name, importers in external.items()
        ),
        key=lambda row: (-row.importers, row.package),
    )

    return RepoMap(
        root=str(root),
        listed_with=listed_with,
        seconds=round(time.monotonic() - started, 3),
        files=total.files,
        bytes=total.bytes,
        lines=total.lines,
        code_lines=total.code_lines,
        python_files=len(python_texts),
        tree=sorted(
            (TreeRow(path=k, files=t.files, lines=t.lines, bytes=t.bytes) for k, t in by_dir.items()),
            key=lambda r: (-r.files, r.path),
        ),
        languages=sorted(
            (
                LanguageRow(language=k, files=t.files, lines=t.lines, code_lines=t.code_lines, bytes=t.bytes)
                for k, t in by_language.items()
            ),
            key=lambda r: (-r.lines, -r.files, r.language),
        ),
        largest_files=sorted(sizes, key=lambda r: (-r.bytes, r.path))[:largest],
        modules=modules,
        edges=sorted(edges.values(), key=lambda e: (e.source, e.target)),
        external_imports=externals,
        cycles=cycles,
    )


def map_findings(repo_map: RepoMap) -> list[Finding]:
    """Import cycles (medium when they run at import time, low otherwise) and unparsable Python files."""
    path_of = {m.module: m.path for m in repo_map.modules}
    line_of = {(e.source, e.target): e.line for e in repo_map.edges}
    findings: list[Finding] = []
    for cycle in repo_map.cycles:
        first = cycle.example[0]
        second = cycle.example[1] if len(cycle.example) > 1 else first
        hops = " → ".join(cycle.example)
        kind = "at import time" if cycle.import_time else "only through function-level or TYPE_CHECKING imports"
        findings.append(
            Finding(
                worker=WORKER,
                rule="map/import-cycle",
                severity=Severity.medium if cycle.import_time else Severity.low,
                file=path_of.get(first),
                line=line_of.get((first, second)),
                title=f"Import cycle among {cycle.size} modules: {', '.join(cycle.modules[:6])}"
                + (" …" if cycle.size > 6 else ""),
                description=f"Modules import each other ({kind}): {hops}. Found as a strongly connected "
                "component of the static import graph (ast, Tarjan).",
                source="local",
            )
        )
    for module in repo_map.modules:
        if module.parse_error:
            findings.append(
                Finding(
                    worker=WORKER,
                    rule="map/parse-error",
                    severity=Severity.info,
                    file=module.path,
                    title=f"Python file could not be parsed: {module.path}",
                    description=f"ast.parse failed ({module.parse_error}); its imports are not in the graph.",
                    source="local",
                )
            )
    return sort_findings(findings)


def run_map(repo: Path, *, largest: int = 20) -> LocalResult:
    """The map worker: `build_repo_map` as a `LocalResult` (tables, findings, markdown summary)."""
    repo_map = build_repo_map(repo, largest=largest)
    tools = [python_tool()]
    method = (
        f"listed files with {repo_map.listed_with}; counted lines of every text file (code lines = "
        "non-blank lines not starting with a line comment); parsed every Python file with ast to build the "
        "internal import graph (dotted names from the package layout, src-layout aware, absolute and "
        "relative imports); cycles are strongly connected components (Tarjan)."
    )
    findings = map_findings(repo_map)
    tables = {
        "tree": rows(repo_map.tree),
        "languages": rows(repo_map.languages),
        "largest_files": rows(repo_map.largest_files),
        "modules": rows(repo_map.modules),
        "edges": rows(repo_map.edges),
        "external_imports": rows(repo_map.external_imports),
        "cycles": [
            {**row, "example": " → ".join(c.example)}
            for row, c in zip(rows(repo_map.cycles), repo_map.cycles, strict=True)
        ],
    }
    import_time_cycles = sum(1 for c in repo_map.cycles if c.import_time)
    return local_result(
        worker=WORKER,
        method=method,
        tools=tools,
        findings=findings,
        tables=tables,
        sections=[
            f"## Repository map\n\n{repo_map.files} files, {repo_map.lines} lines ({repo_map.code_lines} code "
            f"lines), {repo_map.bytes} bytes; {repo_map.python_files} Python modules, {len(repo_map.edges)} "
            f"internal import edges, {len(repo_map.cycles)} import cycles ({import_time_cycles} at import "
            f"time). Measured in {repo_map.seconds:.2f} s.",
            "### Languages\n\n"
            + markdown_table(tables["languages"], ["language", "files", "lines", "code_lines"], limit=12),
            "### Top-level tree\n\n" + markdown_table(tables["tree"], ["path", "files", "lines"], limit=20),
            "### Largest files\n\n" + markdown_table(tables["largest_files"], ["path", "bytes", "lines"], limit=10),
            "### Most imported modules\n\n"
            + markdown_table(tables["modules"], ["module", "fan_in", "fan_out", "lines"], limit=10),
            "### Import cycles\n\n"
            + markdown_table(tables["cycles"], ["cycle", "size", "import_time", "example"], limit=10),
        ],
        report=None,
    )
