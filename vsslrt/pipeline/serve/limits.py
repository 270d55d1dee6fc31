"""What a request may be, and the ASGI gate that enforces it before the application parses anything.

The gate runs first on every HTTP request, in this order:

1. the bearer token (when one is set; `/v1/health` stays open for probes), compared in constant time;
2. draining: once shutdown has begun, new localisations get 503 with Retry-After (in-flight ones
   finish; /v1/health answers 503 "draining");
3. admission (POST /v1/localize only): at most `max_queue` localisations are admitted at a time
   (uploading, decoding, queued or running); beyond that, 503 with Retry-After, before the body is
   read, so an overload costs neither memory nor CPU;
4. the body: refused by its Content-Length before reading when it declares more than
   `max_body_bytes`, and counted while it streams in (chunked uploads) so that reading stops at the
   limit; the whole upload must arrive before the request's deadline (`timeout_s` after its
   headers), or the answer is 408, so a client that never finishes its upload holds nothing for long.

A WebSocket handshake (`/v1/stream`) passes the token check only; a refused one is accepted, told
the error in one JSON message and closed with 1008 (`refuse_websocket`), so that every WebSocket
client, a browser's included, can read why. Its other limits (streams at a time, message size, idle
timeout) are the stream's own (`vsslrt.pipeline.serve.stream`, `vsslrt.pipeline.serve.live`).

The body is then handed to the application from memory. Every refusal is a JSON object with one
line in "error" and the "field" at fault (or null). A refused body within the limit is read to its
end by the server and discarded (the client reads the answer and may reuse the connection); one
that is too large, too slow or of unknown length is not read further: "Connection: close".
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from vsslrt.errors import InputError

LOCALIZE_PATH = "/v1/localize"
OPEN_PATHS = ("/v1/health",)


@dataclass(frozen=True)
class ServeLimits:
    """Limits of a public endpoint.

    Attributes:
        max_body_bytes: Largest request body (the image and the audio together, before decoding).
        max_audio_seconds: Longest audio clip, read from the file header before decoding.
        max_image_pixels: Largest image (width x height), read from the header before decoding.
        timeout_s: Per-request deadline from the request's headers: the upload must arrive within
            it (408) and the answer must be ready within it (504).
        max_queue: Localisations admitted at a time; beyond, 503 with Retry-After.
        retry_after_s: The Retry-After of a 503.
        max_streams: Streams open at a time (WebSocket /v1/stream and POST /v1/video together);
            beyond, a WebSocket is closed with 1013 and a video upload gets 503.
        stream_idle_s: A WebSocket stream with no message for this long is closed.
    """

    max_body_bytes: int = 32 * 2**20
    max_audio_seconds: float = 60.0
    max_image_pixels: int = 40_000_000
    timeout_s: float = 30.0
    max_queue: int = 64
    retry_after_s: int = 1
    max_streams: int = 4
    stream_idle_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_image_pixels", "max_queue", "retry_after_s", "max_streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"serve: expected {name} to be a positive integer, got {value!r}.")
        for name in ("max_audio_seconds", "timeout_s", "stream_idle_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InputError(f"serve: expected {name} to be a positive number of seconds, got {value!r}.")


class RequestError(Exception):
    """A request the service refuses: an HTTP status, a one-line message and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_doc(self.message, self.field, status=self.status)


def error_doc(message: str, field: str | None, **extra: Any) -> dict[str, Any]:
    """Every endpoint's error document: the one-line message, the field at fault, and the status
    (HTTP) or close code (WebSocket)."""
    return {"error": " ".join(message.split()), "field": field, **extra}


def error_body(status: int, message: str, field: str | None = None) -> bytes:
    return json.dumps(error_doc(message, field, status=status)).encode()


async def send_error(send: Callable[[dict], Awaitable[None]], error: RequestError, *, close: bool = False) -> None:
    """Answer with the error's JSON; with `close`, close the connection (the rest of the upload is not read).

    Without `close`, the server reads and discards what is left of a body within the limit, so the
    client reads the answer instead of a reset connection, and may send its next request.
    """
    payload = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class Admission:
    """At most `capacity` admitted localisations; `try_enter` never waits (the caller answers 503)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0

    def try_enter(self) -> bool:
        # Called on the event loop only: no lock needed.
        if self.active >= self.capacity:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


class RequestGate:
    """The ASGI layer in front of the application (see the module docstring).

    Args:
        app: The ASGI application.
        limits: The limits.
        token: The bearer token, or None for none.
        state: An object with `draining` (bool), `admission` (`Admission`) and
            `on_reject(reason)` (counted in the metrics).
    """

    def __init__(self, app: Any, limits: ServeLimits, token: str | None, state: Any) -> None:
        self.app = app
        self.limits = limits
        self.token = token.encode() if token else None
        self.state = state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "websocket":
            try:
                self._check_token(scope, scope.get("path", ""))
            except RequestError as exc:
                self.state.on_reject(_reason(exc))
                await refuse_websocket(receive, send, exc.field, exc.message, WS_POLICY)
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.timeout_s
        scope.setdefault("state", {})["deadline"] = deadline
        path = scope.get("path", "")
        # A refusal before the body is read leaves the rest of a body within the limit to the server
        # to discard; a body of unknown or excessive length is not read: the connection closes.
        declared = _declared_length(scope)
        close_early = declared is None or declared > self.limits.max_body_bytes
        try:
            self._check_token(scope, path)
            if self.state.draining and path == LOCALIZE_PATH:  # health says "draining"; reads stay open
                raise RequestError(503, "service: expected a running service, got one that is shutting down.",
                                   headers={"Retry-After": str(self.limits.retry_after_s)})
        except RequestError as exc:
            self.state.on_reject(_reason(exc))
            await send_error(send, exc, close=close_early)
            return
        admitted = False
        if path == LOCALIZE_PATH and scope.get("method") == "POST":
            if not self.state.admission.try_enter():
                self.state.on_reject("queue_full")
                await send_error(send, RequestError(
                    503, f"service: expected a free place in the queue, got all {self.limits.max_queue} taken.",
                    headers={"Retry-After": str(self.limits.retry_after_s)}), close=close_early)
                return
            admitted = True
        try:
            try:
                body = await self._read_body(scope, receive, deadline)
            except RequestError as exc:
                self.state.on_reject(_reason(exc))
                # Too large or too slow: stop reading it.
                await send_error(send, exc, close=exc.status in (408, 413) or close_early)
                return
            if body is None:  # the client went away
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            if admitted:
                self.state.admission.leave()

    def _check_token(self, scope: dict, path: str) -> None:
        if self.token is None or path in OPEN_PATHS:
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        scheme, _, value = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self.token):
            what = "no Authorization header" if not given else "a wrong or malformed token"
            raise RequestError(401, f"Authorization: expected 'Bearer <token>' with the service's token, got {what}.",
                               "authorization", headers={"WWW-Authenticate": "Bearer"})

    async def _read_body(self, scope: dict, receive: Callable, deadline: float) -> bytes | None:
        limit = self.limits.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise RequestError(400, f"Content-Length: expected an integer, got {declared[:40]!r}.",
                                   "content-length") from None
            if length > limit:
                raise RequestError(413, f"body: expected at most {limit} bytes, got a Content-Length of {length}.",
                                   "body")
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                raise RequestError(408, f"body: expected the upload within {self.limits.timeout_s:g} s, got "
                                   f"{size} bytes by then.", "body") from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"body: expected at most {limit} bytes, got more while reading it.", "body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


#: WebSocket close codes (RFC 6455 section 7.4.1) the stream endpoint uses.
WS_NORMAL, WS_GOING_AWAY, WS_UNSUPPORTED, WS_TOO_BIG, WS_POLICY, WS_INTERNAL, WS_TRY_LATER = (
    1000, 1001, 1003, 1009, 1008, 1011, 1013)


def ws_error(field: str | None, message: str, code: int) -> str:
    """A stream's error message before its close: the HTTP endpoints' error document with the close code."""
    return json.dumps(error_doc(message, field, code=code))


async def refuse_websocket(receive: Callable, send: Callable, field: str | None, message: str, code: int) -> None:
    """(Raw ASGI.) Accept a WebSocket handshake only to say why it is refused, then close with `code`."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": ws_error(field, message, code)})
    await send({"type": "websocket.close", "code": code, "reason": close_reason(message)})


def close_reason(message: str) -> str:
    """A close frame's reason: at most 123 bytes of UTF-8 (RFC 6455), so the line is cut there (the
    JSON error message before the close carries it whole)."""
    return " ".join(message.split()).encode()[:123].decode("utf-8", "ignore")


def _declared_length(scope: dict) -> int | None:
    for key, value in scope.get("headers") or []:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return 0
    return None


def _replay(body: bytes, receive: Callable) -> Callable:
    """A `receive` that gives the buffered body once, then waits on the connection (disconnects)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _reason(error: RequestError) -> str:
    return {401: "unauthorized", 408: "upload_timeout", 413: "too_large", 503: "draining"}.get(error.status, "bad_request")
