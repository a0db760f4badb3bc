"""Fitting ranked files into a token budget, or into several budget-sized chunks.

Files are taken best ranked first and placed first-fit into bins of `budget_tokens`
(estimated as ceil(chars / 4) of the redacted content). Without chunking there is one
bin; with chunking a new bin is opened whenever a file fits no open one, up to
`max_chunks`. Either way the result is deterministic: the ranking is.

A file that does not fit is dropped, unless it is among the policy's `truncate_top_n`
best ranked (or, with chunking, too big for any chunk): then it is cut at a line boundary
to the room left, ending with a visible `… [truncated N lines]` line.

Files are read lazily, in rank order: a file whose size alone rules it out is dropped
without being read, so a warm run reads little more than what it selects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from nightshift.context.models import ContextFile, SecretHit, SkipCode, SkippedFile
from nightshift.context.ranking import estimate_tokens

MIN_TRUNCATED_TOKENS = 64


class Loaded(NamedTuple):
    content: str  # redacted
    hits: list[SecretHit]
    sha256: str


# by rank (0: the best): the file, or why it is not shown after all
Loader = Callable[[int], "Loaded | tuple[SkipCode, str]"]


@dataclass
class Selection:
    files: list[ContextFile] = field(default_factory=list)  # best ranked first
    chunks: list[list[ContextFile]] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    redactions: list[SecretHit] = field(default_factory=list)


def truncation_marker(dropped_lines: int) -> str:
    return f"… [truncated {dropped_lines} lines]\n"


def truncate(text: str, max_tokens: int) -> tuple[str, int] | None:
    """`text` cut to at most `max_tokens` with the marker included, and the lines kept whole."""
    lines = text.splitlines(keepends=True)
    max_chars = max_tokens * 4
    kept_chars = 0
    kept = 0
    for line in lines:
        candidate = kept_chars + len(line)
        dropped = len(lines) - kept - 1
        tail = len(truncation_marker(dropped)) + (0 if line.endswith("\n") else 1) if dropped else 0
        if candidate + tail > max_chars:
            break
        kept_chars = candidate
        kept += 1
    if kept == len(lines):
        return text, kept
    head = "".join(lines[:kept])
    if kept == 0:  # not even one whole line fits: keep the start of the first one
        room = max_chars - len(truncation_marker(len(lines))) - 1
        if room < 1:
            return None
        return lines[0][:room].rstrip("\n") + "\n" + truncation_marker(len(lines)), 0
    if not head.endswith("\n"):
        head += "\n"
    return head + truncation_marker(len(lines) - kept), kept


def select(
    ranked: Sequence[str],
    chars: Sequence[int],
    reasons: Callable[[int], list[str]],
    load: Loader,
    *,
    budget: int,
    truncate_top_n: int,
    chunking: bool,
    max_chunks: int | None,
) -> Selection:
    limit = (max_chunks or len(ranked) or 1) if chunking else 1
    selection = Selection()
    room: list[int] = []  # tokens left per chunk
    fullest, can_open = 0, True  # max(room), and whether another chunk may be opened

    def over_budget(path: str, tokens: int, exact: bool) -> None:
        size = f"{tokens}" if exact else f"~{tokens}"
        if chunking:
            why = f"over the token budget ({size} tokens; {limit} chunks of {budget} tokens are full)"
        else:
            why = f"over the token budget ({size} tokens, {fullest if room else budget} of {budget} left)"
        selection.skipped.append(SkippedFile(path=path, code=SkipCode.over_budget, reason=why))

    # thousands of files are ranked and only the best fit: the loop is kept lean for the rest
    for position, (path, length) in enumerate(zip(ranked, chars, strict=True)):
        space = budget if can_open else fullest
        estimate = -(-length // 4)  # estimate_tokens, before redaction, which seldom changes it
        top = position < truncate_top_n
        if space <= 0 or (not top and estimate > space and not (chunking and can_open)):
            over_budget(path, estimate, exact=False)
            continue
        loaded = load(position)
        if not isinstance(loaded, Loaded):
            selection.skipped.append(SkippedFile(path=path, code=loaded[0], reason=loaded[1]))
            continue
        content, hits, tokens = loaded.content, loaded.hits, estimate_tokens(len(loaded.content))
        target = next((i for i, left in enumerate(room) if left >= tokens), None)
        if target is None and can_open and tokens <= budget:
            target = len(room)
        why = reasons(position)
        truncated = False
        if target is None and (top or (chunking and tokens > budget)) and space >= MIN_TRUNCATED_TOKENS:
            cut = truncate(content, space)
            if cut is not None:
                content, kept_lines = cut
                hits = [h for h in hits if h.line <= kept_lines]
                tokens = estimate_tokens(len(content))
                target = len(room) if can_open else room.index(space)
                truncated = True
                why.append(f"truncated to fit the budget ({kept_lines} lines kept)")
        if target is None:
            over_budget(path, tokens, exact=True)
            continue
        if target == len(room):
            room.append(budget)
            selection.chunks.append([])
        room[target] -= tokens
        fullest, can_open = max(room), len(room) < limit
        selected = ContextFile(
            path=path, content=content, tokens=tokens, reasons=why, truncated=truncated, sha256=loaded.sha256
        )
        selection.files.append(selected)
        selection.chunks[target].append(selected)
        selection.redactions.extend(hits)
    return selection
