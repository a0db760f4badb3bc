"""Candidate files: which files of the repository a worker may be shown, and why not the rest.

Listing. In a git work tree: `git ls-files -co --exclude-standard -z`, tracked files plus
untracked ones that no ignore rule (.gitignore at any depth, .git/info/exclude, the
global excludes file) hides, and alongside it (in parallel) `git diff-files`, which names
the tracked files that differ from git's index in the working tree, among them the ones
gone (which includes every file reached through a directory replaced by a symlink).
Elsewhere, a walk that honours every .gitignore the way git does (deeper files win, an
ignored directory is not entered, `.git` is never entered). Ignored files are not
candidates and are not reported.

Git's index as a stat cache. When a saved hash index may know files by their stats, and
git's index file can be found, `git ls-files --debug` lists the tracked files instead,
with the size and mtime git's index records for each, and `ls-files -o` only the
untracked ones (the walk git needs for those takes longest: the tracked files are
scanned meanwhile). For a tracked regular file that diff-files found unchanged (git
compared the lstat of the file with that record: type, size, mtime, ctime, inode...),
that record *is* the file's stat, so the hash index is asked with it and the file costs
no system call at all. This holds only when all of them read the same index: its file
must be the same before git starts and once they are done (git writes an index anew and
renames it into place), else no file is taken on git's word and the listing is made
again in one call. Git runs with fsmonitor off and the full stat check on, whatever the
repository's configuration; files that git was told to assume unchanged, or keeps out of
the working tree (skip-worktree), unmerged files, symlinks and submodules are never
taken on git's word, nor anything when git's location is set through the environment
(GIT_DIR...) or its output is not as expected. Everything else takes the lstat below.

Filtering, in this order, each refusal reported as a `SkippedFile` with its reason:
include globs (a file no include matches was never asked for and is not reported),
exclude globs, vendored or generated paths (node_modules, vendor, dist, build, .venv,
third_party, lock files, *.min.js...), then (unless git vouched for the file, above) an
lstat: a symlink is followed only when its target is inside the repository, and a file
reached through a symlinked directory only when that directory resolves inside it
(neither git nor the walk enters such a directory, so git reports the files behind one as
gone, and only those are resolved); empty files and files above `max_file_bytes` are
skipped without being read. The rest are read once (or not at all, when the hash index
knows them) to skip binary (a NUL byte in the first 8000 bytes) and minified files.

Order is deterministic: paths sorted as strings.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from dataclasses import dataclass, field, replace
from itertools import repeat
from pathlib import Path
from typing import Literal, NamedTuple

import pathspec

from nightshift.context.index import (
    BINARY,
    BINARY_SNIFF_BYTES,
    ENTRY_HINTS,
    MINIFIED,
    MINIFIED_AVG_LINE,
    HashIndex,
    tree_hash_lines,
)
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
    # tracked regular files git finds unchanged in the working tree -> the stat key (see
    # `index.stat_key`) git's index holds for them, which is then the file's own
    unchanged: dict[str, str] = field(default_factory=dict)


class _Regular(NamedTuple):
    size: int
    mtime_ns: int
    symlink: bool


@dataclass
class Scan:
    """The files left after filtering, as columns (thousands of files make no object each)."""

    paths: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # in bytes
    sha256s: list[str] = field(default_factory=list)  # of the contents scanned
    chars: list[int] = field(default_factory=list)  # length in characters, before redaction
    entry_hints: list[str] = field(default_factory=list)  # "main-guard", "routes" or ""
    symlinks: set[str] = field(default_factory=set)  # eligible symlinks to files inside the repository
    skipped: list[SkippedFile] = field(default_factory=list)
    # "<path>\0<sha256 or skip reason>\n" of every file looked at: see `index.tree_hash`
    tree_lines: list[str] = field(default_factory=list)

    @property
    def tree_hash(self) -> str:
        return tree_hash_lines(self.tree_lines)

    def extend(self, other: Scan) -> None:
        self.paths += other.paths
        self.sizes += other.sizes
        self.sha256s += other.sha256s
        self.chars += other.chars
        self.entry_hints += other.entry_hints
        self.symlinks |= other.symlinks
        self.skipped += other.skipped
        self.tree_lines += other.tree_lines

    def drop(self, paths: set[str]) -> None:
        """Forget these files, as if never scanned."""
        keep = [i for i, path in enumerate(self.paths) if path not in paths]
        self.paths, self.sha256s, self.entry_hints = (
            [c[i] for i in keep] for c in (self.paths, self.sha256s, self.entry_hints)
        )
        self.sizes, self.chars = ([c[i] for i in keep] for c in (self.sizes, self.chars))
        self.symlinks -= paths
        self.skipped = [s for s in self.skipped if s.path not in paths]
        self.tree_lines = [line for line in self.tree_lines if line[: line.index("\0")] not in paths]


_GIT = ("git", "-c", "core.quotepath=off")
# where git's stat comparison is trusted: it must lstat every file itself and compare every field
_FULL_STAT_CHECK = ("-c", "core.fsmonitor=false", "-c", "core.checkStat=default", "-c", "core.trustctime=true")
_LIST = ("ls-files", "-co", "--exclude-standard", "-z")
_UNTRACKED = ("ls-files", "-o", "--exclude-standard", "-z")
_CHANGED = (*_FULL_STAT_CHECK, "diff-files", "--name-status", "--relative", "-z")
_INDEX_STATS = (*_FULL_STAT_CHECK, "ls-files", "-c", "-s", "-t", "-v", "--debug", "-z")
_TRUSTED_HEADS = ("H 100644 ", "H 100755 ")  # tag H: neither assume-unchanged nor skip-worktree
_TAB = "\t"


def list_files(repo: Path, *, git_stats: bool = False) -> Listing:
    """Every non-ignored file of the repository, with git when it is a work tree.

    `git_stats`: ask git for the stats its index holds too (`Listing.unchanged`)."""
    return start_listing(repo, git_stats=git_stats).result()


class PendingListing:
    """A listing under way: git runs (on other cores) while the caller does other work.

    `tracked()` names the tracked files as soon as git has (the untracked ones take git a
    walk of the working tree), so that they can be scanned meanwhile; `result()` is all of
    it. See the module docstring for the git processes and when their answers are taken.
    A git that hangs is killed after GIT_TIMEOUT_S, and the repository walked instead."""

    def __init__(self, repo: Path, *, git_stats: bool = True) -> None:
        self.repo = repo
        self._running: list[subprocess.Popen[bytes]] = []
        self._index_file = _index_file(repo) if git_stats else None
        self._index_before = _identity(self._index_file)
        # tracked and untracked files listed apart (until git's index is found written meanwhile)
        self._split = self._untracked_only = self._index_before is not None
        # in the order they are needed: the stats come first (and git lists them fastest)
        self._stats = self._start(_INDEX_STATS) if self._split else None
        self._changed = self._start(_CHANGED) if self._stats or not self._split else None
        self._listing = self._start(_UNTRACKED if self._split else _LIST) if self._changed else None
        self._failed = self._listing is None
        self._watchdog = threading.Timer(GIT_TIMEOUT_S, self._stop)  # git that hangs is killed: a walk instead
        self._watchdog.daemon = True
        self._watchdog.start()
        self._tracked: Listing | None = None  # once known

    def _start(self, argv: tuple[str, ...]) -> subprocess.Popen[bytes] | None:
        try:
            process = subprocess.Popen([*_GIT, *argv], cwd=self.repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:  # no git
            return None
        self._running.append(process)
        return process

    def _stop(self) -> None:
        for process in self._running:
            if process.poll() is None:
                process.kill()

    def tracked(self) -> Listing | None:
        """The tracked files (in git's order), with what git says of them; None if git does not tell."""
        if self._tracked is None and not self._failed:
            self._git_tracked()
        return self._tracked if self._tracked is not None and self._tracked.paths else None

    def result(self) -> Listing:
        if self._tracked is None and not self._failed:
            self._git_tracked()
        listing = self._git_listing() if not self._failed else None
        self._watchdog.cancel()
        self._stop()
        for process in self._running:  # each one ended, waited for, its pipe closed
            if process.stdout is not None:
                process.stdout.close()
            process.wait()
        return listing or Listing(sorted(_walk(self.repo)), "filesystem")

    def _git_tracked(self) -> None:
        printed = _output(self._stats)
        tracked = _tracked(printed) if printed is not None else None  # while diff-files runs
        statuses = _name_status(_output(self._changed))
        if statuses is None:  # not a work tree (or git refuses it, or says what we cannot read): walk instead
            self._failed = True
            return
        if tracked is None or _identity(self._index_file) != self._index_before:
            # no word of git's on stats, and the tracked files are listed with the rest
            self._split = False
            tracked = [], {}
        paths, unchanged = tracked
        for _, path in statuses:
            unchanged.pop(path, None)
        gone = frozenset(path for status, path in statuses if status == "D")
        self._tracked = Listing(paths, "git", gone, unchanged)

    def _git_listing(self) -> Listing | None:
        if self._tracked is None:
            return None
        listed = _output(self._listing)
        if listed is not None and self._untracked_only:
            if self._split and _identity(self._index_file) == self._index_before:
                tracked, untracked = self._tracked.paths, [p for p in listed.split("\0") if p]
                paths = tracked + untracked if set(untracked).isdisjoint(tracked) else [*{*tracked, *untracked}]
                return Listing(sorted(paths), "git", self._tracked.gone, self._tracked.unchanged)
            listed = _output(self._start(_LIST))  # git's index was written meanwhile: list again, in one go
        if listed is None:
            return None
        paths = sorted({p for p in listed.split("\0") if p})
        return Listing(paths, "git", self._tracked.gone, self._tracked.unchanged)


_GIT_LOCATION_VARIABLES = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES"}
)


def _index_file(repo: Path) -> str | None:
    """The index file of the work tree `repo` is in, where git finds it unless told otherwise."""
    if not _GIT_LOCATION_VARIABLES.isdisjoint(os.environ):
        return None
    for directory in (repo, *repo.parents):
        dot_git = os.path.join(directory, ".git")
        try:
            info = os.stat(dot_git)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        if stat.S_ISDIR(info.st_mode):
            return os.path.join(dot_git, "index")
        try:  # a linked work tree (or a submodule's): "gitdir: <its git directory>"
            text = Path(dot_git).read_text("utf-8")
        except (OSError, UnicodeError):
            return None
        return os.path.join(directory, text[8:].strip(), "index") if text.startswith("gitdir: ") else None
    return None


def _identity(file: str | None) -> tuple[int, ...] | None:
    """Which version of the file is there: git writes an index anew and renames it into place."""
    try:
        info = os.stat(file) if file else None
    except OSError:
        return None
    return info and (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _output(process: subprocess.Popen[bytes] | None) -> str | None:
    """What the process printed, once it has exited successfully (the watchdog may kill it)."""
    if process is None:
        return None
    out, _ = process.communicate()
    return out.decode("utf-8", "surrogateescape") if process.returncode == 0 else None


def _name_status(out: str | None) -> list[tuple[str, str]] | None:
    """(status letter, path) pairs of `git diff-files --name-status -z`; None if not that."""
    if out is None:
        return None
    fields = out.split("\0")
    if fields.pop() != "" or len(fields) % 2:
        return None
    pairs = list(zip(fields[0::2], fields[1::2], strict=True))
    if not all(len(status) == 1 and status.isupper() for status, _ in pairs):
        return None  # e.g. a rename, with two paths: never printed without -M, so not understood
    return pairs


def _tracked(out: str) -> tuple[list[str], dict[str, str]] | None:
    """The paths `git ls-files -c -s -t -v --debug -z` prints, and the stat keys of those it vouches for.

    Each entry prints as `<tag> <mode> <object> <stage>\t<path>\0` and five lines of stat
    data (ctime, mtime, dev/ino, uid/gid, size/flags). A format other than that one, or a
    path with a newline in it (which could pass itself off as stat lines), and git's word
    is taken for no file at all (None)."""
    if not out:
        return [], {}
    lines = out.split("\n")
    if len(lines) != 5 * out.count("\0") + 1 or lines.pop():
        return None
    heads, mtimes, sizes = lines[0::5], lines[1::5], lines[4::5]
    if not (
        all(map(str.startswith, mtimes, repeat("  mtime: "))) and all(map(str.startswith, sizes, repeat("  size: ")))
    ):
        return None
    paths, keys = [], {}
    for head, mtime, size in zip(heads, mtimes, sizes, strict=True):
        tab = head.index("\t")
        path = head[tab + 1 : head.rindex("\0")]
        paths.append(path)
        if head.startswith(_TRUSTED_HEADS) and head[tab - 2 : tab] == " 0":  # stage 0: not unmerged
            keys[path] = f"{size[8 : size.index(_TAB)]} {mtime[9:]} "
    # an unmerged file has an entry per stage (and no key)
    return (paths if len(keys) == len(paths) else list(dict.fromkeys(paths))), keys


def start_listing(repo: Path, *, git_stats: bool = True) -> PendingListing:
    """Start listing the repository's files; `git_stats` as in `list_files` (worth it only for
    a hash index that knows files by their stats: without one, git is not asked)."""
    return PendingListing(repo, git_stats=git_stats)


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


def vendored_paths(paths: list[str]) -> set[str]:
    """A superset of the paths `vendored_reason` refuses, with one check per directory, not per file."""
    found = set()
    directories: dict[str, bool] = {}
    for path in paths:
        directory = path[: path.rfind("/") + 1]  # with its trailing '/', or ''
        vendored = directories.get(directory)
        if vendored is None:
            vendored = directories[directory] = not VENDORED_DIRS.isdisjoint(directory.split("/")) or (
                ".egg-info/" in directory or ".dist-info/" in directory
            )
        if vendored or (path[-4:] in _GENERATED_TAILS and path.endswith(_GENERATED_NAMES)):
            found.add(path)
    return found


_KINDS = frozenset({*ENTRY_HINTS, BINARY, MINIFIED})
_GENERATED_NAMES = GENERATED_SUFFIXES + tuple(LOCK_FILES)  # as suffixes: `vendored_reason` has the last word
_GENERATED_TAILS = frozenset(name[-4:] for name in _GENERATED_NAMES)  # all are 4 characters or more


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
    globs and vendored checks run over the whole listing at once, a file git vouches for
    that the index knows costs two dict lookups and no system call, and any other regular
    file known to the index one lstat. Directories need no check of their own: a walk never
    enters a symlinked one, and git reports a tracked file behind one as gone."""
    result = Scan()
    repo_real = str(repo)
    prefix = repo_real.rstrip("/") + "/"
    gone, unchanged = listing.gone, listing.unchanged
    skipped, tree_lines, symlinks = result.skipped, result.tree_lines, result.symlinks
    eligible, eligible_chars, eligible_hints = result.paths, result.chars, result.entry_hints
    eligible_sizes, eligible_sha256s = result.sizes, result.sha256s
    candidates = include.filter(listing.paths)
    excluded = set(exclude.filter(candidates)) if exclude.patterns else set()
    vendored = vendored_paths(candidates) if skip_vendored else set()
    entries = index.entries
    vouched = 0
    add_line, add_path, add_size, add_sha256, add_chars, add_hint = (
        tree_lines.append, eligible.append, eligible_sizes.append, eligible_sha256s.append,
        eligible_chars.append, eligible_hints.append,
    )  # fmt: skip

    for path in candidates:
        if path in excluded:
            skipped.append(
                SkippedFile(path=path, code=SkipCode.excluded, reason=f"excluded by pattern {exclude.matching(path)!r}")
            )
            continue
        if path in vendored and (why := vendored_reason(path)) is not None:
            skipped.append(SkippedFile(path=path, code=why[0], reason=why[1]))
            continue
        key = unchanged.get(path, "")
        known = False
        if key and (entry := entries.get(path, "")).startswith(key):
            # git vouches for the file's stat, and the index knows the file by it
            try:
                size_text, _mtime, sha256, kind, avg_line, chars_text = entry.split(" ")
                size, chars, symlink = int(size_text), int(chars_text), False
            except ValueError:  # a corrupt entry: read the file again
                pass
            else:  # unless a lower limit than when it was read now refuses it
                known = 0 < size <= max_file_bytes and kind in _KINDS
                vouched += known
        if not known:
            # a regular file git has just found to be as empty as its index says, or look at it
            looked = (
                (SkipCode.empty, "empty file")
                if key.startswith("0 ")
                else _look(path, prefix, repo_real, max_file_bytes, path in gone, index, skipped)
            )
            if looked is None:
                continue
            if not isinstance(looked, _Looked):
                index.forget(path)
                skipped.append(SkippedFile(path=path, code=looked[0], reason=looked[1]))
                add_line(f"{path}\0skipped: {looked[1]}\n")
                continue
            size, sha256, kind, avg_line, chars, symlink = looked
        add_line(f"{path}\0{sha256}\n")
        if kind == BINARY:
            skipped.append(SkippedFile(path=path, code=SkipCode.binary, reason=BINARY_REASON))
        elif kind == MINIFIED:
            why_minified = f"minified (average line {avg_line} chars > {MINIFIED_AVG_LINE})"
            skipped.append(SkippedFile(path=path, code=SkipCode.minified, reason=why_minified))
        else:
            add_path(path)
            add_size(size)
            add_sha256(sha256)
            add_chars(chars)
            add_hint(ENTRY_HINTS[kind])
            if symlink:
                symlinks.add(path)
    index.hits += vouched
    return result


def _look(
    path: str,
    prefix: str,
    repo_real: str,
    max_file_bytes: int,
    gone: bool,
    index: HashIndex,
    skipped: list[SkippedFile],
) -> _Looked | tuple[SkipCode, str] | None:
    """The facts of a file git did not vouch for: lstat it, and read it unless the index knows it.

    Or why it is skipped before it is read, or None when it could not be read (and was reported)."""
    full = prefix + path
    found = _stat(repo_real, full, max_file_bytes, gone)
    if not isinstance(found, _Regular):
        return found
    facts = index.lookup(path, found.size, found.mtime_ns)
    if facts is None:
        try:
            facts = index.read(path, full, found.size, found.mtime_ns)
        except OSError as exc:
            skipped.append(SkippedFile(path=path, code=SkipCode.unreadable, reason=_unreadable(exc)))
            return None
    return _Looked(found.size, facts.sha256, facts.kind, str(facts.avg_line), facts.chars, found.symlink)


def scan_listing(
    repo: Path,
    pending: PendingListing,
    *,
    include: GlobSet,
    exclude: GlobSet,
    max_file_bytes: int,
    skip_vendored: bool,
    index: HashIndex,
) -> tuple[Listing, Scan]:
    """`scan` the listing as it comes: the tracked files while git still looks for untracked ones.

    The listing of record is `result()`'s: tracked files it does not hold after all (git's
    index was written meanwhile, and the files listed again) are dropped, the rest scanned."""

    def scan_part(part: Listing) -> Scan:
        return scan(
            repo, part, include=include, exclude=exclude, max_file_bytes=max_file_bytes,
            skip_vendored=skip_vendored, index=index,
        )  # fmt: skip

    tracked = pending.tracked()
    early = scan_part(tracked) if tracked else None
    listing = pending.result()
    if early is None or tracked is None or listing.source != "git":
        return listing, scan_part(listing)
    scanned = set(tracked.paths)
    if unlisted := scanned.difference(listing.paths):
        early.drop(unlisted)
    early.extend(scan_part(replace(listing, paths=[p for p in listing.paths if p not in scanned])))
    return listing, early


class _Looked(NamedTuple):
    """What the scan learns of a file by looking at it (as an index entry tells it)."""

    size: int
    sha256: str
    kind: str  # see `FileFacts.kind`
    avg_line: str
    chars: int
    symlink: bool


_ESCAPING_DIR = "a directory on its path is a symlink leading outside the repository"
BINARY_REASON = f"binary (NUL byte in the first {BINARY_SNIFF_BYTES} bytes)"


def _unreadable(exc: OSError) -> str:
    return f"unreadable ({exc.strerror or exc})"


def _stat(repo_real: str, full: str, max_file_bytes: int, gone: bool) -> tuple[SkipCode, str] | _Regular:
    """Size and mtime of a regular file inside the repository, else (code, reason) to skip it."""
    if gone and os.path.lexists(full) and not inside_repo(repo_real, os.path.realpath(os.path.dirname(full))):
        return SkipCode.symlink, _ESCAPING_DIR
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        return SkipCode.missing, "listed by git but missing from the working tree"
    except OSError as exc:
        return SkipCode.unreadable, _unreadable(exc)
    if stat.S_ISREG(info.st_mode) and 0 < info.st_size <= max_file_bytes:  # the common case
        return _Regular(info.st_size, info.st_mtime_ns, False)
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
