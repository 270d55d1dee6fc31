"""`vsslrt.pipeline.video`: a synthetic scene video end to end, and the bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from scenes import RATE, SEGMENTS, bell_frames, make_scene_video, read_timeline, sound_track, write_video

from vsslrt.data import video as V
from vsslrt.errors import DataError, InputError
from vsslrt.pipeline.stream import Hysteresis, Smoothing
from vsslrt.pipeline.video import localize_video

WINDOW = 1.0  # the demo front-end's window (s)


def _truth(t: float) -> bool | None:
    """Sounding for a frame whose whole window lies in one segment; None near a boundary."""
    for start, end, kind in SEGMENTS:
        if start + WINDOW / 2 <= t <= end - WINDOW / 2 or (start == 0 and t <= end - WINDOW / 2) \
                or (end == SEGMENTS[-1][1] and t >= start + WINDOW / 2):
            return kind == "sound"
    return None


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def scene_run(localizer, scene_video_pcm, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    seen = []
    report = localize_video(localizer, scene_video_pcm.path, out, fps=4, progress=lambda d, t: seen.append((d, t)))
    return report, scene_video_pcm, out, seen


def test_decisions_follow_the_segments_and_flip_within_a_window_of_each_boundary(scene_run):
    report, scene, out, _ = scene_run
    lines = read_timeline(report.timeline)
    assert len(lines) == 24 and [line["time"] for line in lines] == pytest.approx(
        [round(np.ceil(k * 2.5) / 10, 1) for k in range(24)])
    for line in lines:
        truth = _truth(line["time"])
        if truth is not None:
            assert line["decision"] == truth, line
    # Every sound/no-sound boundary is matched by a flip of the decision within one window of it.
    flips = [b["time"] for a, b in zip(lines, lines[1:]) if a["decision"] != b["decision"]]
    for boundary in (2.0, 4.0):  # silence and noise are both "not sounding": 3.0 is no flip
        assert any(abs(f - boundary) <= WINDOW for f in flips), (boundary, flips)
    assert len(flips) == 2
    summary = report.summary
    assert summary["frames"] == 24 and summary["segments"][0][0] == 0.0 and summary["segments"][-1][1] == 6.0
    assert len(summary["segments"]) == 2 and 0.55 < summary["sounding_fraction"] < 0.85
    assert summary["segments"] == summary["raw_segments"]  # no smoothing, no hysteresis: the raw decision
    assert summary["source"]["frames"] == 60 and summary["truncated"] is None


def test_boxes_follow_the_moving_object(scene_run):
    report, scene, _, _ = scene_run
    lines = [line for line in read_timeline(report.timeline) if line["decision"]]
    centres = [(b[0][0] + b[0][2]) / 2 for b in (line["boxes"] for line in lines)]
    truth = [(scene.boxes[line["frame"]][0] + scene.boxes[line["frame"]][2]) / 2 for line in lines]
    assert np.corrcoef(centres, truth)[0, 1] > 0.9  # moves with the bell, left to right
    for line in lines:
        assert _iou(line["boxes"][0], scene.boxes[line["frame"]]) > 0.2, line
        assert line["boxes"][0][0] < 140  # never on the drum, which sits at x >= 130 and makes no sound


def test_output_decodes_with_the_source_frames_duration_and_audio(scene_run):
    report, scene, out, seen = scene_run
    assert sorted(p.name for p in out.iterdir()) == ["scene.mp4", "scene.summary.json", "scene.timeline.jsonl"]
    info = V.probe(report.video)
    assert info.codec == "h264" and info.audio.codec == "aac" and (info.width, info.height) == (224, 224)
    frames = list(V.iter_frames(report.video))
    assert len(frames) == scene.frames == 60
    assert [f.time for f in frames] == pytest.approx([k / 10 for k in range(60)], abs=1e-3)
    assert info.duration == pytest.approx(scene.duration, abs=0.11)
    decoded, rate, _ = V.read_audio_track(report.video, channels="first")
    assert rate == RATE
    decoded = decoded[: scene.audio.size]
    assert decoded.size == scene.audio.size
    # AAC criterion: the waveform matches (correlation) and the coding error is 20 dB below the signal.
    assert np.corrcoef(decoded, scene.audio)[0, 1] > 0.99
    snr = 10 * np.log10(np.sum(scene.audio.astype(np.float64) ** 2) / np.sum((decoded - scene.audio) ** 2))
    assert snr > 20, snr
    # Overlays are drawn: a silent frame is tinted (jet(0) at alpha 0.5), a sounding one is coloured red.
    assert frames[25].rgb[..., 2].mean() > frames[25].rgb[..., 0].mean() + 20  # 2.5 s: silence, blue tint
    assert seen and seen[-1][0] == pytest.approx(5.9) and seen[-1][1] == pytest.approx(6.0, abs=0.11)


def test_smoothing_and_hysteresis_keep_raw_fields_and_steady_the_decision(localizer, scene_video, tmp_path):
    band = Hysteresis.from_calibration(localizer.calibration, 0.1)
    report = localize_video(localizer, scene_video.path, tmp_path, fps=4, smoothing=Smoothing(0.3), hysteresis=band)
    lines = read_timeline(report.timeline)
    plain = localize_video(localizer, scene_video.path, tmp_path / "plain", fps=4)
    raw = read_timeline(plain.timeline)
    assert [l["score"] for l in lines] == pytest.approx([l["score"] for l in raw], abs=1e-6)
    assert [l["sounding"] for l in lines] == [l["sounding"] for l in raw]
    thresholds = {round(l["threshold"], 9) for l in lines[1:]}
    assert thresholds <= {round(band.enter, 9), round(band.leave, 9)} and lines[0]["threshold"] == lines[0]["detection_threshold"]
    flips = sum(a["decision"] != b["decision"] for a, b in zip(lines, lines[1:]))
    assert flips <= sum(a["sounding"] != b["sounding"] for a, b in zip(raw, raw[1:]))
    assert report.summary["hysteresis"] == {"enter": band.enter, "leave": band.leave}


def test_a_silent_video_needs_audio_and_audio_replaces_the_track(localizer, tmp_path):
    import soundfile

    frames, _ = bell_frames(20)
    silent = write_video(tmp_path / "silent.mp4", frames, None, fps=10)
    with pytest.raises(InputError, match=r"silent.mp4: expected a video with an audio track, got none"):
        localize_video(localizer, silent, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    wav = tmp_path / "sound.wav"
    soundfile.write(wav, sound_track()[: 2 * RATE], RATE)
    report = localize_video(localizer, silent, tmp_path / "out", audio=wav, fps=2)
    assert report.summary["frames"] == 4 and all(l["decision"] for l in read_timeline(report.timeline))
    assert V.probe(report.video).audio is not None


def test_bad_containers_are_one_line_errors_and_leave_no_file(localizer, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match="notes.txt: expected a video file in a container FFmpeg reads"):
        localize_video(localizer, text, tmp_path / "out")
    with pytest.raises(InputError, match="no such file"):
        localize_video(localizer, tmp_path / "missing.mp4", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_run_leaves_no_half_written_output(localizer, scene_video, tmp_path):
    def stop(done, total):
        if done > 2.0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        localize_video(localizer, scene_video.path, tmp_path, fps=4, progress=stop)
    assert list(tmp_path.iterdir()) == []



def test_an_encoder_failure_on_the_encoder_thread_reaches_the_caller_and_leaves_no_output(
        localizer, scene_video, tmp_path, monkeypatch):
    """The blending and encoding run on a worker thread: a disk-full error there is raised in the
    caller (as the same OSError), the frames after it are not encoded, and nothing is left behind."""
    import errno

    written = []
    original = V.VideoWriter.write_yuv420

    def full_disk(self, y, u, v, time, *, tags=None):
        if len(written) == 30:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(time)
        original(self, y, u, v, time, tags=tags)

    monkeypatch.setattr(V.VideoWriter, "write_yuv420", full_disk)
    with pytest.raises(OSError) as caught:
        localize_video(localizer, scene_video.path, tmp_path / "out", fps=4)
    assert caught.value.errno == errno.ENOSPC
    assert len(written) == 30  # nothing encoded after the failure
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []

def test_a_truncated_file_keeps_valid_outputs_for_what_was_decoded(localizer, tmp_path):
    scene = make_scene_video(tmp_path / "full.mkv", container_format="matroska")
    data = scene.path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(V.TruncatedMediaError, match=r"cut.mkv: expected a complete video, got one that stops at") as info:
        localize_video(localizer, cut, tmp_path / "out", fps=4)
    reached = info.value.reached
    assert 1.0 < reached < 5.5
    out = tmp_path / "out"
    frames = list(V.iter_frames(out / "cut.mp4"))  # a valid file
    assert frames and frames[-1].time == pytest.approx(reached, abs=0.2)
    summary = __import__("json").loads((out / "cut.summary.json").read_text())
    assert summary["truncated"]["reached"] == pytest.approx(reached)
    assert read_timeline(out / "cut.timeline.jsonl")[-1]["time"] <= reached + 1e-6


def test_rotation_vfr_48k_stereo_and_a_rate_above_the_source(localizer, tmp_path):
    from scipy.signal import resample_poly

    frames, _ = bell_frames(16)
    times = list(np.cumsum([0.0] + [0.1, 0.3] * 7 + [0.1]))  # VFR, 3.2 s
    audio = resample_poly(sound_track()[: int(3.4 * RATE)], 3, 1).astype(np.float32)
    path = write_video(tmp_path / "phone.mp4", frames, np.stack([audio, audio]), fps=5, rate=48_000, channels=2,
                       times=times, rotation=90)
    report = localize_video(localizer, path, tmp_path / "out", fps=30)
    summary = report.summary
    assert summary["source"]["rotation"] == 90 and summary["source"]["variable_frame_rate"]
    assert summary["every_frame"] and summary["frames"] == 16  # fps above the source: every frame
    info = V.probe(report.video)
    assert info.rotation == 0 and (info.width, info.height) == (224, 224)
    out_frames = list(V.iter_frames(report.video))
    assert [f.time for f in out_frames] == pytest.approx(times, abs=2e-3)  # timestamps kept
    assert info.audio.sample_rate == 48_000 and info.audio.channels == 2
    lines = read_timeline(report.timeline)
    assert all(l["decision"] for l in lines if l["time"] < 1.5)  # the bell's sound, resampled from 48 kHz
