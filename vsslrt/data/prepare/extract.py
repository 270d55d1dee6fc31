"""One clip: decode the frame(s) and audio window(s) a preparer asks for and write them atomically.

This is the work a preparation worker does (`vsslrt.data.prepare.driver` runs it in parallel): a
`ClipTask` in, a plain result dict out (no arrays, so results are small whatever the videos). All
decoding goes through `vsslrt.data.video`.

Times. A file's clock starts at its first video frame (`VideoInfo.start_time`, the time a player
shows as 0). A clip starts `offset` seconds into the file: 0 when the file is the clip itself,
the clip's start time when the file is the whole video (`resolve_offset`). Frame times and audio
windows are seconds from the clip's start.

* A frame is the first frame at or after its time, by timestamp (`video.frame_at`), so a variable
  frame rate source gets the frame on screen from that time on, not the N-th frame.
* Audio windows are cut from the track at its native rate after the channel rule, then resampled
  alone (as `ffmpeg -ss A -t D -ar 16000 -ac 1` does). Policy "clip" keeps the window's place:
  zeros before a track that starts late, and a track that ends early leaves the window short (the
  front-ends tile short clips, as the reference loaders do). Policy "centred" centres the window
  on the frame and shifts it inside the track near its ends (the video deployment's edge policy);
  a track shorter than the window is taken whole.
* The track is read in one streaming pass that keeps only the samples the pending windows still
  need, and stops after the last window: memory is bounded by the window, not the video.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vsslrt.data.prepare.settings import AUTO_CLIP_SLACK, HASH_PREFIX_BYTES, SHORT_TOLERANCE, MediaSettings
from vsslrt.errors import VsslrtError
from vsslrt.files import atomic_write_bytes
from vsslrt.data.audio_io import mix_channels
from vsslrt.data.video import frame_at, iter_audio, probe
from vsslrt.data.audio_io import resample as resample_poly
from vsslrt.data.video import ChunkResampler

FRAME_NOTE_GAP = 0.5  # seconds between the asked and the decoded frame time worth a note (a VFR gap)


@dataclass(frozen=True)
class ClipTask:
    """What to prepare from one source file.

    Attributes:
        key: The clip's id (unique in a run; the journal's key).
        source: The video file.
        frames: Frame times in seconds from the clip start; "middle" (the clip's middle, from the
            probed duration) or ("every", step) may be given as `frame_rule` instead.
        frame_names: Output path (relative to the output folder) per frame; a "{t_ms}" field is
            filled with the decoded frame's requested time in milliseconds.
        audio_names: Output path per audio window (same field), one per frame for "centred", one
            for "clip".
        window: Audio window length in seconds.
        policy: "clip" (window [0, window) of the clip) or "centred" (on each frame).
        clip_start: The clip's start in the whole video (VGG-SS: the id's time; others 0).
        layout: "clips", "full" or "auto" (settings.SOURCE_MODES); "clips" for non-VGG-SS data.
        name_has_start: Whether the file name carries the start time ("auto" needs it).
        frame_rule: None, "middle" or ("every", seconds): frames derived from the duration.
        audio_only: Write the audio window only (clips a class dictionary lists for offscreen use).
    """

    key: str
    source: str
    frames: tuple[float, ...] = ()
    frame_names: tuple[str, ...] = ()
    audio_names: tuple[str, ...] = ()
    window: float = 10.0
    policy: str = "clip"
    clip_start: float = 0.0
    layout: str = "clips"
    name_has_start: bool = True
    frame_rule: object = None
    audio_only: bool = False
    media: MediaSettings = field(default_factory=MediaSettings)


class ClipFailure(Exception):
    """A clip that cannot be prepared; its message is the report's reason."""


def fingerprint(path: str | os.PathLike[str]) -> dict:
    """size, mtime and sha256 of the first MiB (settings.HASH_RULE)."""
    stat = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(HASH_PREFIX_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_first_mib": digest.hexdigest()}


def write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    from PIL import Image  # lazy: Pillow loads in the workers only

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=int(quality))
    atomic_write_bytes(path, buffer.getbuffer())


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    import soundfile  # lazy: libsndfile loads in the workers only

    buffer = io.BytesIO()
    # Clipped here: libsndfile's float -> PCM conversion wraps around instead of clipping.
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), int(rate), subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buffer.getbuffer())


def resample(samples: np.ndarray, rate: int, out_rate: int, resampler: str) -> np.ndarray:
    """One window to `out_rate`, exactly round(n * out_rate / rate) samples long."""
    if rate == out_rate:
        return samples.astype(np.float32, copy=False)
    if resampler == "swr":

        swr = ChunkResampler(rate, out_rate)
        out = np.concatenate([swr.push(samples), swr.flush()])
    else:

        out = resample_poly(samples.astype(np.float64), rate, out_rate).astype(np.float32)
    n = int(round(len(samples) * out_rate / rate))
    return out[:n] if len(out) >= n else np.concatenate([out, np.zeros(n - len(out), np.float32)])


@dataclass
class Window:
    """An audio window: asked [start, end) in container seconds; `samples` at `rate` once read."""

    start: float
    end: float
    centred: bool
    samples: np.ndarray | None = None
    got: tuple[float, float] | None = None  # the span taken from the track
    padded: float = 0.0  # seconds of zeros before a late track ("clip" policy)


def read_windows(path: Path, windows: list[Window], channels: str) -> tuple[int, float, float]:
    """Fill each window's native-rate mono samples in one pass over the track.

    Returns:
        (native rate, time of the first sample, time the track was read to).
    """

    rate, first = 0, 0.0
    buf, base = np.zeros(0, np.float32), 0  # samples held, and the track index of buf[0]
    pending = sorted(windows, key=lambda w: w.start)

    def span(w: Window) -> tuple[int, int]:
        a, b = int(round((w.start - first) * rate)), int(round((w.end - first) * rate))
        if w.centred and a < 0:  # shifted inside the track's start
            a, b = 0, b - a
        return a, b

    def take(w: Window, a: int, b: int) -> None:
        lead = max(0, -a)
        part = buf[max(a, 0) - base: max(b, 0) - base]
        w.samples = np.concatenate([np.zeros(lead, np.float32), part]) if lead else part.copy()
        w.padded = lead / rate
        w.got = (first + max(a, 0) / rate, first + max(b, 0) / rate)

    for chunk in iter_audio(path):
        if not rate:
            rate, first = chunk.sample_rate, chunk.time
        buf = np.concatenate([buf, mix_channels(chunk.samples, channels).astype(np.float32)])
        total = base + len(buf)
        still = []
        for w in pending:
            a, b = span(w)
            if b <= total:
                take(w, a, b)
            else:
                still.append(w)
        pending = still
        if not pending:
            return rate, first, first + total / rate
        # Keep what the pending windows may still need: a centred window may shift back by its length.
        keep = min(max(0, a - (b - a) if w.centred else a) for w in pending for a, b in [span(w)])
        keep = min(keep, total)  # never past what was read: buf[0] stays at track index `base`
        if keep > base:
            buf, base = buf[keep - base:], keep
    if not rate:
        raise ClipFailure("the audio track holds no samples")
    total = base + len(buf)
    for w in pending:
        a, b = span(w)
        if w.centred:
            a, b = max(0, total - (b - a)), total
        else:
            b = min(b, total)
        if b <= max(a, 0):
            end = first + total / rate
            raise ClipFailure(f"no audio in the window {w.start:.2f}-{w.end:.2f} s: the audio track ends at {end:.2f} s")
        take(w, a, b)
    return rate, first, first + total / rate


def resolve_offset(task: ClipTask, duration: float | None) -> tuple[float, str]:
    """Seconds from the file's start to the clip's start, and how it was decided."""
    if task.layout == "clips":
        return 0.0, "the file is the clip"
    if task.layout == "auto" and task.name_has_start and (duration is None or duration <= task.window + AUTO_CLIP_SLACK):
        return 0.0, "the file is the clip (its name has the start time and it lasts at most the clip)"
    if duration is not None and task.clip_start >= duration:
        raise ClipFailure(f"the clip starts at {task.clip_start:g} s, past the video's end ({duration:.2f} s)")
    return task.clip_start, "the file is the whole video: the clip starts at its id's time"


def _frame_times(task: ClipTask, clip_length: float | None) -> tuple[float, ...]:
    rule = task.frame_rule
    if rule is None:
        return task.frames
    if clip_length is None:
        raise ClipFailure("the container states no duration, needed to place frames by the clip's length")
    if rule == "middle":
        return (clip_length / 2.0,)
    step = float(rule[1])
    return tuple(k * step for k in range(int(np.floor(clip_length / step - 1e-9)) + 1))


def _name(template: str, t: float) -> str:
    return template.format(t_ms=int(round(t * 1000)))


def prepare_clip(task: ClipTask, out: str | os.PathLike[str]) -> dict:
    """Prepare one clip; never raises for a bad source (the result says why it failed)."""
    result: dict = {"key": task.key, "source": task.source, "status": "failed", "notes": []}
    try:
        result["fingerprint"] = fingerprint(task.source)
        _prepare(task, Path(out), result)
        result["status"] = "ok"
    except (ClipFailure, VsslrtError, OSError) as exc:
        text = exc.one_line() if isinstance(exc, VsslrtError) else str(exc)
        result["reason"] = " ".join(text.split())
    except Exception as exc:  # noqa: BLE001 - an unexpected decoder error fails this clip, not the run
        result["reason"] = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
    return result


def _prepare(task: ClipTask, out: Path, result: dict) -> None:

    info = probe(task.source)
    result["video"] = {"duration": info.duration, "fps": info.fps, "variable_frame_rate": info.variable_frame_rate,
                       "rotation": info.rotation, "size": [info.width, info.height], "codec": info.codec}
    if info.audio is None:
        raise ClipFailure("the video has no audio track (the benchmark needs each clip's sound)")
    result["audio_source"] = {"sample_rate": info.audio.sample_rate, "channels": info.audio.channels,
                              "codec": info.audio.codec}
    offset, why = resolve_offset(task, info.duration)
    result["offset"], result["offset_rule"] = offset, why
    origin = info.start_time + offset  # container seconds of the clip's start
    length = None if info.duration is None else info.duration - offset
    times = () if task.audio_only else _frame_times(task, length)
    if task.policy == "centred" and not times:
        raise ClipFailure("no frame time falls inside the video")
    if info.variable_frame_rate and times:
        result["notes"].append("variable frame rate: frames are chosen by timestamp")

    frames = []
    for k, t in enumerate(times):
        frame = frame_at(task.source, origin + t)
        if frame is None:
            end = "" if info.duration is None else f": the video ends at {info.duration - offset:.2f} s"
            raise ClipFailure(f"no frame at {t:.2f} s from the clip's start{end}")
        got = frame.time - origin
        if got - t > FRAME_NOTE_GAP:
            result["notes"].append(f"the first frame at or after {t:.2f} s is at {got:.2f} s")
        name = _name(task.frame_names[k if len(task.frame_names) > 1 else 0], t)
        write_jpeg(out / name, frame.rgb, task.media.jpeg_quality)
        frames.append({"image": name, "time": t, "frame_time": round(got, 6)})

    media = task.media
    if task.policy == "clip":
        windows = [Window(origin, origin + task.window, centred=False)]
    else:
        windows = [Window(origin + t - task.window / 2, origin + t + task.window / 2, centred=True) for t in times]
    rate, _, _ = read_windows(Path(task.source), windows, media.channels)
    audio = []
    for k, w in enumerate(windows):
        t = times[k] if task.policy == "centred" else 0.0
        name = _name(task.audio_names[k if len(task.audio_names) > 1 else 0], t)
        write_wav(out / name, resample(w.samples, rate, media.sample_rate, media.resampler), media.sample_rate)
        got = (round(w.got[0] - origin, 6), round(w.got[1] - origin, 6))
        covered = got[1] - got[0] + w.padded
        if covered < task.window - SHORT_TOLERANCE:
            result["notes"].append(f"short audio: {covered:.2f} s of the {task.window:g} s window "
                                   f"(the track covers {got[0]:.2f}-{got[1]:.2f} s), written as is")
        if w.padded > SHORT_TOLERANCE:
            result["notes"].append(f"the audio track starts {w.padded:.2f} s after the window: zeros before it")
        audio.append({"audio": name, "window": [round(w.start - origin, 6), round(w.end - origin, 6)], "taken": list(got)})
    if task.policy == "clip":
        result["outputs"] = [{**f, **audio[0]} for f in frames] or audio
    else:
        result["outputs"] = [{**f, **a} for f, a in zip(frames, audio)]
