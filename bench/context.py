"""Benchmark: context gathering on a large real repository vs merely reading its files.

    uv run python bench/context.py [--package django==5.2.8] [--repeat 7] [--budget 100000]

The sdist (default Django, ~6,900 files) is fetched once with `pip download --no-binary
:all: --no-deps` into ~/.cache/nightshift-bench/, unpacked, and made a git repository with
one commit, so the `git ls-files` path is the one measured (an existing checkout there is
reused, never modified). Timed, each the best of --repeat runs, interleaved:

  raw read      open(path, "rb").read() of every listed file (no git, no filtering)
  cold          gather_context with an empty index: every candidate file is read and hashed
  warm          gather_context with the index of a previous run: only selected files are read

Prints wall-clock and CPU seconds, and warm/raw and cold/raw ratios (goal: warm <= 1.5).
Asserts nothing about time: the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from nightshift.context import ContextSpec, RankingPolicy, gather_context
from nightshift.context.files import list_files

CACHE = Path(os.environ.get("NIGHTSHIFT_BENCH_DIR", Path.home() / ".cache" / "nightshift-bench"))
DEFAULT_PACKAGE = "django==5.2.8"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def _python_with_pip() -> str:
    base = str(Path(sys.base_prefix) / "bin" / "python3")
    for candidate in (sys.executable, base, shutil.which("python3")):
        if candidate and subprocess.run([candidate, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit("no Python with pip found to download the benchmark sdist")


def prepare_repo(package: str, cache: Path) -> Path:
    """The unpacked sdist of `package` as a committed git repository (reused when present)."""
    name = package.replace("==", "-").lower()
    repo = cache / f"{name}-repo"
    if (repo / ".git").is_dir():
        return repo
    downloads = cache / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    found = sorted(downloads.glob(f"{name}*.tar.gz"))
    if not found:
        argv = [_python_with_pip(), "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-d", str(downloads)]
        subprocess.run([*argv, package], check=True)
        found = sorted(downloads.glob(f"{name}*.tar.gz"))
    unpack = Path(tempfile.mkdtemp(prefix="unpack-", dir=cache))
    with tarfile.open(found[-1]) as archive:
        archive.extractall(unpack, filter="data")
    (top,) = list(unpack.iterdir())
    top.rename(repo)
    unpack.rmdir()
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "sdist"]):
        subprocess.run(["git", *argv], cwd=repo, env=GIT_ENV, check=True, capture_output=True)
    return repo


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(w for w, _ in runs), min(c for _, c in runs)


def timed(action: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", default=DEFAULT_PACKAGE)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--worker", default="default", help="ranking preset: default, audit, testgaps, predict")
    args = parser.parse_args()

    repo = prepare_repo(args.package, CACHE).resolve()
    listed = list_files(repo)
    spec = ContextSpec(budget_tokens=args.budget, ranking=RankingPolicy.for_worker(args.worker))

    def raw_read() -> int:
        total = 0
        for path in listed.paths:
            try:
                with open(os.path.join(repo, path), "rb") as handle:
                    total += len(handle.read())
            except OSError:  # a directory (submodule) or a dangling link: nothing to read
                pass
        return total

    raw_bytes = raw_read()  # and warm the page cache for everyone
    work = Path(tempfile.mkdtemp(prefix="nightshift-bench-context-"))
    try:
        warm_cache = work / "warm"
        bundle = gather_context(repo, spec, cache_dir=warm_cache)
        raw, cold, warm = [], [], []
        for attempt in range(args.repeat):
            raw.append(timed(raw_read))
            cold_cache = work / f"cold-{attempt}"
            cold.append(timed(lambda: gather_context(repo, spec, cache_dir=cold_cache)))  # noqa: B023
            warm.append(timed(lambda: gather_context(repo, spec, cache_dir=warm_cache)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    skipped = Counter(s.code.value for s in bundle.skipped)
    print(f"repository   {repo} ({bundle.listed_with}; {len(listed.paths)} files, {raw_bytes / 1e6:.1f} MB)")
    print(f"spec         budget {args.budget} tokens, ranking '{args.worker}'")
    print(
        f"bundle       {len(bundle.files)} files, {bundle.total_tokens} tokens (estimated), "
        f"{len(bundle.redactions)} redactions"
    )
    print(f"skipped      {len(bundle.skipped)}: " + ", ".join(f"{k} {v}" for k, v in skipped.most_common()))
    print(f"timing       best of {args.repeat}      wall s    cpu s")
    (raw_wall, raw_cpu), (cold_wall, cold_cpu), (warm_wall, warm_cpu) = best(raw), best(cold), best(warm)
    for label, (wall, cpu) in (("raw read", (raw_wall, raw_cpu)), ("cold index", (cold_wall, cold_cpu)),
                               ("warm index", (warm_wall, warm_cpu))):  # fmt: skip
        print(f"  {label:<24} {wall:8.3f} {cpu:8.3f}")
    print(f"ratio        warm/raw {warm_wall / raw_wall:.2f} wall, {warm_cpu / raw_cpu:.2f} cpu   (goal <= 1.5)")
    print(f"             cold/raw {cold_wall / raw_wall:.2f} wall, {cold_cpu / raw_cpu:.2f} cpu")


if __name__ == "__main__":
    main()
