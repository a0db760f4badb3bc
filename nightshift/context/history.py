"""Recent git activity per file, from one `git log --name-only` over the last N commits.

Paths are relative to the repository directory handed in (`--relative`), which may be a
subdirectory of the work tree. Renames are not followed. A repository without commits,
or no git at all, simply has no history.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

GIT_LOG_TIMEOUT_S = 120


@dataclass(frozen=True)
class History:
    commits: int = 0  # commits actually looked at
    last_touched: dict[str, int] = field(default_factory=dict)  # path -> commits ago (0 = newest)
    counts: Counter[str] = field(default_factory=Counter)  # path -> commits touching it


def git_history(repo: Path, commits: int) -> History:
    try:
        done = subprocess.run(
            ["git", "-c", "core.quotepath=off", "log", f"-n{commits}", "--relative", "--no-renames",
             "--name-only", "--format=%x1e", "-z"],
            cwd=repo,
            capture_output=True,
            timeout=GIT_LOG_TIMEOUT_S,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return History()
    if done.returncode != 0:
        return History()
    last_touched: dict[str, int] = {}
    counts: Counter[str] = Counter()
    records = done.stdout.decode("utf-8", "surrogateescape").split("\x1e")[1:]
    for age, record in enumerate(records):
        for path in {p.strip("\n") for p in record.split("\0")} - {""}:
            last_touched.setdefault(path, age)
            counts[path] += 1
    return History(len(records), last_touched, counts)
