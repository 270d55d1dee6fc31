"""`vsslrt data prepare vggss|flickr|manifest`: summary lines, exit codes, options reach the record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from prepare_media import write_clip  # noqa: E402

from vsslrt.cli.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    write_clip(folder / "AAAAAAAAAAA_000030.mp4", seconds=10.0, rate=44_100, channels=2)
    write_clip(folder / "BBBBBBBBBBB_000000.mp4", seconds=10.0, rate=None)
    return folder


def _ann(path: Path, clips) -> Path:
    path.write_text(json.dumps([{"file": c, "bbox": [[0, 0, 1, 1]], "class": "x"} for c in clips]))
    return path


def test_vggss_prepares_what_it_can_and_says_what_it_could_not(videos, tmp_path):
    ann = _ann(tmp_path / "vggss.json", ["AAAAAAAAAAA_000030", "BBBBBBBBBBB_000000", "CCCCCCCCCCC_000000"])
    args = ["data", "prepare", "vggss", "--videos", str(videos), "--annotations", str(ann), "--out", str(tmp_path / "d"),
            "--workers", "1", "--frame-time", "4.96", "--resampler", "scipy"]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 0, result.output
    assert "prepared 1 of 3 clips (33.3 % of the annotation list)" in result.output
    assert "not prepared: 2 (1 missing (no video file), 1 failed)" in result.output
    assert "BBBBBBBBBBB_000000: the video has no audio track" in result.output
    settings = json.loads((tmp_path / "d" / "prepare.json").read_text())["settings"]
    assert settings["frame_time"] == 4.96 and settings["resampler"] == "scipy"
    again = CliRunner().invoke(create_app(), args)
    assert again.exit_code == 0 and "1 were already done" in again.output


def test_nothing_prepared_exits_one(videos, tmp_path):
    ann = _ann(tmp_path / "vggss.json", ["BBBBBBBBBBB_000000"])
    result = CliRunner().invoke(create_app(), ["data", "prepare", "vggss", "--videos", str(videos), "--annotations",
                                               str(ann), "--out", str(tmp_path / "d"), "--workers", "1"])
    assert result.exit_code == 1 and "prepared 0 of 1 clips" in result.output


def test_bad_option_values_are_usage_errors_or_one_line(videos, tmp_path):
    ann = _ann(tmp_path / "vggss.json", ["AAAAAAAAAAA_000030"])
    base = ["data", "prepare", "vggss", "--videos", str(videos), "--annotations", str(ann), "--out", str(tmp_path / "d")]
    assert CliRunner().invoke(create_app(), base + ["--channels", "left"]).exit_code == 2
    result = CliRunner().invoke(create_app(), base + ["--frame-time", "12"])
    assert result.exit_code != 0 and "--frame-time" in str(result.exception)


def test_manifest_without_boxes_says_which_metrics_mean_something(videos, tmp_path):
    result = CliRunner().invoke(create_app(), ["data", "prepare", "manifest", "--videos", str(videos), "--out",
                                               str(tmp_path / "m"), "--at", "2", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "no boxes" in result.output and "only the negative metrics" in result.output
    assert "prepared 1 of 2 clips" in result.output


def test_flickr_command(tmp_path):
    import numpy as np
    import soundfile
    from PIL import Image

    release = tmp_path / "rel"
    (release / "Annotations").mkdir(parents=True)
    (release / "Data" / "0").mkdir(parents=True)
    (release / "Annotations" / "77.xml").write_text(
        "<annotation><bbox><l>a</l><xmin>1</xmin><ymin>2</ymin><xmax>90</xmax><ymax>99</ymax></bbox></annotation>")
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(release / "Data" / "0" / "77.jpg")
    soundfile.write(release / "Data" / "0" / "77.wav", np.zeros(16_000), 16_000, subtype="PCM_16")
    result = CliRunner().invoke(create_app(), ["data", "prepare", "flickr", "--release", str(release), "--out",
                                               str(tmp_path / "f"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "prepared 1 of 1 clips (100.0 % of the annotated clips)" in result.output
