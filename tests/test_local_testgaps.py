"""testgaps: real coverage runs on a tiny repository, recorded data files, and the labelled fallback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import git
import pytest
from test_local_repos import make_repo

from nightshift.errors import ConfigError
from nightshift.local.testgaps import find_test_gaps, pick_python, run_testgaps

CALC_FILES = {
    "calc/__init__.py": '"""Calc."""\n',
    "calc/ops.py": """\
        def add(a, b):
            return a + b


        def sub(a, b):
            result = a - b
            return result


        def classify(x):
            if x > 0:
                return "pos"
            a = 1
            b = 2
            c = a + b
            return "neg" * c


        class Box:
            def put(self, item):
                return [item]

            def _helper(self):
                raise NotImplementedError
        """,
    "calc/extra.py": "def lonely():\n    return 42\n",
    "tests/test_ops.py": """\
        from calc.ops import add, classify


        def test_add():
            assert add(1, 2) == 3


        def test_classify():
            assert classify(1) == "pos"
        """,
}


@pytest.fixture(scope="module")
def calc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("testgaps") / "calc", CALC_FILES)


def test_coverage_run_finds_untested_and_poorly_tested_functions(calc: Path) -> None:
    gaps = find_test_gaps(calc)
    assert gaps.method == "coverage-run"
    assert gaps.test_returncode == 0
    assert "python -m pytest -q" in gaps.method_detail.replace(sys.executable, "python")
    status = {(f.file, f.function): (f.status, f.statements, f.covered) for f in gaps.functions}
    assert status[("calc/ops.py", "add")] == ("covered", 1, 1)
    assert status[("calc/ops.py", "sub")] == ("untested", 2, 0)
    assert status[("calc/ops.py", "classify")] == ("low", 6, 2)
    assert status[("calc/ops.py", "Box.put")] == ("untested", 1, 0)
    assert ("calc/ops.py", "Box._helper") not in status  # a stub is not untested code
    assert status[("calc/extra.py", "lonely")] == ("untested", 1, 0)  # never imported, still measured
    assert not any(f.file.startswith("tests/") for f in gaps.functions)
    modules = {m.file: m for m in gaps.modules}
    assert modules["calc/extra.py"].percent == 0.0
    assert modules["calc/ops.py"].untested_functions == 2


def test_coverage_run_leaves_the_repository_clean(calc: Path) -> None:
    run_testgaps(calc)
    with git.Repo(calc) as repo:
        assert repo.untracked_files == []
        assert not repo.is_dirty()


def test_testgaps_result_findings_and_labels(calc: Path) -> None:
    result = run_testgaps(calc)
    assert result.method.startswith("coverage-run: ran `")
    assert result.summary_markdown.startswith("**Local analysis (no AI agent).**")
    assert "coverage 7." in result.summary_markdown
    found = {(f.rule, f.file, f.line, f.title) for f in result.findings}
    assert ("testgaps/untested-function", "calc/ops.py", 5, "Untested function sub") in found
    assert ("testgaps/untested-function", "calc/extra.py", 1, "Untested function lonely") in found
    assert ("testgaps/low-coverage", "calc/ops.py", 10, "Low test coverage in classify") in found
    low = next(f for f in result.findings if f.rule == "testgaps/low-coverage")
    assert "2 of 6 statements (33.3%)" in low.description
    assert {row["function"] for row in result.tables["functions"]} >= {"add", "sub", "classify", "Box.put"}


def test_recorded_coverage_json_is_used_first(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "calc", CALC_FILES)
    report = {
        "meta": {"format": 3},
        "files": {
            # recorded in another checkout: mapped by path suffix
            "/ci/build/calc/calc/ops.py": {"executed_lines": [1, 2, 5], "missing_lines": [6, 7], "excluded_lines": []},
        },
    }
    (root / "coverage.json").write_text(json.dumps(report))
    gaps = find_test_gaps(root)
    assert gaps.method == "coverage-file"
    assert "coverage.json" in gaps.method_detail
    status = {f.function: (f.status, f.covered, f.statements) for f in gaps.functions}
    assert status == {"add": ("covered", 1, 1), "sub": ("untested", 0, 2)}


def test_heuristic_when_tests_are_not_run(calc: Path) -> None:
    result = run_testgaps(calc, run_tests=False)
    assert result.method.startswith("structural-heuristic: no coverage data: source modules with no test file")
    assert [(f.rule, f.file) for f in result.findings] == [("testgaps/no-test-reference", "calc/extra.py")]
    assert result.tables["functions"] == []


def test_a_test_command_without_coverage_data_falls_back_with_a_reason(calc: Path) -> None:
    gaps = find_test_gaps(calc, test_command=[sys.executable, "-m", "no_such_module_for_nightshift"])
    assert gaps.method == "structural-heuristic"
    assert any("produced no data" in note for note in gaps.notes)
    assert [m.module for m in gaps.unreferenced] == ["calc.extra"]


def test_unsupported_test_commands_are_config_errors(calc: Path) -> None:
    with pytest.raises(ConfigError, match="python -m <module>"):
        find_test_gaps(calc, test_command=["make", "test"])
    with pytest.raises(ConfigError, match="not found"):
        find_test_gaps(calc, coverage_file=Path("missing.json"))


def test_the_repositorys_own_virtualenv_runs_its_tests(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "calc", {**CALC_FILES, ".gitignore": ".venv/\n"})
    wrapper = root / ".venv" / "bin" / "python"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    assert pick_python(root) == str(wrapper)
    gaps = find_test_gaps(root)
    assert gaps.method == "coverage-run"
    assert f"ran `{wrapper} -m pytest" in gaps.method_detail
    assert pick_python(tmp_path) == sys.executable
