"""`vsslrt.data.prepare.vggss`: the frame and the 10 s of audio of each clip, exactly; bad inputs in
the report; resume; prepare.json; the prepared folder into `vsslrt bench`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_media import read_index, seconds_heard, tone, tone_changes, tone_frequency, write_clip  # noqa: E402

from vsslrt.data import load_dataset  # noqa: E402
from vsslrt.data.prepare import MediaSettings, prepare_vggss, read_prepare_record  # noqa: E402
from vsslrt.errors import DataError, InputError  # noqa: E402

RATE = 16_000


def _annotations(path: Path, clips: list[tuple[str, str]]) -> Path:
    records = [{"file": clip, "bbox": [[0.1, 0.2, 0.6, 0.9]], "class": cls} for clip, cls in clips]
    path.write_text(json.dumps(records))
    return path


def _frame_index(out: Path, clip: str) -> int:
    return read_index(np.asarray(Image.open(out / "frames" / f"{clip}.jpg").convert("RGB")))


def _wav(out: Path, clip: str) -> np.ndarray:
    x, rate = soundfile.read(out / "audio" / f"{clip}.wav", dtype="float32")
    assert rate == RATE and x.ndim == 1
    return x


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    write_clip(folder / "AAAAAAAAAAA_000030.mp4", rate=44_100, channels=2)                   # a VGGSound clip
    write_clip(folder / "BBBBBBBBBBB.mkv", seconds=42, rate=16_000, codec="pcm_s16le")       # the whole video
    write_clip(folder / "CCCCCCCCCCC_000000.mkv", rate=48_000, channels=6, codec="pcm_s16le")  # 5.1
    (folder / "sub").mkdir()
    write_clip(folder / "sub" / "DDDDDDDDDDD_7.mp4", seconds=6.0)                          # short, in a sub-folder
    return folder


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("vggss")
    ann = _annotations(root / "vggss.json", [("AAAAAAAAAAA_000030", "drum"), ("BBBBBBBBBBB_000030", "bell"),
                                              ("CCCCCCCCCCC_000000", "drum"), ("DDDDDDDDDDD_000007", "bell")])
    report = prepare_vggss(videos, ann, root / "data", media=MediaSettings(resampler="scipy"))
    return root / "data", report, ann


def test_frame_is_the_middle_of_the_clip_and_audio_its_ten_seconds(prepared):
    out, report, _ = prepared
    assert sorted(report.prepared) == ["AAAAAAAAAAA_000030", "BBBBBBBBBBB_000030", "CCCCCCCCCCC_000000",
                                       "DDDDDDDDDDD_000007"]
    # 25 fps: the frame at 5.0 s of the clip is frame 125; in the whole video, 35.0 s is frame 875.
    assert _frame_index(out, "AAAAAAAAAAA_000030") == 125
    assert _frame_index(out, "BBBBBBBBBBB_000030") == 875
    # The whole video, 16 kHz PCM: the written samples are exactly the source's seconds 30-40.
    whole = _wav(out, "BBBBBBBBBBB_000030")
    np.testing.assert_allclose(whole, tone(42, RATE)[30 * RATE:40 * RATE], atol=1.5 / 32767)
    # 48 kHz 5.1: the mean of the channels, resampled once (scipy here): the source's 10 s exactly.
    from scipy.signal import resample_poly

    five = _wav(out, "CCCCCCCCCCC_000000")
    expected = resample_poly(np.round(tone(10, 48_000) * 32767) / 32768, 1, 3)
    assert five.shape == (10 * RATE,)
    np.testing.assert_allclose(five, expected, atol=2e-3)


def test_aac_stereo_clip_holds_the_seconds_it_was_recorded_in(prepared):
    out, _, _ = prepared
    x = _wav(out, "AAAAAAAAAAA_000030")
    assert x.shape == (10 * RATE,)
    assert seconds_heard(x, RATE) == list(tone_frequency(np.arange(10)))  # the file is the clip: seconds 0-9
    changes = np.array(tone_changes(x, RATE, [k * RATE for k in range(1, 10)]))
    assert np.all(np.abs(changes - np.arange(1, 10) * RATE) <= 10)  # within a millisecond of each second


def test_short_clip_is_prepared_with_a_note(prepared):
    out, report, _ = prepared
    x = _wav(out, "DDDDDDDDDDD_000007")
    assert abs(len(x) - 6 * RATE) <= 1024  # 6 s (and AAC's last frame), as is: the front-ends tile short clips
    notes = [n for c, n in report.notes if c == "DDDDDDDDDDD_000007"]
    assert notes and notes[0].startswith("short audio: 6.0") and "of the 10 s window" in notes[0]


def test_folder_loads_as_vggss_and_records_how_it_was_made(prepared):
    out, report, ann = prepared
    ds = load_dataset("vggss", out)
    assert len(ds) == 4 and ds.class_clips is not None
    assert json.loads((out / "vggss_class_files_dict.json").read_text()) == {
        "drum": ["AAAAAAAAAAA_000030", "CCCCCCCCCCC_000000"], "bell": ["BBBBBBBBBBB_000030", "DDDDDDDDDDD_000007"]}
    doc = json.loads((out / "prepare.json").read_text())
    assert doc["settings"]["frame_time"] == 5.0 and doc["settings"]["audio_window"] == [0.0, 10.0]
    assert doc["settings"]["resampler"] == "scipy" and doc["settings"]["sample_rate"] == RATE
    assert doc["inputs"]["annotations"]["sha256"]
    clip = doc["clips"]["BBBBBBBBBBB_000030"]
    assert clip["source"] == "BBBBBBBBBBB.mkv" and clip["offset"] == 30.0
    assert clip["outputs"][0]["frame_time"] == pytest.approx(5.0)
    assert set(clip["fingerprint"]) == {"size", "mtime_ns", "sha256_first_mib"}
    compact = read_prepare_record(out)
    assert "clips" not in compact and compact["n_clips"] == 4 and len(compact["clips_sha256"]) == 64
    assert compact["tool"]["vsslrt"] and compact["settings"] == doc["settings"]
    assert read_prepare_record(out.parent) is None
    assert report.to_dict()["counts"]["coverage"] == 1.0


def test_bad_inputs_are_listed_with_their_reasons(tmp_path, videos):
    folder = tmp_path / "v"
    folder.mkdir()
    write_clip(folder / "EEEEEEEEEEE_000000.mp4", rate=None)                         # no audio
    write_clip(folder / "FFFFFFFFFFF.mp4", seconds=8.0)                             # start 30 s past its end
    (folder / "GGGGGGGGGGG_000000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 300)  # corrupt
    write_clip(folder / "HHHHHHHHHHH_000000.mp4", seconds=3.0)                       # no frame at 5 s
    times = list(np.cumsum([0.0] + [0.04, 0.3] * 20))                                 # variable frame rate
    write_clip(folder / "IIIIIIIIIII_000000.mkv", times=times, fps=6)
    write_clip(folder / "JJJJJJJJJJJ_000000.mp4")                                    # duplicate ids
    write_clip(folder / "JJJJJJJJJJJ_0.mkv")
    clips = [("EEEEEEEEEEE_000000", "a"), ("FFFFFFFFFFF_000030", "a"), ("GGGGGGGGGGG_000000", "a"),
             ("HHHHHHHHHHH_000000", "b"), ("IIIIIIIIIII_000000", "b"), ("JJJJJJJJJJJ_000000", "b"),
             ("KKKKKKKKKKK_000000", "b")]                                               # no video at all
    report = prepare_vggss(folder, _annotations(tmp_path / "a.json", clips), tmp_path / "out")
    reasons = {clip: reason for clip, _, reason in report.failed}
    assert "no audio track" in reasons["EEEEEEEEEEE_000000"]
    assert "starts at 30 s, past the video's end (8.00 s)" in reasons["FFFFFFFFFFF_000030"]
    assert "FFmpeg" in reasons["GGGGGGGGGGG_000000"] or "container" in reasons["GGGGGGGGGGG_000000"]
    assert "no frame at 5.00 s" in reasons["HHHHHHHHHHH_000000"]
    assert report.missing == ["KKKKKKKKKKK_000000"]
    assert sorted(report.prepared) == ["IIIIIIIIIII_000000", "JJJJJJJJJJJ_000000"]
    (dup,) = report.duplicates
    assert dup[0] == "JJJJJJJJJJJ_000000" and dup[1].endswith("JJJJJJJJJJJ_0.mkv") and len(dup[2]) == 1
    assert any("variable frame rate" in n for c, n in report.notes if c == "IIIIIIIIIII_000000")
    # VFR: the first frame at or after 5.0 s by timestamp.
    first = min(k for k, t in enumerate(times) if t >= 5.0 - 1e-9)
    assert _frame_index(tmp_path / "out", "IIIIIIIIIII_000000") == first
    assert report.exit_code == 0 and report.not_prepared == 5
    written = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert written["counts"]["failed"] == 4 and written["counts"]["missing"] == 1
    assert {r["file"] for r in json.loads((tmp_path / "out" / "vggss_annotations.json").read_text())} == {
        "IIIIIIIIIII_000000", "JJJJJJJJJJJ_000000"}


def test_nothing_prepared_is_exit_code_one_and_inputs_are_checked_first(tmp_path, videos):
    report = prepare_vggss(videos, _annotations(tmp_path / "a.json", [("ZZZZZZZZZZZ_000000", "a")]), tmp_path / "o")
    assert report.exit_code == 1 and report.missing == ["ZZZZZZZZZZZ_000000"]
    assert not (tmp_path / "o" / "vggss_annotations.json").exists()
    with pytest.raises(InputError, match="--videos: expected a folder"):
        prepare_vggss(tmp_path / "nope", tmp_path / "a.json", tmp_path / "o")
    with pytest.raises(InputError, match="--frame-time"):
        prepare_vggss(videos, tmp_path / "a.json", tmp_path / "o", frame_time=10.0)
    no_class = tmp_path / "n.json"
    no_class.write_text(json.dumps([{"file": "AAAAAAAAAAA_000030", "bbox": [[0, 0, 1, 1]]}]))
    with pytest.raises(DataError, match="expected --class-dict or a 'class'"):
        prepare_vggss(videos, no_class, tmp_path / "o")


def test_second_call_skips_finished_clips_and_redoes_the_rest(tmp_path, videos):
    ann = _annotations(tmp_path / "a.json", [("AAAAAAAAAAA_000030", "a"), ("CCCCCCCCCCC_000000", "b")])
    out = tmp_path / "out"
    first = prepare_vggss(videos, ann, out)
    assert first.skipped == 0 and len(first.prepared) == 2
    stamp = (out / "frames" / "AAAAAAAAAAA_000030.jpg").stat().st_mtime_ns
    (out / "audio" / "CCCCCCCCCCC_000000.wav").unlink()           # a clip whose audio never got written
    (out / "audio" / ".CCCCCCCCCCC_000000.wav.x.tmp").write_bytes(b"half")  # a killed run's temporary
    seen = []
    second = prepare_vggss(videos, ann, out, progress=lambda done, total: seen.append((done, total)))
    assert second.skipped == 1 and sorted(second.prepared) == ["AAAAAAAAAAA_000030", "CCCCCCCCCCC_000000"]
    assert (out / "frames" / "AAAAAAAAAAA_000030.jpg").stat().st_mtime_ns == stamp
    assert (out / "audio" / "CCCCCCCCCCC_000000.wav").is_file()
    assert not list((out / "audio").glob(".*.tmp"))
    assert seen[0] == (1, 2) and seen[-1] == (2, 2)
    # A torn journal line (a crash mid-write) only redoes that clip; other settings redo everything.
    journal = out / ".prepare" / "journal.jsonl"
    journal.write_text(journal.read_text() + '{"key": "AAAAAAAAAAA_0')
    assert prepare_vggss(videos, ann, out).skipped == 2
    assert prepare_vggss(videos, ann, out, frame_time=4.96).skipped == 0
    assert json.loads((out / "prepare.json").read_text())["settings"]["frame_time"] == 4.96
    assert _frame_index(out, "AAAAAAAAAAA_000030") == 124


def test_parallel_workers_give_the_same_files(tmp_path, videos, prepared):
    out, _, ann = prepared
    report = prepare_vggss(videos, ann, tmp_path / "par", workers=2, media=MediaSettings(resampler="scipy"))
    assert sorted(report.prepared) == sorted(json.loads((out / "prepare.json").read_text())["clips"])
    for clip in report.prepared:
        np.testing.assert_array_equal(_wav(tmp_path / "par", clip), _wav(out, clip))
        assert (tmp_path / "par" / "frames" / f"{clip}.jpg").read_bytes() == (out / "frames" / f"{clip}.jpg").read_bytes()


def test_prepared_folder_runs_in_the_benchmark(prepared, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
    from tiny_engine import make_tiny_engine

    from vsslrt.pipeline.bench import run_bench
    from vsslrt.pipeline.results import BenchSettings

    out, _, _ = prepared
    engine = make_tiny_engine(tmp_path / "tiny")
    (result,) = run_bench([engine], BenchSettings(dataset="vggss", data_dir=out, batch=4, workers=1), tmp_path / "run")
    assert result.n_samples == 4
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics and os.path.isfile(tmp_path / "run" / "report.md")
