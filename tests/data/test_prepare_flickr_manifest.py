"""`vsslrt.data.prepare.flickr` on a tiny synthetic release tree, and `.manifest` on small videos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_media import read_index, seconds_heard, tone, tone_frequency, write_clip  # noqa: E402

from vsslrt.data import load_dataset  # noqa: E402
from vsslrt.data.prepare import prepare_flickr, prepare_manifest, read_prepare_record  # noqa: E402
from vsslrt.data.prepare.manifest import read_boxes  # noqa: E402
from vsslrt.errors import DataError, InputError  # noqa: E402

RATE = 16_000
XML = """<annotation><object><bbox><label>x</label><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax>
</bbox></object><object><bbox><label>y</label><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>128</ymax></bbox>
</object></annotation>"""


def _release(root: Path) -> Path:
    (root / "Annotations").mkdir(parents=True)
    for k, clip in enumerate(("1001", "1002", "1003", "1004")):
        (root / "Annotations" / f"{clip}.xml").write_text(XML.format(10 * k, 20, 200, 240))
        folder = root / "Data" / str(k % 2)
        folder.mkdir(parents=True, exist_ok=True)
        if clip != "1003":  # 1003 has no media at all
            Image.fromarray(np.full((256, 256, 3), 40 * k, np.uint8)).save(folder / f"{clip}.jpg", quality=90)
    soundfile.write(root / "Data" / "0" / "1001.wav", tone(3, RATE), RATE, subtype="PCM_16")  # copied as is
    stereo = np.stack([tone(3, 22_050), tone(3, 22_050)], axis=1)
    soundfile.write(root / "Data" / "1" / "1002.wav", stereo, 22_050, subtype="PCM_16")      # converted
    soundfile.write(root / "Data" / "1" / "1004.wav", tone(2, RATE), RATE, subtype="PCM_16")
    (root / "Annotations" / "1004.xml").write_text("<annotation><bbox>")                        # broken XML
    return root


def test_flickr_release_is_converted_and_loads(tmp_path):
    release = _release(tmp_path / "release")
    listing = tmp_path / "flickr_test.csv"
    listing.write_text("1002,7\n1001,3\n1003,1\n1004,2\n")
    report = prepare_flickr(release, tmp_path / "out", test_list=listing)
    out = tmp_path / "out"
    assert report.prepared == ["1002", "1001"] and report.listed == 4
    reasons = {c: r for c, _, r in report.failed}
    assert "no image and no sound" in reasons["1003"] and "expected Flickr-SoundNet XML" in reasons["1004"]
    assert (out / "flickr_test.csv").read_text() == "1002,7\n1001,3\n"  # the official rows, prepared ids only
    assert (out / "audio" / "1001.wav").read_bytes() == (release / "Data" / "0" / "1001.wav").read_bytes()
    assert (out / "frames" / "1002.jpg").read_bytes() == (release / "Data" / "1" / "1002.jpg").read_bytes()
    x, rate = soundfile.read(out / "audio" / "1002.wav")
    assert rate == RATE and x.ndim == 1 and len(x) == 3 * RATE
    assert seconds_heard(x, RATE) == list(tone_frequency(np.arange(3)))
    ds = load_dataset("flickr", out)
    assert ds.names == ["1002", "1001"]
    np.testing.assert_array_equal(ds[1].boxes[0], [0, 17, 175, 210])  # int(224 v / 256) of the release's box
    doc = json.loads((out / "prepare.json").read_text())
    assert doc["clips"]["1002"]["source"] == {"annotation": "Annotations/1002.xml", "image": "Data/1/1002.jpg",
                                              "audio": "Data/1/1002.wav"}  # the reverse mapping
    assert doc["clips"]["1001"]["audio"] == "copied" and "converted 22050 Hz, 2 ch" in doc["clips"]["1002"]["audio"]
    assert read_prepare_record(out)["kind"] == "flickr"
    again = prepare_flickr(release, out, test_list=listing)
    assert again.skipped == 2


def test_flickr_without_a_test_list_takes_every_annotated_clip(tmp_path):
    release = _release(tmp_path / "release")
    report = prepare_flickr(release, tmp_path / "out")
    assert report.prepared == ["1001", "1002"] and not (tmp_path / "out" / "flickr_test.csv").exists()
    assert len(load_dataset("flickr", tmp_path / "out")) == 2
    with pytest.raises(DataError, match="Annotations/ folder"):
        prepare_flickr(tmp_path, tmp_path / "o")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lab")
    write_clip(folder / "tap.mp4", seconds=8.0, rate=48_000, channels=2)
    (folder / "kitchen").mkdir()
    write_clip(folder / "kitchen" / "kettle.mkv", seconds=6.0, rate=16_000, codec="pcm_s16le")
    write_clip(folder / "silent.mp4", seconds=4.0, rate=None)
    return folder


def test_manifest_frames_and_centred_windows(lab, tmp_path):
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("video,time,x1,y1,x2,y2,class\ntap.mp4,,0.1,0.1,0.5,0.5,tap\n"
                     "kitchen/kettle.mkv,1.0,0.2,0.2,0.9,0.9,kettle\nkettle,5.5,0,0,0.4,0.4,kettle\n"
                     "nothing.mp4,,0,0,1,1,x\n")
    report = prepare_manifest(lab, tmp_path / "out", boxes=boxes, every=2.0, window=4.0)
    out = tmp_path / "out"
    assert sorted(report.prepared) == ["kitchen/kettle", "tap"]
    assert [c for c, _, r in report.failed if "no audio track" in r] == ["silent"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    kettle = [r for r in records if r["group"] == "kitchen/kettle"]
    assert [r["name"] for r in kettle] == ["kitchen/kettle_00000000", "kitchen/kettle_00002000", "kitchen/kettle_00004000"]
    assert all(r["class"] == "kettle" and r["boxes"] == [] for r in kettle)  # the box times are no frame times
    tap = [r for r in records if r["group"] == "tap"]
    assert len(tap) == 4 and all(r["boxes"] == [[0.1, 0.1, 0.5, 0.5]] for r in tap)
    unused = report.extra["unused_boxes"]
    assert len(unused) == 3 and any("nothing.mp4" in u["reason"] for u in unused)
    # Frame at 2.0 s of kettle (25 fps: frame 50); its 4 s window is 0-4 s, at 4.0 s (the last
    # whole frame time of a 6 s video) the window is shifted inside the track: 2-6 s.
    assert read_index(np.asarray(Image.open(out / kettle[1]["image"]))) == 50
    mid, _ = soundfile.read(out / kettle[1]["audio"])
    np.testing.assert_allclose(mid, tone(6, RATE)[0:4 * RATE], atol=1.5 / 32767)
    end, _ = soundfile.read(out / kettle[2]["audio"])
    np.testing.assert_allclose(end, tone(6, RATE)[2 * RATE:6 * RATE], atol=1.5 / 32767)
    first, _ = soundfile.read(out / kettle[0]["audio"])  # at 0 s: shifted to 0-4 s
    np.testing.assert_allclose(first, mid, atol=1e-9)
    ds = load_dataset("manifest", out)
    assert len(ds) == 7 and sorted(ds.class_clips) == ["kettle", "tap"]


def test_manifest_box_times_choose_the_frames(lab, tmp_path):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"video": "kettle.mkv", "time": 1.0, "boxes": [[0.2, 0.2, 0.9, 0.9]]},
                                 {"video": "tap", "time": 3.0, "boxes": [[0, 0, 0.5, 0.5]]}]))
    report = prepare_manifest(lab, tmp_path / "out", boxes=boxes)
    records = {json.loads(line)["name"]: json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()}
    assert set(records) == {"kitchen/kettle_00001000", "tap_00003000"}
    assert records["tap_00003000"]["boxes"] == [[0, 0, 0.5, 0.5]] and not report.extra["unused_boxes"]
    x, _ = soundfile.read(tmp_path / "out" / records["tap_00003000"]["audio"])
    assert len(x) == 10 * RATE // 10 * 8  # a 10 s window on an 8 s track: the whole track
    with pytest.raises(InputError, match="--at and --every"):
        prepare_manifest(lab, tmp_path / "o", at=(1.0,), every=2.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("clip,x\n")
    with pytest.raises(DataError, match="expected a header with video"):
        read_boxes(bad)


def test_manifest_without_boxes_runs_in_the_benchmark(lab, tmp_path):
    """No boxes: the records have empty ground truth. The benchmark runs; its positive metrics are
    computed against empty maps (IoU 0 by the fixed protocol), the negative ones are meaningful."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
    from tiny_engine import make_tiny_engine

    from vsslrt.pipeline.bench import run_bench
    from vsslrt.pipeline.results import BenchSettings

    report = prepare_manifest(lab, tmp_path / "out", at=(1.0, 3.0))
    assert report.extra["boxes"] == "none" and len(report.prepared) == 2
    (result,) = run_bench([make_tiny_engine(tmp_path / "tiny")],
                          BenchSettings(dataset="manifest", data_dir=tmp_path / "out", batch=4, workers=1),
                          tmp_path / "run")
    assert result.n_samples == 4
    assert result.metrics["n_empty_gt"] == 4
