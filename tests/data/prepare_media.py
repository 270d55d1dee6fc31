"""Small videos the preparation tests make with PyAV (no downloads), whose content says its time.

Frame k shows its index in three flat blocks (base 25 digits, 9 grey levels apart: robust to H.264),
and the audio is a tone whose frequency names the second it was recorded in
(`tone_frequency(s)`), with a continuous phase, so a frame time and an audio window can be read back
from the written files exactly.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

HEIGHT, WIDTH = 48, 96


def tone_frequency(second: np.ndarray | int) -> np.ndarray | int:
    """The tone of second s: 300 + 200 (s mod 25) Hz (well below 8 kHz; 200 Hz apart)."""
    return 300 + 200 * (np.asarray(second) % 25)


def tone(seconds: float, rate: int) -> np.ndarray:
    """(n,) float32: the time-naming tone at `rate`, amplitude 0.3."""
    t = np.arange(int(round(seconds * rate))) / rate
    phase = 2 * np.pi * np.cumsum(tone_frequency(np.floor(t).astype(int))) / rate
    return (0.3 * np.sin(phase)).astype(np.float32)


def frame_image(k: int) -> np.ndarray:
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for block, digit in enumerate((k % 25, (k // 25) % 25, k // 625)):
        img[:, block * 32:(block + 1) * 32] = 16 + 9 * digit
    return img


def read_index(rgb: np.ndarray) -> int:
    """The frame index a written frame shows (inverse of `frame_image`, after any resize)."""
    h, w = rgb.shape[:2]
    digits = [int(round((float(np.median(rgb[h // 4: 3 * h // 4, int(w * (b + 0.25) / 3): int(w * (b + 0.75) / 3)]))
                         - 16) / 9)) for b in range(3)]
    return digits[0] + 25 * digits[1] + 625 * digits[2]


def write_clip(path: Path, *, seconds: float = 10.0, fps: float = 25.0, times=None, rate: int | None = 16_000,
               channels: int = 1, codec: str = "aac", audio_seconds: float | None = None) -> Path:
    """A video of `seconds` at `fps` (or at `times`), with the tone on `channels` channels at `rate`
    for `audio_seconds` (default: as long as the video), or no audio when `rate` is None."""
    times = list(times) if times is not None else [k / fps for k in range(int(round(seconds * fps)))]
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
    stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
    stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
    stream.options = {"preset": "ultrafast", "crf": "10", "g": "50"}
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    audio = None
    if rate is not None:
        audio = out.add_stream(codec, rate=rate)
        audio.layout = layout
        if codec == "aac":
            audio.bit_rate = 256_000
        signal = tone(audio_seconds if audio_seconds is not None else times[-1] + 1 / fps, rate)
        block = np.repeat(signal[None], channels, axis=0)
    step, position = 1024, 0
    for k, t in enumerate(times):
        frame = av.VideoFrame.from_ndarray(frame_image(k), format="rgb24")
        frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
        for packet in stream.encode(frame):
            out.mux(packet)
        while audio is not None and position < block.shape[1] and position < (t + 0.2) * rate:
            _audio(out, audio, block[:, position:position + step], position, rate, layout)
            position += step
    while audio is not None and position < block.shape[1]:
        _audio(out, audio, block[:, position:position + step], position, rate, layout)
        position += step
    for packet in stream.encode(None):
        out.mux(packet)
    if audio is not None:
        for packet in audio.encode(None):
            out.mux(packet)
    out.close()
    return path


def _audio(out, stream, samples, position, rate, layout):
    fmt = "s16p" if stream.codec_context.name.startswith("pcm") else "fltp"
    data = samples if fmt == "fltp" else np.round(samples * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = rate, position, Fraction(1, rate)
    for packet in stream.encode(frame):
        out.mux(packet)


def seconds_heard(x: np.ndarray, rate: int) -> list[int]:
    """The tone frequency of each whole second of `x` (the middle 0.8 s of it), in Hz."""
    out = []
    for k in range(len(x) // rate):
        seg = x[k * rate + rate // 10:(k + 1) * rate - rate // 10]
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        out.append(int(round(np.argmax(spectrum) * rate / len(seg))))
    return out


def tone_changes(x: np.ndarray, rate: int, near: list[int], radius: int = 200) -> list[int]:
    """Where the tone's frequency jumps, one sample index near each of `near` (instantaneous
    frequency from the analytic signal, smoothed over 1 ms)."""
    from scipy.signal import hilbert

    inst = np.diff(np.unwrap(np.angle(hilbert(x.astype(np.float64))))) * rate / (2 * np.pi)
    width = max(1, rate // 1000)
    smooth = np.convolve(inst, np.ones(width) / width, mode="same")
    found = []
    for n in near:
        lo, hi = max(0, n - radius), min(len(smooth) - 1, n + radius)
        step = np.abs(smooth[lo + width:hi + width] - smooth[lo - width if lo >= width else 0:hi - width])
        found.append(lo + int(np.argmax(step)))
    return found
