"""Context gathering: which files of a repository a worker's prompt shows, redacted and in budget.

    gather_context(repo, spec, signals=..., cache_dir=...) -> ContextBundle

  1. paths    the repository is resolved; include/exclude globs are checked (ContextError)
  2. files    candidates are listed (git ls-files, or a .gitignore-aware walk) and
              filtered; every file left out is reported with its reason; tracked files
              are filtered while git still looks for untracked ones
  3. index    each candidate's sha256 and facts come from the on-disk index when fresh
              (by the stat git's own index holds for a file git finds unchanged, else by
              an lstat), else from one read; the tree hash is built from them
  4. ranking  relevance signals weighted by the spec's RankingPolicy order the files;
              the reasons are written only for the files the budget takes
  5. budget   files are read in rank order, redacted (secrets; the index remembers which
              exact contents were clean), and fitted into the token budget, or into
              budget-sized chunks for map-reduce runs; a file that changed since step 3 is
              held to its rules again (size, empty, binary, minified) before it is shown

Pure Python: no Prefect, no network. Token counts are ceil(chars/4) estimates.
"""

from __future__ import annotations

import hashlib
import os
from operator import attrgetter
from pathlib import Path

from nightshift.context.budget import Loaded, select
from nightshift.context.files import BINARY_REASON, scan_listing, start_listing
from nightshift.context.history import History, git_history
from nightshift.context.index import MINIFIED_AVG_LINE, HashIndex, read_facts
from nightshift.context.models import (
    TOKEN_ESTIMATE,
    ContextBundle,
    ContextFile,
    SecretHit,
    SecretKind,
    SkipCode,
    SkippedFile,
)
from nightshift.context.paths import compile_globs, inside_repo, resolve_repo
from nightshift.context.ranking import ContextSignals, Ranking, RankingPolicy, estimate_tokens
from nightshift.context.secrets import RULES_DIGEST, find_secrets, redact
from nightshift.context.spec import ContextSpec

__all__ = [
    "TOKEN_ESTIMATE",
    "ContextBundle",
    "ContextFile",
    "ContextSignals",
    "ContextSpec",
    "RankingPolicy",
    "SecretHit",
    "SecretKind",
    "SkipCode",
    "SkippedFile",
    "estimate_tokens",
    "find_secrets",
    "gather_context",
    "redact",
    "warm_index",
]


def gather_context(
    repo: Path,
    spec: ContextSpec,
    *,
    signals: ContextSignals | None = None,
    cache_dir: Path | None = None,
) -> ContextBundle:
    """The files of `repo` a worker should see under `spec`, redacted, ranked and within budget.

    Raises `ContextError` for a missing repository or a bad/unsafe glob. `cache_dir` holds
    the hash index (`<cache_dir>/<repo-key>.json`); without it every file is read.
    """
    root = resolve_repo(repo)
    include, exclude = compile_globs(spec.include), compile_globs(spec.exclude)
    pending = start_listing(root, git_stats=HashIndex.saved(root, cache_dir))
    index = HashIndex(root, cache_dir, secret_rules=RULES_DIGEST)  # loads while git lists
    listing, found = scan_listing(
        root,
        pending,
        include=include,
        exclude=exclude,
        max_file_bytes=spec.max_file_bytes,
        skip_vendored=spec.skip_vendored,
        index=index,
    )

    policy = spec.ranking
    history = (
        git_history(root, policy.history_commits) if policy.needs_history and listing.source == "git" else History()
    )
    ranking = Ranking(policy, signals or ContextSignals(), history=history, listed=listing.paths)
    order = ranking.order(found.paths, found.chars, found.entry_hints)
    ranked, chars = [found.paths[i] for i in order], [found.chars[i] for i in order]

    def reasons(position: int) -> list[str]:
        return ranking.reasons(ranked[position], chars[position], found.entry_hints[order[position]])

    def load(position: int) -> Loaded | tuple[SkipCode, str]:
        i, path = order[position], ranked[position]
        symlink = path in found.symlinks
        return _load(root, path, found.sizes[i], found.sha256s[i], symlink, index, spec.max_file_bytes)

    selection = select(
        ranked,
        chars,
        reasons,
        load,
        budget=spec.budget_tokens,
        truncate_top_n=policy.truncate_top_n,
        chunking=spec.chunking,
        max_chunks=spec.max_chunks,
    )
    index.save(keep=set(listing.paths))
    files = selection.files
    return ContextBundle(
        repo=str(root),
        files=files,
        skipped=sorted(found.skipped + selection.skipped, key=_BY_PATH),
        redactions=selection.redactions,
        total_tokens=sum(f.tokens for f in files),
        budget_tokens=spec.budget_tokens,
        chunks=selection.chunks,
        tree_hash=found.tree_hash,
        listed_with=listing.source,
    )


def warm_index(repo: Path, cache_dir: Path, *, spec: ContextSpec | None = None) -> int:
    """Hash every candidate file into the index under `cache_dir` (for a preload worker).

    Returns how many files had to be read; 0 means the index was already warm.
    """
    spec = spec or ContextSpec()
    root = resolve_repo(repo)
    pending = start_listing(root, git_stats=HashIndex.saved(root, cache_dir))
    index = HashIndex(root, cache_dir, secret_rules=RULES_DIGEST)
    listing, _ = scan_listing(
        root,
        pending,
        include=compile_globs(spec.include),
        exclude=compile_globs(spec.exclude),
        max_file_bytes=spec.max_file_bytes,
        skip_vendored=spec.skip_vendored,
        index=index,
    )
    index.save(keep=set(listing.paths))
    return index.misses


_BY_PATH = attrgetter("path")


def _load(
    root: Path, path: str, size: int, scanned_sha256: str, symlink: bool, index: HashIndex, max_file_bytes: int
) -> Loaded | tuple[SkipCode, str]:
    """Read a selected file and redact it (unless these exact bytes are known to be clean).

    A file that changed since the scan is held to the scan's rules again before it is shown:
    not grown beyond `max_file_bytes`, not become empty, binary or minified."""
    full = f"{root}/{path}"
    if symlink and not inside_repo(str(root), os.path.realpath(full)):  # retargeted since the scan
        return SkipCode.unreadable, "symlink whose target escapes the repository"
    try:
        # a file that was no symlink at scan time must not have become one
        fd = os.open(full, os.O_RDONLY | (0 if symlink else os.O_NOFOLLOW))
        try:
            data = os.read(fd, size + 1)  # all of it, in one read, unless it changed size
            if len(data) != size:  # read on, to the end or past the limit
                chunks, total = [data], len(data)
                while total <= max_file_bytes and (chunk := os.read(fd, 1 << 20)):
                    chunks.append(chunk)
                    total += len(chunk)
                data = b"".join(chunks)
            if len(data) > max_file_bytes:
                grown = os.fstat(fd).st_size
                return SkipCode.too_large, f"too large ({grown} bytes > max_file_bytes={max_file_bytes})"
        finally:
            os.close(fd)
    except OSError as exc:
        return SkipCode.unreadable, f"unreadable ({exc.strerror or exc})"
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != scanned_sha256 and (refused := _refusal(data, path)) is not None:
        return refused
    text = data.decode("utf-8", "replace")
    if index.known_clean(path, sha256):
        return Loaded(text, [], sha256)
    content, hits = redact(text, path)
    index.note_scan(path, sha256, clean=not hits)
    if hits:  # the hash of the original would let a weak secret be guessed offline
        sha256 = hashlib.sha256(content.encode("utf-8", "surrogateescape")).hexdigest()
    return Loaded(content, hits, sha256)


def _refusal(data: bytes, path: str) -> tuple[SkipCode, str] | None:
    """Why the scan would now skip these contents of a file it let through, if it would."""
    if not data:
        return SkipCode.empty, "empty file"
    facts = read_facts(data, path)
    if facts.binary:
        return SkipCode.binary, BINARY_REASON
    if facts.minified:
        return SkipCode.minified, f"minified (average line {facts.avg_line} chars > {MINIFIED_AVG_LINE})"
    return None
