"""Benchmark: context gathering on a large real repository vs merely reading its files.

    uv run python bench/context.py [--package django==5.2.8] [--repeat 7] [--budget 100000]

The sdist (default Django, ~6,900 files) is fetched once with `pip download --no-binary
:all: --no-deps` into ~/.cache/nightshift-bench/, unpacked, and made a git repository with
one commit, so the `git ls-files` path is the one measured (an existing checkout there is
reused, never modified). Timed, each the best of --repeat runs, interleaved:

  raw read      open(path, "rb").read() of every listed file (the list is made once,
                untimed: no git, no filtering, no hashing); all N files, not only the
                ones a bundle selects, since gathering must look at every one of them
  cold          gather_context with an empty index: every candidate file is read and hashed
  warm          gather_context with the index of a previous run: git lists the files and
                vouches for the unchanged ones, only the selected files are read (and
                hashed, and redacted unless known clean); ranking, budget, the index saved

Prints wall-clock seconds, CPU seconds of this process, and CPU seconds including the git
processes gather_context runs and waits for (`cpu+git`; the raw read runs none): the best
of each column over the runs, and the median (the machine's noise shows there), then the
warm/raw and cold/raw ratios of the best (goal: warm <= 1.5). The load average is printed
too: on a shared machine, wall-clock time is the first to suffer.
Asserts nothing about time: the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

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


class Run(NamedTuple):
    wall: float
    cpu: float  # this process
    cpu_git: float  # this process and the (git) processes it waited for


def timed(action: Callable[[], object]) -> Run:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    git = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return Run(wall, cpu, cpu + git)


def best(runs: list[Run]) -> Run:
    return Run(*(min(column) for column in zip(*runs, strict=True)))


def median(runs: list[Run]) -> Run:
    return Run(*(statistics.median(column) for column in zip(*runs, strict=True)))


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
        raw: list[Run] = []
        cold: list[Run] = []
        warm: list[Run] = []
        for attempt in range(args.repeat):
            raw.append(timed(raw_read))
            cold_cache = work / f"cold-{attempt}"
            cold.append(timed(lambda: gather_context(repo, spec, cache_dir=cold_cache)))  # noqa: B023
            warm.append(timed(lambda: gather_context(repo, spec, cache_dir=warm_cache)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    skipped = Counter(s.code.value for s in bundle.skipped)
    selected_bytes = sum(len(f.content.encode("utf-8", "surrogateescape")) for f in bundle.files)
    print(f"repository   {repo} ({bundle.listed_with}; {len(listed.paths)} files, {raw_bytes / 1e6:.1f} MB)")
    print(f"spec         budget {args.budget} tokens, ranking '{args.worker}'")
    print(
        f"bundle       {len(bundle.files)} files ({selected_bytes / 1e6:.2f} MB), {bundle.total_tokens} tokens "
        f"(estimated), {len(bundle.redactions)} redactions"
    )
    print(f"skipped      {len(bundle.skipped)}: " + ", ".join(f"{k} {v}" for k, v in skipped.most_common()))
    print(
        f"raw read     open(p, 'rb').read() of each of the {len(listed.paths)} listed files "
        f"({raw_bytes / 1e6:.1f} MB): all that gathering looks at"
    )
    print(
        f"warm index   git lists and checks the {len(listed.paths)} files; the {len(bundle.files)} selected are read, "
        "hashed, redacted unless known clean"
    )
    print(f"machine      {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"timing       best of {args.repeat:<3}              median")
    print(f"{'':<15}{'wall s':>8}{'cpu s':>8}{'cpu+git':>9}  {'wall s':>8}{'cpu s':>8}{'cpu+git':>9}")
    rows = {"raw read": raw, "cold index": cold, "warm index": warm}
    for label, runs in rows.items():
        columns = "  ".join(f"{r.wall:8.3f}{r.cpu:8.3f}{r.cpu_git:9.3f}" for r in (best(runs), median(runs)))
        print(f"  {label:<13}{columns}")
    raw_best = best(raw)
    for name, runs in (("warm", warm), ("cold", cold)):
        low = best(runs)
        print(
            f"ratio        {name}/raw {low.wall / raw_best.wall:.2f} wall, {low.cpu / raw_best.cpu:.2f} cpu, "
            f"{low.cpu_git / raw_best.cpu_git:.2f} cpu+git" + ("   (goal <= 1.5)" if name == "warm" else "")
        )


if __name__ == "__main__":
    main()
