"""Which files matter most to a worker: relevance signals, weighted by a `RankingPolicy`.

Each signal is a number in [0, 1] per file; a file's score is the weighted sum, and files
are ordered by score, then path, so the order is the same on every run. Every signal that
contributes leaves a readable reason on the file.

  flagged       a local analyzer flagged the file (`ContextSignals.flagged`)
  entry_point   __main__.py, main.py, app.py, cli.py, manage.py, setup.py, wsgi/asgi.py,
                a `if __name__ == "__main__":` guard, or web routes (urls.py, routes.py,
                views.py, `@app.route(`/`@router.get(`/`app.get(` handlers)
  recent_change 1 for a file in the newest commit, falling linearly to 0 at
                `history_commits` commits ago (git only)
  git_activity  commits touching the file among the last `history_commits`, over the most
                any file had (git only)
  untested      a source file for which no test file names it (test_x.py, x_test.go,
                x.test.ts, XTest.java...), looked up among all listed files
  size_balance  1 / (1 + tokens / 2000): small and medium files first, so a budget covers
                many files rather than a few big ones
  boost         a worker's own per-file number (`ContextSignals.boosts`)

`RankingPolicy.for_worker(name)` gives the presets: audit, testgaps, predict; the rest rank
by size balance only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from operator import itemgetter
from pathlib import PurePosixPath
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nightshift.context.history import History

SIZE_BALANCE_TOKENS = 2000
ENTRY_POINT_NAMES = frozenset(
    {"__main__.py", "main.py", "app.py", "cli.py", "manage.py", "setup.py", "wsgi.py", "asgi.py",
     "server.py", "main.go", "main.rs", "index.js", "index.ts", "server.js", "server.ts", "app.js", "app.ts"}
)  # fmt: skip
ROUTE_FILE_NAMES = frozenset({"urls.py", "routes.py", "views.py", "routes.js", "routes.ts", "router.js", "router.ts"})
ROUTE_DIRS = frozenset({"routes", "controllers", "handlers", "endpoints"})
SOURCE_SUFFIXES = frozenset(
    {".py", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".go", ".rb", ".java", ".kt", ".php", ".cs",
     ".swift", ".scala", ".c", ".cc", ".cpp", ".rs"}
)  # fmt: skip
NOT_NEEDING_TESTS = frozenset({"__init__.py", "__main__.py", "conftest.py", "setup.py", "manage.py"})
TEST_DIRS = frozenset({"test", "tests", "__tests__", "spec", "specs", "testing"})
_TEST_SUFFIXES = ("_test", "_tests", "_spec", "Test", "Tests", "Spec")


class RankingPolicy(BaseModel):
    """Weights of the relevance signals (see the module docstring); 0 turns a signal off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flagged: float = Field(0.0, ge=0)
    entry_point: float = Field(0.0, ge=0)
    recent_change: float = Field(0.0, ge=0)
    git_activity: float = Field(0.0, ge=0)
    untested: float = Field(0.0, ge=0)
    size_balance: float = Field(1.0, ge=0)
    boost: float = Field(1.0, ge=0)
    history_commits: int = Field(200, ge=1, le=100_000, description="how far back git signals look")
    truncate_top_n: int = Field(
        5, ge=0, description="the N best-ranked files are truncated to fit the budget instead of dropped"
    )

    @property
    def needs_history(self) -> bool:
        return self.recent_change > 0 or self.git_activity > 0

    @classmethod
    def for_worker(cls, worker: str) -> RankingPolicy:
        return PRESETS.get(worker, PRESETS["default"])


PRESETS: dict[str, RankingPolicy] = {
    "default": RankingPolicy(),
    "audit": RankingPolicy(flagged=8, entry_point=3, recent_change=2, size_balance=0.5),
    "testgaps": RankingPolicy(untested=6, recent_change=1, size_balance=0.5),
    "predict": RankingPolicy(git_activity=6, recent_change=3, size_balance=0.25),
}


class ContextSignals(BaseModel):
    """Per-run facts a worker brings: analyzer findings, its own boosts. Paths are repo-relative."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flagged: frozenset[str] = frozenset()
    boosts: dict[str, float] = Field(default_factory=dict)

    @field_validator("flagged", mode="after")
    @classmethod
    def _normalize_paths(cls, paths: frozenset[str]) -> frozenset[str]:
        return frozenset(p.replace("\\", "/").removeprefix("./") for p in paths)

    @field_validator("boosts", mode="after")
    @classmethod
    def _finite_boosts(cls, boosts: dict[str, float]) -> dict[str, float]:
        if not all(math.isfinite(v) for v in boosts.values()):
            raise ValueError("boosts must be finite numbers")
        return {p.replace("\\", "/").removeprefix("./"): v for p, v in boosts.items()}


class Ranked(NamedTuple):
    path: str
    score: float
    reasons: list[str]


def estimate_tokens(chars: int) -> int:
    """ceil(chars / 4): an estimate, no tokenizer is consulted."""
    return -(-chars // 4)


def _base(path: str) -> str:
    """The name up to its first dot: foo.spec.ts -> foo, test_foo.py -> test_foo."""
    return PurePosixPath(path).name.split(".", 1)[0]


def is_test_file(path: str) -> bool:
    pure = PurePosixPath(path)
    return (
        pure.name.startswith("test_")
        or pure.name == "conftest.py"
        or ".test." in pure.name
        or ".spec." in pure.name
        or _base(path).endswith(_TEST_SUFFIXES)
        or any(part in TEST_DIRS for part in pure.parts[:-1])
    )


def subject_of_test(path: str) -> str:
    """The name a test file is about: test_foo.py, foo_test.go, foo.spec.ts, FooTest.java -> 'foo'."""
    base = _base(path).removeprefix("test_")
    for suffix in _TEST_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)].lower()
    return base.lower()


def tested_subjects(listed: Iterable[str]) -> set[str]:
    return {subject_of_test(p) for p in listed if is_test_file(p)}


def _entry_point_reason(path: str, entry_hint: str) -> str | None:
    pure = PurePosixPath(path)
    if pure.name in ENTRY_POINT_NAMES:
        return f"entry point ({pure.name})"
    if entry_hint == "main-guard":
        return "entry point (if __name__ == '__main__')"
    if pure.name in ROUTE_FILE_NAMES or (pure.suffix in SOURCE_SUFFIXES and ROUTE_DIRS & set(pure.parts[:-1])):
        return f"web routes ({pure.name})"
    if entry_hint == "routes":
        return "web routes (route handlers)"
    return None


def rank(
    files: Iterable[tuple[str, int, str]],
    policy: RankingPolicy,
    signals: ContextSignals,
    *,
    history: History,
    listed: list[str],
) -> list[Ranked]:
    """Order (path, length in chars, entry hint) triples best first; ties broken by path."""
    w_flagged, w_entry, w_recent = policy.flagged, policy.entry_point, policy.recent_change
    w_activity, w_untested, w_boost, w_size = policy.git_activity, policy.untested, policy.boost, policy.size_balance
    flagged, boosts = signals.flagged, signals.boosts
    tested = tested_subjects(listed) if w_untested else set()
    last_touched, counts = history.last_touched, history.counts
    most_commits = max(counts.values(), default=0)
    ranked = []
    for path, chars, entry_hint in files:
        score, reasons = 0.0, []
        if w_flagged and path in flagged:
            score += w_flagged
            reasons.append("flagged by a local analyzer")
        if w_entry and (why := _entry_point_reason(path, entry_hint)):
            score += w_entry
            reasons.append(why)
        if w_recent and path in last_touched:
            age = last_touched[path]
            score += w_recent * (1 - age / max(history.commits, 1))
            reasons.append("changed in the newest commit" if age == 0 else f"changed {age} commits ago")
        if w_activity and counts.get(path):
            score += w_activity * counts[path] / most_commits
            reasons.append(f"{counts[path]} of the last {history.commits} commits touch it")
        if w_untested and _needs_a_test(path) and _base(path).lower() not in tested:
            score += w_untested
            reasons.append("no matching test file")
        if w_boost and boosts.get(path):
            score += w_boost * boosts[path]
            reasons.append(f"boosted by the worker ({boosts[path]:g})")
        if w_size:
            tokens = estimate_tokens(chars)
            score += w_size / (1 + tokens / SIZE_BALANCE_TOKENS)
            reasons.append(f"size-balanced (~{tokens} tokens)")
        ranked.append(Ranked(path, round(score, 9), reasons))
    # by path, then (a stable sort) by score: best first, ties by path, without a key tuple per file
    ranked.sort(key=_BY_PATH)
    ranked.sort(key=_BY_SCORE, reverse=True)
    return ranked


_BY_PATH, _BY_SCORE = itemgetter(0), itemgetter(1)


def _needs_a_test(path: str) -> bool:
    pure = PurePosixPath(path)
    return pure.suffix in SOURCE_SUFFIXES and pure.name not in NOT_NEEDING_TESTS and not is_test_file(path)
