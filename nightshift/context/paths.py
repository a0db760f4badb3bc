"""Glob patterns resolved inside the repository, and nothing outside it.

Patterns are matched against '/'-separated paths relative to the repository root, with
glob semantics (like `pathlib`): `*` and `?` never cross a '/', `**` as a whole segment
matches any number of directories (`**/*.py` is every Python file, `*.py` only the
top-level ones), `[...]`/`[!...]` are character classes, `{a,b}` alternatives, and a
trailing '/' means everything below that directory. Hidden files are matched like any
other file.

Refused with `ContextError`: an empty pattern, an absolute one (`/x`, `~/x`, `C:x`), one
with a `..` segment, a backslash, an unclosed `[` or `{`, or `**` inside a segment.
Symlinks are checked where files are read (`inside_repo`): a link, or a directory on the
way to a file, that resolves outside the repository is never followed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nightshift.errors import ContextError

_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_repo(repo: Path) -> Path:
    """The repository's real path; `ContextError` when it is missing or not a directory."""
    try:
        resolved = Path(repo).expanduser().resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ContextError(f"repository path does not exist: {repo}", path=str(repo)) from exc
    if not resolved.is_dir():
        raise ContextError(f"repository path is not a directory: {repo}", path=str(repo))
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise ContextError(f"repository is not readable: {repo}", path=str(repo))
    return resolved


def inside_repo(repo_real: str, real: str) -> bool:
    """Whether the resolved path `real` is the repository itself or below it."""
    return real == repo_real or real.startswith(repo_real.rstrip(os.sep) + os.sep)


def _fail(pattern: str, why: str) -> ContextError:
    return ContextError(f"invalid glob {pattern!r}: {why}", pattern=pattern)


def _expand_braces(pattern: str, original: str) -> list[str]:
    """`a{b,c{d,e}}` -> ['ab', 'acd', 'ace']; an unbalanced brace is an error."""
    depth, start = 0, -1
    for i, char in enumerate(pattern):
        if char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise _fail(original, "'}' without a matching '{'")
            if depth == 0:
                options, level, last = [], 0, start + 1
                for j in range(start + 1, i):
                    if pattern[j] == "{":
                        level += 1
                    elif pattern[j] == "}":
                        level -= 1
                    elif pattern[j] == "," and level == 0:
                        options.append(pattern[last:j])
                        last = j + 1
                options.append(pattern[last:i])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [expanded for option in options for expanded in _expand_braces(head + option + tail, original)]
    if depth:
        raise _fail(original, "'{' is never closed")
    return [pattern]


def _segment_regex(segment: str, original: str) -> str:
    if "**" in segment:
        raise _fail(original, "'**' can only be a whole path segment, as in 'src/**/*.py'")
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/\n]*")
        elif char == "?":
            out.append("[^/\n]")
        elif char == "[":
            j = i + 1
            if segment[j : j + 1] in ("!", "^"):
                j += 1
            if segment[j : j + 1] == "]":
                j += 1
            end = segment.find("]", j)
            if end < 0:
                raise _fail(original, "'[' is never closed")
            body = segment[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = (body[1:] if negate else body).replace("[", "\\[")
            out.append(f"[^/\n{body}]" if negate else f"[{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _glob_regex(pattern: str, original: str) -> str:
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    if pattern.endswith("/"):
        segments.append("**")
    if not segments:
        raise _fail(original, "it matches nothing")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".+" if last else "(?:[^/\n]+/)*")
        else:
            parts.append(_segment_regex(segment, original) + ("" if last else "/"))
    return "".join(parts)


@dataclass(frozen=True)
class GlobSet:
    """Compiled patterns; `matching` says which pattern matched a relative path, if any."""

    patterns: tuple[str, ...]
    _any: re.Pattern[str] | None
    _each: tuple[re.Pattern[str], ...]
    _lines: re.Pattern[str] | None  # the same, matching whole lines of a '\n'-joined listing
    _everything: bool = False  # a pattern is `**` or `**/*`, which match every path a listing holds

    def filter(self, paths: list[str]) -> list[str]:
        """The paths some pattern matches, in order: one regex pass over the joined listing."""
        if self._lines is None or not paths:
            return []
        joined = "\n".join(paths)
        if joined.count("\n") != len(paths) - 1:  # a file name with a newline in it
            return [p for p in paths if self.matches(p)]
        if self._everything and "//" not in joined and joined[0] != "/" and "\n/" not in joined:
            return list(paths)  # every path, without a regex pass (an empty segment would fail `**/*`)
        found: list[str] = self._lines.findall(joined)
        return found

    def matches(self, rel_path: str) -> bool:
        return self._any is not None and self._any.fullmatch(rel_path) is not None

    def matching(self, rel_path: str) -> str | None:
        if not self.matches(rel_path):
            return None
        return next(p for p, rx in zip(self.patterns, self._each, strict=True) if rx.fullmatch(rel_path))


def validate_pattern(pattern: str) -> str:
    """The regex source for one glob; raises `ContextError` when it is unsafe or malformed."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise _fail(str(pattern), "empty pattern")
    if "\x00" in pattern:
        raise _fail(pattern, "NUL character")
    if "\\" in pattern:
        raise _fail(pattern, "backslash; use '/' as separator and '[*]' for a literal '*'")
    alternatives = _expand_braces(pattern, pattern)
    for alternative in alternatives:
        if alternative.startswith(("/", "~")) or _DRIVE.match(alternative):
            raise _fail(pattern, "absolute patterns are refused; patterns are relative to the repository root")
        if ".." in alternative.split("/"):
            raise _fail(pattern, "'..' segments are refused; patterns cannot leave the repository")
    return "|".join(f"(?:{_glob_regex(p, pattern)})" for p in alternatives)


def compile_globs(patterns: list[str] | tuple[str, ...]) -> GlobSet:
    sources = [validate_pattern(p) for p in patterns]
    try:
        each = tuple(re.compile(s) for s in sources)
        combined = re.compile("|".join(f"(?:{s})" for s in sources)) if sources else None
        lines = re.compile("(?m)^(?:" + "|".join(f"(?:{s})" for s in sources) + ")$") if sources else None
    except re.error as exc:  # a character class the glob syntax allows but the regex engine refuses
        bad = next(p for p, s in zip(patterns, sources, strict=True) if not _compiles(s))
        raise _fail(bad, f"bad character class ({exc.msg})") from exc
    return GlobSet(tuple(patterns), combined, each, lines, not _MATCH_ALL.isdisjoint(sources))


# the regex sources of `**` and `**/*`
_MATCH_ALL = frozenset({"(?:.+)", "(?:(?:[^/\n]+/)*[^/\n]*)"})


def _compiles(source: str) -> bool:
    try:
        re.compile(source)
    except re.error:
        return False
    return True
