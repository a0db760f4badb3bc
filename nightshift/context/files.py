"""Candidate files: which files of the repository a worker may be shown, and why not the rest.

Listing. In a git work tree, one `git ls-files -co --exclude-standard -z` call: tracked
files plus untracked ones that no ignore rule (.gitignore at any depth, .git/info/exclude,
the global excludes file) hides; alongside it (in parallel) `git diff-files` names the
tracked files gone from the working tree. Elsewhere, a walk that honours every .gitignore
the way git does (deeper files win, an ignored directory is not entered, `.git` is never
entered). Ignored files are not candidates and are not reported.

Filtering, in this order, each refusal reported as a `SkippedFile` with its reason:
include globs (a file no include matches was never asked for and is not reported),
exclude globs, vendored or generated paths (node_modules, vendor, dist, build, .venv,
third_party, lock files, *.min.js...), then an lstat: a symlink is followed only when its
target is inside the repository, and a file reached through a symlinked directory only
when that directory resolves inside it (neither git nor the walk enters such a directory,
so git reports the files behind one as gone, and only those are resolved); empty files
and files above `max_file_bytes` are skipped without being read. The rest are read once
(or not at all, when the hash index knows them) to skip binary (a NUL byte in the first
8000 bytes) and minified files.

Order is deterministic: paths sorted as strings.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import pathspec

from nightshift.context.index import BINARY_SNIFF_BYTES, MINIFIED_AVG_LINE, FileFacts, HashIndex
from nightshift.context.models import SkipCode, SkippedFile
from nightshift.context.paths import GlobSet, inside_repo

VENDORED_DIRS = frozenset(
    {
        "node_modules", "bower_components", "jspm_packages", "vendor", "vendors", "third_party",
        "third-party", "thirdparty", "dist", "build", ".venv", "venv", "site-packages", "__pycache__",
        ".tox", ".nox", ".eggs", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".cache", ".parcel-cache",
        ".next", ".nuxt", ".svelte-kit", ".gradle", ".terraform", "htmlcov", "Pods", "Carthage", ".git",
        ".hg", ".svn",
    }
)  # fmt: skip
VENDORED_DIR_SUFFIXES = (".egg-info", ".dist-info")
LOCK_FILES = frozenset({"package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml", "go.sum", "packages.lock.json"})
GENERATED_SUFFIXES = (
    ".lock", ".min.js", ".min.mjs", ".min.css", ".js.map", ".css.map", "_pb2.py", "_pb2_grpc.py", ".pb.go",
    ".pyc", ".pyo",
)  # fmt: skip
GIT_TIMEOUT_S = 120


@dataclass(frozen=True)
class Listing:
    paths: list[str]  # sorted, unique, '/'-separated, relative to the repository
    source: Literal["git", "filesystem"]
    # tracked files git finds gone from the working tree, which includes every file reached
    # through a directory that has been replaced by a symlink (git never follows those)
    gone: frozenset[str] = frozenset()


class Candidate(NamedTuple):
    path: str
    size: int
    facts: FileFacts
    symlink: bool  # a symlink to a file inside the repository


class _Regular(NamedTuple):
    size: int
    mtime_ns: int
    symlink: bool


@dataclass
class Scan:
    eligible: list[Candidate] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    digests: list[tuple[str, str]] = field(default_factory=list)  # (path, sha256 or skip reason)


_GIT_LISTINGS = (
    ["ls-files", "-co", "--exclude-standard", "-z"],
    ["diff-files", "--name-only", "--relative", "--diff-filter=D", "-z"],
)


def list_files(repo: Path) -> Listing:
    """Every non-ignored file of the repository, with git when it is a work tree."""
    return start_listing(repo).result()


class PendingListing:
    """A listing under way: git runs (on another core) while the caller does other work."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        try:
            self._running: list[subprocess.Popen[bytes]] = [
                subprocess.Popen(
                    ["git", "-c", "core.quotepath=off", *argv],
                    cwd=repo,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                for argv in _GIT_LISTINGS
            ]
        except OSError:  # no git
            self._running = []

    def result(self) -> Listing:
        outputs = self._git_outputs()
        if outputs is None:
            return Listing(sorted(_walk(self.repo)), "filesystem")
        paths, gone = outputs
        return Listing(sorted(set(paths)), "git", frozenset(gone))

    def _git_outputs(self) -> list[list[str]] | None:
        if not self._running:
            return None
        finished = []
        try:
            for process in self._running:
                out, _ = process.communicate(timeout=GIT_TIMEOUT_S)
                finished.append((process.returncode, out))
        except subprocess.TimeoutExpired:
            for process in self._running:
                process.kill()
                process.communicate()
            return None
        if any(code != 0 for code, _ in finished):  # not a work tree (or git refuses it): walk instead
            return None
        return [[p for p in out.decode("utf-8", "surrogateescape").split("\0") if p] for _, out in finished]


def start_listing(repo: Path) -> PendingListing:
    return PendingListing(repo)


def _walk(repo: Path) -> list[str]:
    found: list[str] = []
    # (directory prefix, its .gitignore) from the root down; the deepest verdict wins
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def ignored(rel: str, is_dir: bool) -> bool:
        for prefix, spec in reversed(specs):
            if not rel.startswith(prefix):
                continue
            result = spec.check_file(rel[len(prefix) :] + ("/" if is_dir else ""))
            if result.include is not None:
                return bool(result.include)
        return False

    def visit(directory: str, prefix: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        pushed = False
        if any(e.name == ".gitignore" for e in entries):
            try:
                lines = Path(directory, ".gitignore").read_text("utf-8", "replace").splitlines()
                specs.append((prefix, pathspec.GitIgnoreSpec.from_lines(lines)))
                pushed = True
            except OSError:
                pass
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if entry.name != ".git" and not ignored(rel, is_dir=True):
                    visit(entry.path, rel + "/")
            elif not ignored(rel, is_dir=False):  # files and symlinks (to anything), as git lists them
                found.append(rel)
        if pushed:
            specs.pop()

    visit(str(repo), "")
    return found


def vendored_reason(path: str) -> tuple[SkipCode, str] | None:
    *dirs, name = path.split("/")
    if not VENDORED_DIRS.isdisjoint(dirs) or (".egg-info/" in path or ".dist-info/" in path):
        part = next(d for d in dirs if d in VENDORED_DIRS or d.endswith(VENDORED_DIR_SUFFIXES))
        return SkipCode.vendored, f"vendored or generated directory '{part}/'"
    if name.endswith(GENERATED_SUFFIXES):
        if name.endswith(".lock"):
            return SkipCode.generated, "lock file"
        suffix = next(s for s in GENERATED_SUFFIXES if name.endswith(s))
        return SkipCode.generated, f"generated or minified file (*{suffix})"
    if name in LOCK_FILES:
        return SkipCode.generated, "lock file"
    return None


def scan(
    repo: Path,
    listing: Listing,
    *,
    include: GlobSet,
    exclude: GlobSet,
    max_file_bytes: int,
    skip_vendored: bool,
    index: HashIndex,
) -> Scan:
    """Filter the listing down to readable text files, reporting every file left out.

    This loop runs once per file of the repository on every run, so it is kept lean: the
    globs run once over the whole listing, and a regular file known to the index costs
    one lstat and a dict lookup. Directories need no check of their own: a walk never
    enters a symlinked one, and git reports a tracked file behind one as gone."""
    result = Scan()
    repo_real = str(repo)
    prefix = repo_real.rstrip("/") + "/"
    gone = listing.gone
    skipped, digests, eligible = result.skipped, result.digests, result.eligible
    excluded = set(exclude.filter(listing.paths)) if exclude.patterns else set()
    lookup, lstat, regular = index.lookup, os.lstat, stat.S_IFREG

    for path in include.filter(listing.paths):
        if path in excluded:
            skipped.append(
                SkippedFile(path=path, code=SkipCode.excluded, reason=f"excluded by pattern {exclude.matching(path)!r}")
            )
            continue
        if skip_vendored and (vendored := vendored_reason(path)) is not None:
            skipped.append(SkippedFile(path=path, code=vendored[0], reason=vendored[1]))
            continue
        full = prefix + path
        facts = None
        try:
            info = lstat(full)
        except OSError:
            info = None
        found: tuple[SkipCode, str] | _Regular
        if (
            info is not None
            and stat.S_IFMT(info.st_mode) == regular
            and 0 < info.st_size <= max_file_bytes
            and path not in gone
        ):
            found = _Regular(info.st_size, info.st_mtime_ns, False)
            facts = lookup(path, info.st_size, info.st_mtime_ns)
        else:
            found = _stat_refusal(repo_real, path, full, max_file_bytes, path in gone)
        if not isinstance(found, _Regular):
            index.forget(path)
            skipped.append(SkippedFile(path=path, code=found[0], reason=found[1]))
            digests.append((path, f"skipped: {found[1]}"))
            continue
        if facts is None:
            try:
                facts = index.read(path, full, found.size, found.mtime_ns)
            except OSError as exc:
                skipped.append(SkippedFile(path=path, code=SkipCode.unreadable, reason=_unreadable(exc)))
                continue
        digests.append((path, facts.sha256))
        if facts.binary:
            skipped.append(SkippedFile(path=path, code=SkipCode.binary, reason=_BINARY))
        elif facts.minified:
            why = f"minified (average line {facts.avg_line} chars > {MINIFIED_AVG_LINE})"
            skipped.append(SkippedFile(path=path, code=SkipCode.minified, reason=why))
        else:
            eligible.append(Candidate(path, found.size, facts, found.symlink))
    return result


_ESCAPING_DIR = "a directory on its path is a symlink leading outside the repository"
_BINARY = f"binary (NUL byte in the first {BINARY_SNIFF_BYTES} bytes)"


def _unreadable(exc: OSError) -> str:
    return f"unreadable ({exc.strerror or exc})"


def _stat_refusal(
    repo_real: str, path: str, full: str, max_file_bytes: int, gone: bool
) -> tuple[SkipCode, str] | _Regular:
    """Size and mtime of a regular file inside the repository, else (code, reason) to skip it."""
    if gone and os.path.lexists(full) and not inside_repo(repo_real, os.path.realpath(os.path.dirname(full))):
        return SkipCode.symlink, _ESCAPING_DIR
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        return SkipCode.missing, "listed by git but missing from the working tree"
    except OSError as exc:
        return SkipCode.unreadable, _unreadable(exc)
    symlink = stat.S_ISLNK(info.st_mode)
    if symlink:
        target = os.path.realpath(full)
        if not inside_repo(repo_real, target):
            return SkipCode.symlink, f"symlink whose target escapes the repository (-> {os.readlink(full)})"
        try:
            info = os.stat(full)
        except OSError:
            return SkipCode.symlink, f"broken symlink (-> {os.readlink(full)})"
        if stat.S_ISDIR(info.st_mode):
            return SkipCode.not_a_file, "symlink to a directory"
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory (a submodule?)" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        return SkipCode.not_a_file, kind
    if info.st_size == 0:
        return SkipCode.empty, "empty file"
    if info.st_size > max_file_bytes:
        return SkipCode.too_large, f"too large ({info.st_size} bytes > max_file_bytes={max_file_bytes})"
    return _Regular(info.st_size, info.st_mtime_ns, symlink)
