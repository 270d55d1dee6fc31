"""Live and recorded video over the service: `WebSocket /v1/stream` and `POST /v1/video`.

Both drive one `vsslrt.pipeline.stream.StreamSession` per connection (no stream sees another's
state), on the service's one localizer: a session's engine calls (`embed_prepared`) run on the
service's engine thread, the one the HTTP batcher uses, so the engine session is used by one thread
at a time; everything else of a session (decoding, front-ends, thresholds, masks) runs in a worker
thread, never on the event loop.

WebSocket protocol (docs/serve.md has a client):

1. the client's first message: text JSON, the stream's settings (`StreamConfig`, every field optional);
2. then binary messages, `HEADER` (1 byte kind, 8 bytes little-endian float64 time in seconds) and a
   payload: kind `F`, an encoded image (JPEG, PNG: the decoder of `POST /v1/localize`); kind `A`,
   little-endian float32 PCM, interleaved channels, the time being its first sample's;
3. the text message `{"end": true}`: the session finishes, the remaining results and a summary are
   sent, the socket closes with 1000.

The server sends one text JSON per frame result as soon as it is made (`FrameResult.to_json`, plus
`mask_rle` when asked), a `{"summary": ..., "ended": ...}` at the end, and on a refusal one
`{"error": ..., "field": ..., "code": ...}` (the HTTP endpoints' error document) followed by the close (1003: a message of the wrong type;
1008: a bad setting, header or payload, a wrong token, idle too long; 1009: a message over the size
limit, closed by the WebSocket layer before it is read; 1013: no free stream, or the service is
starting or shutting down; 1011: a bug). On shutdown an open stream is finished as on `{"end": true}`
and closed with 1001.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from vsslrt.errors import BackendUnavailableError, InputError
from vsslrt.pipeline.serve.inputs import _flag, decode_image_bytes, mask_rle
from vsslrt.pipeline.serve.limits import (WS_GOING_AWAY, WS_INTERNAL, WS_NORMAL, WS_POLICY, WS_TOO_BIG, WS_TRY_LATER,
                                          WS_UNSUPPORTED, RequestError, close_reason, error_doc, ws_error)
from vsslrt.pipeline.stream import ALIGNMENTS, Hysteresis, Smoothing, StreamSession, Summary

STREAM_PATH = "/v1/stream"
VIDEO_PATH = "/v1/video"
#: Kind (b"F" or b"A") and time (seconds, float64) before each binary message's payload.
HEADER = struct.Struct("<cd")
CONFIG_FIELDS = ("fps", "alignment", "audio_rate", "audio_channels", "smoothing_tau", "hysteresis", "mask")
MAX_FPS = 240.0
AUDIO_RATES = (1_000, 384_000)
MAX_CHANNELS = 32
#: Seconds between two checks of the open streams while the server waits for them to close.
_DRAIN_POLL_S = 0.02


class StreamError(Exception):
    """A stream's refusal: the field at fault, a one-line message and the close code."""

    def __init__(self, field: str | None, message: str, code: int = WS_POLICY, outcome: str = "error") -> None:
        super().__init__(message)
        self.field, self.message, self.code, self.outcome = field, " ".join(message.split()), code, outcome


# ------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class StreamConfig:
    """A stream's settings (the first WebSocket message, or the form fields of `POST /v1/video`).

    Attributes:
        fps: Frames localised per second (None: every frame).
        alignment: "trailing" (default of a live stream: no added delay) or "centre".
        audio_rate, audio_channels: The PCM of the `A` messages.
        smoothing_tau: Seconds of the score's moving average, or None.
        hysteresis: Half-width of the decision band as a fraction of the detection threshold, or None.
        mask: Also send each result's mask, run-length encoded (`mask_rle`).
    """

    fps: float | None = 4.0
    alignment: str = "trailing"
    audio_rate: int = 16_000
    audio_channels: int = 1
    smoothing_tau: float | None = None
    hysteresis: float | None = None
    mask: bool = False

    def session(self, service: Any) -> StreamSession:
        """A new session on the service's localizer (host arrays: results are sent as JSON)."""
        localizer = EngineThreadLocalizer(service)
        try:
            return StreamSession(
                localizer, fps=self.fps, alignment=self.alignment, device=False,
                smoothing=Smoothing(self.smoothing_tau) if self.smoothing_tau is not None else None,
                hysteresis=(Hysteresis.from_calibration(localizer.calibration, self.hysteresis)
                            if self.hysteresis is not None else None))
        except InputError as exc:
            raise StreamError("config", exc.one_line()) from None


def _number(value: Any, field: str, lo: float, hi: float, *, integer: bool = False, optional: bool = False,
            above: bool = True) -> Any:
    """`value` as a number in [lo, hi] (`above`: in (lo, hi]; integers: [lo, hi]), or None when `optional`
    allows it."""
    if value is None and optional:
        return None
    above = above and not integer
    ok = not isinstance(value, bool) and isinstance(value, (int if integer else (int, float)))
    ok = ok and math.isfinite(value) and (lo < value if above else lo <= value) and value <= hi
    if not ok:
        kind = "an integer" if integer else "a number"
        kind += f" in {'(' if above else '['}{lo:g}, {hi:g}]"
        raise StreamError(field, f"{field}: expected {kind}{' or null' if optional else ''}, got {value!r:.40}.")
    return value


def parse_config(text: str) -> StreamConfig:
    """The first WebSocket message -> `StreamConfig`; raises `StreamError` naming the bad field."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StreamError("config", f"config: expected a JSON object as the first message, got invalid JSON "
                          f"({exc}).") from None
    if not isinstance(doc, dict):
        raise StreamError("config", f"config: expected a JSON object as the first message, got {type(doc).__name__}.")
    unknown = sorted(set(doc) - set(CONFIG_FIELDS))
    if unknown:
        raise StreamError(unknown[0], f"{unknown[0]}: expected only {', '.join(CONFIG_FIELDS)}, got {unknown[0]!r}.")
    defaults = StreamConfig()
    alignment = doc.get("alignment", defaults.alignment)
    if alignment not in ALIGNMENTS:
        raise StreamError("alignment", f"alignment: expected one of {', '.join(ALIGNMENTS)}, got {alignment!r:.40}.")
    mask = doc.get("mask", False)
    if not isinstance(mask, bool):
        raise StreamError("mask", f"mask: expected true or false, got {mask!r:.40}.")
    return StreamConfig(
        fps=_number(doc.get("fps", defaults.fps), "fps", 0, MAX_FPS, optional=True),
        alignment=alignment,
        audio_rate=_number(doc.get("audio_rate", defaults.audio_rate), "audio_rate", *AUDIO_RATES, integer=True),
        audio_channels=_number(doc.get("audio_channels", 1), "audio_channels", 1, MAX_CHANNELS, integer=True),
        smoothing_tau=_number(doc.get("smoothing_tau"), "smoothing_tau", 0, 3600, optional=True),
        hysteresis=_number(doc.get("hysteresis"), "hysteresis", 0, 10, optional=True, above=False),
        mask=mask)


# ------------------------------------------------------------------------------------------------
# The engine and the open streams


class EngineThreadLocalizer:
    """The service's localizer as a session sees it: `run_prepared` sends the engine part to the
    service's engine thread (where the batcher runs its batches) and makes the results in the
    calling thread, as `Localizer.run_prepared` does in one."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._inner = service.localizer

    def __getattr__(self, name: str) -> Any:  # calibration, spec, encoders, gate, map_size
        return getattr(self._inner, name)

    def run_prepared(self, prepared: Any) -> list[Any]:
        embedded = self._service.run_on_engine(self._inner.embed_prepared, prepared)
        return [self._inner.finish_embedded(item) for item in embedded]


class StreamHub:
    """The open streams: at most `capacity` at a time, and their end on shutdown.

    `enter`/`leave` may be called from any thread (a video response ends in a worker thread).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.open = 0
        self._lock = threading.Lock()
        self.draining = False
        self.drained = asyncio.Event()  # set on the event loop by `drain`; the WebSocket loops wait on it

    def refusal(self, service: Any) -> str | None:
        """Why a new stream cannot start now (None: it can)."""
        if service.status in ("starting", "failed"):
            return f"service: expected a warm engine, got a service that is {service.status}; retry later."
        if self.draining or service.draining:
            return "service: expected a running service, got one that is shutting down; retry on another instance."
        if self.open >= self.capacity:
            return (f"streams: expected a free stream, got all {self.capacity} taken (the server's --max-streams); "
                    "retry later.")
        return None

    def enter(self, service: Any) -> None:
        """Take a place; raises `StreamError` (1013) when `refusal` says no."""
        with self._lock:
            why = self.refusal(service)
            if why is not None:
                raise StreamError(None, why, WS_TRY_LATER, outcome="refused")
            self.open += 1
            service.metrics.streams_open.set(self.open)

    def leave(self, service: Any) -> None:
        with self._lock:
            self.open -= 1
            service.metrics.streams_open.set(self.open)

    async def drain(self, timeout: float) -> None:
        """(Event loop, on shutdown.) Tell every open stream to finish, and wait up to `timeout` s for them."""
        self.draining = True
        self.drained.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open and loop.time() < deadline:
            await asyncio.sleep(_DRAIN_POLL_S)


class _Results:
    """A session's results as the JSON documents sent, with the running summary."""

    def __init__(self, service: Any, endpoint: str, session: StreamSession, mask: bool) -> None:
        self.service, self.endpoint, self.session, self.mask = service, endpoint, session, mask
        self.summary = Summary()

    def docs(self, results: list[Any]) -> list[dict[str, Any]]:
        out = []
        for result in results:
            self.summary.add(result)
            doc = result.to_json()
            if self.mask:
                doc["mask_rle"] = mask_rle(result.mask)
            out.append(doc)
        if out:
            self.service.metrics.stream_frames.labels(endpoint=self.endpoint).inc(len(out))
        return out

    def final(self, ended: str, **extra: Any) -> dict[str, Any]:
        s = self.session
        return {"summary": {**self.summary.to_json(), "dropped": s.dropped, "alignment": s.alignment,
                            "window_seconds": s.window_seconds, **extra}, "ended": ended}


# ------------------------------------------------------------------------------------------------
# WebSocket /v1/stream


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
        self.results: _Results | None = None

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
        self.results = _Results(self.service, "stream", session, self.config.mask)
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


# ------------------------------------------------------------------------------------------------
# POST /v1/video


@dataclass
class _VideoSource:
    """An uploaded video opened for reading: its first frame and audio chunk already decoded."""

    name: str
    info: Any
    frames: Iterator[Any]
    first_frame: Any
    chunks: Iterator[Any]
    first_chunk: Any
    config: StreamConfig

    def close(self) -> None:
        self.frames.close()  # type: ignore[attr-defined]
        self.chunks.close()  # type: ignore[attr-defined]


async def parse_video_form(request: Any, limits: Any) -> tuple[bytes, str, StreamConfig]:
    """The multipart body of `POST /v1/video` -> (file bytes, file name, settings)."""
    from starlette.datastructures import UploadFile  # lazy: part of the `serve` extra

    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=limits.max_body_bytes)
    except Exception as exc:  # Starlette turns python-multipart's errors into an HTTPException with a detail
        raise RequestError(400, f"body: expected multipart/form-data with the file video, got "
                           f"{getattr(exc, 'detail', None) or exc}.", "body") from None
    try:
        part = form.get("video")
        if not isinstance(part, UploadFile):
            raise RequestError(400, f"video: expected a file part named 'video', got "
                               f"{'none' if part is None else 'a text field'}.", "video")
        data = await part.read()
        if not data:
            raise RequestError(400, "video: expected a non-empty video file, got an empty one.", "video")
        fields = {key: form.get(key) for key in ("fps", "alignment", "mask") if form.get(key) is not None}
        for key, value in fields.items():
            if not isinstance(value, str):
                raise RequestError(400, f"{key}: expected a text field, got a file.", key)
        try:
            config = parse_config(json.dumps({
                **({"fps": _form_fps(fields["fps"])} if "fps" in fields else {}),
                "alignment": fields.get("alignment", "centre"),  # a recording: the benchmark's pairing
                "mask": _flag(fields.get("mask", "false"), "mask")}))
        except StreamError as exc:
            raise RequestError(400, exc.message, exc.field) from None
        return data, Path(part.filename or "video").name[:200] or "video", config
    finally:
        await form.close()


def _form_fps(text: str) -> Any:
    """A form's fps: a number, or "all" for every frame."""
    if text.strip().lower() in ("all", "none", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        return text  # refused by `parse_config`, naming the field


def open_video(service: Any, data: bytes, name: str, config: StreamConfig) -> tuple[_VideoSource, StreamSession]:
    """(Worker thread.) The upload checked and opened before the answer starts; `RequestError` naming
    the field `video` for a file that is not a video with a video and an audio track."""
    from vsslrt.data.video import iter_audio, iter_decoded, probe
    from vsslrt.errors import DataError
    from vsslrt.pipeline.video import AUDIO_CHUNK_SECONDS

    handle, path = tempfile.mkstemp(prefix="vsslrt-video-", suffix=Path(name).suffix[:12])
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)

        def refuse(what: str, exc: DataError | None = None) -> RequestError:
            return RequestError(422, f"video: expected {what}, got {name!r}: {exc.one_line().replace(path, name)}"
                                if exc is not None else f"video: expected {what}, got {name!r}.", "video")

        try:
            info = probe(path)
        except DataError as exc:
            raise refuse("a video file FFmpeg reads (MP4, MKV, WebM, MOV, ...)", exc) from None
        if info.audio is None:
            raise RequestError(422, f"video: expected a video with an audio track, got {name!r} without one.", "video")
        chunks = iter_audio(path, chunk_seconds=AUDIO_CHUNK_SECONDS)  # as `localize_video` reads a file
        frames = iter_decoded(path)
        try:
            first_chunk = next(chunks, None)
            if first_chunk is None:
                raise RequestError(422, f"video: expected audio samples, got {name!r} with an empty audio track.",
                                   "video")
            first_frame = next(frames)
        except DataError as exc:
            chunks.close()
            frames.close()
            raise refuse("a video whose frames and audio decode", exc) from None
        except BaseException:
            chunks.close()
            frames.close()
            raise
    finally:
        # The open readers keep the data: the file needs no clean-up however the answer ends.
        os.unlink(path)
    source = _VideoSource(name, info, frames, first_frame, chunks, first_chunk, config)
    try:
        session = config.session(service)
    except StreamError as exc:
        source.close()
        raise RequestError(400, exc.message, exc.field) from None
    return source, session


def video_lines(service: Any, source: _VideoSource, session: StreamSession) -> Iterator[bytes]:
    """(Worker threads, one `next` at a time.) NDJSON lines: a result per sampled frame, then the summary.

    Frames and audio go into the session as `localize_video` feeds them (`AudioFeed`,
    `push_source_frame`, `finish_source`), so the windows, hence the scores, are the same.
    """
    from vsslrt.data.video import TruncatedMediaError
    from vsslrt.errors import DataError
    from vsslrt.pipeline.video import AudioFeed, finish_source, frame_interval, push_source_frame

    hub: StreamHub = service.streams
    results = _Results(service, "video", session, source.config.mask)
    feed = AudioFeed(session, source.first_chunk, source.chunks)
    ended, end, extra = "end", source.first_frame.time, {}
    outcome = "error"

    def lines(docs: list[dict[str, Any]]) -> bytes:
        return b"".join(json.dumps(doc).encode() + b"\n" for doc in docs)

    try:
        frame = source.first_frame
        try:
            while frame is not None:
                if hub.draining:
                    ended = "draining"
                    break
                push_source_frame(session, feed, frame)
                end = frame.time
                yield lines(results.docs(session.poll(min_batch=session.batch_size)))
                frame = next(source.frames, None)
        except TruncatedMediaError as exc:  # what decoded is answered; the summary says where it stopped
            extra = {"truncated": exc.one_line().replace(str(source.info.path), source.name)}
        last = end + frame_interval(source.info)  # the end of the last frame's span, as `localize_video`
        yield lines(results.docs(finish_source(session, feed, last if session.pending else None)))
        yield lines([results.final(ended, **extra)])
        outcome = ended
    except DataError as exc:  # headers are sent: the error is the last line
        service.metrics.stream_errors.labels(endpoint="video", field="video").inc()
        yield lines([error_doc(exc.one_line().replace(str(source.info.path), source.name), "video")])
    finally:
        source.close()
        hub.leave(service)
        service.metrics.streams.labels(endpoint="video", outcome=outcome).inc()


async def video_response(service: Any, request: Any) -> Any:
    """`POST /v1/video`: checks, then the NDJSON answer; `RequestError` before the answer starts."""
    from starlette.responses import StreamingResponse

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise RequestError(415, f"Content-Type: expected multipart/form-data, got {kind or 'none'!r}.", "content-type")
    data, name, config = await parse_video_form(request, service.limits)
    try:
        service.streams.enter(service)
    except StreamError as exc:
        service.metrics.streams.labels(endpoint="video", outcome="refused").inc()
        raise RequestError(503, exc.message, headers={"Retry-After": str(service.limits.retry_after_s)}) from None
    try:
        source, session = await asyncio.to_thread(open_video, service, data, name, config)
    except BackendUnavailableError as exc:  # PyAV, the `video` extra, is not installed on the server
        service.streams.leave(service)
        raise RequestError(501, exc.one_line(), "video") from None
    except BaseException:
        service.streams.leave(service)
        raise
    # A sync iterator: Starlette runs each step in its thread pool, off the event loop.
    return StreamingResponse(video_lines(service, source, session), media_type="application/x-ndjson")


# ------------------------------------------------------------------------------------------------
# The routes


def add_stream_routes(api: Any, service: Any, count: Any) -> None:
    """Register `WebSocket /v1/stream` and `POST /v1/video` on the FastAPI app.

    Args:
        count: `count(endpoint, status, started)` of the HTTP routes (the metrics of a request).
    """
    import time

    # (FastAPI reads the handlers' annotations from this module's globals: Request, WebSocket.)
    @api.websocket(STREAM_PATH)
    async def stream(websocket: WebSocket) -> None:
        await WebSocketStream(service, websocket).run()

    @api.post(VIDEO_PATH)
    async def video(request: Request) -> Any:
        started = time.perf_counter()
        try:
            response = await video_response(service, request)
        except RequestError as exc:
            count("video", exc.status, started)
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        count("video", 200, started)
        return response
