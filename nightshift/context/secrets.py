"""Secrets never leave: find them, and replace each value with `[REDACTED:<kind>]`.

Detectors produce character spans of secret *values* (keys, variable names and URL hosts
stay readable). Overlapping spans are merged into one, named after the most specific kind
among them, so `GITHUB_TOKEN=ghp_...` in a `.env` file is a `github-token`, not an
`env-value`, and nothing of either span survives.

Two families of detector:
  * formats that identify themselves (PEM private keys, AWS key ids, GitHub, Anthropic,
    OpenAI and Slack tokens, Google API keys, JWTs, URLs with a password): always reported,
    unless the token's random part is visibly filler (`ghp_xxxx...`);
  * values that are secrets because of where they are: every value of a `.env` file
    (example/sample/template files only when the value is not a placeholder), an AWS
    secret key next to its keyword, and `password|secret|token|api_key|... = "value"`
    assignments, kept only when the value looks random: not a placeholder, not a word
    or identifier, no spaces, not a path or URL, and enough entropy.

A `SecretHit` carries the redacted line as its preview, never the value itself.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import string
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from nightshift.context.models import SecretHit, SecretKind

# Changes whenever the detectors change: clean verdicts remembered under other rules are void.
RULES_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

__all__ = ["SecretHit", "SecretKind", "find_secrets", "is_placeholder", "redact"]

K = SecretKind
# Lower wins when spans overlap: the most specific name is kept.
_PRIORITY = {
    K.private_key: 0,
    K.aws_access_key_id: 1,
    K.aws_secret_access_key: 1,
    K.github_token: 1,
    K.anthropic_key: 1,
    K.openai_key: 1,
    K.slack_token: 1,
    K.slack_webhook: 1,
    K.google_api_key: 1,
    K.jwt: 2,
    K.url_credentials: 3,
    K.generic_secret: 4,
    K.env_value: 5,
}
PREVIEW_CHARS = 160
_MARKER = "[REDACTED:{}]"

# -- self-identifying formats ------------------------------------------------------------

_PEM_BEGIN = re.compile(r"-----BEGIN (?P<label>[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?)-----")
_PEM_UNTERMINATED_BODY = re.compile(r"(?:[A-Za-z0-9+/=\s\"',:-]|\\[nr])*")
_PEM_HEADER_LINE = re.compile(r"(?m)^\s*(?:Proc-Type|DEK-Info|Comment|Version|Hash):.*$")
_PEM_NOISE = re.compile(r"\\[nr]|[\s\"',+]")
_BASE64 = re.compile(r"[A-Za-z0-9+/=]+")


_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class _Format:
    kind: SecretKind
    gates: tuple[str, ...]  # the pattern only runs on text holding one of these
    pattern: re.Pattern[str]  # starts with a literal, so `re` skips ahead quickly
    word: str = _ALNUM + "_-"  # characters that may not come right before the token

    def before_ok(self, text: str, start: int) -> bool:
        return start == 0 or text[start - 1] not in self.word


_FORMATS = (
    _Format(
        K.aws_access_key_id,
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        re.compile(r"A(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])"),
        string.ascii_uppercase + string.digits,
    ),
    _Format(
        K.github_token,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(r"gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])"),
        _ALNUM + "_",
    ),
    _Format(
        K.github_token,
        ("github_pat_",),
        re.compile(r"github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])"),
        _ALNUM + "_",
    ),
    _Format(K.anthropic_key, ("sk-ant-",), re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,255}(?![A-Za-z0-9_-])")),
    _Format(
        K.openai_key,
        ("sk-",),
        re.compile(r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,255}(?![A-Za-z0-9_-])"),
    ),
    _Format(K.slack_token, ("xox",), re.compile(r"xox[baprse]-[A-Za-z0-9-]{10,255}(?![A-Za-z0-9_-])")),
    _Format(
        K.slack_webhook,
        ("hooks.slack.com",),
        re.compile(r"(?<=https://hooks\.slack\.com/services/)T[A-Za-z0-9_/]{20,200}"),
        "",
    ),
    _Format(K.google_api_key, ("AIza",), re.compile(r"AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_-])")),
    _Format(
        K.jwt,
        ("eyJ",),
        re.compile(r"eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{0,4096}(?![A-Za-z0-9_.-])"),
    ),
)
_AWS_SECRET = re.compile(
    r"(?i)(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?\s*(?::=|=>|=|:)\s*[\"']?"
    r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
)
_URL_CREDENTIALS = re.compile(r"://(?P<user>[^\s:/@'\"<>]{0,128}):(?P<password>[^\s/@'\"<>]{1,256})@")

# -- values secret by where they are ---------------------------------------------------

# Lines holding one of these (lower-cased) are the only ones the assignment patterns run on.
_KEYWORDS = ("pass", "pwd", "secret", "token", "key", "credential")
_KEYWORD_LOOKAHEAD = r"(?=[\w.\-]{0,80}?(?i:pass|pwd|secret|token|key|credential))"
_ASSIGN_QUOTED = re.compile(
    r"(?<![\w.\-])" + _KEYWORD_LOOKAHEAD + r"(?P<key>[A-Za-z_][\w.\-]{0,80})[\"']?"
    r"(?:[ \t]*:[ \t]*[A-Za-z_][\w\[\]., |]{0,60}?)?"  # a type annotation: `token: str = "..."`
    r"[ \t]*(?::=|=>|=|:)[ \t]*(?:[rRbBuU]{1,2})?"
    r"(?P<q>[\"'`])(?P<value>[^\"'`\n\\]{4,400})(?P=q)"
)
_ASSIGN_BARE = re.compile(
    r"(?m)^[ \t]*(?:export[ \t]+|ENV[ \t]+|-[ \t]+|set[ \t]+)?"
    + _KEYWORD_LOOKAHEAD
    + r"(?P<key>[A-Za-z_][\w.\-]{0,80})"
    r"[ \t]*[:=][ \t]*(?P<value>[^\s#\"'`|>&][^\s#\"'`]{3,400})[ \t]*(?:[#;].*)?$"
)
_BARE_VALUE_SUFFIXES = (".yml", ".yaml", ".ini", ".cfg", ".conf", ".toml", ".properties", ".sh", ".bash", ".zsh")
_BARE_VALUE_NAMES = frozenset({"dockerfile", "credentials", "config", ".npmrc", ".pypirc", ".netrc"})
_KEY_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "apikey",
        "credential",
        "credentials",
        "privatekey",
        "secretkey",
        "accesskey",
        "authkey",
        "signingkey",
        "encryptionkey",
    }
)
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("auth", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("client", "secret"),
        ("auth", "token"),
        ("pass", "word"),
    }
)
# A key ending in one of these names something about a secret, not the secret itself.
_NOT_A_VALUE_SUFFIXES = frozenset(
    {
        "url",
        "uri",
        "file",
        "files",
        "path",
        "dir",
        "name",
        "names",
        "type",
        "types",
        "field",
        "fields",
        "header",
        "endpoint",
        "len",
        "length",
        "env",
        "var",
        "prefix",
        "suffix",
        "label",
        "pattern",
        "regex",
        "re",
        "format",
        "fmt",
        "id",
        "ids",
        "count",
        "size",
        "limit",
        "ttl",
        "timeout",
        "expiry",
        "expires",
        "algorithm",
        "alg",
        "scope",
        "scopes",
        "class",
        "method",
        "mode",
        "kind",
        "param",
        "hint",
        "help",
        "message",
        "msg",
        "text",
        "title",
        "description",
        "error",
        "version",
        "location",
        "store",
        "backend",
        "provider",
        "cls",
        "policy",
        "min",
        "max",
        "required",
        "enabled",
        "validators",
        "hasher",
        "hashers",
        "template",
        "placeholder",
        "column",
        "attr",
        "attribute",
        "source",
        "key_name",
        "option",
        "setting",
    }
)

_PLACEHOLDER_WORDS = (
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "changeit",
    "your",
    "xxx",
    "dummy",
    "sample",
    "fake",
    "test",
    "todo",
    "fixme",
    "redacted",
    "replace",
    "insert",
    "mysecret",
    "secret_here",
    "password",
    "passwd",
    "undefined",
    "null",
    "none",
    "foobar",
    "lorem",
    "<",
    ">",
    "${",
    "$(",
    "{{",
    "%(",
    "%s",
    "{}",
    "***",
    "...",
    "…",
    "__",
)
_IDENTIFIER = re.compile(
    r"_*[a-z]+(?:[_.\-/+][a-z0-9]+)*"  # snake, kebab, dotted, MIME types: utf-8, application/json
    r"|_*[A-Z]+(?:[_.\-][A-Z0-9]+)*"  # CONSTANT_CASE
    r"|[A-Za-z][a-z]+(?:[A-Z][a-z0-9]+)+"  # camelCase, PascalCase
)
_TYPE_OR_CALL = re.compile(r"[\w.]+[\[(].*[\])]")
_WORDY_PASSWORD = re.compile(r"[A-Za-z]{1,12}(?:[-_][A-Za-z]{1,12})?")
_ENV_LINE = re.compile(r"(?m)^[ \t]*(?:export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)[ \t]*[=:][ \t]*")
_ENV_EXAMPLE_SUFFIXES = frozenset({"example", "sample", "template", "dist", "defaults", "tmpl", "tpl"})
_BOOL_OR_NUMBER = re.compile(r"(?i)true|false|yes|no|on|off|-?\d+(?:\.\d+)?|[a-z]{1,12}")


def is_placeholder(value: str) -> bool:
    """True for values that stand for a secret rather than being one: `changeme`, `<token>`, `${X}`, `xxx`..."""
    stripped = value.strip().strip("\"'`")
    if not stripped or stripped.startswith("[REDACTED:"):
        return True
    lowered = stripped.lower()
    if len(set(lowered)) <= 2 or stripped.startswith("$") or (stripped.startswith("{") and "}" in stripped):
        return True
    return any(word in lowered for word in _PLACEHOLDER_WORDS)


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_random(value: str) -> bool:
    """Whether an assigned string looks like a credential rather than a word, a path or a sentence."""
    if len(value) < 6 or len(value) > 400 or is_placeholder(value):
        return False
    if any(c.isspace() for c in value) or "://" in value or value.startswith(("/", "./", "../", "~/")):
        return False
    if _IDENTIFIER.fullmatch(value) or _TYPE_OR_CALL.fullmatch(value) or ("=" in value and "," in value):
        return False
    threshold = 2.5 if len(value) < 16 else 3.0
    return shannon_entropy(value) >= threshold


def _is_secret_key(key: str) -> bool:
    """`db_password`, `self.apiKey`, `AWS_SECRET` name secrets; `token_type`, `Token.Number`,
    `public_key_token` do not. Only the last dotted component counts."""
    last = key.rsplit(".", 1)[-1]
    parts = [p.lower() for chunk in re.split(r"[_\-]+", last) for p in _KEY_PARTS.findall(chunk)]
    if not parts or parts[-1] in _NOT_A_VALUE_SUFFIXES or "public" in parts:
        return False
    if any(p in _SECRET_WORDS for p in parts):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(parts))


def _filler(kind: SecretKind, token: str) -> bool:
    """`ghp_xxxxxxxx...`, `AKIA0000...`: too few distinct characters to be a real credential.

    OpenAI keys start with a mere `sk-`, so they must also mix digits and both cases
    (which `sk-learn-kernel-approximation` does not)."""
    body = token.split("_", 1)[-1] if "_" in token[:12] else token[4:]
    if len(set(body.lower())) < 6:
        return True
    if kind is K.openai_key:
        return not (
            any(c.isdigit() for c in body) and any(c.isupper() for c in body) and any(c.islower() for c in body)
        )
    return False


def _env_file_kind(name: str) -> str | None:
    """'env' for `.env`, `.env.local`, `prod.env`, `.envrc`; 'example' for `.env.example` and kin."""
    if name in (".env", ".envrc") or name.endswith(".env"):
        return "env"
    if name.startswith(".env."):
        suffixes = set(name.split(".")[2:])
        return "example" if suffixes & _ENV_EXAMPLE_SUFFIXES else "env"
    return None


@dataclass
class _Span:
    start: int
    end: int
    kind: SecretKind


def _env_spans(text: str, example: bool) -> list[_Span]:
    spans: list[_Span] = []
    for match in _ENV_LINE.finditer(text):
        start = match.end()
        quote = text[start : start + 1]
        if quote in ('"', "'", "`"):
            close = text.find(quote, start + 1)
            end = close if close >= 0 else len(text)
            start += 1
        else:
            line_end = text.find("\n", start)
            line_end = len(text) if line_end < 0 else line_end
            comment = text.find(" #", start, line_end)
            end = comment if comment >= 0 else line_end
            while end > start and text[end - 1] in " \t\r":
                end -= 1
        value = text[start:end]
        if not value.strip() or value.startswith("[REDACTED:"):
            continue
        if example and (is_placeholder(value) or _BOOL_OR_NUMBER.fullmatch(value)):
            continue
        spans.append(_Span(start, end, K.env_value))
    return spans


def _pem_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    for begin in _PEM_BEGIN.finditer(text):
        if spans and begin.start() < spans[-1].end:
            continue
        end_marker = f"-----END {begin.group('label')}-----"
        found = text.find(end_marker, begin.end(), begin.end() + 20_000)
        if found >= 0:
            body, end = text[begin.end() : found], found + len(end_marker)
        else:  # cut short: take the base64-looking lines that follow
            tail = _PEM_UNTERMINATED_BODY.match(text, begin.end())
            end = tail.end() if tail else begin.end()
            body = text[begin.end() : end]
        # A key has a long base64 body; a mere mention of the header (in a parser, say) does not.
        body = _PEM_NOISE.sub("", _PEM_HEADER_LINE.sub("", body))
        if max((len(m) for m in _BASE64.findall(body)), default=0) >= 40:
            spans.append(_Span(begin.start(), end, K.private_key))
    return spans


def _spans(text: str, path: str) -> list[_Span]:
    spans: list[_Span] = []
    if "PRIVATE KEY" in text:
        spans += _pem_spans(text)
    for fmt in _FORMATS:
        if any(map(text.__contains__, fmt.gates)):
            for match in fmt.pattern.finditer(text):
                if fmt.before_ok(text, match.start()) and not _filler(fmt.kind, match.group()):
                    spans.append(_Span(match.start(), match.end(), fmt.kind))
    if "://" in text:
        for match in _URL_CREDENTIALS.finditer(text):
            user, password = match.group("user", "password")
            # `user:pass@`, `scott:tiger@`, `guest:guest@`: documentation, not credentials
            if not (is_placeholder(password) or password == user or _WORDY_PASSWORD.fullmatch(password)):
                spans.append(_Span(match.start("password"), match.end("password"), K.url_credentials))
    name = path.rpartition("/")[2].lower()
    env_kind = _env_file_kind(name)
    bare_values = env_kind is not None or name in _BARE_VALUE_NAMES or name.endswith(_BARE_VALUE_SUFFIXES)
    for start, end in _keyword_lines(text):
        for match in _AWS_SECRET.finditer(text, start, end):
            if shannon_entropy(match.group(1)) >= 3.0:
                spans.append(_Span(match.start(1), match.end(1), K.aws_secret_access_key))
        for pattern in (_ASSIGN_QUOTED, _ASSIGN_BARE) if bare_values else (_ASSIGN_QUOTED,):
            for match in pattern.finditer(text, start, end):
                if _is_secret_key(match.group("key")) and _looks_random(match.group("value")):
                    spans.append(_Span(match.start("value"), match.end("value"), K.generic_secret))
    if env_kind:
        spans += _env_spans(text, example=env_kind == "example")
    return spans


def _keyword_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line holding a keyword, in order."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower-case into two; positions would shift
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    starts: set[int] = set()
    for word in _KEYWORDS:
        at = lowered.find(word)
        while at >= 0:
            line_start = lowered.rfind("\n", 0, at) + 1
            starts.add(line_start)
            line_end = lowered.find("\n", at)
            at = lowered.find(word, len(lowered) if line_end < 0 else line_end)
    lines = []
    for start in sorted(starts):
        end = text.find("\n", start)
        lines.append((start, len(text) if end < 0 else end))
    return lines


def _merge(spans: list[_Span]) -> list[_Span]:
    merged: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            last.end = max(last.end, span.end)
            if _PRIORITY[span.kind] < _PRIORITY[last.kind]:
                last.kind = span.kind
        else:
            merged.append(_Span(span.start, span.end, span.kind))
    return merged


def _preview(redacted: str, marker_start: int) -> str:
    line_start = redacted.rfind("\n", 0, marker_start) + 1
    line_end = redacted.find("\n", marker_start)
    line = redacted[line_start : len(redacted) if line_end < 0 else line_end].strip()
    if len(line) <= PREVIEW_CHARS:
        return line
    offset = max(0, min(marker_start - line_start - PREVIEW_CHARS // 3, len(line) - PREVIEW_CHARS))
    return ("…" if offset else "") + line[offset : offset + PREVIEW_CHARS] + "…"


def redact(text: str, path: str) -> tuple[str, list[SecretHit]]:
    """`text` with every secret value replaced by `[REDACTED:<kind>]`, and what was replaced."""
    spans = _merge(_spans(text, path))
    if not spans:
        return text, []
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    pieces: list[str] = []
    marker_positions: list[int] = []
    cursor = length = 0
    for span in spans:
        pieces.append(text[cursor : span.start])
        length += span.start - cursor
        marker = _MARKER.format(span.kind.value)
        marker_positions.append(length)
        pieces.append(marker)
        length += len(marker)
        cursor = span.end
    pieces.append(text[cursor:])
    redacted = "".join(pieces)
    hits = [
        SecretHit(
            path=path,
            line=bisect_right(line_starts, span.start),
            kind=span.kind,
            preview=_preview(redacted, position),
        )
        for span, position in zip(spans, marker_positions, strict=True)
    ]
    return redacted, hits


def find_secrets(text: str, path: str) -> list[SecretHit]:
    """Every secret in `text` (the content of `path`, relative to the repository), in file order."""
    return redact(text, path)[1]
