"""`POST /v1/video`: a recording uploaded as multipart/form-data, answered as NDJSON while it is read.

The upload is checked and opened before the answer starts (a refusal is an HTTP error naming the
field); then one line per sampled frame, fed to a `vsslrt.pipeline.serve.stream` session exactly as
`vsslrt localize --video` feeds a file, and a summary line. A decoding error after the answer has
started is its last line (the HTTP endpoints' error document).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fastapi import Request
from fastapi.responses import JSONResponse

from vsslrt.errors import BackendUnavailableError
from vsslrt.pipeline.serve.inputs import _flag
from vsslrt.pipeline.serve.limits import RequestError, error_doc
from vsslrt.pipeline.serve.stream import ResultDocs, StreamConfig, StreamError, StreamHub, parse_config
from vsslrt.pipeline.stream import StreamSession

VIDEO_PATH = "/v1/video"

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
    results = ResultDocs(service, "video", session, source.config.mask)
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


def add_recording_route(api: Any, service: Any, count: Any) -> None:
    """Register `POST /v1/video` on the FastAPI app.

    Args:
        count: `count(endpoint, status, started)` of the HTTP routes (the metrics of a request).
    """
    import time

    # (FastAPI reads the handler's annotations from this module's globals: Request.)
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
