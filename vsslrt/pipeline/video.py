"""Localisation of a video file: the overlay video, a per-frame timeline and a summary.

    with Localizer(engine, calibration) as localizer:
        report = localize_video(localizer, "in.mp4", "out/", fps=4)
    report.summary["sounding_fraction"], report.summary["segments"]

A file is a live source read as fast as it decodes: its frames and its audio go through the same
`StreamSession` as a camera would (`vsslrt.pipeline.stream`), so file and stream share one path.
The audio track is demuxed by its own reader, kept a window ahead of the frames, decoded once,
reduced and resampled once (for the analysis) and re-encoded once (for the output); memory is
bounded by the session's ring buffer and a few batches of frames, whatever the video's length.

Outputs, in `out_dir` (written under temporary names there and renamed at the end: never a
half-written file):

* `NAME.mp4`: every source frame with the gated heatmap, boxes and caption of the latest localised
  frame at or before it (the frames between two sampled ones hold the previous result), H.264, with
  the audio (AAC) from the video or `audio`, cut to the video's span. Each result's overlay is made
  once and blended into the decoded frames' own 4:2:0 planes; only sampled frames become RGB;
* `NAME.timeline.jsonl`: one line per localised frame (`FrameResult.to_json`): time, raw score and
  decision, smoothed score, stable decision, the threshold it used, boxes, audio window, latency;
* `NAME.summary.json`: sounding fraction, segments, the source's properties and what was done about
  them (rotation, variable frame rate, resampling, a sampling rate above the source's), timings.

Inputs handled by documented behaviour rather than an error: a rotation flag (frames are turned
upright, the output has none), a variable frame rate (sampling and output keep the source's
timestamps), audio at any rate and channel count (reduced with the front-end's rule and resampled),
`fps` above the source's (every frame is localised; `fps_effective` says so). A truncated file
(decoding stops early) keeps valid outputs for what was decoded and then raises
`TruncatedMediaError` saying how far it got.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsslrt.errors import InputError
from vsslrt.data.video import TruncatedMediaError, VideoWriter, container_for, iter_audio, iter_decoded, probe
from vsslrt.files import atomic_output, atomic_write_json
from vsslrt.pipeline.overlay import yuv420_layer
from vsslrt.pipeline.stream import StreamSession, Summary

#: Frames held for drawing before the session is made to answer with partial batches.
MAX_HELD_FRAMES = 64


@dataclass
class VideoReport:
    """What `localize_video` wrote and found.

    Attributes:
        video, timeline, summary_path: The output files.
        summary: The summary document (also in `summary_path`).
    """

    video: Path
    timeline: Path
    summary_path: Path
    summary: dict[str, Any] = field(default_factory=dict)


def output_paths(out_dir: str | Path, name: str) -> tuple[Path, Path, Path]:
    """(video, timeline, summary) paths of a video named `name` in `out_dir`."""
    out_dir = Path(out_dir)
    return out_dir / f"{name}.mp4", out_dir / f"{name}.timeline.jsonl", out_dir / f"{name}.summary.json"


def localize_video(
    localizer: Any,
    video: str | Path,
    out_dir: str | Path,
    *,
    audio: str | Path | None = None,
    name: str | None = None,
    fps: float | None = 4.0,
    alignment: str = "centre",
    smoothing: Any = None,
    hysteresis: Any = None,
    batch_size: int = 8,
    preset: str = "veryfast",
    tune: str | None = None,
    progress: Callable[[float, float | None], None] | None = None,
) -> VideoReport:
    """Localise the sound of a video's frames, `fps` per second, and write the outputs.

    Args:
        localizer: A warm `Localizer`.
        video: The video file.
        out_dir: Output folder.
        audio: A file whose first audio stream replaces the video's (required for a silent video).
        name: Output name. Defaults to the video's stem.
        fps: Frames localised per second (None or above the source's rate: every frame).
        alignment, smoothing, hysteresis, batch_size: See `StreamSession`.
        preset: x264 speed preset of the output video ("veryfast"; "ultrafast": about half the
            encoding time for about twice the file size).
        tune: x264 tuning of the output video (e.g. "zerolatency"); None: x264's default.
        progress: Called with (seconds of video done, total seconds or None) as frames are written.

    Returns:
        The report; the summary's `truncated` is None.

    Raises:
        InputError: No such file, or a silent video without `audio`.
        DataError: Not a video, or an unreadable audio file.
        TruncatedMediaError: The video stops early; the outputs for the decoded part were written.
    """

    video = Path(video)
    info = probe(video)
    name = name or video.stem
    if Path(name).name != name or name in ("", ".", ".."):
        raise InputError(f"video name: expected a plain file name, got {name!r}.")
    if audio is None and info.audio is None:
        raise InputError(f"{video}: expected a video with an audio track, got none.",
                         hint="pass --audio FILE with the sound to localise")
    audio_path = Path(audio) if audio is not None else video
    chunks = iter_audio(audio_path, chunk_seconds=AUDIO_CHUNK_SECONDS)
    first_chunk = next(chunks, None)
    if first_chunk is None:
        raise InputError(f"{audio_path}: expected audio samples, got an empty audio track.",
                         hint="pass --audio FILE with the sound to localise")
    audio_rate, audio_channels = first_chunk.sample_rate, int(first_chunk.samples.shape[0])
    session = StreamSession(localizer, fps=fps, alignment=alignment, smoothing=smoothing, hysteresis=hysteresis,
                            batch_size=batch_size, audio_start=first_chunk.time)
    paths = output_paths(out_dir, name)
    started = time.perf_counter()
    run = _Run(localizer, session, info, paths, audio_rate, audio_channels, (preset, tune), progress)
    truncated: TruncatedMediaError | None = None
    try:
        truncated = run.go(first_chunk, chunks)
    finally:
        chunks.close()
    wall = time.perf_counter() - started
    summary = {
        "video": str(video),
        "audio": str(audio_path),
        "outputs": {"video": str(paths[0]), "timeline": str(paths[1])},
        **run.summary.to_json(end=run.video_end),
        "duration": run.video_end - run.video_start if run.frames_out else 0.0,
        "source": {
            "width": info.width, "height": info.height, "fps": info.fps, "frames": run.frames_out,
            "rotation": info.rotation, "variable_frame_rate": info.variable_frame_rate, "codec": info.codec,
            "audio_rate": audio_rate, "audio_channels": audio_channels,
        },
        "fps_requested": fps,
        "fps_effective": (run.summary_frames / (run.video_end - run.video_start)
                          if run.frames_out > 1 and run.video_end > run.video_start else None),
        "every_frame": fps is None or (info.fps > 0 and fps >= info.fps),
        "alignment": alignment,
        "encoding": {"video": "libx264", "preset": preset, "tune": tune, "audio": "aac"},
        "window_seconds": session.window_seconds,
        "analysis_rate": session.rate,
        "smoothing": None if smoothing is None else {"tau": smoothing.tau},
        "hysteresis": None if hysteresis is None else {"enter": hysteresis.enter, "leave": hysteresis.leave},
        "detection_threshold": float(localizer.calibration.detection_threshold),
        "localization_threshold": float(localizer.calibration.localization_threshold),
        "dropped": session.dropped,
        "wall_seconds": wall,
        "realtime_factor": ((run.video_end - run.video_start) / wall if wall > 0 and run.frames_out else None),
        "truncated": None if truncated is None else {"reached": truncated.reached, "expected": truncated.expected,
                                                     "error": truncated.one_line()},
    }

    atomic_write_json(paths[2], summary)
    report = VideoReport(video=paths[0], timeline=paths[1], summary_path=paths[2], summary=summary)
    if truncated is not None:
        raise TruncatedMediaError(
            f"{video}: expected a complete video, got one that stops at {truncated.reached:.2f} s"
            + (f" of {truncated.expected:.2f} s" if truncated.expected else "")
            + f"; wrote {paths[0]}, {paths[1]} and {paths[2]} for the decoded part.",
            reached=truncated.reached, expected=truncated.expected,
            hint="re-encode or re-download the file for the rest")
    return report


AUDIO_CHUNK_SECONDS = 0.5  # a file's audio is read and pushed into the session in chunks this long


def frame_interval(info: Any) -> float:
    """How long a file's frame shows (the last frame's span): 1 / fps, or 1/25 s without a rate."""
    return 1.0 / info.fps if info.fps else 0.04


class AudioFeed:
    """A file's audio chunks pushed into a session only as far as its frames need (a window ahead),
    so that a long file's audio is never read far ahead of its frames.

    `localize_video` and the service's `POST /v1/video` drive a session with it, frame by frame
    (`push_source_frame`) and at the end (`finish_source`), so both give the same windows.

    Args:
        session: The `StreamSession`.
        first_chunk: The track's first `AudioChunk` (already read, to learn the rate and channels).
        chunks: The rest of the track (`vsslrt.data.video.iter_audio`).
        on_chunk: Called with each chunk pushed (the video output encodes them).
    """

    def __init__(self, session: Any, first_chunk: Any, chunks: Any, on_chunk: Callable[[Any], None] | None = None
                 ) -> None:
        self.session = session
        self._next = first_chunk
        self._chunks = chunks
        self._on_chunk = on_chunk
        self.done = False

    def until(self, until: float) -> None:
        """Push chunks until the session's audio reaches `until` seconds (or the track ends)."""
        while not self.done and self.session.audio_end < until:
            chunk = self._next if self._next is not None else next(self._chunks, None)
            self._next = None
            if chunk is None:
                self.done = True
                break
            self.session.push_audio(chunk.samples, chunk.sample_rate, time=chunk.time)
            if self._on_chunk is not None:
                self._on_chunk(chunk)


def push_source_frame(session: Any, feed: AudioFeed, frame: Any) -> bool:
    """Offer a decoded frame to the session and push the audio its window needs; returns whether it
    was sampled (only a sampled frame is converted to RGB)."""
    sampled = session.push_frame(frame.rgb, frame.time, frame_index=frame.index)
    feed.until(session.audio_needed_until(frame.time))
    return sampled


def finish_source(session: Any, feed: AudioFeed, end: float | None) -> list[Any]:
    """End of the file: push the audio up to `end` seconds (None: no more), then `session.finish()`."""
    feed.until(session.audio_needed_until(end) if end is not None else -math.inf)
    return session.finish()


class _Run:
    """One pass over a file: decode, push into the session, draw, encode, log."""

    def __init__(self, localizer: Any, session: Any, info: Any, paths: tuple[Path, Path, Path], audio_rate: int,
                 audio_channels: int, encoding: tuple[str, str | None],
                 progress: Callable[[float, float | None], None] | None) -> None:

        self.localizer, self.session, self.info, self.paths = localizer, session, info, paths
        self.audio_rate, self.audio_channels, self.progress = audio_rate, audio_channels, progress
        self.preset, self.tune = encoding
        self.summary = Summary()
        self.summary_frames = 0
        self.frames_out = 0
        self.video_start = 0.0
        self.video_end = 0.0
        self._audio_written = 0  # native-rate samples written to the output, from video_start
        self._held: deque[tuple[Any, int]] = deque()  # (frame, sampled index it shows)
        self._results: dict[int, Any] = {}
        self._shown: Any = None  # the result drawn last
        self._layer: tuple[Any, Any] | None = None  # (key, Yuv420Layer) of the result drawn last
        self._planes: list[Any] = []  # the blended planes, reused frame after frame (encoder thread)
        self._answered = -1  # the newest sampled frame answered (or dropped)
        self._latest = -1
        self._outbox: deque[Any] = deque()  # chunks given to the session, not yet all encoded

    # ----- the loop -------------------------------------------------------------------------
    def go(self, first_chunk: Any, chunks: Any) -> Any:

        video_path, timeline_path, _ = self.paths
        truncated = None
        with atomic_output(video_path) as tmp_video, atomic_output(timeline_path) as tmp_timeline:
            writer = VideoWriter(tmp_video, width=self.info.width, height=self.info.height,
                                 fps=self.info.fps or 25.0, audio_rate=self.audio_rate,
                                 audio_channels=min(self.audio_channels, 2), preset=self.preset,
                                 tune=self.tune, container_format=container_for(video_path))
            self._writer = writer
            self._encoder = _EncoderThread()
            self._audio = AudioFeed(self.session, first_chunk, chunks, self._outbox.append)
            try:
                with open(tmp_timeline, "w", encoding="utf-8") as log:
                    self._log = log
                    # Unconverted frames: only the sampled ones become RGB (for the model); the
                    # output is drawn on the decoded 4:2:0 planes themselves.
                    frames = iter_decoded(self.info.path)
                    try:
                        for frame in frames:
                            self._frame(frame)
                    except TruncatedMediaError as exc:
                        truncated = exc
                    finally:
                        frames.close()
                    self._finish()
                self._encoder.close()  # every frame and sample encoded (or the worker's error raised)
                writer.close()
            except BaseException:
                self._encoder.abort()
                writer.abort()
                raise
        return truncated

    def _frame(self, frame: Any) -> None:
        session = self.session
        if self.frames_out == 0 and not self._held:
            self.video_start = frame.time
        self.video_end = frame.time
        if push_source_frame(session, self._audio, frame):  # converted to RGB only if sampled
            self._latest += 1
            self.summary_frames += 1
        self._held.append((frame, self._latest))
        self._write_audio_until(frame.time)
        # Full batches while frames are few; partial ones before the held frames take too much memory.
        min_batch = session.batch_size if len(self._held) < MAX_HELD_FRAMES else 1
        self._take(session.poll(min_batch=min_batch))
        self._draw()

    def _finish(self) -> None:
        # The last frame shows for one frame interval: the output ends there, and so does its audio.
        if self.frames_out or self._held:
            self.video_end = self.video_end + frame_interval(self.info)
        self._take(finish_source(self.session, self._audio, self.video_end if self._held else None))
        self._draw()
        self._write_audio_until(self.video_end)

    # ----- audio ----------------------------------------------------------------------------
    def _write_audio_until(self, until: float) -> None:
        """Encode the kept chunks' samples from the video's start up to `until` (source clock)."""
        import numpy as np

        rate = self.audio_rate
        target = int(round((until - self.video_start) * rate))
        while self._outbox and self._audio_written < target:
            chunk = self._outbox[0]
            begin = int(round((chunk.time - self.video_start) * rate))  # chunk's first sample, output clock
            n = chunk.samples.shape[1]
            if begin > self._audio_written:  # audio starts after the video: silence first
                gap = min(begin, target) - self._audio_written
                self._encoder.submit(self._writer.write_audio, np.zeros((chunk.samples.shape[0], gap), np.float32))
                self._audio_written += gap
                continue
            lo = self._audio_written - begin
            if lo >= n:
                self._outbox.popleft()
                continue
            hi = min(n, target - begin)
            self._encoder.submit(self._writer.write_audio, chunk.samples[:, lo:hi])
            self._audio_written += hi - lo
            if hi >= n:
                self._outbox.popleft()

    # ----- results and drawing --------------------------------------------------------------
    def _take(self, results: list[Any]) -> None:
        for result in results:
            self._results[result.index] = result
            self._answered = max(self._answered, result.index)
            self.summary.add(result)
            self._log.write(json.dumps(result.to_json()) + "\n")

    def _draw(self) -> None:
        """Encode the held frames whose result is known, in order.

        The overlay of a result is made once, here (`vsslrt.pipeline.overlay.yuv420_layer`:
        heatmap, boxes, caption); blending it onto each frame that shows it and encoding run on the
        encoder thread (`_encode_frame`), beside the next frames' decoding and model work.
        """
        while self._held:
            frame, shown = self._held[0]
            if shown in self._results:
                self._shown = self._results.pop(shown)
            elif shown > self._answered:
                return  # its result is still to come
            # else: the result already shown, or a dropped frame's: the previous result holds.
            self._held.popleft()
            planes = frame.yuv420()
            layer = self._layer_for(self._shown, planes) if self._shown is not None else None
            self._encoder.submit(self._encode_frame, planes, layer, frame.time - self.video_start)
            self.frames_out += 1
            if self.progress is not None:
                self.progress(frame.time - self.video_start, self.info.duration)

    def _encode_frame(self, planes: Any, layer: Any, time: float) -> None:
        """(Encoder thread.) Blend the layer (None: no result yet) into the frame's own YUV planes
        and encode it."""
        import numpy as np

        y, u, v = planes.y, planes.u, planes.v
        if layer is not None:
            h, w = layer.keep_y.shape
            if not self._planes:  # the blended planes, reused frame after frame (this thread only)
                self._planes = [np.empty((h, w), np.uint8), np.empty((h // 2, w // 2), np.uint8),
                                np.empty((h // 2, w // 2), np.uint8)]
            layer.apply((y[:h, :w], u[: h // 2, : w // 2], v[: h // 2, : w // 2]), self._planes)
            y, u, v = self._planes
        self._writer.write_yuv420(y, u, v, time, tags=planes.tags)

    def _layer_for(self, result: Any, planes: Any) -> Any:
        """The overlay layer of `result` in the planes' YUV matrix and range (made once per result)."""

        key = (result.index, planes.matrix, planes.full_range)
        if self._layer is None or self._layer[0] != key:
            # The caption is the shown result's: its frame's time and its decision.
            caption = (f"{result.time:6.2f} s  " + ("sounding" if result.decision else "not sounding")
                       + f" {result.smoothed_score:.3f} / {result.threshold:.3f}")
            size = (self._writer.height, self._writer.width)
            self._layer = (key, yuv420_layer(size, result.result.map, result.mask, boxes=result.boxes,
                                             caption=caption, matrix=planes.matrix, full_range=planes.full_range))
        return self._layer[1]


class _EncoderThread:
    """Runs the output's blending and encoder calls on one worker thread, in the order submitted.

    The queue is bounded, so a slow encoder holds the decoding back instead of piling up frames
    (memory stays bounded). An error on the worker is raised in the caller's thread at the next
    `submit` or at `close`; the jobs after it are dropped.
    """

    def __init__(self, depth: int = 16) -> None:
        self._jobs: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="vsslrt-video-encoder", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[..., None], *args: Any) -> None:
        self._raise()
        self._jobs.put((job, args))

    def close(self) -> None:
        """Wait for every submitted job; raise the worker's error, if any."""
        self._jobs.put(None)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop after the job in progress (the output is about to be discarded)."""
        self._error = self._error or _Aborted()
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            if self._error is not None:
                continue  # drain: nothing after an error (or an abort) is encoded
            job, args = item
            try:
                job(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc

    def _raise(self) -> None:
        error = self._error
        if error is not None and not isinstance(error, _Aborted):
            raise error


class _Aborted(Exception):
    """Marks an aborted encoder thread (its remaining jobs are dropped)."""
