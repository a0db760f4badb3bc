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
from collections.abc import Iterable, Sequence
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


def _split(path: str) -> tuple[Sequence[str], str]:
    """(directories, name) of a '/'-separated path, as `PurePosixPath` has them: its `parts[:-1]`
    and `name`. Paths as listings hold them take a fast way; anything else asks pathlib."""
    if (
        path
        and path[0] != "/"
        and path[-1] != "/"
        and "//" not in path
        and "/./" not in path
        and not path.startswith("./")
        and not path.endswith("/.")
        and path != "."
    ):
        directory, _, name = path.rpartition("/")
        return (directory.split("/") if directory else ()), name
    pure = PurePosixPath(path)
    return pure.parts[:-1], pure.name


def _suffix(name: str) -> str:
    """`PurePosixPath.suffix` of a name: from its last dot, unless that starts or ends it."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _base(path: str) -> str:
    """The name up to its first dot: foo.spec.ts -> foo, test_foo.py -> test_foo."""
    return _split(path)[1].split(".", 1)[0]


def is_test_file(path: str) -> bool:
    directories, name = _split(path)
    return _is_test(directories, name)


def _is_test(directories: Sequence[str], name: str) -> bool:
    return (
        name.startswith("test_")
        or name == "conftest.py"
        or ".test." in name
        or ".spec." in name
        or name.split(".", 1)[0].endswith(_TEST_SUFFIXES)
        or not TEST_DIRS.isdisjoint(directories)
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
    directories, name = _split(path)
    if name in ENTRY_POINT_NAMES:
        return f"entry point ({name})"
    if entry_hint == "main-guard":
        return "entry point (if __name__ == '__main__')"
    if name in ROUTE_FILE_NAMES or (_suffix(name) in SOURCE_SUFFIXES and not ROUTE_DIRS.isdisjoint(directories)):
        return f"web routes ({name})"
    if entry_hint == "routes":
        return "web routes (route handlers)"
    return None


class Ranking:
    """A policy's weighted signals, ready to score files: `order` them best first, `reasons`
    for one. Scores are computed for every file; reasons only for those that are asked for
    (the ones a budget takes), so that thousands of files cost no reason strings."""

    def __init__(self, policy: RankingPolicy, signals: ContextSignals, *, history: History, listed: list[str]) -> None:
        self.policy, self.signals, self.history = policy, signals, history
        self.tested = tested_subjects(listed) if policy.untested else set()
        self.most_commits = max(history.counts.values(), default=0)

    def order(self, paths: Sequence[str], chars: Sequence[int], entry_hints: Sequence[str]) -> list[int]:
        """Indexes of the files, best first; ties broken by path."""
        weigh = self._weigh
        scores = [weigh(path, n, hint, None) for path, n, hint in zip(paths, chars, entry_hints, strict=True)]
        order = sorted(range(len(scores)), key=paths.__getitem__)
        order.sort(key=scores.__getitem__, reverse=True)  # stable: ties stay in path order
        return order

    def score(self, path: str, chars: int, entry_hint: str) -> float:
        return self._weigh(path, chars, entry_hint, None)

    def reasons(self, path: str, chars: int, entry_hint: str) -> list[str]:
        """Why the file scores what it does: one reason per contributing signal."""
        reasons: list[str] = []
        self._weigh(path, chars, entry_hint, reasons)
        return reasons

    def _weigh(self, path: str, chars: int, entry_hint: str, reasons: list[str] | None) -> float:
        policy, signals, history = self.policy, self.signals, self.history
        score = 0.0
        if policy.flagged and path in signals.flagged:
            score += policy.flagged
            if reasons is not None:
                reasons.append("flagged by a local analyzer")
        if policy.entry_point and (why := _entry_point_reason(path, entry_hint)):
            score += policy.entry_point
            if reasons is not None:
                reasons.append(why)
        if policy.recent_change and path in history.last_touched:
            age = history.last_touched[path]
            score += policy.recent_change * (1 - age / max(history.commits, 1))
            if reasons is not None:
                reasons.append("changed in the newest commit" if age == 0 else f"changed {age} commits ago")
        if policy.git_activity and (count := history.counts.get(path)):
            score += policy.git_activity * count / self.most_commits
            if reasons is not None:
                reasons.append(f"{count} of the last {history.commits} commits touch it")
        if policy.untested and _needs_a_test(path) and _base(path).lower() not in self.tested:
            score += policy.untested
            if reasons is not None:
                reasons.append("no matching test file")
        if policy.boost and (boost := signals.boosts.get(path)):
            score += policy.boost * boost
            if reasons is not None:
                reasons.append(f"boosted by the worker ({boost:g})")
        if policy.size_balance:
            tokens = -(-chars // 4)  # estimate_tokens
            score += policy.size_balance / (1 + tokens / SIZE_BALANCE_TOKENS)
            if reasons is not None:
                reasons.append(f"size-balanced (~{tokens} tokens)")
        return round(score, 9)


def rank(
    files: Iterable[tuple[str, int, str]],
    policy: RankingPolicy,
    signals: ContextSignals,
    *,
    history: History,
    listed: list[str],
) -> list[Ranked]:
    """Order (path, length in chars, entry hint) triples best first; ties broken by path."""
    triples = list(files)
    paths, chars, hints = [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]
    ranking = Ranking(policy, signals, history=history, listed=listed)
    return [
        Ranked(paths[i], ranking.score(paths[i], chars[i], hints[i]), ranking.reasons(paths[i], chars[i], hints[i]))
        for i in ranking.order(paths, chars, hints)
    ]


def _needs_a_test(path: str) -> bool:
    directories, name = _split(path)
    return _suffix(name) in SOURCE_SUFFIXES and name not in NOT_NEEDING_TESTS and not _is_test(directories, name)
