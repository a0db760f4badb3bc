"""Cyclomatic complexity per function and method, computed by radon from our already-parsed trees.

radon counts decision points (McCabe): 1 + each `if`/`elif`, loop, `except`, boolean operator,
comprehension `for`/`if`, `match` case, … A nested function's complexity is folded into the function
that holds it (radon's default). `sloc` is the number of non-blank lines of the function that are not
only a comment. Ranks are radon's: A 1–5, B 6–10, C 11–20, D 21–30, E 31–40, F 41+.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from nightshift.local.pysource import PySource


class FunctionComplexity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    function: str
    line: int
    end_line: int
    complexity: int
    rank: str
    sloc: int


def cc_rank(complexity: int) -> str:
    for bound, letter in ((5, "A"), (10, "B"), (20, "C"), (30, "D"), (40, "E")):
        if complexity <= bound:
            return letter
    return "F"


def _sloc(lines: list[str], start: int, end: int) -> int:
    count = 0
    for text in lines[start - 1 : end]:
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            count += 1
    return count


def _flatten(blocks: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for block in blocks:
        if hasattr(block, "methods"):  # a radon Class
            name = f"{prefix}{block.name}."
            out.extend((f"{name}{method.name}", method) for method in block.methods)
            out.extend(_flatten(list(block.inner_classes), name))
        else:
            out.append((f"{prefix}{block.name}", block))
    return out


def function_complexity(source: PySource) -> list[FunctionComplexity]:
    """Every function and method of a parsed file with its complexity and size."""
    if source.tree is None:
        return []
    from radon.visitors import ComplexityVisitor  # type: ignore[import-untyped]

    visitor = ComplexityVisitor.from_ast(source.tree)
    lines = source.text.splitlines()
    blocks = list(visitor.functions) + list(visitor.classes)
    return [
        FunctionComplexity(
            file=source.path,
            function=name,
            line=int(block.lineno),
            end_line=int(block.endline),
            complexity=int(block.complexity),
            rank=cc_rank(int(block.complexity)),
            sloc=_sloc(lines, int(block.lineno), int(block.endline)),
        )
        for name, block in _flatten(blocks)
    ]
