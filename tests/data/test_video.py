"""`vsslrt.data.video`: probing, frames at a sampling rate (rotation, VFR), the audio track, writing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from scenes import write_video  # noqa: E402  (the video writer of the pipeline tests)

from vsslrt.data import video as V  # noqa: E402
from vsslrt.errors import DataError, InputError  # noqa: E402


def _frames(n: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Frames with a bright marker in the top-left corner and the frame number in the red channel."""
    out = []
    for k in range(n):
        f = np.full((height, width, 3), 40, np.uint8)
        f[..., 0] = 5 * k
        f[:8, :8] = 250
        out.append(f)
    return out


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([left, 0.5 * left][:channels]).astype(np.float32)


def test_probe_reads_size_rate_duration_and_audio(tmp_path):
    path = write_video(tmp_path / "a.mp4", _frames(20), _tone(2.0, 48_000, 2), fps=10, rate=48_000, channels=2)
    info = V.probe(path)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.fps == pytest.approx(10.0) and info.frame_count == 20 and not info.variable_frame_rate
    assert info.duration == pytest.approx(2.0, abs=0.11)
    assert info.audio.sample_rate == 48_000 and info.audio.channels == 2 and info.audio.codec == "aac"


def test_frames_are_sampled_by_timestamp_and_every_frame_is_kept_above_the_source_rate(tmp_path):
    path = write_video(tmp_path / "a.mp4", _frames(30), None, fps=10)
    frames = list(V.iter_frames(path, fps=4))
    times = [f.time for f in frames]
    # Ticks at 0, 0.25, 0.5, ...: the first frame at or after each one.
    assert times == pytest.approx([0.0, 0.3, 0.5, 0.8, 1.0, 1.3, 1.5, 1.8, 2.0, 2.3, 2.5, 2.8])
    assert [round(int(f.rgb[20, 20, 0]) / 5) for f in frames] == [f.index for f in frames]  # the right pixels
    assert len(list(V.iter_frames(path, fps=25))) == 30
    every = list(V.iter_frames(path, fps=4, every_frame=True))
    assert len(every) == 30 and [f.index for f in every if f.sampled] == [f.index for f in frames]


def test_frame_sampler_never_drifts_nor_bursts():
    sampler = V.FrameSampler(2.0)
    times = np.arange(0, 60, 1 / 29.97)
    taken = [t for t in times if sampler.take(t)]
    assert len(taken) == 120 and np.all(np.diff(taken) < 0.5 + 1 / 29.97)
    late = V.FrameSampler(4.0)
    assert [late.take(t) for t in (0.0, 1.0, 1.01, 1.26)] == [True, True, False, True]  # a gap counts once
    with pytest.raises(InputError, match="--fps"):
        V.FrameSampler(0)


def test_variable_frame_rate_is_reported_and_sampled_evenly_in_time(tmp_path):
    times = list(np.cumsum([0.0] + [0.04, 0.12] * 15))  # alternating 25 fps and 8.3 fps intervals
    path = write_video(tmp_path / "vfr.mkv", _frames(len(times)), None, fps=12.5, times=times)
    info = V.probe(path)
    assert info.variable_frame_rate
    frames = list(V.iter_frames(path, fps=2))
    got = [f.time for f in frames]
    assert got == pytest.approx([times[0]] + [min(t for t in times if t >= k / 2 - 1e-9) for k in range(1, len(got))],
                                abs=1e-3)
    assert len(got) == int(times[-1] * 2) + 1


def test_rotation_flag_gives_upright_frames(tmp_path):
    path = write_video(tmp_path / "r.mp4", _frames(5), None, fps=10, rotation=90)
    info = V.probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)
    frame = next(V.iter_frames(path))
    assert frame.rgb.shape == (64, 48, 3)
    # 90 degrees counter-clockwise: the stored top-left corner is shown bottom-left.
    assert frame.rgb[-4, 3].min() > 200 and frame.rgb[3, 3].max() < 120
    raw = next(V.iter_frames(path, rotate=False))
    np.testing.assert_array_equal(frame.rgb, np.rot90(raw.rgb))


def test_audio_track_is_reduced_and_resampled_once_like_scipy(tmp_path):
    from scipy.signal import resample_poly

    tone = _tone(2.0, 48_000, 2)
    path = write_video(tmp_path / "s.mkv", _frames(20), tone, fps=10, rate=48_000, channels=2,
                       audio_codec="pcm_s16le")
    mono, rate, start = V.read_audio_track(path, rate=16_000, channels="mean")
    assert rate == 16_000 and start == 0.0 and mono.shape == (32_000,)
    expected = resample_poly(tone.mean(axis=0).astype(np.float64), 1, 3)
    inner = slice(200, -200)  # the two filters differ at the edges only
    assert np.max(np.abs(mono[inner] - expected[inner])) < 2e-3
    first, _, _ = V.read_audio_track(path, channels="first")
    np.testing.assert_allclose(first, tone[0], atol=1 / 32768)


def test_chunked_resampling_equals_one_pass():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(44_100).astype(np.float32) * 0.1
    whole = V.ChunkResampler(44_100, 16_000)
    once = np.concatenate([whole.push(x), whole.flush()])
    parts = V.ChunkResampler(44_100, 16_000)
    pieces = [parts.push(x[i:i + 1000]) for i in range(0, len(x), 1000)] + [parts.flush()]
    np.testing.assert_allclose(np.concatenate(pieces), once, atol=1e-6)
    assert abs(len(once) - 16_000) <= 1
    same = V.ChunkResampler(16_000, 16_000)
    np.testing.assert_array_equal(same.push(x[:100]), x[:100])


def test_truncated_file_yields_what_it_has_then_says_how_far_it_got(tmp_path):
    path = write_video(tmp_path / "t.mkv", _frames(50, 96, 128), _tone(5.0, 16_000), fps=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(V.TruncatedMediaError) as info:
        for frame in V.iter_frames(cut):
            got.append(frame.time)
    assert 0.5 < info.value.reached < 4.5 and info.value.expected == pytest.approx(5.0, abs=0.11)
    assert got and got[-1] <= info.value.reached
    assert "truncated" in str(info.value) or "decoding error" in str(info.value)


def test_bad_inputs_are_one_line_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    with pytest.raises(DataError, match=r"notes.txt: expected a video file in a container FFmpeg reads"):
        V.probe(text)
    import soundfile

    wav = tmp_path / "clip.wav"
    soundfile.write(wav, np.zeros(1600), 16_000)
    with pytest.raises(DataError, match=r"clip.wav: expected a video stream, got audio"):
        V.probe(wav)
    silent = write_video(tmp_path / "silent.mp4", _frames(5), None, fps=10)
    assert V.probe(silent).audio is None
    with pytest.raises(DataError, match="expected an audio track, got none"):
        next(V.iter_audio(silent))
    with pytest.raises(InputError, match="no such file"):
        V.probe(tmp_path / "missing.mp4")


def test_writer_round_trip_keeps_frames_timestamps_and_audio(tmp_path):
    tone = _tone(2.0, 44_100, 2)
    out = tmp_path / "w.mp4"
    writer = V.VideoWriter(out, width=64, height=48, fps=10, audio_rate=44_100, audio_channels=2)
    times = [0.0, 0.04, 0.2, 0.5, 0.53, 1.0, 1.5, 1.9]  # variable frame rate, off the 1 / fps grid
    for k, t in enumerate(times):
        writer.write_frame(np.full((48, 64, 3), 30 * k, np.uint8), t)
        writer.write_audio(tone[:, int(t * 44_100):int((times[k + 1] if k + 1 < len(times) else 2.0) * 44_100)])
    writer.close()
    frames = list(V.iter_frames(out))
    assert [f.time for f in frames] == pytest.approx(times, abs=1e-3)
    assert [int(np.median(f.rgb)) for f in frames] == pytest.approx([30 * k for k in range(8)], abs=3)
    decoded = np.concatenate([c.samples for c in V.iter_audio(out)], axis=1)[:, : tone.shape[1]]
    assert decoded.shape == tone.shape
    snr = 10 * np.log10(np.sum(tone**2) / np.sum((decoded - tone) ** 2))
    assert snr > 30  # AAC at 192 kb/s on a pure tone


def test_module_imports_without_pyav():
    spec = importlib.util.find_spec("vsslrt.data.video")
    assert spec is not None
    import subprocess

    code = ("import sys; sys.modules['av'] = None; import vsslrt.data.video as v; "
            "from vsslrt.errors import BackendUnavailableError\n"
            "try:\n    v.probe('x.mp4')\nexcept BackendUnavailableError as e:\n    print(e.one_line())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "video" in result.stdout and "av" in result.stdout


def test_decoded_frames_convert_on_demand_to_the_iter_frames_pixels(tmp_path):
    path = write_video(tmp_path / "r.mp4", _frames(12), None, fps=10, rotation=90)
    frames = list(V.iter_frames(path, fps=4, every_frame=True))
    decoded = list(V.iter_decoded(path, fps=4))
    assert [(d.index, d.time, d.sampled) for d in decoded] == [(f.index, f.time, f.sampled) for f in frames]
    with av.open(str(path)) as container:  # the plain PyAV conversion, rotated
        plain = [np.rot90(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    for d, f, p in zip(decoded, frames, plain):
        np.testing.assert_array_equal(d.rgb(), f.rgb)
        np.testing.assert_array_equal(d.rgb(), p)
        planes = d.yuv420()  # upright too: the planes turn with the frame
        assert planes.y.shape == (64, 48) and planes.u.shape == planes.v.shape == (32, 24)
        assert planes.matrix == "bt601" and not planes.full_range


def test_yuv_planes_are_written_as_they_are_with_their_colour_tags(tmp_path):
    rng = np.random.default_rng(0)
    planes = [(rng.integers(16, 236, (48, 64)), rng.integers(16, 241, (24, 32)), rng.integers(16, 241, (24, 32)))
              for _ in range(5)]
    out = tmp_path / "yuv.mp4"
    writer = V.VideoWriter(out, width=64, height=48, fps=10, crf=0, preset="ultrafast", tune="zerolatency")
    bt709 = (1, 1, 1, 1)  # colorspace, range (limited), primaries, transfer: BT.709
    for k, (y, u, v) in enumerate(planes):
        writer.write_yuv420(y.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8), k / 10, tags=bt709)
    writer.close()
    decoded = list(V.iter_decoded(out))
    assert [d.time for d in decoded] == pytest.approx([k / 10 for k in range(5)], abs=1e-3)
    for d, expected in zip(decoded, planes):
        got = d.yuv420()
        for plane, want in zip((got.y, got.u, got.v), expected):
            np.testing.assert_array_equal(plane, want)  # crf 0: lossless, no conversion on the way
        assert got.tags == bt709 and got.matrix == "bt709"
