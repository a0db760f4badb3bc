"""Pieces of context gathering on their own: glob semantics, truncation, test matching, ranking."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from nightshift.context.budget import truncate, truncation_marker
from nightshift.context.files import vendored_paths, vendored_reason
from nightshift.context.history import History
from nightshift.context.index import read_facts, tree_hash
from nightshift.context.paths import compile_globs
from nightshift.context.ranking import (
    ContextSignals,
    Ranking,
    RankingPolicy,
    _split,
    _suffix,
    estimate_tokens,
    is_test_file,
    rank,
    subject_of_test,
)


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("*.py", ["a.py", ".hidden.py"], ["src/a.py", "a.pyc"]),
        ("**/*.py", ["a.py", "src/a.py", "src/x/y/a.py"], ["a.pyi", "src/a.txt"]),
        ("src/**", ["src/a", "src/x/y/z.txt"], ["src", "lib/src/a"]),
        ("src/", ["src/a", "src/x/y"], ["srcx/a"]),
        ("src/**/test_*.py", ["src/test_a.py", "src/x/test_b.py"], ["src/x/a_test.py"]),
        ("*.{md,rst}", ["README.md", "index.rst"], ["a.txt", "docs/a.md"]),
        ("{src,lib}/**/*.{js,ts}", ["src/a.ts", "lib/x/b.js"], ["app/a.ts"]),
        ("file?.txt", ["file1.txt"], ["file10.txt", "file/.txt"]),
        ("[!_]*.py", ["a.py"], ["_private.py"]),
        ("[ab]*.py", ["alpha.py", "beta.py"], ["gamma.py"]),
        ("./src/*.py", ["src/a.py"], ["a.py"]),
        ("a+b(c).py", ["a+b(c).py"], ["aab(c).py"]),
    ],
)
def test_glob_semantics(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    globs = compile_globs([pattern])
    assert [p for p in matching if not globs.matches(p)] == []
    assert [p for p in not_matching if globs.matches(p)] == []


def test_glob_set_says_which_pattern_matched() -> None:
    globs = compile_globs(["*.md", "src/**"])
    assert globs.matching("src/a.py") == "src/**"
    assert globs.matching("x.txt") is None
    assert not compile_globs([]).matches("anything")


def test_truncate_keeps_whole_lines_and_counts_the_rest() -> None:
    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 chars per line
    cut = truncate(text, 50)
    assert cut is not None
    content, kept = cut
    assert content == "".join(f"line {i:03d}\n" for i in range(kept)) + truncation_marker(100 - kept)
    assert estimate_tokens(len(content)) <= 50
    assert kept > 15


def test_truncate_returns_text_that_fits_unchanged() -> None:
    assert truncate("short\n", 10) == ("short\n", 1)


def test_truncate_cuts_inside_a_single_huge_line() -> None:
    cut = truncate("x" * 10_000, 100)
    assert cut is not None
    content, kept = cut
    assert kept == 0
    assert content.endswith(truncation_marker(1))
    assert estimate_tokens(len(content)) <= 100
    assert truncate("x" * 10_000, 2) is None


@pytest.mark.parametrize(
    ("path", "subject"),
    [
        ("tests/test_parser.py", "parser"),
        ("pkg/parser_test.go", "parser"),
        ("web/form.test.ts", "form"),
        ("web/form.spec.tsx", "form"),
        ("src/test/java/ParserTest.java", "parser"),
        ("spec/user_spec.rb", "user"),
    ],
)
def test_test_files_and_their_subjects(path: str, subject: str) -> None:
    assert is_test_file(path)
    assert subject_of_test(path) == subject


@pytest.mark.parametrize("path", ["src/parser.py", "src/latest.py", "contest.py", "src/attestation.go"])
def test_ordinary_sources_are_not_test_files(path: str) -> None:
    assert not is_test_file(path)


def test_rank_ties_are_broken_by_path() -> None:
    files = [("b.py", 100, ""), ("a.py", 100, ""), ("c.py", 100, "")]
    ranked = rank(files, RankingPolicy(), ContextSignals(), history=History(), listed=[])
    assert [r.path for r in ranked] == ["a.py", "b.py", "c.py"]


def test_rank_combines_weighted_signals() -> None:
    policy = RankingPolicy(flagged=2, entry_point=1, size_balance=0)
    files = [("main.py", 10, ""), ("lib.py", 10, ""), ("both/main.py", 10, "")]
    signals = ContextSignals(flagged=frozenset({"lib.py", "both/main.py"}))
    ranked = rank(files, policy, signals, history=History(), listed=[])
    assert [(r.path, r.score) for r in ranked] == [("both/main.py", 3.0), ("lib.py", 2.0), ("main.py", 1.0)]


def test_presets_by_worker() -> None:
    assert RankingPolicy.for_worker("audit").flagged > 0
    assert RankingPolicy.for_worker("testgaps").untested > 0
    assert RankingPolicy.for_worker("predict").git_activity > 0
    assert RankingPolicy.for_worker("document") == RankingPolicy()


def test_file_facts() -> None:
    assert read_facts(b"\x00\x01binary", "a.bin").binary
    assert read_facts(b"x = 1\n" * 10 + b'if __name__ == "__main__":\n    run()\n', "a.py").entry == "main-guard"
    assert read_facts(b"@router.get('/items')\nasync def items(): ...\n", "api.py").entry == "routes"
    minified = read_facts(b"var a=1;" * 1000, "a.js")
    assert minified.minified
    assert not read_facts(b"A long paragraph. " * 30 + b"\n\n" + b"short\n" * 3, "README.md").minified


def test_tree_hash_is_order_independent() -> None:
    entries = [("a", "1"), ("b", "2")]
    assert tree_hash(entries) == tree_hash(list(reversed(entries)))
    assert tree_hash(entries) != tree_hash([("a", "1"), ("b", "3")])


ODD_PATHS = [
    "a.py", "src/a.py", ".hidden", "dir/.hidden.py", "sub/", "a//b.py", "/abs.py", "./a.py", "a/./b.py", "a/.",
    ".", "x.", "a/..", "tests/test_x.py", "a\nb.py", "a\tb.py", "routes/a.ts", "pkg/views.py",
]  # fmt: skip


@pytest.mark.parametrize("pattern", ["**/*", "**", "./**/*", "*", "**/*.py"])
def test_globs_that_match_everything_filter_like_the_regex(pattern: str) -> None:
    globs = compile_globs([pattern])
    listings = [["a.py", "src/b.py", "sub/", ".hidden"], ODD_PATHS, [p for p in ODD_PATHS if "\n" not in p]]
    for paths in listings:
        assert globs.filter(paths) == [p for p in paths if globs.matches(p)]


def test_vendored_paths_is_exactly_what_vendored_reason_refuses() -> None:
    paths = [
        *ODD_PATHS, "node_modules/x/index.js", "a/vendor/b.go", "x.egg-info/PKG-INFO", "lib/y.dist-info/RECORD",
        "go.sum", "a/package-lock.json", "xpackage-lock.json", "app.min.js", "m_pb2.py", "poetry.lock", "build",
        "dist/a", "a/.venv/b", "vendorx/a.go",
    ]  # fmt: skip
    found = vendored_paths(paths)
    assert {p for p in found if vendored_reason(p)} == {p for p in paths if vendored_reason(p)}
    assert "xpackage-lock.json" in found  # a candidate only: vendored_reason has the last word
    assert vendored_reason("xpackage-lock.json") is None


def test_path_parts_are_pathlib_s() -> None:
    for path in ODD_PATHS:
        pure = PurePosixPath(path)
        directories, name = _split(path)
        assert (list(directories), name) == (list(pure.parts[:-1]), pure.name), path
        assert _suffix(name) == pure.suffix, path


def test_rank_agrees_with_ranking_order_and_reasons() -> None:
    policy = RankingPolicy(entry_point=2, untested=1, size_balance=1)
    files = [("b/main.py", 400, ""), ("a/util.py", 400, ""), ("tests/test_util.py", 40, ""), ("c.py", 40, "routes")]
    ranking = Ranking(policy, ContextSignals(), history=History(), listed=[f[0] for f in files])
    order = ranking.order([f[0] for f in files], [f[1] for f in files], [f[2] for f in files])
    ranked = rank(files, policy, ContextSignals(), history=History(), listed=[f[0] for f in files])
    assert (
        [r.path for r in ranked]
        == [files[i][0] for i in order]
        == ["c.py", "b/main.py", "tests/test_util.py", "a/util.py"]
    )
    assert ranked[0].reasons == ["web routes (route handlers)", "no matching test file", "size-balanced (~10 tokens)"]
