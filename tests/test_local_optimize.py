"""optimize: static heuristics — nested loops, repeated work in loops, complexity hot spots."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_local_repos import line_of, make_repo, make_sample_repo

from nightshift.local.optimize import analyse_performance, loop_patterns, run_optimize
from nightshift.local.pysource import PySource, parse_python


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_repo(tmp_path_factory.mktemp("optimize") / "shop")


def _source(text: str) -> PySource:
    tree, error = parse_python(text, "m.py")
    return PySource(path="m.py", text=text, tree=tree, error=error)


def test_loop_patterns_of_the_sample(sample: Path) -> None:
    result = run_optimize(sample)
    slow = "src/shop/slow.py"
    found = {(f.rule, f.line) for f in result.findings if f.file == slow}
    assert found == {
        ("optimize/nested-loops", line_of(sample, slow, "MARK:deep")),
        ("optimize/list-membership-in-loop", line_of(sample, slow, "MARK:membership")),
        ("optimize/str-concat-in-loop", line_of(sample, slow, "MARK:concat")),
        ("optimize/regex-compile-in-loop", line_of(sample, slow, "MARK:regex")),
        ("optimize/list-front-op-in-loop", line_of(sample, slow, "MARK:pop")),
    }
    nested = next(f for f in result.findings if f.rule == "optimize/nested-loops")
    assert f"outermost starts at line {line_of(sample, slow, 'MARK:outer')}" in nested.description
    assert all("not a measurement" in f.description for f in result.findings)
    assert result.method.startswith("static heuristics only (nothing was run or profiled)")
    assert "Performance suspects (static heuristics)" in result.summary_markdown


def test_hotspots_rank_complexity_times_size(sample: Path) -> None:
    report = analyse_performance(sample, hotspot_score=100)
    assert [(h.function, h.complexity, h.sloc, h.score) for h in report.hotspots][:2] == [
        ("grade", 13, 23, 299),
        ("crunch", 7, 17, 119),
    ]
    assert analyse_performance(sample).hotspots == []  # nothing reaches the default score of 500


def test_no_false_alarms_outside_loops_and_in_inner_functions() -> None:
    text = """\
import re

def fine(items, names):
    names = list(names)
    pattern = re.compile("x")
    text = ""
    text += "once"
    if "a" in names:
        pass
    total = []
    for item in items:
        total.append(item)
        def later(seen=[]):
            return re.compile(item)
    for a in items:
        print([b for b in a])
    return total
"""
    assert loop_patterns(_source(text)) == []


def test_comprehensions_count_as_loops_and_sets_are_fine() -> None:
    text = """\
def grid(rows, wanted):
    wanted = set(wanted)
    out = ""
    for row in rows:
        cells = [c for r in row for c in r if c in wanted]
        out = out + str(cells)
    return out
"""
    hits = {(h.rule, h.line) for h in loop_patterns(_source(text))}
    assert hits == {("optimize/nested-loops", 5), ("optimize/str-concat-in-loop", 6)}


def test_unparsable_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"bad.py": "for x in :\n", "ok.py": "X = 1\n"})
    report = analyse_performance(root)
    assert report.skipped
    assert report.skipped[0].startswith("bad.py:")
    assert report.patterns == []
