"""Benchmark: the local map worker on a large real repository (default: the Django sdist, ~6,900 files).

    uv run python bench/map.py [--package django==5.2.8] [--repeat 3] [--all-workers]

The repository is the one `bench/context.py` prepares (and reuses) under ~/.cache/nightshift-bench/:
the sdist fetched with `pip download --no-binary :all: --no-deps`, unpacked and committed to git, so
the `git ls-files` path is the one measured. Prints figures, each map run timed (wall and CPU);
asserts nothing about time: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import time

from context import CACHE, DEFAULT_PACKAGE, prepare_repo  # bench/context.py, beside this script

from nightshift.local.repomap import build_repo_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", default=DEFAULT_PACKAGE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--all-workers", action="store_true", help="also time document, refactor, optimize, audit")
    args = parser.parse_args()

    repo = prepare_repo(args.package, CACHE)
    print(f"repository: {repo}")
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(args.repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        repo_map = build_repo_map(repo)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    import_time = sum(1 for c in repo_map.cycles if c.import_time)
    biggest = max((c.size for c in repo_map.cycles), default=0)
    print(
        f"map: files={repo_map.files} lines={repo_map.lines} python_modules={repo_map.python_files} "
        f"edges={len(repo_map.edges)} cycles={len(repo_map.cycles)} (import-time {import_time}, largest {biggest}) "
        f"parse_errors={sum(1 for m in repo_map.modules if m.parse_error)}"
    )
    print(
        f"map seconds: best wall {min(wall):.2f} (cpu {min(cpu):.2f}); all wall {', '.join(f'{t:.2f}' for t in wall)}"
    )

    if args.all_workers:
        from nightshift.local.workers import run_local

        for worker in ("document", "refactor", "optimize", "audit"):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = run_local(worker, repo)
            print(
                f"{worker}: {len(result.findings)} findings in {time.perf_counter() - started:.2f} s "
                f"(cpu {time.process_time() - started_cpu:.2f} s)"
            )


if __name__ == "__main__":
    main()
