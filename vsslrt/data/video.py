"""Video containers with PyAV (the `video` extra): probe, frames at a sampling rate, the audio track.

This is the one module that decodes and encodes video; the localisation of videos
(`vsslrt.pipeline.video`) and dataset preparation from videos build on it. PyAV is imported inside
the functions (`pip install 'vsslrt[video]'`), so importing this module costs nothing.

    info = probe("clip.mp4")                      # size, rotation, frame rate (VFR?), duration, audio
    for frame in iter_frames("clip.mp4", fps=4):  # upright RGB frames with timestamps, 4 per second
        ...
    samples, rate = read_audio_track("clip.mp4", rate=16000)   # mono, resampled once

Conventions:

* Times are seconds on the container's clock (`frame.time`, PyAV's pts x time_base); the video and
  audio streams of one file share it, so they line up as the player shows them.
* Frames are returned upright: a display-matrix rotation (phones record portrait video as landscape
  plus a rotation flag) is applied, as players do; `VideoInfo.rotation` reports it.
* Frame sampling uses timestamps, never frame counts, so a variable frame rate (VFR) source is
  sampled evenly in time: the first frame at or after each tick k / fps is taken. A rate above the
  source's keeps every frame (`FrameSampler`).
* Audio comes as float32 (channels, samples) at the native rate (`iter_audio`), or reduced to one
  channel by a rule ("mean" or "first", as the front-ends' `channels`) and resampled by
  libswresample to a target rate, in one streaming pass (`read_audio_track`, `ChunkResampler`).
* A stream that stops early (a truncated file, a decoding error) raises `TruncatedMediaError`
  with the time decoding reached, after everything before it has been yielded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import DataError, InputError, missing_extra
from vsslrt.data.audio_io import mix_channels

CHANNEL_RULES = ("mean", "first")
#: Packets read by `probe` to tell a constant from a variable frame rate.
PROBE_PACKETS = 240
#: Relative spread of frame intervals above which a stream counts as variable frame rate.
VFR_TOLERANCE = 0.05
_HINT = "check that the file plays (e.g. `ffprobe FILE`), or re-encode it (e.g. `ffmpeg -i FILE out.mp4`)"


class TruncatedMediaError(DataError):
    """A stream ended before its declared duration, or a packet could not be decoded.

    Attributes:
        reached: Seconds (container clock) up to which the stream was decoded.
        expected: The declared duration in seconds (None when unknown).
    """

    def __init__(self, message: str, *, reached: float, expected: float | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reached = reached
        self.expected = expected


def _av() -> Any:
    try:
        import av  # optional extra: only video commands need it
    except ImportError:
        raise missing_extra("av", "video", "decode and write video files") from None
    return av


# ------------------------------------------------------------------------------------------------
# Probing


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream of a container."""

    sample_rate: int
    channels: int
    codec: str
    duration: float | None


@dataclass(frozen=True)
class VideoInfo:
    """What a video container holds, as `probe` reads it (headers and the first packets).

    Attributes:
        path: The file.
        width, height: Size of the upright frames (after the rotation).
        rotation: Counter-clockwise degrees the display matrix asks for (0, 90, 180 or 270).
        fps: The stream's average frame rate (frames per second).
        frame_count: Frames the container declares (0 when it does not say).
        duration: Seconds, from the video stream or else the container (None when unknown).
        start_time: Timestamp of the first video frame in seconds.
        variable_frame_rate: Whether the first `PROBE_PACKETS` frame intervals differ by more than
            `VFR_TOLERANCE` of their median.
        codec: The video codec's name.
        audio: The first audio stream, or None.
    """

    path: Path
    width: int
    height: int
    rotation: int
    fps: float
    frame_count: int
    duration: float | None
    start_time: float
    variable_frame_rate: bool
    codec: str
    audio: AudioInfo | None


def _open(path: str | Path, what: str = "a video file") -> Any:
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: expected {what}, got no such file.")
    try:
        return av.open(str(path))
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise DataError(f"{path}: expected {what} in a container FFmpeg reads, got: {' '.join(str(exc).split())}.",
                        hint=_HINT) from None


def _seconds(value: Any, time_base: Any) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _rotation(stream: Any) -> int:
    """The stream's display rotation, read from the first decoded frame (PyAV exposes it there)."""
    container = stream.container
    try:
        for frame in container.decode(stream):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except Exception:  # noqa: BLE001 - a broken first frame shows up again in iter_frames, with its error
        return 0
    return 0


def probe(path: str | Path) -> VideoInfo:
    """Read a container's video and audio stream parameters.

    Raises:
        InputError: No such file.
        DataError: Not a container FFmpeg reads, or one without a video stream.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise DataError(f"{path}: expected a video stream, got {kinds}.",
                            hint="pass a video file (audio belongs in --audio)")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0.0)
        duration = _seconds(stream.duration, stream.time_base)
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000  # av.time_base: microseconds
        stamps = []
        for packet in container.demux(stream):
            if packet.pts is not None:
                stamps.append(packet.pts)
            if len(stamps) >= PROBE_PACKETS:
                break
        intervals = np.diff(np.sort(np.asarray(stamps, dtype=np.float64)))
        intervals = intervals[intervals > 0]
        vfr = bool(intervals.size >= 2
                   and (intervals.max() - intervals.min()) > VFR_TOLERANCE * float(np.median(intervals)))
        start = _seconds(stream.start_time, stream.time_base) or 0.0
        codec = stream.codec_context.name
        coded = (int(stream.codec_context.width), int(stream.codec_context.height))
        frames = int(stream.frames or 0)
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0]
            audio = AudioInfo(sample_rate=int(a.rate or a.codec_context.sample_rate or 0),
                              channels=int(a.codec_context.channels or len(a.layout.channels)),
                              codec=a.codec_context.name, duration=_seconds(a.duration, a.time_base))
    with _open(path) as container:
        rotation = _rotation(container.streams.video[0])
    width, height = coded if rotation in (0, 180) else coded[::-1]
    return VideoInfo(path=path, width=width, height=height, rotation=rotation, fps=fps, frame_count=frames,
                     duration=duration, start_time=start, variable_frame_rate=vfr, codec=codec, audio=audio)


# ------------------------------------------------------------------------------------------------
# Frames


class FrameSampler:
    """Pick frames at `fps` per second by timestamp: the first frame at or after each tick.

    Ticks are t0 + k / fps from the first frame's time t0; a frame later than several ticks counts
    for all of them (one frame taken), so the sampling never drifts and never bursts. `fps=None`
    takes every frame; a rate above the source's takes every frame too.
    """

    def __init__(self, fps: float | None) -> None:
        if fps is not None and (isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0):
            raise InputError(f"--fps: expected a positive number of frames per second, got {fps!r}.")
        self.fps = fps
        self._origin: float | None = None
        self._next_tick = 0

    def take(self, time: float) -> bool:
        """Whether the frame at `time` (seconds, non-decreasing across calls) is sampled."""
        if self._origin is None:
            self._origin = time
        if self.fps is None:
            return True
        # A hair of slack: a frame at exactly a tick, rounded by the time base, still counts.
        position = (time - self._origin) * self.fps + 1e-6
        if position < self._next_tick:
            return False
        self._next_tick = int(math.floor(position)) + 1
        return True


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: Position among the stream's decoded frames (0-based).
        time: Presentation time in seconds (container clock).
        rgb: (height, width, 3) uint8, upright.
        sampled: Whether the sampler chose it (always True when iterating sampled frames only).
    """

    index: int
    time: float
    rgb: np.ndarray
    sampled: bool = True


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation (multiples of 90 degrees) to an (H, W, 3) frame."""
    turns = (int(round(rotation / 90.0)) % 4)
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def iter_frames(path: str | Path, *, fps: float | None = None, every_frame: bool = False,
                rotate: bool = True) -> Iterator[Frame]:
    """Decoded frames with timestamps, sampled at `fps` (None: every frame).

    Args:
        path: The video file.
        fps: Sampling rate in frames per second (see `FrameSampler`).
        every_frame: Yield every frame, with `sampled` telling the chosen ones (to draw an output
            video at the source's rate while localising a few frames per second).
        rotate: Apply the display rotation.

    Raises:
        DataError: Not a video (see `probe`).
        TruncatedMediaError: Decoding failed, or the stream ended well before its declared duration
            (raised after the frames decoded so far).
    """
    frames = iter_decoded(path, fps=fps, rotate=rotate)
    try:
        for frame in frames:
            if frame.sampled or every_frame:
                yield Frame(index=frame.index, time=frame.time, rgb=frame.rgb(), sampled=frame.sampled)
    finally:
        frames.close()


#: FFmpeg's AVColorSpace numbers -> YUV matrix names (`vsslrt.pipeline.overlay.YUV_MATRICES`); any
#: other (unspecified included) is BT.601, swscale's default.
COLOUR_MATRICES = {1: "bt709", 9: "bt2020", 10: "bt2020"}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@dataclass(frozen=True)
class Yuv420:
    """Upright 8-bit 4:2:0 planes of one frame (read-only views of the decoder's buffers).

    Attributes:
        y: (H, W) uint8; u, v: (ceil(H / 2), ceil(W / 2)) uint8.
        matrix: The YUV matrix the planes are in ("bt601", "bt709", "bt2020").
        full_range: Full (0-255) rather than limited (16-235) range.
        tags: FFmpeg's (colorspace, color_range, color_primaries, color_trc) of the frame, for the
            output to carry.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    matrix: str
    full_range: bool
    tags: tuple[int, int, int, int]


def _plane(plane: Any) -> np.ndarray:
    """A (height, width) uint8 view of a frame's plane (rows are `line_size` bytes apart)."""
    data = np.frombuffer(plane, dtype=np.uint8)
    return np.lib.stride_tricks.as_strided(data, shape=(plane.height, plane.width), strides=(plane.line_size, 1),
                                           writeable=False)


class DecodedFrame:
    """One decoded frame, converted only on demand: `rgb()` for the model, `yuv420()` to re-encode it.

    Attributes:
        index: Position among the stream's decoded frames (0-based).
        time: Presentation time in seconds (container clock).
        sampled: Whether the sampler chose it.
        rotation: The display rotation applied by `rgb()` and `yuv420()` (0 when not rotating).
    """

    __slots__ = ("index", "time", "sampled", "rotation", "_frame", "_reformatter")

    def __init__(self, frame: Any, index: int, time: float, sampled: bool, rotation: int,
                 reformatter: Any = None) -> None:
        self._frame, self.index, self.time, self.sampled, self.rotation = frame, index, time, sampled, rotation
        self._reformatter = reformatter

    def rgb(self) -> np.ndarray:
        """(height, width, 3) uint8, upright (the conversion `iter_frames` gives)."""
        if self._reformatter is not None:  # the stream's converter: its swscale context is kept
            rgb = self._reformatter.reformat(self._frame, format="rgb24").to_ndarray()
        else:
            rgb = self._frame.to_ndarray(format="rgb24")
        return upright(rgb, self.rotation) if self.rotation else rgb

    def yuv420(self) -> Yuv420:
        """The frame's own 8-bit 4:2:0 planes, upright; another pixel format is converted first."""
        frame = self._frame
        if frame.format.name != "yuv420p":  # 4:2:2, 4:4:4, 10-bit, full-range yuvj420p ...
            frame = (self._reformatter.reformat(frame, format="yuv420p") if self._reformatter is not None
                     else frame.reformat(format="yuv420p"))
        planes = [_plane(frame.planes[i]) for i in range(3)]
        turns = int(round(self.rotation / 90.0)) % 4
        if turns:
            planes = [np.rot90(plane, k=turns) for plane in planes]
        tags = (int(frame.colorspace), int(frame.color_range), int(frame.color_primaries), int(frame.color_trc))
        return Yuv420(*planes, matrix=COLOUR_MATRICES.get(tags[0], "bt601"), full_range=tags[1] == _FULL_RANGE,
                      tags=tags)


def iter_decoded(path: str | Path, *, fps: float | None = None, rotate: bool = True) -> Iterator[DecodedFrame]:
    """Every decoded frame, unconverted (`DecodedFrame`), `sampled` telling the ones `fps` picks.

    A pipeline that re-encodes every frame but runs the model on a few converts only those to RGB.

    Raises:
        DataError: Not a video (see `probe`).
        TruncatedMediaError: As `iter_frames`, after the frames decoded so far.
    """
    av = _av()
    path = Path(path)
    sampler = FrameSampler(fps)
    with _open(path) as container:
        if not container.streams.video:
            raise DataError(f"{path}: expected a video stream, got none.", hint="pass a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding is the largest cost after the encoders
        declared = _seconds(stream.duration, stream.time_base)
        if declared is None and container.duration is not None:
            declared = container.duration / 1_000_000
        last_time, interval, index = None, None, 0
        # One converter for the stream: `to_ndarray` would set up swscale again for every frame
        # (measured: 1 ms of a 224 x 224 frame's 1.1 ms conversion), with the same pixels.
        reformatter = av.video.reformatter.VideoReformatter()
        try:
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else (index / float(stream.average_rate or 1))
                if last_time is not None and time > last_time:
                    interval = time - last_time if interval is None else min(interval, time - last_time)
                rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360 if rotate else 0
                yield DecodedFrame(frame, index, float(time), sampler.take(time), rotation, reformatter)
                last_time = time
                index += 1
        except av.FFmpegError as exc:
            reached = last_time if last_time is not None else 0.0
            raise TruncatedMediaError(
                f"{path}: expected a complete video, got a decoding error after {reached:.2f} s: "
                f"{' '.join(str(exc).split())}.", reached=reached, expected=declared, hint=_HINT) from None
        if index == 0:
            raise TruncatedMediaError(f"{path}: expected video frames, got none decoded.", reached=0.0,
                                      expected=declared, hint=_HINT)
        end = last_time + (interval or 0.0)
        start = _seconds(stream.start_time, stream.time_base) or 0.0
        if declared is not None and end < start + declared - max(3 * (interval or 0.0), 0.2):
            raise TruncatedMediaError(
                f"{path}: expected {declared:.2f} s of video, got frames up to {end:.2f} s (a truncated file).",
                reached=end, expected=declared, hint=_HINT)


def frame_at(path: str | Path, time: float, *, rotate: bool = True) -> Frame | None:
    """The first frame at or after `time` seconds (container clock): one tick of `FrameSampler`.

    Seeks to the keyframe before `time` and decodes forward, so only one frame is converted to RGB.
    A container whose seek lands after `time` (an imprecise index) is decoded from its start
    instead. `Frame.index` is -1: the position among the stream's frames is unknown after a seek.

    Returns:
        The frame, or None when the stream ends before `time`.

    Raises:
        DataError: Not a video (see `probe`).
        TruncatedMediaError: Decoding failed before a frame at or after `time` was reached.
    """
    av = _av()
    path = Path(path)
    for seek in (True, False):
        with _open(path) as container:
            if not container.streams.video:
                raise DataError(f"{path}: expected a video stream, got none.", hint="pass a video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start = _seconds(stream.start_time, stream.time_base) or 0.0
            if seek and time > start and stream.time_base:
                try:
                    container.seek(int(math.floor(time / stream.time_base)), stream=stream, backward=True)
                except av.FFmpegError:
                    continue  # no index to seek with: decode from the start
            reached, first = None, True
            try:
                for frame in container.decode(stream):
                    if frame.time is None:
                        continue
                    frame_time = float(frame.time)
                    if first and seek and frame_time > time + 1e-6 and frame_time > start + 1e-6:
                        break  # the seek overshot: decode from the start (the loop's second pass)
                    first = False
                    if frame_time + 1e-6 >= time:  # the sampler's slack for a time-base rounding
                        rgb = frame.to_ndarray(format="rgb24")
                        if rotate:
                            rgb = upright(rgb, getattr(frame, "rotation", 0) or 0)
                        return Frame(index=-1, time=frame_time, rgb=rgb)
                    reached = frame_time
                else:
                    return None
            except av.FFmpegError as exc:
                raise TruncatedMediaError(
                    f"{path}: expected a frame at {time:.2f} s, got a decoding error after "
                    f"{reached or 0.0:.2f} s: {' '.join(str(exc).split())}.", reached=reached or 0.0,
                    expected=_seconds(stream.duration, stream.time_base), hint=_HINT) from None
    return None


# ------------------------------------------------------------------------------------------------
# Audio


@dataclass(frozen=True)
class AudioChunk:
    """Consecutive decoded samples.

    Attributes:
        time: Seconds of the first sample (container clock).
        samples: (channels, n) float32 in [-1, 1].
        sample_rate: Hz.
    """

    time: float
    samples: np.ndarray
    sample_rate: int


class ChunkResampler:
    """Streaming mono resampling with libswresample: feed chunks, get the resampled chunks.

    The filter's state carries across chunks, so a chunked stream resamples to the same samples as
    the whole signal at once, aligned (sample 0 in is sample 0 out); `flush` returns the tail. At
    equal rates the samples pass through unchanged.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        if self.in_rate <= 0 or self.out_rate <= 0:
            raise InputError(f"resampler: expected positive sample rates, got {in_rate} -> {out_rate} Hz.")
        self._resampler = None
        if self.in_rate != self.out_rate:
            av = _av()
            self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=self.out_rate)

    def _run(self, frame: Any) -> np.ndarray:
        parts = [out.to_ndarray()[0] for out in self._resampler.resample(frame)]
        return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)

    def push(self, mono: np.ndarray) -> np.ndarray:
        """(n,) float samples at `in_rate` -> the samples at `out_rate` ready so far."""
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self._resampler is None or mono.size == 0:
            return mono
        av = _av()
        frame = av.AudioFrame.from_ndarray(mono[None, :], format="fltp", layout="mono")
        frame.sample_rate = self.in_rate
        return self._run(frame)

    def flush(self) -> np.ndarray:
        """The samples still held by the filter (call once, at the end of the stream)."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return self._run(None)


def iter_audio(path: str | Path, *, chunk_seconds: float = 1.0) -> Iterator[AudioChunk]:
    """The first audio stream, decoded in chunks of about `chunk_seconds` at the native rate.

    Raises:
        DataError: Not a container, or no audio stream.
        TruncatedMediaError: A packet could not be decoded (after the chunks decoded so far).
    """
    av = _av()
    path = Path(path)
    with _open(path, "an audio or video file") as container:
        if not container.streams.audio:
            raise DataError(f"{path}: expected an audio track, got none.",
                            hint="pass --audio FILE with the sound for a silent video")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate)
        # Planar float at the native rate and layout: the channel rule and the resampling are ours.
        converter = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        target = max(1, int(chunk_seconds * rate))
        parts: list[np.ndarray] = []
        held, start, position = 0, None, None
        try:
            for frame in container.decode(stream):
                if start is None:
                    start = float(frame.time) if frame.time is not None else 0.0
                    position = start
                for out in converter.resample(frame):
                    parts.append(out.to_ndarray())
                    held += parts[-1].shape[1]
                if held >= target:
                    block = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
                    yield AudioChunk(position, block, rate)
                    position += block.shape[1] / rate
                    parts, held = [], 0
            for out in converter.resample(None):
                parts.append(out.to_ndarray())
        except av.FFmpegError as exc:
            reached = position or 0.0
            raise TruncatedMediaError(
                f"{path}: expected a complete audio track, got a decoding error after {reached:.2f} s: "
                f"{' '.join(str(exc).split())}.", reached=reached, expected=_seconds(stream.duration, stream.time_base),
                hint=_HINT) from None
        if parts:
            yield AudioChunk(position if position is not None else 0.0,
                             np.concatenate(parts, axis=1).astype(np.float32, copy=False), rate)


def read_audio_track(path: str | Path, *, rate: int | None = None, channels: str = "mean") -> tuple[np.ndarray, int, float]:
    """The whole audio track, reduced to one channel and resampled once.

    Args:
        path: An audio or video file.
        rate: Target rate in Hz (None keeps the native rate).
        channels: "mean" or "first" (`vsslrt.data.audio_io.mix_channels`, the front-ends' rule).

    Returns:
        (samples (n,) float32, rate, time of the first sample in seconds).
    """

    if channels not in CHANNEL_RULES:
        raise InputError(f"channel rule: expected one of {', '.join(CHANNEL_RULES)}, got {channels!r}.")
    chunks, first, resampler = [], None, None
    for chunk in iter_audio(path):
        if resampler is None:
            first = chunk.time
            resampler = ChunkResampler(chunk.sample_rate, rate or chunk.sample_rate)
        chunks.append(resampler.push(mix_channels(chunk.samples, channels)))
    if resampler is None:
        raise DataError(f"{path}: expected audio samples, got an empty track.", hint=_HINT)
    chunks.append(resampler.flush())
    return np.concatenate(chunks), resampler.out_rate, float(first or 0.0)


# ------------------------------------------------------------------------------------------------
# Writing


def container_for(path: str | Path) -> str | None:
    """FFmpeg's muxer for a file name's suffix (None: let FFmpeg guess)."""
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}.get(Path(path).suffix.lower())


#: x264's speed presets (fastest first) and tunings (x264 --fullhelp).
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
X264_TUNES = ("film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency")


def check_x264_settings(preset: str, tune: str | None) -> None:
    """A preset and tuning x264 knows (it would only fail at the first frame, with FFmpeg's words)."""
    if preset not in X264_PRESETS:
        raise InputError(f"--preset: expected one of {', '.join(X264_PRESETS)}, got {preset!r}.")
    if tune is not None and any(t not in X264_TUNES for t in tune.split(",")):
        raise InputError(f"--tune: expected one or more of {', '.join(X264_TUNES)} (comma-separated), got {tune!r}.")


class VideoWriter:
    """Write frames (H.264, yuv420p) and audio (AAC by default) into a container, as they come.

    Frames get the timestamps they are given, so a variable frame rate survives; audio is encoded
    at its native rate and layout. Write audio and frames interleaved in time (a muxer holds the
    packets of the stream that runs ahead until the other catches up).

    Args:
        path: Output file (its suffix picks the container: .mp4, .mkv, .mov).
        width, height: Frame size (even numbers for yuv420p: odd sizes are cropped by one pixel).
        fps: Nominal frame rate (the encoder's rate control; timestamps decide the timing).
        audio_rate, audio_channels: The audio stream's format; None for a silent output.
        video_codec, audio_codec: FFmpeg encoder names.
        preset, crf: x264 speed preset and quality ("veryfast": the default of `localize_video`;
            "ultrafast" encodes about twice as fast into a file about twice as large).
        aac_coder: FFmpeg's AAC coder: "fast" (default; measured: a third of "twoloop"'s time, and a
            higher SNR at 192 kb/s on a tone and on noise) or "twoloop" (FFmpeg's own default).
        tune: x264 tuning, e.g. "zerolatency" (no frame threads and no lookahead: each frame is
            out as soon as it is in, at some compression and throughput). None: x264's default.
        container_format: FFmpeg muxer name; defaults to the one of the suffix (`container_for`),
            so a temporary name can be written with the final name's format.
        threads: x264's worker threads; 0 (default): x264's own choice for this machine's cores.
            The compressed bits differ a little with the count (x264's frame threads narrow its
            motion search), and are deterministic for a given count.
    """

    def __init__(self, path: str | Path, *, width: int, height: int, fps: float, audio_rate: int | None = None,
                 audio_channels: int = 1, video_codec: str = "libx264", audio_codec: str = "aac",
                 preset: str = "veryfast", crf: int = 23, audio_bitrate: int = 192_000,
                 container_format: str | None = None, tune: str | None = None, aac_coder: str = "fast",
                 threads: int = 0) -> None:
        if video_codec == "libx264":
            check_x264_settings(preset, tune)
        av = _av()
        self.path = Path(path)
        self.width, self.height = int(width) // 2 * 2, int(height) // 2 * 2
        self._time_base = Fraction(1, 90_000)  # MPEG's clock: exact for every common frame rate
        container_format = container_format or container_for(self.path)
        self._container = av.open(str(self.path), "w", format=container_format)
        try:
            rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)
            self._video = self._container.add_stream(video_codec, rate=rate)
            self._video.width, self._video.height = self.width, self.height
            self._video.pix_fmt = "yuv420p"
            # Stream and encoder on one fine clock: on the default 1 / fps clock the encoder would
            # round a variable frame rate's timestamps onto a constant grid.
            self._video.time_base = self._time_base
            self._video.codec_context.time_base = self._time_base
            if video_codec == "libx264":
                self._video.options = {"preset": preset, "crf": str(crf), **({"tune": tune} if tune else {})}
                # x264's own threads (FFmpeg's default is 1, in the caller's thread): the encoding
                # then runs beside the caller's Python work instead of in turn with it.
                self._video.codec_context.thread_count = int(threads)
            self._audio = None
            if audio_rate:
                layout = {1: "mono", 2: "stereo"}.get(int(audio_channels), "mono")
                self._audio = self._container.add_stream(audio_codec, rate=int(audio_rate))
                self._audio.layout = layout
                if audio_codec == "aac":
                    self._audio.bit_rate = audio_bitrate
                    self._audio.options = {"aac_coder": aac_coder}
                self._audio_channels = 1 if layout == "mono" else 2
                self._audio_samples = 0
        except BaseException:
            self._container.close()
            raise
        self._last_pts = -1
        self.frames = 0

    def write_frame(self, rgb: np.ndarray, time: float) -> None:
        """One (H, W, 3) uint8 frame shown from `time` seconds (times must increase)."""
        av = _av()
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            rgb = rgb[: self.height, : self.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self._encode(frame, time)

    def write_yuv420(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, time: float, *,
                     tags: tuple[int, int, int, int] | None = None) -> None:
        """One frame as 8-bit 4:2:0 planes ((H, W) and two (H / 2, W / 2)), shown from `time` seconds.

        No conversion: the planes are encoded as they are (a decoded frame's own pixels stay exact).
        `tags` (`Yuv420.tags`: colorspace, range, primaries, transfer) are written into the stream's
        header with the first frame, so players read the planes as the source's.
        """
        av = _av()
        if self.frames == 0 and tags is not None:
            context = self._video.codec_context  # opened by the first encode: the header takes these
            context.colorspace, context.color_range, context.color_primaries, context.color_trc = tags
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        half = (self.height // 2, self.width // 2)
        for plane, source, (rows, cols) in zip(frame.planes, (y, u, v), ((self.height, self.width), half, half)):
            view = np.frombuffer(plane, dtype=np.uint8)
            view = np.lib.stride_tricks.as_strided(view, shape=(rows, cols), strides=(plane.line_size, 1))
            view[...] = source[:rows, :cols]
        if tags is not None:
            frame.colorspace, frame.color_range = tags[0], tags[1]
        self._encode(frame, time)

    def _encode(self, frame: Any, time: float) -> None:
        pts = max(int(round(time / self._time_base)), self._last_pts + 1)
        frame.pts, frame.time_base = pts, self._time_base
        self._last_pts = pts
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def write_audio(self, samples: np.ndarray) -> None:
        """(channels, n) float samples following the previous ones (mono to stereo is duplicated)."""
        if self._audio is None:
            return
        av = _av()
        block = np.asarray(samples, dtype=np.float32)
        block = block[None, :] if block.ndim == 1 else block
        if block.shape[0] != self._audio_channels:
            if self._audio_channels == 1:
                block = block.mean(axis=0, keepdims=True)
            else:  # stereo out: the first two channels, or mono duplicated
                block = block[:2] if block.shape[0] > 2 else np.repeat(block[:1], 2, axis=0)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.clip(block, -1.0, 1.0)), format="fltp",
                                           layout=self._audio.layout.name)
        frame.sample_rate = self._audio.rate
        frame.pts, frame.time_base = self._audio_samples, Fraction(1, self._audio.rate)
        self._audio_samples += block.shape[1]
        for packet in self._audio.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and finish the file (a valid container from here on)."""
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                for packet in self._audio.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close without flushing (the file is about to be removed)."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is discarded anyway
            pass
