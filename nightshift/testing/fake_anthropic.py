"""A scripted fake of the Anthropic Messages API for driving the real `claude` CLI in tests.

The fake is the only test double nightshift allows: the real CLI binary runs unchanged and talks
HTTP to this server on 127.0.0.1 (`ANTHROPIC_BASE_URL`). Each test writes a *script*, a list of
turns (`Text`, `ToolUse`, `ParallelToolUse`, `StructuredOutput`, `HttpError`, `Hang`,
`MalformedSSE`, or a callable `(request_body) -> Turn`), consumed in order by the CLI's main-loop
requests. Every request is recorded (API keys redacted) so tests can assert on what reached the API.

    with FakeAnthropic([ToolUse(name="Write", input={...}), Text(text="done")]) as api:
        subprocess.run([claude, "-p", ...], env={**os.environ, **api.cli_env(), "HOME": tmp})
        assert len(api.main_requests) == 2

Facts verified against Claude Code 2.1.330 (`claude -p --output-format stream-json --verbose`):

- Requests. With `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` a headless run sends only
  `POST /v1/messages?beta=true` with `stream: true`, one per model turn; a `--json-schema` run ends
  right after the `StructuredOutput` tool call (one request). Without that variable it also sends
  `GET /api/hello` first. Plain text, tool rounds (Write, Bash), auto mode (its classifier runs
  server-side and is never sent to a custom base URL) and `--model` choices sent no other request.
  `--tools ""` sends a main request with no `tools`, so "has tools" cannot tell main requests apart.
- Auxiliary ("side query") requests exist in the binary (session titles, summaries, model
  validation...); they are non-streaming. Classification here: every streaming `/v1/messages`
  request is main-loop; a non-streaming one is main-loop only when it repeats the conversation of an
  earlier main request (the CLI's non-streaming fallback, below), otherwise it is auxiliary and gets
  a harmless default answer without consuming a turn. `count_tokens` gets `{"input_tokens": N}`.
- Subagents (the `Agent` tool) send their own streaming requests (system block
  `cc_is_subagent=true`), in the background: they consume turns, in an order that races the parent.
  Use a callable responder for them.
- 429/500/529: the CLI retries with a byte-identical body (`X-Stainless-Retry-Count` stays 0; it
  emits `system/api_retry` events), 10 times, backoff doubling from ~0.5 s to a cap of ~32-38 s:
  about 3 minutes in all; `retry-after: 0` does not shorten it. Two ways to fail at once (one
  request, `is_error: true`, `api_error_status` set, exit 1): `CLAUDE_CODE_MAX_RETRIES=0` (honoured;
  N allows N retries), or the response header `x-should-retry: false` (`HttpError(should_retry=False)`).
- 400: never backed off, but repeated at once ~5 times while the CLI drops betas
  (`thinking-token-count-...`, then `thinking.display`, then `advanced-tool-use-...`, which also
  changes `tools` and the `role: system` context message); `CLAUDE_CODE_MAX_RETRIES` does not
  change that. A message containing "prompt is too long" is reworded by the CLI in `result`.
- A broken or truncated event stream is not retried: the CLI repeats the request once
  non-streaming (`stream: false`, `max_tokens` 64000, same messages; off with
  `CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK=1`). Garbage in both gives `is_error: true`,
  `api_error_status: null`.
- No answer at all (`Hang()`): `API_TIMEOUT_MS=3000` with `CLAUDE_CODE_MAX_RETRIES=0` ends the run
  after ~3 s ("Request timed out"); `CLAUDE_STREAM_FIRST_BYTE_TIMEOUT_MS` did not. A stall after
  `message_start` (`Hang(after_headers=True)`) outlasted 45 s even with `API_TIMEOUT_MS` and
  `CLAUDE_STREAM_IDLE_TIMEOUT_MS` set (the code clamps the idle timeout to >= 300 s): use it for
  cancellation tests, not for error results.
- `bypassPermissions` is refused when running as root.

So that these repeats do not eat the script, a failure turn (`HttpError`, `Hang`, `MalformedSSE`)
is *pinned* to its conversation, keyed by what the CLI keeps across repeats: model, metadata (it
holds the session id) and the user/assistant messages. A repeat, streaming or not, is answered by
the same turn again, `attempts` times in all (default: every repeat); after that the next turn is
consumed, which scripts "fails once, then succeeds". When the script runs out, main requests get
HTTP 400 "fake-anthropic: script exhausted" with `x-should-retry: false`, so a test fails at once
with a clear message.

Run standalone (for benchmarks and cross-process tests):
`python -m nightshift.testing.fake_anthropic --port 0 --script script.json [--log requests.jsonl]`
prints `PORT=<n>` once listening and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

HOST = "127.0.0.1"
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"
EXHAUSTED_MESSAGE = "fake-anthropic: script exhausted"
AUXILIARY_TEXT = "fake-anthropic: auxiliary reply"
_REDACTED_HEADERS = frozenset({"x-api-key", "authorization"})
_SHUTDOWN_GRACE_S = 2.0
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


# ----------------------------------------------------------------------------------------- script


class _Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay_s: float = Field(default=0, ge=0, description="wait before answering (a slow model)")


class _Reply(_Turn):
    input_tokens: int | None = Field(default=None, ge=0, description="None: estimated from the request")
    output_tokens: int | None = Field(default=None, ge=0, description="None: estimated from the reply")


class Text(_Reply):
    """A plain text answer (also for JSON-as-text)."""

    kind: Literal["text"] = "text"
    text: str
    stop_reason: Literal["end_turn", "max_tokens"] = "end_turn"


class ToolCall(BaseModel):
    """One tool_use block of a `ParallelToolUse` turn."""

    model_config = ConfigDict(extra="forbid")

    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ToolUse(_Reply):
    """One tool call, optionally after some text."""

    kind: Literal["tool_use"] = "tool_use"
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    text: str | None = None


class ParallelToolUse(_Reply):
    """Several tool calls in one turn, optionally after some text."""

    kind: Literal["parallel_tool_use"] = "parallel_tool_use"
    calls: list[ToolCall] = Field(min_length=1)
    text: str | None = None


class StructuredOutput(_Reply):
    """The call of the `StructuredOutput` tool that `--json-schema` adds."""

    kind: Literal["structured_output"] = "structured_output"
    value: dict[str, Any]


class _Failure(_Turn):
    attempts: int | None = Field(
        default=None, ge=1, description="how many repeats of the request it answers; None: all"
    )


class HttpError(_Failure):
    """An API error with the real body shape `{"type":"error","error":{"type","message"}}`."""

    kind: Literal["http_error"] = "http_error"
    status: int = Field(ge=400, le=599)
    message: str = "fake-anthropic: scripted error"
    error_type: str | None = Field(default=None, description="None: the API's type for the status")
    retry_after: float | None = Field(default=None, ge=0, description="sent as the retry-after header")
    should_retry: bool | None = Field(default=None, description="sent as the x-should-retry header")

    def headers(self) -> dict[str, str]:
        headers = {} if self.retry_after is None else {"retry-after": f"{self.retry_after:g}"}
        if self.should_retry is not None:
            headers["x-should-retry"] = str(self.should_retry).lower()
        return headers

    def body(self) -> dict[str, Any]:
        error_type = self.error_type or _ERROR_TYPES.get(
            self.status, "api_error" if self.status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": error_type, "message": self.message}}


class Hang(_Failure):
    """Accept the request and answer nothing for `seconds` (None: until shutdown), then close.

    `after_headers` stalls inside the event stream (after `message_start`) instead of before it.
    """

    kind: Literal["hang"] = "hang"
    seconds: float | None = Field(default=None, ge=0)
    after_headers: bool = False


class MalformedSSE(_Failure):
    """A broken event stream; the CLI's non-streaming fallback gets truncated JSON."""

    kind: Literal["malformed_sse"] = "malformed_sse"


Turn = Annotated[
    Text | ToolUse | ParallelToolUse | StructuredOutput | HttpError | Hang | MalformedSSE,
    Field(discriminator="kind"),
]
# Responders run under the server's lock: keep them quick and put slowness in the turn's `delay_s`.
# They may return a turn or its JSON form (a dict with `kind`).
Responder = Callable[[dict[str, Any]], Turn | dict[str, Any]]
Script = Sequence[Turn | Responder] | Responder

_TURN: TypeAdapter[Turn] = TypeAdapter(Turn)
_TURNS: TypeAdapter[list[Turn]] = TypeAdapter(list[Turn])


def load_script(path: Path) -> list[Turn]:
    """Read a script: a JSON list of turns, each with its `kind`."""
    return _TURNS.validate_json(path.read_bytes())


# -------------------------------------------------------------------------------------- recording

RequestKind = Literal["main", "auxiliary", "count_tokens", "other"]


class RecordedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    received_at: float
    method: str
    path: str
    headers: dict[str, str] = Field(description="x-api-key and authorization values removed")
    body: Any = Field(description="parsed JSON body; the raw text when it is not JSON; None if empty")
    kind: RequestKind
    turn: int | None = Field(default=None, description="index of the script turn that answered")
    stream: bool = False

    def strings(self) -> Iterator[str]:
        """Every piece of text the request carried."""
        yield f"{self.method} {self.path}"
        for name, value in self.headers.items():
            yield f"{name}: {value}"
        yield from _strings(self.body)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield json.dumps(value)


def _redact(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in _REDACTED_HEADERS else v) for k, v in headers.items()}


# -------------------------------------------------------------------------------------- rendering


def _estimate_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


def _conversation_key(body: dict[str, Any]) -> str:
    """What stays the same across the CLI's repeats of one request: it rewrites betas, `thinking`,
    `tools`, the system prompt and its `role: system` context messages while recovering from errors."""
    messages = body.get("messages")
    dialogue = (
        [m for m in messages if isinstance(m, dict) and m.get("role") != "system"]
        if isinstance(messages, list)
        else messages
    )
    return json.dumps(
        {"model": body.get("model"), "metadata": body.get("metadata"), "dialogue": dialogue}, sort_keys=True
    )


def _tool_block(call: ToolCall | ToolUse, tool_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id or tool_id, "name": call.name, "input": call.input}


def _content(turn: Text | ToolUse | ParallelToolUse | StructuredOutput, seq: int) -> list[dict[str, Any]]:
    if isinstance(turn, Text):
        return [{"type": "text", "text": turn.text}]
    if isinstance(turn, StructuredOutput):
        return [_tool_block(ToolCall(name=STRUCTURED_OUTPUT_TOOL, input=turn.value), f"toolu_fake{seq:05d}00")]
    calls: Sequence[ToolCall | ToolUse] = [turn] if isinstance(turn, ToolUse) else turn.calls
    blocks = [{"type": "text", "text": turn.text}] if turn.text else []
    blocks += [_tool_block(call, f"toolu_fake{seq:05d}{i:02d}") for i, call in enumerate(calls)]
    return blocks


def _message(
    turn: Text | ToolUse | ParallelToolUse | StructuredOutput, body: dict[str, Any], seq: int
) -> dict[str, Any]:
    """The full (non-streaming) Message for a reply turn."""
    content = _content(turn, seq)
    stop_reason = turn.stop_reason if isinstance(turn, Text) else "tool_use"
    input_tokens = turn.input_tokens
    if input_tokens is None:
        input_tokens = _estimate_tokens([body.get("system"), body.get("messages"), body.get("tools")])
    output_tokens = turn.output_tokens if turn.output_tokens is not None else _estimate_tokens(content)
    return {
        "id": f"msg_fake{seq:05d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _chunks(text: str, size: int = 48) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _stream_start(message: dict[str, Any]) -> list[bytes]:
    usage = {**message["usage"], "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "usage": usage}
    return [
        _sse("message_start", {"type": "message_start", "message": start}),
        _sse("ping", {"type": "ping"}),
    ]


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    opening: dict[str, Any]
    if block["type"] == "text":
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": part} for part in _chunks(block["text"])]
    else:
        opening = {**block, "input": {}}
        partial = _chunks(json.dumps(block["input"]))
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in partial]
    events = [_sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})]
    events += [
        _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}) for delta in deltas
    ]
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _stream_events(message: dict[str, Any]) -> list[bytes]:
    """The event stream that delivers `message`."""
    events = _stream_start(message)
    for index, block in enumerate(message["content"]):
        events += _block_events(index, block)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": message["usage"]["output_tokens"]},
    }
    events += [_sse("message_delta", delta), _sse("message_stop", {"type": "message_stop"})]
    return events


def _auxiliary_message(body: dict[str, Any], seq: int) -> dict[str, Any]:
    wants_json = isinstance(body.get("output_config"), dict) and "format" in body["output_config"]
    return _message(Text(text="{}" if wants_json else AUXILIARY_TEXT), body, seq)


# ----------------------------------------------------------------------------------------- script


class _Pin:
    """A failure turn answering the repeats of the request it failed."""

    def __init__(self, index: int, turn: HttpError | Hang | MalformedSSE) -> None:
        self.index = index
        self.turn = turn
        self.served = 1

    def take(self) -> bool:
        if self.turn.attempts is not None and self.served >= self.turn.attempts:
            return False
        self.served += 1
        return True


class _ScriptState:
    """The turns still to serve. Not thread-safe: the server holds its lock around every call."""

    def __init__(self, script: Script) -> None:
        self._responder: Responder | None = script if callable(script) else None
        self._items: list[Turn | Responder] = [] if callable(script) else list(script)
        self._next = 0
        self._pins: dict[str, _Pin] = {}
        self.main_conversations: set[str] = set()

    @property
    def used(self) -> int:
        return self._next

    def take(self, body: dict[str, Any]) -> tuple[int | None, Turn]:
        key = _conversation_key(body)
        self.main_conversations.add(key)
        pin = self._pins.pop(key, None)
        if pin is not None and pin.take():
            self._pins[key] = pin
            return pin.index, pin.turn
        drawn = self._draw(body)
        if drawn is None:
            exhausted = f"{EXHAUSTED_MESSAGE} after {self._next} turns"
            return None, HttpError(status=400, message=exhausted, should_retry=False)
        index, turn = drawn
        if isinstance(turn, HttpError | Hang | MalformedSSE):
            self._pins[key] = _Pin(index, turn)
        return index, turn

    def _draw(self, body: dict[str, Any]) -> tuple[int, Turn] | None:
        item: Turn | Responder
        if self._responder is not None:
            item = self._responder
        elif self._next < len(self._items):
            item = self._items[self._next]
        else:
            return None
        self._next += 1
        return self._next - 1, _respond(item, body) if callable(item) else item


def _respond(responder: Responder, body: dict[str, Any]) -> Turn:
    try:
        return _TURN.validate_python(responder(body))
    except Exception as exc:  # a broken responder must fail the test at once, not make the CLI retry
        return HttpError(status=500, message=f"fake-anthropic: responder failed: {exc!r}", should_retry=False)


# ----------------------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    request_queue_size = 128

    def __init__(self, fake: FakeAnthropic, port: int) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._handler_threads: list[threading.Thread] = []
        self._conn_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        with self._conn_lock:
            self._connections.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
            self._handler_threads.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self, grace_s: float) -> None:
        """Cut every open connection so that handler threads end, then wait for them."""
        with self._conn_lock:
            connections, threads = list(self._connections), list(self._handler_threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + grace_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            self.server.fake._serve(self, self._read_body())
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self._read_chunked()
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            return gzip.decompress(raw)
        return raw

    def _read_chunked(self) -> bytes:
        parts = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_fake")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_fake")
        self.end_headers()

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# ------------------------------------------------------------------------------------------- fake


class FakeAnthropic:
    """The scripted API server. Thread-safe; use as a context manager or call start()/stop()."""

    def __init__(self, script: Script = (), *, port: int = 0, log_path: Path | None = None) -> None:
        self._script = _ScriptState(script)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._seq = itertools.count()
        self._stopping = threading.Event()
        self._log: IO[str] | None = log_path.open("a", encoding="utf-8") if log_path else None
        self._server = _Server(self, port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)

    # lifecycle

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging answers are cut, handler threads get a short grace period."""
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.close_connections(_SHUTDOWN_GRACE_S)
        self._server.server_close()
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # addresses

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cli_env(self, *, max_retries: int | None = 0) -> dict[str, str]:
        """Environment pointing the claude CLI at this fake (add a fresh HOME yourself)."""
        env = {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "fake-anthropic-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        if max_retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
        return env

    # recording

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[RecordedRequest]:
        """Main-loop requests, answered from the script (retries repeat their turn's index)."""
        return [r for r in self.requests if r.kind == "main"]

    @property
    def turns_used(self) -> int:
        with self._lock:
            return self._script.used

    def all_text(self) -> str:
        """Everything every request carried (API keys excepted), one string per line."""
        return "\n".join(s for request in self.requests for s in request.strings())

    # serving

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        path = handler.path
        body = _parse(raw)
        with self._lock:
            seq = next(self._seq)
            kind = self._classify(handler.command, path, body)
            index, turn = self._script.take(body) if kind == "main" and isinstance(body, dict) else (None, None)
            record = RecordedRequest(
                seq=seq,
                received_at=time.time(),
                method=handler.command,
                path=path,
                headers=_redact(dict(handler.headers)),
                body=body,
                kind=kind,
                turn=index,
                stream=isinstance(body, dict) and body.get("stream") is True,
            )
            self._requests.append(record)
            if self._log is not None:
                self._log.write(record.model_dump_json() + "\n")
                self._log.flush()
        if turn is not None and isinstance(body, dict):
            self._answer_turn(handler, turn, body, seq, stream=record.stream)
        else:
            self._answer_other(handler, kind, body, seq)

    def _classify(self, method: str, path: str, body: Any) -> RequestKind:
        route = path.split("?", 1)[0].rstrip("/")
        if method != "POST" or not isinstance(body, dict):
            return "other"
        if route == "/v1/messages/count_tokens":
            return "count_tokens"
        if route != "/v1/messages":
            return "other"
        if body.get("stream") is True or _conversation_key(body) in self._script.main_conversations:
            return "main"
        return "auxiliary"

    def _answer_other(self, handler: _Handler, kind: RequestKind, body: Any, seq: int) -> None:
        if kind == "count_tokens":
            tokens = _estimate_tokens([body.get("system"), body.get("messages"), body.get("tools")])
            handler.send_json(200, {"input_tokens": tokens})
        elif kind == "auxiliary":
            handler.send_json(200, _auxiliary_message(body, seq))
        elif handler.command == "GET" and handler.path.split("?", 1)[0] == "/api/hello":
            handler.send_json(200, {"message": "hello"})
        else:
            error = HttpError(status=404, message=f"fake-anthropic: no route {handler.command} {handler.path}")
            handler.send_json(404, error.body())

    def _answer_turn(self, handler: _Handler, turn: Turn, body: dict[str, Any], seq: int, *, stream: bool) -> None:
        if self._stopping.wait(turn.delay_s):
            handler.close_connection = True
            return
        if isinstance(turn, HttpError):
            handler.send_json(turn.status, turn.body(), turn.headers())
        elif isinstance(turn, Hang):
            self._hang(handler, turn, body, seq, stream=stream)
        elif isinstance(turn, MalformedSSE):
            self._malformed(handler, stream=stream)
        elif stream:
            handler.start_stream()
            for event in _stream_events(_message(turn, body, seq)):
                handler.send_chunk(event)
            handler.end_stream()
        else:
            handler.send_json(200, _message(turn, body, seq))

    def _hang(self, handler: _Handler, turn: Hang, body: dict[str, Any], seq: int, *, stream: bool) -> None:
        if turn.after_headers and stream:
            handler.start_stream()
            for event in _stream_start(_message(Text(text=""), body, seq)):
                handler.send_chunk(event)
        self._stopping.wait(turn.seconds)
        handler.close_connection = True

    def _malformed(self, handler: _Handler, *, stream: bool) -> None:
        if stream:
            handler.start_stream()
            handler.send_chunk(b'event: message_start\ndata: {"type": "message_start", "message": {\n\n')
            handler.end_stream()
        else:
            data = b'{"id": "msg_fake", "type": "mess'
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        handler.close_connection = True


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# -------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nightshift.testing.fake_anthropic", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--script", type=Path, help="JSON list of turns, each with a `kind`")
    parser.add_argument("--log", type=Path, help="append every request as JSON lines to this file")
    args = parser.parse_args(argv)
    script = load_script(args.script) if args.script else []
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with FakeAnthropic(script, port=args.port, log_path=args.log) as api:
        print(f"PORT={api.port}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
