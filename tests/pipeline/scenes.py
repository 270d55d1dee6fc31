"""Videos the tests make themselves (PyAV, no downloads), and the shipped demo-san with a calibration.

The scene: a synthetic-benchmark background (`vsslrt.data.synth`) with a bell that moves left to
right and a drum that stays put; the sound track is the bell's sound, interrupted by silence and by
white noise. demo-san localises the synthetic classes, so the decision must follow the segments and
the boxes the bell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from vsslrt.data import synth  # noqa: E402
from vsslrt.files import sha256_file  # noqa: E402
from vsslrt.models import DEMO_ASSETS  # noqa: E402

DEMO_SAN = DEMO_ASSETS / "demo-san"
RATE = synth.SAMPLE_RATE
# `vsslrt calibrate` of a 200-record run of the built-in benchmark (demo-san, fixed protocol, seed 0):
# detection 0.13375 (balanced accuracy, positive against silence, noise, offscreen), localisation 0.11
# (F-maximising). Written here so the tests need not run the benchmark.
DETECTION = 0.13375
LOCALIZATION = 0.11
#: (start, end, kind) of the default sound track, seconds.
SEGMENTS = ((0.0, 2.0, "sound"), (2.0, 3.0, "silence"), (3.0, 4.0, "noise"), (4.0, 6.0, "sound"))


def demo_calibration(detection: float = DETECTION, localization: float = LOCALIZATION) -> dict:
    return {
        "format": "vsslrt-calibration", "format_version": 1, "model": "demo-san", "engine": "demo-san",
        "manifest_sha256": sha256_file(DEMO_SAN / "manifest.json"), "interp": "bilinear",
        "localization": {"threshold": localization, "rule": "max_f"},
        "detection": {"threshold": detection, "rule": "balanced_accuracy"},
        "source": {"protocol": "fixed"},
    }


@dataclass
class SceneVideo:
    path: Path
    fps: float
    frames: int
    duration: float
    audio: np.ndarray  # (n,) float32 at RATE, what was encoded
    boxes: list[tuple[int, int, int, int]]  # the bell's box per frame (x0, y0, x1, y1), end-exclusive
    segments: tuple = SEGMENTS


def bell_frames(n_frames: int, *, seed: int = 3) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """Frames of the moving bell (224 x 224) and its box in each."""
    rng = np.random.default_rng([seed, 0])
    background = synth._background(rng)
    synth._draw_distractors(background, rng)
    drum, bell = synth.get_class("drum"), synth.get_class("bell")
    synth._draw_object(background, drum, 130.0, 120.0, 80.0, 80.0, np.random.default_rng([seed, 1]))
    frames, boxes = [], []
    for k in range(n_frames):
        image = background.copy()
        x = 10.0 + 100.0 * k / max(1, n_frames - 1)  # left to right over the clip
        mask = synth._draw_object(image, bell, x, 12.0, 96.0, 96.0, np.random.default_rng([seed, 2]))
        ys, xs = np.nonzero(mask)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
        frames.append(np.rint(image).astype(np.uint8))
    return frames, boxes


def sound_track(segments=SEGMENTS, *, seed: int = 3) -> np.ndarray:
    """The bell's sound (a new clip per second, at a fixed loudness), silence and noise by segment."""
    bell = synth.get_class("bell")
    total = int(round(segments[-1][1] * RATE))
    track = np.zeros(total, np.float32)
    rng = np.random.default_rng([seed, 9])
    for start, end, kind in segments:
        a, b = int(round(start * RATE)), int(round(end * RATE))
        if kind == "sound":
            clips = []
            while sum(len(c) for c in clips) < b - a:
                clip = synth.synthesize_sound(bell, rng).astype(np.float64)
                clips.append(0.2 * clip / (np.sqrt(np.mean(clip**2)) + 1e-12))  # -14 dBFS RMS
            track[a:b] = np.concatenate(clips)[: b - a]
        elif kind == "noise":
            track[a:b] = 0.1 * rng.standard_normal(b - a)
    return np.clip(track, -1, 1).astype(np.float32)


def write_video(path: Path, frames, audio: np.ndarray | None, *, fps: float = 10.0, rate: int = RATE,
                audio_codec: str = "aac", channels: int = 1, times=None, rotation: int = 0,
                container_format: str | None = None) -> Path:
    """H.264 frames (at `times`, default k / fps) with an audio track ((n,) or (channels, n)) or none."""
    out = av.open(str(path), "w", format=container_format)
    stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)  # exact (variable) timestamps
    stream.options = {"preset": "ultrafast", "crf": "12"}
    if rotation:
        stream.set_display_rotation(rotation)
    astream = None
    if audio is not None:
        astream = out.add_stream(audio_codec, rate=rate)
        astream.layout = "mono" if channels == 1 else "stereo"
    times = times if times is not None else [k / fps for k in range(len(frames))]
    block = np.atleast_2d(np.asarray(audio, np.float32)) if audio is not None else None
    if block is not None and block.shape[0] != channels:
        block = np.repeat(block[:1], channels, axis=0)
    step, position = 1024, 0
    for k, (frame, t) in enumerate(zip(frames, times)):
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts, vf.time_base = int(round(t * 1000)), Fraction(1, 1000)
        for packet in stream.encode(vf):
            out.mux(packet)
        while astream is not None and position < block.shape[1] and position < (t + 0.2) * rate:
            part = np.ascontiguousarray(block[:, position:position + step])
            af = av.AudioFrame.from_ndarray(part, format="fltp", layout=astream.layout.name)
            af.sample_rate, af.pts, af.time_base = rate, position, Fraction(1, rate)
            for packet in astream.encode(af):
                out.mux(packet)
            position += part.shape[1]
    while astream is not None and position < block.shape[1]:
        part = np.ascontiguousarray(block[:, position:position + step])
        af = av.AudioFrame.from_ndarray(part, format="fltp", layout=astream.layout.name)
        af.sample_rate, af.pts, af.time_base = rate, position, Fraction(1, rate)
        for packet in astream.encode(af):
            out.mux(packet)
        position += part.shape[1]
    for packet in stream.encode(None):
        out.mux(packet)
    if astream is not None:
        for packet in astream.encode(None):
            out.mux(packet)
    out.close()
    return path


def make_scene_video(path: Path, *, fps: float = 10.0, segments=SEGMENTS, audio_codec: str = "aac",
                     container_format: str | None = None, seed: int = 3) -> SceneVideo:
    duration = segments[-1][1]
    n = int(round(duration * fps))
    frames, boxes = bell_frames(n, seed=seed)
    audio = sound_track(segments, seed=seed)
    write_video(path, frames, audio, fps=fps, audio_codec=audio_codec, container_format=container_format)
    return SceneVideo(path, fps, n, duration, audio, boxes, segments)


def read_timeline(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
