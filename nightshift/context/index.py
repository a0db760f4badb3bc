"""Content hashes, remembered between runs, and the tree hash built from them.

Reading every file of a large repository on every run is the cost worth avoiding, so
what is learnt from a file's bytes (`FileFacts`: sha256, binary, minified, entry-point
hint, length in characters) is kept in an on-disk index under the file's stat key: its
size and mtime (`stat_key`). A later run trusts an entry whose key is unchanged and reads
only the files it then selects. Where the key comes from is the caller's business: an
lstat of the file, or for a tracked file that git finds unchanged in the work tree, git's
own index (see `files.py`), so that most files of a git work tree cost no system call.

The index also remembers which exact contents (by sha256) the secret rules found clean,
so a warm run need not scan them again; those verdicts are dropped whenever the rules
change (`secret_rules`, a digest of the secrets module).

An entry is kept only when the file was hashed at least `RACY_NS` after its mtime:
otherwise the file may have been rewritten within the same timestamp tick and with the
same size after hashing (git's "racily clean" problem), so it is hashed again next time.

The index is one JSON file per repository, `<cache_dir>/<repo-key>.json`, written
atomically; concurrent writers lose nothing but the other's fresh entries. A missing,
corrupt or older-format index is simply rebuilt. Without a cache dir it lives in memory.
Each entry is one string, `"<size> <sec>:<nsec> <sha256> <kind> <avg_line> <chars>"`
(kind: `-` text, `g` main guard, `r` routes, `B` binary, `M` minified), so that loading
an index of thousands of files makes one dict of strings, not thousands of objects.

`tree_hash` is a sha256 over the sorted (path, digest) pairs of the candidate files,
where the digest is the content sha256, or for a file skipped before it was read (too
large, symlink...) the skip reason, so it changes exactly when what a worker would see
changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger(__name__)

INDEX_VERSION = 4
RACY_NS = 2_000_000_000
BINARY_SNIFF_BYTES = 8000
MINIFIED_MIN_BYTES = 1024
MINIFIED_AVG_LINE = 300
MINIFIED_LONGEST_LINE = 2000

_CODE_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".ts", ".jsx", ".tsx", ".rb", ".go", ".php", ".java", ".kt")
_MAIN_GUARD = re.compile(rb"""if\s+__name__\s*==\s*["']__main__["']""")
_JS_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".jsx", ".tsx")
# Both start with literals, so `re` skips ahead fast: `@app.route(`, `@router.get(` / `app.get(` (Express)
_ROUTE_DECORATOR = re.compile(rb"@[\w.]+\.(?:route|get|post|put|patch|delete|websocket)\(")
_ROUTE_CALL = re.compile(rb"(?:app|router)\.(?:get|post|put|patch|delete)\(")

# the kind letter of an index entry, and back
ENTRY_HINTS = {"-": "", "g": "main-guard", "r": "routes"}
_HINT_LETTERS = {hint: letter for letter, hint in ENTRY_HINTS.items()}
BINARY, MINIFIED = "B", "M"


class FileFacts(NamedTuple):
    """What one read of a file tells: enough to filter and rank it without reading it again."""

    sha256: str
    binary: bool
    minified: bool  # long lines on average, and at least one very long one
    avg_line: int
    entry: str  # "main-guard", "routes" or ""
    chars: int  # decoded as UTF-8 (with replacement): token estimates before reading again

    @property
    def kind(self) -> str:
        """One letter: `B` binary, `M` minified, else the entry hint (`-` none, `g` main guard, `r` routes)."""
        return BINARY if self.binary else MINIFIED if self.minified else _HINT_LETTERS[self.entry]

    def encode(self) -> str:
        """`<sha256> <kind> <avg_line> <chars>`: an index entry after its stat key."""
        return f"{self.sha256} {self.kind} {self.avg_line} {self.chars}"

    @classmethod
    def decode(cls, encoded: str) -> FileFacts | None:
        """The inverse of `encode`, for an entry with its stat key in front (ignored); None if corrupt."""
        try:
            _size, _mtime, sha256, kind, avg_line, chars = encoded.split(" ")
            if kind not in ENTRY_HINTS and kind not in (BINARY, MINIFIED):
                return None
            return cls(sha256, kind == BINARY, kind == MINIFIED, int(avg_line), ENTRY_HINTS.get(kind, ""), int(chars))
        except ValueError:
            return None


def stat_key(size: int, mtime_ns: int) -> str:
    """`"<size> <sec>:<nsec> "`: what an index entry starts with (as `git ls-files --debug` prints a stat)."""
    sec, nsec = divmod(mtime_ns, 1_000_000_000)
    return f"{size} {sec}:{nsec} "


def read_facts(data: bytes, path: str) -> FileFacts:
    digest = hashlib.sha256(data).hexdigest()
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return FileFacts(digest, True, False, 0, "", len(data))
    avg_line = len(data) // (data.count(b"\n") + 1)
    minified = (
        len(data) >= MINIFIED_MIN_BYTES
        and avg_line > MINIFIED_AVG_LINE
        and max(map(len, data.split(b"\n"))) >= MINIFIED_LONGEST_LINE
    )
    entry = ""
    if path.endswith(_CODE_SUFFIXES) and not minified:
        if b"__name__" in data and _MAIN_GUARD.search(data):
            entry = "main-guard"
        elif (b"@" in data and _ROUTE_DECORATOR.search(data)) or (
            path.endswith(_JS_SUFFIXES) and _ROUTE_CALL.search(data)
        ):
            entry = "routes"
    chars = len(data) if data.isascii() else len(data.decode("utf-8", "replace"))
    return FileFacts(digest, False, minified, avg_line, entry, chars)


def repo_key(repo: Path) -> str:
    """A file name for the repository's index: readable, and unique per absolute path."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", repo.name)[:40] or "repo"
    return f"{name}-{hashlib.sha256(str(repo).encode()).hexdigest()[:16]}"


def _string_map(value: object) -> dict[str, str]:
    if isinstance(value, dict) and all(type(v) is str for v in value.values()):
        return value
    return {}


class HashIndex:
    """stat key (size, mtime) of a path -> FileFacts, persisted under `cache_dir` when one is given."""

    def __init__(self, repo: Path, cache_dir: Path | None = None, *, secret_rules: str = "") -> None:
        self.file = cache_dir / f"{repo_key(repo)}.json" if cache_dir else None
        self.secret_rules = secret_rules
        # path -> "<stat key><encoded facts>"; read directly by `files.scan` (its hot loop)
        self.entries: dict[str, str] = {}
        self._clean: dict[str, str] = {}  # path -> sha256 of content the secret rules found clean
        self._load()
        self._dirty = False
        self.hits = 0
        self.misses = 0

    @staticmethod
    def saved(repo: Path, cache_dir: Path | None) -> bool:
        """Whether an index of the repository was saved under `cache_dir` (it may know files)."""
        return cache_dir is not None and (cache_dir / f"{repo_key(repo)}.json").exists()

    def _load(self) -> None:
        if self.file is None:
            return
        try:
            raw = json.loads(self.file.read_bytes())
        except (OSError, ValueError):
            return
        if not isinstance(raw, dict) or raw.get("version") != INDEX_VERSION:
            return
        self.entries = _string_map(raw.get("files"))
        if raw.get("secret_rules") == self.secret_rules:
            self._clean = _string_map(raw.get("clean"))

    def lookup(self, path: str, size: int, mtime_ns: int) -> FileFacts | None:
        """The remembered facts when size and mtime are unchanged."""
        return self.known(path, stat_key(size, mtime_ns))

    def known(self, path: str, key: str) -> FileFacts | None:
        """The remembered facts of `path` when its entry has this stat key."""
        entry = self.entries.get(path)
        facts = FileFacts.decode(entry) if entry is not None and entry.startswith(key) else None
        self.hits += facts is not None
        return facts

    def facts(self, path: str, full_path: str, size: int, mtime_ns: int) -> FileFacts:
        """The file's facts from the index when fresh, else from reading it (and remembered)."""
        known = self.lookup(path, size, mtime_ns)
        return known if known is not None else self.read(path, full_path, size, mtime_ns)

    def read(self, path: str, full_path: str, size: int, mtime_ns: int) -> FileFacts:
        """Read the file and remember its facts (unless it is too fresh to be trusted later)."""
        hashed_at = time.time_ns()
        fd = os.open(full_path, os.O_RDONLY)
        try:
            data = os.read(fd, size + 1)  # one more byte: notice a file that grew meanwhile
            while len(data) > size and (more := os.read(fd, 1 << 20)):
                data += more
        finally:
            os.close(fd)
        facts = read_facts(data, path)
        self.misses += 1
        # a file that changed while we looked, or may yet change within its mtime tick: not remembered
        if len(data) == size and hashed_at - mtime_ns >= RACY_NS:
            self.entries[path] = stat_key(size, mtime_ns) + facts.encode()
            self._dirty = True
        else:
            self.forget(path)
        return facts

    def forget(self, path: str) -> None:
        if self.entries.pop(path, None) is not None:
            self._dirty = True

    def known_clean(self, path: str, sha256: str) -> bool:
        """Whether these exact bytes were scanned for secrets, by the same rules, and had none."""
        return self._clean.get(path) == sha256

    def note_scan(self, path: str, sha256: str, *, clean: bool) -> None:
        """Remember the verdict of a secret scan of these bytes (only a clean one is kept)."""
        if clean and self._clean.get(path) != sha256:
            self._clean[path] = sha256
            self._dirty = True
        elif not clean and self._clean.pop(path, None) is not None:
            self._dirty = True

    def save(self, keep: set[str] | None = None) -> None:
        """Write the index if it changed; `keep` drops entries of files no longer listed."""
        if keep is not None:
            for entries in (self.entries, self._clean):
                stale = entries.keys() - keep
                for path in stale:
                    del entries[path]
                self._dirty = self._dirty or bool(stale)
        if self.file is None or not self._dirty:
            return
        try:
            self._write(self.file)
        except OSError as exc:  # a cache that cannot be written costs time, not correctness
            logger.warning("context index not saved to %s: %s", self.file, exc)

    def _write(self, file: Path) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(
            {"version": INDEX_VERSION, "files": self.entries, "secret_rules": self.secret_rules, "clean": self._clean},
            separators=(",", ":"),
        )
        fd, tmp = tempfile.mkstemp(prefix=file.name, suffix=".tmp", dir=file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._dirty = False


def tree_hash(entries: list[tuple[str, str]]) -> str:
    """sha256 over sorted (path, digest) pairs; see the module docstring for the digest."""
    return tree_hash_lines([f"{path}\0{value}\n" for path, value in entries])


def tree_hash_lines(lines: list[str]) -> str:
    """`tree_hash` of pairs already written as `"<path>\\0<digest>\\n"` lines (sorted here)."""
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8", "surrogateescape")).hexdigest()
