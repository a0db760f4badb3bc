"""Languages by file extension, and the cheap line counts the map reports.

`code_lines` counts lines that are not blank and do not start with the language's line-comment marker
(block comments and docstrings are counted as code: telling them apart needs a real parser).
"""

from __future__ import annotations

from pathlib import PurePosixPath

# extension (or exact file name) → (language, line-comment prefixes)
_LANGUAGES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    ".py": ("Python", (b"#",)),
    ".pyi": ("Python", (b"#",)),
    ".pyx": ("Cython", (b"#",)),
    ".pxd": ("Cython", (b"#",)),
    ".js": ("JavaScript", (b"//",)),
    ".mjs": ("JavaScript", (b"//",)),
    ".cjs": ("JavaScript", (b"//",)),
    ".jsx": ("JavaScript", (b"//",)),
    ".ts": ("TypeScript", (b"//",)),
    ".tsx": ("TypeScript", (b"//",)),
    ".go": ("Go", (b"//",)),
    ".rs": ("Rust", (b"//",)),
    ".java": ("Java", (b"//",)),
    ".kt": ("Kotlin", (b"//",)),
    ".scala": ("Scala", (b"//",)),
    ".swift": ("Swift", (b"//",)),
    ".c": ("C", (b"//",)),
    ".h": ("C/C++ header", (b"//",)),
    ".cc": ("C++", (b"//",)),
    ".cpp": ("C++", (b"//",)),
    ".cxx": ("C++", (b"//",)),
    ".hpp": ("C/C++ header", (b"//",)),
    ".cs": ("C#", (b"//",)),
    ".m": ("Objective-C", (b"//",)),
    ".php": ("PHP", (b"//", b"#")),
    ".rb": ("Ruby", (b"#",)),
    ".pl": ("Perl", (b"#",)),
    ".lua": ("Lua", (b"--",)),
    ".r": ("R", (b"#",)),
    ".jl": ("Julia", (b"#",)),
    ".sh": ("Shell", (b"#",)),
    ".bash": ("Shell", (b"#",)),
    ".zsh": ("Shell", (b"#",)),
    ".ps1": ("PowerShell", (b"#",)),
    ".sql": ("SQL", (b"--",)),
    ".html": ("HTML", ()),
    ".htm": ("HTML", ()),
    ".css": ("CSS", ()),
    ".scss": ("SCSS", (b"//",)),
    ".vue": ("Vue", (b"//",)),
    ".svelte": ("Svelte", (b"//",)),
    ".md": ("Markdown", ()),
    ".rst": ("reStructuredText", (b"..",)),
    ".txt": ("Text", ()),
    ".json": ("JSON", ()),
    ".yaml": ("YAML", (b"#",)),
    ".yml": ("YAML", (b"#",)),
    ".toml": ("TOML", (b"#",)),
    ".ini": ("INI", (b";", b"#")),
    ".cfg": ("INI", (b";", b"#")),
    ".xml": ("XML", ()),
    ".proto": ("Protocol Buffers", (b"//",)),
    ".tf": ("Terraform", (b"#", b"//")),
    ".dockerfile": ("Dockerfile", (b"#",)),
    "Dockerfile": ("Dockerfile", (b"#",)),
    "Makefile": ("Makefile", (b"#",)),
    ".mk": ("Makefile", (b"#",)),
    ".cmake": ("CMake", (b"#",)),
    "CMakeLists.txt": ("CMake", (b"#",)),
}


def language_of(path: str) -> tuple[str, tuple[bytes, ...]]:
    """The language of a path and its comment prefixes; unknown files are named by their extension."""
    pure = PurePosixPath(path)
    known = _LANGUAGES.get(pure.name) or _LANGUAGES.get(pure.suffix.lower())
    if known is not None:
        return known
    return (f"other ({pure.suffix.lower()})" if pure.suffix else "other (no extension)"), ()


def count_lines(data: bytes, comment_prefixes: tuple[bytes, ...]) -> tuple[int, int]:
    """(physical lines, code lines) of a text file's bytes."""
    if not data:
        return 0, 0
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    code = 0
    for raw in data.splitlines():
        stripped = raw.strip()
        if stripped and not (comment_prefixes and stripped.startswith(comment_prefixes)):
            code += 1
    return lines, code
