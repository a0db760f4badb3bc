"""refactor: duplicated blocks (normalized token windows) and radon complexity."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_local_repos import make_repo, make_sample_repo

from nightshift.local.duplication import find_duplicates
from nightshift.local.pysource import load_python_sources
from nightshift.local.refactor import analyse_refactoring, run_refactor


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_repo(tmp_path_factory.mktemp("refactor") / "shop")


def test_duplicated_block_is_reported_with_both_locations(sample: Path) -> None:
    report = analyse_refactoring(sample)
    assert len(report.duplicates) == 1
    block = report.duplicates[0]
    # renamed variables still match; the report.py copy has a docstring the util.py copy lacks
    assert (block.file_a, block.start_a, block.end_a) == ("src/shop/report.py", 7, 17)
    assert (block.file_b, block.start_b, block.end_b) == ("src/shop/util.py", 4, 13)
    assert block.lines == 10


def test_complex_functions_are_ranked(sample: Path) -> None:
    result = run_refactor(sample)
    complexity = [f for f in result.findings if f.rule == "refactor/complexity"]
    assert [(f.file, f.line, f.title) for f in complexity] == [
        ("src/shop/util.py", 26, "High cyclomatic complexity in grade")
    ]
    assert "radon cyclomatic complexity 13 (rank C" in complexity[0].description
    dup = next(f for f in result.findings if f.rule == "refactor/duplicate-block")
    assert dup.title == "Duplicated block also in src/shop/util.py"
    assert "src/shop/report.py:7-17 and src/shop/util.py:4-13" in dup.description
    assert "radon 6." in result.summary_markdown
    lower = analyse_refactoring(sample, max_complexity=5)
    assert [(f.function, f.complexity) for f in lower.complex_functions] == [("grade", 13), ("crunch", 7)]


def test_declarations_and_short_or_overlapping_repeats_are_not_duplicates(tmp_path: Path) -> None:
    table = "".join(f'    "k{i}": ("v{i}", {i}),\n' for i in range(30))
    body = "".join(f"    x{i} = y{i} + {i}\n" for i in range(5))
    root = make_repo(
        tmp_path / "noise",
        {
            "table.py": f"TABLE = {{\n{table}}}\n\nOTHER = {{\n{table}}}\n",
            "short.py": f"def f():\n{body}\n\ndef g():\n{body}",
            "repeat.py": "def h(v):\n" + "    v = v + 1\n    v = v * 2\n    v = v - 3\n" * 6 + "    return v\n",
        },
    )
    sources = load_python_sources(root, ["table.py", "short.py", "repeat.py"])
    assert find_duplicates(sources) == []
