"""Which files of a repository the local workers look at, and how they read them.

Listing is the shared one of `nightshift.context.files.list_files`: in a git work tree
`git ls-files -co --exclude-standard` (tracked plus untracked-but-not-ignored files, so .gitignore is
honoured); elsewhere a walk that honours .gitignore files the way git does. Outside git, vendored and
generated paths (node_modules, .venv, dist, build, lock files … as `context.files.vendored_reason`
defines them) are dropped as well, since no ignore file keeps them out. Tracked files deleted from the
work tree are dropped. Paths are relative to the repository root, '/'-separated, sorted.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path, PurePosixPath

from nightshift.errors import ContextError

BINARY_SNIFF_BYTES = 8192
TEST_DIR_NAMES = frozenset({"tests", "test", "testing"})
LISTED_WITH_GIT = "git ls-files -co --exclude-standard"
LISTED_WITH_WALK = "a directory walk honouring .gitignore, vendored paths skipped (not a git work tree)"


def repo_root(repo: Path) -> Path:
    """The repository directory, resolved; a ContextError when it is not a readable directory."""
    root = Path(repo).expanduser()
    if not root.is_dir():
        raise ContextError(f"repository path is not a directory: {root}", path=str(root))
    return root.resolve()


def list_files(repo: Path) -> tuple[list[str], str]:
    """The repository's files, and how they were listed (see the module docstring)."""
    from nightshift.context.files import list_files as list_candidates
    from nightshift.context.files import vendored_reason

    root = repo_root(repo)
    listing = list_candidates(root)
    if listing.source == "git":
        paths, listed_with = listing.paths, LISTED_WITH_GIT
    else:
        paths, listed_with = [p for p in listing.paths if vendored_reason(p) is None], LISTED_WITH_WALK
    return [p for p in paths if os.path.isfile(root / p)], listed_with


def python_files(files: list[str]) -> list[str]:
    return [f for f in files if f.endswith(".py")]


def is_test_path(path: str) -> bool:
    """Test code by the usual conventions: a tests/test/testing directory, test_*.py, *_test.py, conftest."""
    parts = PurePosixPath(path).parts
    name = parts[-1]
    if name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py"):
        return True
    return any(part in TEST_DIR_NAMES for part in parts[:-1])


def read_bytes(root: Path, path: str, *, max_bytes: int | None = None) -> bytes | None:
    """The file's bytes; None when unreadable or larger than `max_bytes`."""
    full = root / path
    try:
        if max_bytes is not None and full.stat().st_size > max_bytes:
            return None
        return full.read_bytes()
    except OSError:
        return None


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF_BYTES]


def decode_python(data: bytes) -> str:
    """Source text as Python would read it (encoding cookie, BOM, universal newlines)."""
    try:
        return importlib.util.decode_source(data)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


def decode_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
