"""`WebSocket /v1/stream`: live video, frames and audio pushed by the client, results sent as they are made.

One connection is one `vsslrt.pipeline.serve.stream` session (settings, limits and result documents
there).

WebSocket protocol (docs/serve.md has a client):

1. the client's first message: text JSON, the stream's settings (`StreamConfig`, every field optional);
2. then binary messages, `HEADER` (1 byte kind, 8 bytes little-endian float64 time in seconds) and a
   payload: kind `F`, an encoded image (JPEG, PNG: the decoder of `POST /v1/localize`); kind `A`,
   little-endian float32 PCM, interleaved channels, the time being its first sample's;
3. the text message `{"end": true}`: the session finishes, the remaining results and a summary are
   sent, the socket closes with 1000.

The server sends one text JSON per frame result as soon as it is made (`FrameResult.to_json`, plus
`mask_rle` when asked), a `{"summary": ..., "ended": ...}` at the end, and on a refusal one
`{"error": ..., "field": ..., "code": ...}` (the HTTP endpoints' error document) followed by the close
(1003: a message of the wrong type; 1008: a bad setting, header or payload, a wrong token, idle too
long; 1009: a message over the size limit, closed by the WebSocket layer before it is read; 1013: no
free stream, or the service is starting or shutting down; 1011: a bug). On shutdown an open stream is finished as on `{"end": true}`
and closed with 1001.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from typing import Any

import numpy as np
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from vsslrt.errors import InputError
from vsslrt.pipeline.serve.inputs import decode_image_bytes
from vsslrt.pipeline.serve.limits import (WS_GOING_AWAY, WS_INTERNAL, WS_NORMAL, WS_POLICY, WS_TOO_BIG, WS_UNSUPPORTED,
                                          RequestError, close_reason, ws_error)
from vsslrt.pipeline.serve.stream import ResultDocs, StreamConfig, StreamError, StreamHub, parse_config

STREAM_PATH = "/v1/stream"
#: Kind (b"F" or b"A") and time (seconds, float64) before each binary message's payload.
HEADER = struct.Struct("<cd")

def parse_message(data: bytes) -> tuple[bytes, float, bytes]:
    """A binary message -> (kind, time, payload); raises `StreamError` naming the header's part."""
    if len(data) < HEADER.size:
        raise StreamError("header", f"header: expected {HEADER.size} bytes (kind F or A, then a little-endian float64 "
                          f"time in seconds) before the payload, got a message of {len(data)} bytes.")
    kind, time = HEADER.unpack_from(data)
    if kind not in (b"F", b"A"):
        raise StreamError("kind", f"kind: expected the first byte to be F (frame) or A (audio), got {kind!r}.")
    if not math.isfinite(time):
        raise StreamError("time", f"time: expected a finite timestamp in seconds, got {time!r}.")
    return kind, time, data[HEADER.size:]


def decode_pcm(payload: bytes, channels: int) -> np.ndarray:
    """Little-endian float32 interleaved PCM -> (channels, n) float32."""
    width = 4 * channels
    if not payload or len(payload) % width:
        raise StreamError("audio", f"audio: expected little-endian float32 samples, {channels} interleaved "
                          f"channel(s) ({width} bytes per sample frame, the config's audio_channels), got "
                          f"{len(payload)} bytes.")
    samples = np.frombuffer(payload, dtype="<f4").reshape(-1, channels).T
    if not np.all(np.isfinite(samples)):
        raise StreamError("audio", "audio: expected finite samples, got NaN or infinity.")
    return samples


class WebSocketStream:
    """One WebSocket connection (see the module docstring for the protocol)."""

    def __init__(self, service: Any, websocket: Any) -> None:
        self.service, self.websocket = service, websocket
        self.hub: StreamHub = service.streams
        self.config = StreamConfig()
        self.results: ResultDocs | None = None

    async def run(self) -> None:
        await self.websocket.accept()
        metrics = self.service.metrics
        try:
            self.hub.enter(self.service)
        except StreamError as exc:
            metrics.streams.labels(endpoint="stream", outcome=exc.outcome).inc()
            await self._close(exc)
            return
        outcome = "error"
        try:
            outcome = await self._serve()
        except StreamError as exc:
            outcome = exc.outcome
            metrics.stream_errors.labels(endpoint="stream", field=str(exc.field)).inc()
            await self._close(exc)
        except WebSocketDisconnect:  # gone while results were being sent
            outcome = "disconnect"
        except Exception as exc:  # noqa: BLE001 - a bug costs this stream, not the service
            metrics.stream_errors.labels(endpoint="stream", field="None").inc()
            await self._close(StreamError(None, f"internal error: {type(exc).__name__}: {exc}"[:300], WS_INTERNAL))
        finally:
            self.hub.leave(self.service)
            metrics.streams.labels(endpoint="stream", outcome=outcome).inc()

    async def _serve(self) -> str:
        first = await self._receive()
        if first is None or first["type"] == "websocket.disconnect":
            return self._gone(first)
        if first.get("text") is None:
            raise StreamError("config", "config: expected a text JSON message first (the stream's settings, e.g. "
                              '{"fps": 4}), got a binary one.', WS_UNSUPPORTED)
        self.config = parse_config(first["text"])
        session = await asyncio.to_thread(self.config.session, self.service)
        self.results = ResultDocs(self.service, "stream", session, self.config.mask)
        while True:
            message = await self._receive()
            if message is None:
                await self._end("draining", WS_GOING_AWAY, "server shutting down: results so far were sent")
                return "draining"
            if message["type"] == "websocket.disconnect":
                return self._gone(message)
            if message.get("bytes") is not None:
                await self._send(await asyncio.to_thread(self._push, message["bytes"]))
            elif _is_end(message.get("text")):
                await self._end("end", WS_NORMAL, "end of stream")
                return "end"
            else:
                raise StreamError("message", 'message: expected a binary frame or audio message, or the text '
                                  f'{{"end": true}}, got the text {message.get("text", "")!r:.60}.', WS_UNSUPPORTED)

    def _gone(self, message: dict | None) -> str:
        """The client went away (or the WebSocket layer closed it: a message over the size limit)."""
        if message is not None and message.get("code") == WS_TOO_BIG:
            self.service.metrics.stream_errors.labels(endpoint="stream", field="message").inc()
            return "too_big"
        return "disconnect" if message is not None else "draining"

    async def _receive(self) -> dict | None:
        """The next message; None once the server drains; `StreamError` after the idle timeout."""
        idle = self.service.limits.stream_idle_s
        receive = asyncio.ensure_future(self.websocket.receive())
        drained = asyncio.ensure_future(self.hub.drained.wait())
        try:
            done, _ = await asyncio.wait({receive, drained}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receive, drained):
                if not task.done():
                    task.cancel()  # safe: an unreceived message stays in the connection's queue
        if receive in done:
            return receive.result()
        if drained in done:
            return None
        raise StreamError(None, f"stream: expected a message at least every {idle:g} s, got none for {idle:g} s; "
                          'closed (send audio, frames or {"end": true} sooner).', WS_POLICY, outcome="idle")

    def _push(self, data: bytes) -> list[dict[str, Any]]:
        """(Worker thread.) One binary message into the session; the results it made ready."""
        assert self.results is not None
        kind, time, payload = parse_message(data)
        session = self.results.session
        try:
            if kind == b"F":
                session.push_frame(decode_image_bytes(payload, self.service.limits), time)
            else:
                session.push_audio(decode_pcm(payload, self.config.audio_channels), self.config.audio_rate, time=time)
        except RequestError as exc:  # the image decoder's refusals name the field "image"
            raise StreamError(exc.field, exc.message) from None
        except InputError as exc:
            raise StreamError("frame" if kind == b"F" else "audio", exc.one_line()) from None
        return self.results.docs(session.poll())

    def _finish(self) -> list[dict[str, Any]]:
        assert self.results is not None
        return self.results.docs(self.results.session.finish())

    async def _end(self, ended: str, code: int, reason: str) -> None:
        assert self.results is not None
        await self._send(await asyncio.to_thread(self._finish))
        await self._send([self.results.final(ended)])
        await self.websocket.close(code, reason)

    async def _send(self, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            await self.websocket.send_text(json.dumps(doc))

    async def _close(self, error: StreamError) -> None:
        """Send the error line and close; the client may already be gone."""
        try:
            await self.websocket.send_text(ws_error(error.field, error.message, error.code))
            await self.websocket.close(error.code, close_reason(error.message))
        except (WebSocketDisconnect, RuntimeError, OSError):  # nothing left to tell
            pass


def _is_end(text: str | None) -> bool:
    try:
        return text is not None and json.loads(text) == {"end": True}
    except ValueError:
        return False


def add_live_route(api: Any, service: Any) -> None:
    """Register `WebSocket /v1/stream` on the FastAPI app."""

    # (FastAPI reads the handler's annotations from this module's globals: WebSocket.)
    @api.websocket(STREAM_PATH)
    async def stream(websocket: WebSocket) -> None:
        await WebSocketStream(service, websocket).run()
