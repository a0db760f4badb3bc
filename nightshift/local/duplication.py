"""Duplicated code blocks across Python files by normalized token-window hashing.

Each file is lexed (one regex pass over valid Python) and turned into *normalized lines*: the tokens starting on one
physical line, with every identifier replaced by `N`, every number by `0` and every string by `S`
(keywords, operators and punctuation kept; comments, blank lines, import lines and docstring-only lines
dropped). So renamed copies still match ("type-2 clones"). Only lines inside functions are compared:
module-level data tables and class field declarations are declarations, not duplicated logic. Every
window of `min_lines` consecutive normalized lines is hashed (a dict keyed by the window); two windows
that are equal at different places are a match, and each run of consecutive matches is grown line by
line in both directions while the normalized lines agree, giving one maximal block pair. A window
must hold at least `min_tokens` tokens and `min_distinct` different normalized lines (six lines of `)`
do not count), and a window found in more than `max_occurrences` places is boilerplate and ignored.
Overlapping matches within one file are not reported.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections import defaultdict
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from nightshift.local.pysource import PySource


class DuplicateBlock(BaseModel):
    """Two places holding the same normalized code; line ranges are 1-based and inclusive."""

    model_config = ConfigDict(extra="forbid")

    file_a: str
    start_a: int
    end_a: int
    file_b: str
    start_b: int
    end_b: int
    lines: int


@dataclass(frozen=True)
class _NormLine:
    line: int
    end: int
    text: str
    tokens: int


def _function_rows(source: PySource) -> set[int]:
    """Lines of top-most functions (decorators included); only statement bodies are searched."""
    rows: set[int] = set()
    if source.tree is None:
        return rows
    stack: list[ast.AST] = list(source.tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            rows.update(range(first, (node.end_lineno or node.lineno) + 1))
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            stack.extend(getattr(node, field, ()))
    return rows


# One regex pass instead of `tokenize` (pure Python on 3.11, several times slower). Only files that
# parsed are lexed, so valid Python can be assumed; characters no group matches are skipped.
_LEXEME = re.compile(
    "|".join(
        [
            r"(?P<comment>#[^\n]*)",
            r"(?P<string>[rRbBuUfF]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"))",
            r"(?P<number>0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?)",
            r"(?P<name>[^\W\d]\w*)",
            r"(?P<op>\*\*=?|//=?|>>=?|<<=?|->|:=|\.\.\.|[-+*/%@&|^=<>!]=|[-+*/%@&|^~<>()\[\]{},:;.=])",
            r"(?P<space>\\?\n|[ \t\f\r]+|\\)",
        ]
    )
)
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)


def normalized_lines(source: PySource) -> list[_NormLine]:
    """The file as normalized lines (see the module docstring)."""
    grouped: dict[int, list[str]] = defaultdict(list)
    ends: dict[int, int] = {}
    row = 1
    for match in _LEXEME.finditer(source.text):
        kind = match.lastgroup
        lexeme = match.group()
        start_row = row
        row += lexeme.count("\n") if kind in ("string", "space") else 0
        if kind in ("comment", "space"):
            continue
        if kind == "name":
            text = lexeme if lexeme in _KEYWORDS else "N"
        elif kind == "number":
            text = "0"
        elif kind == "string":
            text = "S"
        else:
            text = lexeme
        bucket = grouped[start_row]
        if not (text == "S" and bucket and bucket[-1] == "S"):
            bucket.append(text)
        ends[start_row] = max(ends.get(start_row, start_row), row)
    in_functions = _function_rows(source)
    out: list[_NormLine] = []
    for line in sorted(grouped):
        parts = grouped[line]
        if line not in in_functions or parts[0] in {"import", "from"} or parts == ["S"]:
            continue
        out.append(_NormLine(line=line, end=ends[line], text=" ".join(parts), tokens=len(parts)))
    return out


def find_duplicates(
    sources: list[PySource],
    *,
    min_lines: int = 6,
    min_tokens: int = 40,
    min_distinct: int = 3,
    max_occurrences: int = 20,
    limit: int = 500,
) -> list[DuplicateBlock]:
    """Pairs of duplicated blocks of at least `min_lines` normalized lines, longest first."""
    files = [(src.path, normalized_lines(src)) for src in sources]
    buckets: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for file_index, (_, lines) in enumerate(files):
        for start in range(len(lines) - min_lines + 1):
            window = lines[start : start + min_lines]
            if sum(line.tokens for line in window) < min_tokens:
                continue
            if len({line.text for line in window}) < min_distinct:
                continue
            buckets[tuple(line.text for line in window)].append((file_index, start))

    matches: set[tuple[tuple[int, int], tuple[int, int]]] = set()
    for places in buckets.values():
        if len(places) < 2 or len(places) > max_occurrences:
            continue
        for i, first in enumerate(places):
            for second in places[i + 1 :]:
                if first[0] == second[0] and abs(first[1] - second[1]) < min_lines:
                    continue
                matches.add((first, second))

    blocks: list[DuplicateBlock] = []
    seen: set[tuple[int, int, int, int]] = set()
    for first, second in matches:
        if ((first[0], first[1] - 1), (second[0], second[1] - 1)) in matches:
            continue
        (fa, i), (fb, j) = first, second
        lines_a, lines_b = files[fa][1], files[fb][1]
        same_file = fa == fb
        # Grow line by line past the qualifying windows, as long as the normalized lines agree.
        while i > 0 and j > 0 and lines_a[i - 1].text == lines_b[j - 1].text:
            i, j = i - 1, j - 1
        span = 0
        while (
            i + span < len(lines_a)
            and j + span < len(lines_b)
            and lines_a[i + span].text == lines_b[j + span].text
            and not (same_file and i + span >= j)  # the first copy ends where the second begins
        ):
            span += 1
        if span < min_lines or (fa, i, fb, j) in seen:
            continue
        seen.add((fa, i, fb, j))
        blocks.append(
            DuplicateBlock(
                file_a=files[fa][0],
                start_a=lines_a[i].line,
                end_a=lines_a[i + span - 1].end,
                file_b=files[fb][0],
                start_b=lines_b[j].line,
                end_b=lines_b[j + span - 1].end,
                lines=span,
            )
        )
    blocks.sort(key=lambda b: (-b.lines, b.file_a, b.start_a, b.file_b, b.start_b))
    return blocks[:limit]
