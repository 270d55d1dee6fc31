"""`vsslrt.pipeline.stream`: windows and their edge policy, parity with `Localizer.localize`, smoothing
and hysteresis against a hand-computed oracle, bounded memory, chunked audio at any rate."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from scenes import DETECTION, RATE, bell_frames, sound_track

from vsslrt.data.frontends import get_frontend
from vsslrt.errors import InputError
from vsslrt.pipeline.stream import Hysteresis, Smoothing, StreamSession, Summary, segments


class ScriptedLocalizer:
    """A stand-in Localizer whose score for a frame is its red channel / 1000 (no engine)."""

    def __init__(self, detection: float = 0.1, frontend: str = "demo"):
        self.calibration = SimpleNamespace(detection_threshold=detection, localization_threshold=detection,
                                           protocol="fixed", interp="bilinear")
        self.spec = get_frontend(frontend)
        self.gate, self.map_size = True, "224"
        self.batches: list[int] = []
        self.signals: list[np.ndarray] = []

    def run_prepared(self, prepared):
        from vsslrt.pipeline.localize import LocalizationResult

        self.batches.append(len(prepared))
        out = []
        for p in prepared:
            self.signals.append(p.audio_row)
            score = float(p.rgb[0, 0, 0]) / 1000
            raw = np.full((2, 2), score, np.float32)
            sounding = score > self.calibration.detection_threshold
            mask = np.full((224, 224), sounding)
            out.append(LocalizationResult(name=p.pair.name, image=Path("-"), audio=Path("-"), image_size=(8, 8),
                                          raw_map=raw, map=np.full((224, 224), score, np.float32), mask=mask,
                                          score=score, sounding=sounding, detection_threshold=0.1,
                                          localization_threshold=0.1, boxes=[], timing_ms={}, rgb=p.rgb))
        return out


def _frame(value: int) -> np.ndarray:
    f = np.zeros((8, 8, 3), np.uint8)
    f[..., 0] = value
    return f


def _feed(session, scores, fps, audio_seconds, rate=RATE):
    """Frames with the given scores at `fps`, audio in 0.25 s chunks pushed alongside."""
    out = []
    chunk = int(0.25 * rate)
    total = int(audio_seconds * rate)
    pushed = 0
    for k, score in enumerate(scores):
        t = k / fps
        while pushed < total and pushed / rate < t + 1.0:
            session.push_audio(np.zeros(min(chunk, total - pushed), np.float32), rate)
            pushed += chunk
        session.push_frame(_frame(int(round(score * 1000))), t)
        out += session.poll()
    while pushed < total:
        session.push_audio(np.zeros(min(chunk, total - pushed), np.float32), rate)
        pushed += chunk
        out += session.poll()
    return out + session.finish()


def test_smoothing_and_hysteresis_match_a_hand_computed_oracle():
    scores = [0.05, 0.12, 0.09, 0.13, 0.095, 0.104, 0.2, 0.099, 0.091, 0.05, 0.111, 0.12]
    loc = ScriptedLocalizer(detection=0.1)
    raw = _feed(StreamSession(loc, fps=4), scores, 4, 4.0)
    assert [r.score for r in raw] == pytest.approx(scores)
    assert [r.decision for r in raw] == [s > 0.1 for s in scores] == [r.sounding for r in raw]

    band = Hysteresis(enter=0.11, leave=0.09)
    stable = _feed(StreamSession(ScriptedLocalizer(0.1), fps=4, hysteresis=band), scores, 4, 4.0)
    state, want = None, []
    for s in scores:  # the first frame is decided against the detection threshold itself
        state = s > (0.1 if state is None else 0.09 if state else 0.11)
        want.append(state)
    assert [r.decision for r in stable] == want
    assert [r.threshold for r in stable][:3] == [0.1, 0.11, 0.09]
    assert [r.sounding for r in stable] == [s > 0.1 for s in scores]  # raw fields untouched

    tau = 0.5
    smooth = _feed(StreamSession(ScriptedLocalizer(0.1), fps=4, smoothing=Smoothing(tau)), scores, 4, 4.0)
    ema, expected = None, []
    for k, s in enumerate(scores):
        ema = s if ema is None else ema + (1 - math.exp(-0.25 / tau)) * (s - ema)
        expected.append(ema)
    assert [r.smoothed_score for r in smooth] == pytest.approx(expected)
    assert [r.decision for r in smooth] == [e > 0.1 for e in expected]
    assert all(not r.decision and not r.mask.any() for r in smooth if not r.decision)

    cal = SimpleNamespace(detection_threshold=0.2)
    derived = Hysteresis.from_calibration(cal, 0.1)
    assert (derived.enter, derived.leave) == (pytest.approx(0.22), pytest.approx(0.18))
    with pytest.raises(InputError, match="--smooth"):
        Smoothing(0)
    with pytest.raises(InputError, match="enter >= leave"):
        Hysteresis(0.1, 0.2)


def test_windows_edge_policy_centre_and_trailing():
    loc = ScriptedLocalizer()
    session = StreamSession(loc, fps=None, batch_size=1)
    session.push_audio(np.zeros(int(5.0 * RATE), np.float32), RATE)
    for t in (0.0, 0.2, 2.0, 4.8, 6.0):
        session.push_frame(_frame(1), t)
    got = session.poll() + session.finish()
    # Start and end: shifted inside the track; inside: centred; after the end: partly silence.
    assert [r.window for r in got] == [pytest.approx(w) for w in ((0, 1), (0, 1), (1.5, 2.5), (4, 5), (5.5, 6.5))]

    trailing = StreamSession(ScriptedLocalizer(), fps=None, alignment="trailing", batch_size=1)
    trailing.push_audio(np.zeros(int(3.0 * RATE), np.float32), RATE)
    trailing.push_frame(_frame(1), 0.3)
    trailing.push_frame(_frame(1), 2.0)
    assert [r.window for r in trailing.poll()] == [pytest.approx((0, 1)), pytest.approx((1, 2))]

    short = StreamSession(ScriptedLocalizer(), fps=None)
    short.push_audio(np.zeros(int(0.4 * RATE), np.float32), RATE)
    short.push_frame(_frame(1), 0.1)
    assert short.poll() == [] and short.ready() == 0  # a 1 s window cannot be complete yet
    (only,) = short.finish()
    assert only.window == pytest.approx((0.0, 0.4))  # the whole track, placed by the front-end


def test_a_frame_waits_for_its_audio_and_latency_counts_from_readiness():
    session = StreamSession(ScriptedLocalizer(), fps=None)
    session.push_audio(np.zeros(RATE, np.float32), RATE)
    session.push_frame(_frame(1), 0.9)
    assert session.poll() == [] and session.audio_needed_until() == pytest.approx(1.4)
    session.push_audio(np.zeros(int(0.5 * RATE), np.float32), RATE)
    (result,) = session.poll()
    assert result.window == pytest.approx((0.4, 1.4)) and 0 <= result.latency_ms < 1000


def test_results_equal_localize_on_the_same_frame_and_window(localizer, tmp_path):
    """The session's batched path gives exactly what `Localizer.localize` gives for a PNG and a wav."""
    import soundfile
    from PIL import Image

    frames, _ = bell_frames(8)
    track = sound_track()
    session = StreamSession(localizer, fps=None, batch_size=8, buffer_seconds=10.0)
    session.push_audio(track, RATE)  # the whole track ahead of the frames: a buffer to hold it
    for k, frame in enumerate(frames):
        session.push_frame(frame, 0.625 * k)
    results = session.poll(min_batch=8) + session.finish()
    assert len(results) == 8 and localizer.encoders is not None
    for k in (0, 3, 7):
        r = results[k]
        a, b = (int(round(x * RATE)) for x in r.window)
        Image.fromarray(frames[k]).save(tmp_path / "f.png")
        soundfile.write(tmp_path / "w.wav", track[a:b], RATE, subtype="FLOAT")
        single = localizer.localize(tmp_path / "f.png", tmp_path / "w.wav")
        assert r.score == pytest.approx(single.score, abs=1e-6)
        np.testing.assert_allclose(r.result.raw_map, single.raw_map, atol=1e-6)
        assert r.sounding == single.sounding and [b.to_json() for b in r.boxes] == [b.to_json() for b in single.boxes]
    assert results[1].sounding and not results[4].sounding  # 0.625 s: the bell; 2.5 s: silence


def test_audio_at_48k_stereo_in_small_chunks_gives_the_16k_results(localizer):
    from scipy.signal import resample_poly

    frames, _ = bell_frames(6)
    track = sound_track()
    stereo = np.stack([resample_poly(track, 3, 1), resample_poly(track, 3, 1)]).astype(np.float32)
    times = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]

    def run(audio, rate, step):
        session = StreamSession(localizer, fps=None, buffer_seconds=10.0)
        for i in range(0, audio.shape[-1], step):
            session.push_audio(audio[..., i:i + step], rate)
        for frame, t in zip(frames, times):
            session.push_frame(frame, t)
        return session.poll() + session.finish()

    ref = run(track, RATE, RATE)
    got = run(stereo, 48_000, 4801)
    assert [r.sounding for r in got] == [r.sounding for r in ref] == [True, True, False, False, True, True]
    assert [r.score for r in got] == pytest.approx([r.score for r in ref], abs=0.01)


def test_memory_stays_bounded_and_a_stalled_source_drops_old_frames():
    loc = ScriptedLocalizer()
    session = StreamSession(loc, fps=2, batch_size=4)
    capacity = session._ring.capacity
    frame = _frame(150)
    for second in range(600):  # ten minutes at 30 fps, audio in 0.1 s chunks
        for j in range(10):
            session.push_audio(np.zeros(RATE // 10, np.float32), RATE)
        for j in range(30):
            session.push_frame(frame, second + j / 30)
        session.poll()
        assert session.pending <= 4 and session._ring.capacity == capacity
    assert session.dropped == 0 and max(loc.batches) <= 4 and sum(loc.batches) >= 1190

    stalled = StreamSession(ScriptedLocalizer(), fps=2, max_pending=10)
    for k in range(100):
        stalled.push_frame(frame, k / 2)  # no audio at all
    assert stalled.pending == 10 and stalled.dropped == 90


def test_chunk_timestamps_fill_gaps_with_silence_and_drop_overlaps():
    session = StreamSession(ScriptedLocalizer(), fps=None)
    session.push_audio(np.ones(RATE, np.float32), RATE, time=10.0)
    session.push_audio(np.ones(RATE // 2, np.float32), RATE, time=11.5)  # 0.5 s gap
    session.push_audio(np.ones(RATE, np.float32), RATE, time=11.75)  # 0.25 s overlap
    assert session.audio_end == pytest.approx(12.75)
    ring = session._ring.read(0, session._ring.end)
    assert ring[:RATE].min() == 1 and ring[RATE:RATE + RATE // 2].max() == 0 and ring[-RATE:].min() == 1


def test_summary_segments_and_bad_arguments():
    assert segments([0, 1, 2, 3, 4], [False, True, True, False, True], end=5) == [[1, 3], [4, 5]]
    assert Summary().to_json()["frames"] == 0
    with pytest.raises(InputError, match="alignment"):
        StreamSession(ScriptedLocalizer(), alignment="left")
    session = StreamSession(ScriptedLocalizer())
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        session.push_frame(np.zeros((4, 4), np.float32), 0.0)
    session.push_audio(np.zeros(10), RATE)
    with pytest.raises(InputError, match="every audio chunk at 16000 Hz"):
        session.push_audio(np.zeros(10), 8000)
    assert DETECTION > 0
