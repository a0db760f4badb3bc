"""map: tree, languages, and the Python import graph of a real repository (src layout, cycles)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_local_repos import make_repo, make_sample_repo

from nightshift.errors import ContextError
from nightshift.local.pysource import ModuleIndex, module_info, resolve_relative
from nightshift.local.repomap import build_repo_map, run_map, strongly_connected_components


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_repo(tmp_path_factory.mktemp("map") / "shop")


def test_module_names_follow_the_package_layout() -> None:
    packages = {"src/ns/pkg", "lib/core", "lib/core/sub"}
    assert module_info("src/ns/pkg/mod.py", packages).name == "ns.pkg.mod"  # namespace package in src/
    assert module_info("lib/core/sub/__init__.py", packages).name == "core.sub"
    assert module_info("lib/core/sub/__init__.py", packages).is_package
    assert module_info("scripts/tool.py", packages).name == "tool"
    assert module_info("setup.py", packages).name == "setup"


def test_relative_imports_resolve_against_the_importer() -> None:
    assert resolve_relative("pkg.sub.mod", False, 1, "x") == "pkg.sub.x"
    assert resolve_relative("pkg.sub.mod", False, 2, None) == "pkg"
    assert resolve_relative("pkg.sub", True, 1, "y") == "pkg.sub.y"
    assert resolve_relative("pkg", False, 3, "z") is None


def test_duplicate_module_names_resolve_within_the_same_source_root() -> None:
    index = ModuleIndex(["a/conftest.py", "a/helpers.py", "b/conftest.py", "b/helpers.py"])
    importer = index.by_path["b/conftest.py"]
    found = index.lookup("helpers", importer)
    assert found is not None
    assert found.path == "b/helpers.py"


def test_tarjan_finds_components_iteratively() -> None:
    chain = {str(i): [str(i + 1)] for i in range(5000)}  # deeper than the recursion limit
    chain["5000"] = ["0"]
    components = strongly_connected_components(sorted(chain, key=int), chain)
    assert [len(c) for c in components] == [5001]
    acyclic = strongly_connected_components(["a", "b"], {"a": ["b"]})
    assert sorted(map(len, acyclic)) == [1, 1]


def test_import_graph_of_the_sample_repo(sample: Path) -> None:
    repo_map = build_repo_map(sample)
    assert repo_map.listed_with.startswith("git ls-files")
    modules = {m.module: m for m in repo_map.modules}
    assert {"shop", "shop.orders", "shop.billing", "shop.alpha", "shop.beta", "test_orders"} <= set(modules)
    assert modules["shop.orders"].path == "src/shop/orders.py"
    assert modules["shop.orders"].fan_in == 2  # billing (relative import) and the test
    assert modules["shop.orders"].fan_out == 1

    edges = {(e.source, e.target): e for e in repo_map.edges}
    assert edges[("shop.billing", "shop.orders")].line == 2  # `from . import orders`
    assert edges[("shop.orders", "shop.billing")].import_time
    assert not edges[("shop.beta", "shop.alpha")].import_time  # imported inside a function
    assert ("test_orders", "shop.orders") in edges

    cycles = {tuple(c.modules): c for c in repo_map.cycles}
    assert set(cycles) == {("shop.billing", "shop.orders"), ("shop.alpha", "shop.beta")}
    assert cycles[("shop.billing", "shop.orders")].import_time
    assert cycles[("shop.billing", "shop.orders")].example == ["shop.billing", "shop.orders", "shop.billing"]
    assert not cycles[("shop.alpha", "shop.beta")].import_time

    external = {e.package: e for e in repo_map.external_imports}
    assert external["yaml"].stdlib is False
    assert external["subprocess"].stdlib is True
    assert "shop" not in external


def test_tree_languages_and_sizes(sample: Path) -> None:
    repo_map = build_repo_map(sample, largest=3)
    tree = {row.path: row for row in repo_map.tree}
    assert tree["src"].files == 9
    assert tree["tests"].files == 1
    assert tree["."].files == 6  # pyproject, README, .env, a.py, b.py, c.py
    python = next(row for row in repo_map.languages if row.language == "Python")
    assert python.files == 13
    assert repo_map.python_files == 13
    assert 0 < python.code_lines <= python.lines
    assert next(row.path for row in repo_map.largest_files) == "src/shop/util.py"
    assert len(repo_map.largest_files) == 3
    assert repo_map.files == sum(row.files for row in repo_map.tree)


def test_map_result_is_labelled_and_reports_cycles(sample: Path) -> None:
    result = run_map(sample)
    assert result.worker == "map"
    assert result.status == "completed"
    assert result.summary_markdown.startswith("**Local analysis (no AI agent).**")
    assert "Tarjan" in result.method
    assert [t.name for t in result.tools] == ["Python ast"]
    cycle_findings = [f for f in result.findings if f.rule == "map/import-cycle"]
    assert [(f.severity.value, f.file, f.line) for f in cycle_findings] == [
        ("medium", "src/shop/billing.py", 2),
        ("low", "src/shop/alpha.py", 2),
    ]
    assert all(f.source == "local" for f in result.findings)
    assert set(result.tables) >= {"tree", "languages", "largest_files", "modules", "edges", "cycles"}
    assert result.tables["cycles"][0]["example"].count("→") == 2


def test_untracked_ignored_files_are_left_out_and_walk_fallback(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {".gitignore": "generated/\n", "keep.py": "import gone\n"})
    (root / "generated").mkdir()
    (root / "generated" / "big.py").write_text("X = 1\n")
    (root / "new.py").write_text("import keep\n")  # untracked, not ignored: listed
    repo_map = build_repo_map(root)
    assert {m.path for m in repo_map.modules} == {"keep.py", "new.py"}
    assert [(e.source, e.target) for e in repo_map.edges] == [("new", "keep")]

    plain = tmp_path / "plain"
    (plain / "node_modules" / "x").mkdir(parents=True)
    (plain / "node_modules" / "x" / "index.js").write_text("x\n")
    (plain / "app.py").write_text("print(1)\n")
    walked = build_repo_map(plain)
    assert walked.listed_with.startswith("a directory walk honouring .gitignore")
    assert walked.files == 1


def test_syntax_errors_are_reported_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    make_repo(root, {"ok.py": "import bad\n", "bad.py": "def broken(:\n", "esc.py": 'X = "\\d"\n'})
    result = run_map(root)
    errors = [f for f in result.findings if f.rule == "map/parse-error"]
    assert [f.file for f in errors] == ["bad.py"]
    assert any(e["target"] == "bad" for e in result.tables["edges"])


def test_missing_repository_is_a_context_error(tmp_path: Path) -> None:
    with pytest.raises(ContextError):
        build_repo_map(tmp_path / "nope")
