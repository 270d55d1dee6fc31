"""Localisation on a live source: timestamped frames and audio chunks in, results out, in order.

    session = StreamSession(localizer, fps=4)
    while running:                                   # a camera loop, a network stream, a file
        session.push_audio(chunk, 48_000)            # (channels, n) or (n,) float samples
        session.push_frame(rgb, t)                   # (H, W, 3) uint8 at t seconds
        for result in session.poll():                # whatever is ready, oldest first
            show(result)
    for result in session.finish():                  # end of stream: the frames still waiting
        show(result)

The session works on any source: it does no file I/O and prints nothing (`vsslrt.pipeline.video`
drives it from a file, a service can drive it from a socket).

Audio. Each chunk is reduced to one channel with the front-end's rule and resampled to the
front-end's rate as it arrives (libswresample keeps its filter state across chunks), then kept in a
ring buffer of `buffer_seconds`, so memory is fixed whatever the stream's length. Chunks are
consecutive; a chunk stamped later than the previous one ended leaves a gap of silence, one stamped
earlier overlaps and its overlapping head is dropped.

Frames. `push_frame` samples frames at `fps` by timestamp (`vsslrt.data.video.FrameSampler`; a rate
above the source's keeps every frame) and queues the sampled ones. A queued frame is *ready* once
the audio its window needs has arrived; `poll` runs the ready frames in batches: their windows'
spectrograms in one batched call, the visual encoder once per frame, the audio encoder once per
window, one head contraction.

The audio window of a frame at time t is the front-end's window length W (1 s for the demo models,
3 s for FNAC, 10 s for EZ-VSL), placed by `alignment`:

* "centre" (default, the benchmark's own pairing: the clip's centre is the frame): [t - W/2, t + W/2].
  A frame's result can exist only W/2 after it was shown (0.5 s for the demo, 5 s for EZ-VSL).
* "trailing" (lowest latency on a live source): [t - W, t], the sound that led up to the frame.

Edge policy: near the start of the audio (and, once `finish` has fixed it, near the end), a window
that would leave the track is shifted inside it, so every frame of the track gets W seconds of real
audio (the window's centre then differs from t by less than W/2; `FrameResult.window` says where
it was). A track shorter than W is given whole and the front-end places it as it places a short clip
(tiled or centred, `vsslrt.data.prepare_signal`). A frame after the end of the audio, or before its
start, gets silence for the missing part. A window whose samples already left the ring buffer (audio
pushed far ahead of the frames) starts at the oldest sample kept.

Decisions. `FrameResult.score` and `.sounding` are the raw per-frame detection (map maximum against
the calibrated threshold), exactly what `Localizer.localize` gives for that frame and window.
Optionally, to stop the decision from flickering:

* `smoothing=Smoothing(tau)`: an exponential moving average of the score with time constant `tau`
  seconds, weight 1 - exp(-dt / tau) for a frame dt seconds after the previous one (so the same
  `tau` behaves the same at any fps);
* `hysteresis=Hysteresis.from_calibration(cal, width)`: the decision turns on when the (smoothed)
  score rises above `enter` = d + width |d| and off when it falls to `leave` = d - width |d| or below,
  d being the calibrated detection threshold; the first frame, with no state yet, is decided
  against d itself.

`FrameResult.decision` is the stable decision, `.threshold` the threshold it was compared with; the
mask and boxes of a result follow the decision (shown only while it says "sounding").

Latency: `FrameResult.latency_ms` runs from the moment the frame was ready (pushed, with its window's
audio arrived) to the moment its result was made; the window's placement adds its own delay on top
(W/2 for "centre", none for "trailing"). Frames waiting longer than `max_pending` are dropped, oldest
first, and counted (`dropped`), so a stalled audio source cannot make the queue grow without bound.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vsslrt.errors import InputError
from vsslrt.data import preprocess_image
from vsslrt.data.audio_io import DecodedAudio, mix_channels
from vsslrt.data.frontends import prepare_signal, spectrogram_inputs
from vsslrt.data.video import FrameSampler
from vsslrt.eval import _xp
from vsslrt.pipeline.localize import Pair, PreparedPair, decide

ALIGNMENTS = ("centre", "trailing")


@dataclass(frozen=True)
class Smoothing:
    """Exponential moving average of the score with time constant `tau` seconds (> 0)."""

    tau: float

    def __post_init__(self) -> None:
        if isinstance(self.tau, bool) or not math.isfinite(self.tau) or self.tau <= 0:
            raise InputError(f"--smooth: expected a positive time constant in seconds, got {self.tau!r}.")


@dataclass(frozen=True)
class Hysteresis:
    """A detection gate that enters above `enter` and leaves at or below `leave` (enter >= leave)."""

    enter: float
    leave: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.enter) and math.isfinite(self.leave)) or self.enter < self.leave:
            raise InputError(f"hysteresis: expected finite thresholds with enter >= leave, got enter {self.enter!r} "
                             f"and leave {self.leave!r}.")

    @classmethod
    def from_calibration(cls, calibration: Any, width: float) -> Hysteresis:
        """enter = d + width |d|, leave = d - width |d| around the detection threshold d.

        Args:
            calibration: A `Calibration` (its detection threshold).
            width: Half the band, as a fraction of |d| (0.1: 10 % above and below).
        """
        if isinstance(width, bool) or not math.isfinite(width) or width < 0:
            raise InputError(f"--hysteresis: expected a fraction >= 0 of the detection threshold, got {width!r}.")
        d = float(calibration.detection_threshold)
        return cls(enter=d + width * abs(d), leave=d - width * abs(d))


@dataclass
class FrameResult:
    """The answer for one sampled frame.

    Attributes:
        index: Position among the sampled frames (0-based).
        frame_index: The caller's frame number (the source's, when given to `push_frame`).
        time: The frame's timestamp in seconds.
        window: (start, end) seconds of the audio window it was given.
        result: The raw localisation (`LocalizationResult`: raw map, map, score, raw `sounding`,
            its gated mask and boxes), what `Localizer.localize` gives for the frame and window.
        smoothed_score: The score after smoothing (the score itself without smoothing).
        decision: The stable decision (smoothing and hysteresis applied; the raw one without them).
        threshold: The threshold the decision compared `smoothed_score` with.
        mask, boxes: Shown regions: the map above the localisation threshold while `decision`
            says "sounding", nothing otherwise.
        latency_ms: From the moment the frame was ready to the moment the result was made.
    """

    index: int
    frame_index: int
    time: float
    window: tuple[float, float]
    result: Any
    smoothed_score: float
    decision: bool
    threshold: float
    mask: np.ndarray = field(repr=False)
    boxes: list[Any]
    latency_ms: float

    @property
    def score(self) -> float:
        return float(self.result.score)

    @property
    def sounding(self) -> bool:
        return bool(self.result.sounding)

    def to_json(self) -> dict[str, Any]:
        """One timeline record: raw fields (score, sounding) beside the stable ones."""
        return {
            "time": round(self.time, 6),
            "frame": self.frame_index,
            "score": self.score,
            "sounding": self.sounding,
            "detection_threshold": float(self.result.detection_threshold),
            "smoothed_score": self.smoothed_score,
            "decision": self.decision,
            "threshold": self.threshold,
            "boxes": [b.to_json()["box"] for b in self.boxes],
            "window": [round(self.window[0], 6), round(self.window[1], 6)],
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass
class _Pending:
    index: int
    frame_index: int
    time: float
    rgb: np.ndarray
    arrived: float
    ready_at: float | None = None


class _Ring:
    """A fixed-size float32 ring of the most recent samples, addressed by absolute sample number."""

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros(int(capacity), dtype=np.float32)
        self.end = 0  # absolute number of the next sample

    @property
    def capacity(self) -> int:
        return int(self.data.shape[0])

    @property
    def start(self) -> int:
        return max(0, self.end - self.capacity)

    def append(self, samples: np.ndarray) -> None:
        n = int(samples.shape[0])
        if n >= self.capacity:
            samples, self.end = samples[-self.capacity:], self.end + n - self.capacity
            n = self.capacity
        first = self.end % self.capacity
        head = min(n, self.capacity - first)
        self.data[first:first + head] = samples[:head]
        self.data[: n - head] = samples[head:]
        self.end += n

    def read(self, begin: int, stop: int) -> np.ndarray:
        """Samples [begin, stop) (absolute), zeros where outside what the ring holds."""
        out = np.zeros(max(0, stop - begin), dtype=np.float32)
        lo, hi = max(begin, self.start), min(stop, self.end)
        if hi > lo:  # at most two slices: before and after the wrap
            first = lo % self.capacity
            count = hi - lo
            head = min(count, self.capacity - first)
            out[lo - begin: lo - begin + head] = self.data[first:first + head]
            out[lo - begin + head: hi - begin] = self.data[: count - head]
        return out


class StreamSession:
    """Frames and audio chunks of a live source in, `FrameResult`s out (see the module docstring).

    Args:
        localizer: A warm `vsslrt.pipeline.localize.Localizer` (engine + calibration); its
            `map_size` applies, its `gate` is replaced by the session's decision.
        fps: Frames localised per second (None: every frame pushed).
        alignment: "centre" or "trailing" (the window's placement around the frame).
        smoothing: A `Smoothing`, or None for the raw score.
        hysteresis: A `Hysteresis`, or None for the calibrated threshold alone.
        batch_size: Most frames per encoder call.
        buffer_seconds: Audio kept, in seconds. Defaults to the window plus the time `batch_size`
            frames span at `fps` plus 2 s: enough when audio arrives with the frames or a little ahead.
        max_pending: Most frames waiting for audio before the oldest are dropped. Defaults to the
            frames that fit in the buffer at `fps` (at least 4 batches).
        audio_start: Timestamp of the first audio sample when chunks come without one.
        device: Feed the encoders device (CuPy) arrays, so the maps and masks of the results stay
            on the GPU until they are drawn. None (default): when the engine runs on a GPU backend
            and CuPy is installed.
    """

    def __init__(self, localizer: Any, *, fps: float | None = 4.0, alignment: str = "centre",
                 smoothing: Smoothing | None = None, hysteresis: Hysteresis | None = None, batch_size: int = 8,
                 buffer_seconds: float | None = None, max_pending: int | None = None,
                 audio_start: float = 0.0, device: bool | None = None) -> None:

        if alignment not in ALIGNMENTS:
            raise InputError(f"stream: expected alignment to be one of {', '.join(ALIGNMENTS)}, got {alignment!r}.")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"stream: expected batch_size to be a positive integer, got {batch_size!r}.")
        self.localizer = localizer
        self._device = _device_module(localizer, device)
        self.calibration = localizer.calibration
        self.spec = localizer.spec
        self.rate = int(self.spec.sample_rate or 16_000)
        self.window_samples = int(self.spec.window_length(self.rate))
        self.window_seconds = self.window_samples / self.rate
        self.alignment = alignment
        self.smoothing, self.hysteresis = smoothing, hysteresis
        self.batch_size = batch_size
        self.sampler = FrameSampler(fps)
        span = batch_size / fps if fps else 2.0
        if buffer_seconds is None:
            buffer_seconds = self.window_seconds + span + 2.0
        if buffer_seconds < self.window_seconds:
            raise InputError(f"stream: expected buffer_seconds >= the audio window ({self.window_seconds:g} s), "
                             f"got {buffer_seconds!r}.")
        self.buffer_seconds = float(buffer_seconds)
        self._ring = _Ring(int(math.ceil(self.buffer_seconds * self.rate)))
        per_second = fps if fps else 30.0
        self.max_pending = max_pending or max(4 * batch_size, int(math.ceil(self.buffer_seconds * per_second)))
        self._audio_origin: float | None = None
        self._audio_start_default = float(audio_start)
        self._resampler: Any = None
        self._in_rate: int | None = None
        self._pending: deque[_Pending] = deque()
        self._sampled = 0
        self._frames = 0
        self._finished = False
        self.dropped = 0
        self._state_score: float | None = None
        self._state_time: float | None = None
        self._state_on = False

    # ----- audio --------------------------------------------------------------------------------
    @property
    def audio_end(self) -> float:
        """Seconds (source clock) up to which audio has arrived; -inf before the first chunk."""
        if self._audio_origin is None:
            return -math.inf
        return self._audio_origin + self._ring.end / self.rate

    def push_audio(self, samples: np.ndarray, sample_rate: int, *, time: float | None = None) -> None:
        """Append a chunk: (n,) or (channels, n) float samples in [-1, 1] at `sample_rate` Hz.

        Args:
            time: Timestamp of the chunk's first sample; None: right after the previous chunk (the
                first chunk then starts at `audio_start`).
        """

        if self._finished:
            raise InputError("stream: expected audio before finish(), got a chunk after it.")
        block = np.asarray(samples, dtype=np.float64)
        if block.ndim == 1:
            block = block[None, :]
        if block.ndim != 2:
            raise InputError(f"stream: expected audio of shape (n,) or (channels, n), got {block.shape}.")
        if self._in_rate is None:
            from vsslrt.data.video import ChunkResampler  # PyAV only when the rates differ

            self._in_rate = int(sample_rate)
            self._resampler = (ChunkResampler(self._in_rate, self.rate) if self._in_rate != self.rate else None)
            self._audio_origin = float(time) if time is not None else self._audio_start_default
        elif int(sample_rate) != self._in_rate:
            raise InputError(f"stream: expected every audio chunk at {self._in_rate} Hz, got {sample_rate} Hz.")
        mono = mix_channels(block, self.spec.channels).astype(np.float32)
        if time is not None and self._ring.end > 0:
            # Timestamps are of the input; the ring counts resampled samples.
            expected = self.audio_end
            offset = int(round((float(time) - expected) * self._in_rate))
            if offset > 0:
                mono = np.concatenate([np.zeros(offset, np.float32), mono])
            elif offset < 0:
                mono = mono[-offset:]
        out = self._resampler.push(mono) if self._resampler is not None else mono
        if out.size:
            self._ring.append(out)
        self._mark_ready()

    # ----- frames -------------------------------------------------------------------------------
    def push_frame(self, rgb: np.ndarray | Callable[[], np.ndarray], time: float, *,
                   frame_index: int | None = None) -> bool:
        """Offer a frame shown at `time` seconds; returns whether it was sampled (queued).

        Args:
            rgb: The (H, W, 3) uint8 frame, or a function returning it, called only when the frame
                is sampled (a source that decodes to another format converts only those).

        Raises:
            InputError: Not an (H, W, 3) uint8 image.
        """
        if self._finished:
            raise InputError("stream: expected frames before finish(), got one after it.")
        index = self._frames if frame_index is None else int(frame_index)
        self._frames += 1
        if not self.sampler.take(float(time)):
            return False
        rgb = np.asarray(rgb() if callable(rgb) else rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"stream: expected an (H, W, 3) uint8 RGB frame, got {rgb.dtype} {rgb.shape}.")
        self._pending.append(_Pending(self._sampled, index, float(time), rgb, time_now()))
        self._sampled += 1
        while len(self._pending) > self.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._mark_ready()
        return True

    @property
    def pending(self) -> int:
        """Sampled frames waiting for their results."""
        return len(self._pending)

    def ready(self) -> int:
        """Queued frames whose audio has arrived (they run at the next `poll`)."""
        return sum(1 for p in self._pending if p.ready_at is not None)

    def audio_needed_until(self, t: float | None = None) -> float:
        """Seconds up to which audio must arrive for the frame at `t` (default: the newest queued
        one) to be ready; -inf when no frame is queued and no `t` is given."""
        if t is None:
            if not self._pending:
                return -math.inf
            t = self._pending[-1].time
        return self._origin() + self._window(t, final=False)[1] / self.rate

    # ----- results ------------------------------------------------------------------------------
    def poll(self, *, min_batch: int = 1) -> list[FrameResult]:
        """Results of the ready frames, oldest first, in batches of at most `batch_size`.

        Args:
            min_batch: Run only when at least this many frames are ready (a file reader passes
                `batch_size` to fill every batch; a live source keeps 1 for the lowest latency).
        """
        results: list[FrameResult] = []
        while True:
            ready = 0
            for item in self._pending:
                if item.ready_at is None:
                    break
                ready += 1
            if ready == 0 or ready < min(min_batch, self.batch_size):
                return results
            batch = [self._pending.popleft() for _ in range(min(ready, self.batch_size))]
            results.extend(self._run(batch, final=False))

    def finish(self) -> list[FrameResult]:
        """End of stream: the audio track's end is known; every queued frame is answered."""
        if not self._finished:
            self._finished = True
            if self._resampler is not None:
                tail = self._resampler.flush()
                if tail.size:
                    self._ring.append(tail)
        results: list[FrameResult] = []
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), self.batch_size))]
            results.extend(self._run(batch, final=True))
        return results

    # ----- internals ----------------------------------------------------------------------------
    def _origin(self) -> float:
        return self._audio_origin if self._audio_origin is not None else self._audio_start_default

    def _mark_ready(self) -> None:
        if self._audio_origin is None:
            return
        now = None
        for item in self._pending:
            if item.ready_at is not None:
                continue
            if self._window(item.time, final=False)[1] > self._ring.end:
                break  # later frames need later audio
            now = now if now is not None else time_now()
            item.ready_at = now

    def _window(self, t: float, final: bool) -> tuple[int, int, bool]:
        """(first, stop) absolute sample numbers of the window of the frame at t (the edge policy
        applied), and whether the track is shorter than the window (then it is given whole)."""
        n = self.window_samples
        end = self._ring.end
        if final and end < n:
            return 0, end, True
        offset = int(round((t - self._origin()) * self.rate))  # the frame's sample number
        first = offset - n // 2 if self.alignment == "centre" else offset - n
        inside = 0 <= offset and (not final or offset <= end)
        if inside:
            first = max(first, 0)
            if final:
                first = min(first, end - n)
        if 0 < self._ring.start and first < self._ring.start:
            first = self._ring.start  # audio pushed far ahead: the oldest window still kept
        return first, first + n, False

    def _run(self, batch: Sequence[_Pending], *, final: bool) -> list[FrameResult]:

        clock = time.perf_counter
        t0 = clock()
        origin = self._origin()
        signals, windows = [], []
        for item in batch:
            first, stop, whole = self._window(item.time, final)
            samples = self._ring.read(first, stop).astype(np.float64)
            if whole and samples.size == 0:
                samples = np.zeros(1)
            clip = DecodedAudio(samples=samples[None, :], sample_rate=self.rate, path=Path("<stream>"))
            # The front-end's own steps (s16 scale, placement, segment, clipping) on the window.
            signal, _ = prepare_signal(clip, self.spec, mode=self.calibration.protocol)
            signals.append(signal)
            windows.append((origin + first / self.rate, origin + stop / self.rate))
        t_audio = clock()
        audio_rows = spectrogram_inputs(signals, self.spec, rates=self.rate)  # one batched STFT
        t_image = clock()
        # On a GPU the rows go to the device here; the results' maps stay there (`run_prepared`).
        put = self._device.asarray if self._device is not None else (lambda row: row)
        prepared = [PreparedPair(Pair(f"frame-{item.frame_index:06d}", Path("<stream>"), Path("<stream>")),
                                 item.rgb, put(preprocess_image(item.rgb)), put(audio_rows[row]),
                                 {"image_input": 0.0, "audio_input": 0.0}) for row, item in enumerate(batch)]
        t_done = clock()
        for p in prepared:  # each frame carries its share of the batch's front-end time
            p.seconds["audio_input"] = (t_image - t0) / len(batch)
            p.seconds["image_input"] = (t_done - t_image) / len(batch)
        raw_results = self.localizer.run_prepared(prepared)
        return [self._decide(item, res, window) for item, res, window in zip(batch, raw_results, windows)]

    def _decide(self, item: _Pending, result: Any, window: tuple[float, float]) -> FrameResult:

        cal = self.calibration
        score = float(result.score)
        if self.smoothing is not None and self._state_score is not None:
            dt = max(0.0, item.time - float(self._state_time))
            weight = 1.0 - math.exp(-dt / self.smoothing.tau)
            smoothed = self._state_score + weight * (score - self._state_score)
        else:
            smoothed = score
        first = self._state_score is None
        self._state_score, self._state_time = smoothed, item.time
        if self.hysteresis is not None and not first:
            threshold = self.hysteresis.leave if self._state_on else self.hysteresis.enter
        else:
            threshold = float(cal.detection_threshold)
        decision = smoothed > threshold
        self._state_on = decision
        if decision == bool(result.sounding) and self.localizer.gate:
            mask, boxes = result.mask, result.boxes
        elif decision:
            # Sounding by the stable decision while the raw score is below: the ungated regions.
            width, height = result.image_size
            _, mask, _, _, boxes = decide(result.raw_map, (width, height), cal, map_size=self.localizer.map_size,
                                          gate=False)
        else:
            mask, boxes = _empty_mask(result.map), []
        ready = item.ready_at if item.ready_at is not None else item.arrived
        return FrameResult(index=item.index, frame_index=item.frame_index, time=item.time, window=window,
                           result=result, smoothed_score=float(smoothed), decision=bool(decision),
                           threshold=float(threshold), mask=mask, boxes=boxes,
                           latency_ms=1e3 * max(0.0, time_now() - ready))


def _empty_mask(like: Any) -> Any:
    """An all-False mask of a map's shape, on the map's device."""
    if isinstance(like, np.ndarray):
        return np.zeros(like.shape, dtype=bool)
    from array_api_compat import array_namespace


    xp = array_namespace(like)
    return xp.zeros(like.shape, dtype=xp.bool, device=_xp.device_of(like))


#: Backends whose runners take CuPy inputs and answer in CuPy (`vsslrt.engine.backends`).
GPU_BACKENDS = ("ort-cuda", "ort-trt", "trt")


def _device_module(localizer: Any, device: bool | None) -> Any:
    """CuPy when the session's rows go to the device: `device`, or by default a GPU backend with
    CuPy installed; None for host rows."""
    if device is False:
        return None
    backend = getattr(getattr(localizer, "encoders", None), "backend", None)
    if device is None and backend not in GPU_BACKENDS:
        return None
    try:
        import cupy  # optional: only on a GPU machine
    except ImportError:
        if device:
            from vsslrt.errors import missing_extra  # error path only

            raise missing_extra("cupy", "gpu", "keep the maps on the GPU") from None
        return None
    return cupy


def time_now() -> float:
    """The session's clock (monotonic seconds); latencies are differences of it."""
    return time.perf_counter()


# ------------------------------------------------------------------------------------------------
# Summaries


def segments(times: Sequence[float], decisions: Sequence[bool], *, end: float | None = None) -> list[list[float]]:
    """[start, end] seconds of each run of "sounding" decisions; a run ends at the time of the next
    frame (the last run at `end`, default the last frame's time)."""
    out: list[list[float]] = []
    start = None
    for t, on in zip(times, decisions):
        if on and start is None:
            start = float(t)
        elif not on and start is not None:
            out.append([start, float(t)])
            start = None
    if start is not None:
        out.append([start, float(end if end is not None else times[-1])])
    return out


class Summary:
    """Running totals of a stream's results (a few scalars per frame, never the maps)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.decisions: list[bool] = []
        self.raw: list[bool] = []
        self.latency_ms: list[float] = []

    def add(self, result: FrameResult) -> None:
        self.times.append(result.time)
        self.decisions.append(result.decision)
        self.raw.append(result.sounding)
        self.latency_ms.append(result.latency_ms)

    def to_json(self, *, end: float | None = None) -> dict[str, Any]:
        """Frames, sounding fractions (stable and raw), sounding segments, latency p50/p99."""
        if not self.times:
            return {"frames": 0, "sounding_fraction": 0.0, "raw_sounding_fraction": 0.0, "segments": [],
                    "raw_segments": [], "latency_ms": None}
        latency = np.asarray(self.latency_ms)
        return {
            "frames": len(self.times),
            "sounding_fraction": float(np.mean(self.decisions)),
            "raw_sounding_fraction": float(np.mean(self.raw)),
            "segments": segments(self.times, self.decisions, end=end),
            "raw_segments": segments(self.times, self.raw, end=end),
            "latency_ms": {"p50": float(np.percentile(latency, 50)), "p99": float(np.percentile(latency, 99))},
        }
