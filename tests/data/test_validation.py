"""Every bad input produces its message, and validation reports all problems at once."""

from __future__ import annotations

import json

import pytest

from tests.data.conftest import write_json
from vsslrt.data.audio_io import read_audio
from vsslrt.data.datasets import load_dataset
from vsslrt.data.problems import DatasetProblemsError, format_problems
from vsslrt.data.validation import validate_dataset
from vsslrt.errors import DataError


def _problems(excinfo) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


def _write_manifest(root, records):
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_missing_files_are_all_listed_with_their_names(vggss_dir):
    (vggss_dir / "frames" / "clipA_000001.jpg").unlink()
    (vggss_dir / "audio" / "clipC_000003.wav").unlink()
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("vggss", vggss_dir)
    err = excinfo.value
    assert isinstance(err, DataError)
    message = str(err)
    assert "\n" not in message and "got 2 errors" in message and "clipA_000001.jpg" in message
    problems = _problems(excinfo)
    assert any("clipA_000001.jpg" in p and "no such file" in p for p in problems)
    assert any("clipC_000003.wav" in p and "no such file" in p for p in problems)
    # The report is available without raising, too.
    ds = load_dataset("vggss", vggss_dir, validate=False)
    report = validate_dataset(ds)
    assert not report.ok and len(report.errors) == 2 and "2 errors" in report.format()


def test_clip_missing_from_the_class_dictionary(vggss_dir):
    write_json(vggss_dir / "vggss_class_files_dict.json", {"dog": ["clipA_000001", "clipD_000004"], "cat": ["clipB_000002"]})
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("vggss", vggss_dir)
    assert any("clipC_000003" in p and "class dictionary" in p for p in _problems(excinfo))


def test_class_dictionary_clip_without_audio(vggss_dir):
    classes = {"dog": ["clipA_000001", "clipD_000004"], "cat": ["clipB_000002"], "car": ["clipC_000003", "ghost_000009"]}
    write_json(vggss_dir / "vggss_class_files_dict.json", classes)
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("vggss", vggss_dir)
    assert any("ghost_000009.wav" in p and "offscreen" in p for p in _problems(excinfo))


def test_nan_and_inverted_boxes(vggss_dir):
    records = json.loads((vggss_dir / "vggss_annotations.json").read_text())
    records[0]["bbox"] = [[0.5, 0.2, 0.1, 0.6]]
    records[2]["bbox"] = [[float("nan"), 0.25, 0.75, 0.75]]
    (vggss_dir / "vggss_annotations.json").write_text(json.dumps(records))  # writes a bare NaN, as Python allows
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("vggss", vggss_dir)
    problems = _problems(excinfo)
    assert any("clipC_000003" in p and "expected finite box coordinates" in p for p in problems)
    assert any("clipA_000001" in p and "x1 <= x2" in p for p in problems)


def test_is3_box_out_of_the_image_and_missing_box(is3_dir):
    records = json.loads((is3_dir / "synthetic3240_bbox.json").read_text())
    records[0]["gt_box"] = [10, 10, 300, 20]
    del records[1]
    write_json(is3_dir / "synthetic3240_bbox.json", records)
    write_json(is3_dir / "IS3_annotation.json", [{"image": f"{n}.jpg", "audio": f"{n}.wav"} for n in ("dog_piano_11_dog", "dog_piano_11_piano", "cat_car_12_car")])
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("is3", is3_dir)
    problems = _problems(excinfo)
    assert any("dog_piano_11_dog" in p and "in [0, 224]" in p for p in problems)
    assert any("dog_piano_11_piano" in p and "expected a box" in p for p in problems)


def test_manifest_bad_records_are_reported_together(manifest_dir):
    _write_manifest(
        manifest_dir,
        [
            {"image": "img/s0.png", "audio": "snd/s0_dog.wav", "boxes": [[0.1, 0.1, 1.5, 0.5]], "class": "dog"},
            {"image": "img/s1.png", "audio": "snd/s1_car.wav", "boxes": [[0.1, 0.1, 0.5]], "class": "car"},
            {"image": "img/s2.png", "audio": "snd/s2_dog.wav"},
            {"image": "img/s0.png", "audio": "snd/s0_bell.wav", "class": "bell"},
        ],
    )
    with (manifest_dir / "manifest.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("manifest", manifest_dir)
    problems = _problems(excinfo)
    assert any("manifest.jsonl:1" in p and "in [0, 1]" in p for p in problems)
    assert any("manifest.jsonl:2" in p and "[x1, y1, x2, y2]" in p for p in problems)
    assert any("manifest.jsonl:3" in p and "expected a 'class'" in p for p in problems)
    assert any("manifest.jsonl:5" in p and "syntax error" in p for p in problems)
    assert "got 5 errors" in str(excinfo.value)  # the fifth: s0_bell is left without an offscreen class


def test_empty_manifest(tmp_path):
    (tmp_path / "manifest.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"manifest\.jsonl: expected at least one record, got an empty manifest"):
        load_dataset("manifest", tmp_path)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match=r"manifest: expected .*manifest\.jsonl or .*manifest\.csv, got neither"):
        load_dataset("manifest", tmp_path / "nothing")


def test_malformed_csv_boxes_and_columns(manifest_dir):
    (manifest_dir / "manifest.jsonl").unlink()
    (manifest_dir / "manifest.csv").write_text(
        "image,audio,boxes,class\n"
        "img/s0.png,snd/s0_dog.wav,0.1 0.1 0.4,dog\n"
        "img/s1.png,snd/s1_car.wav,0.1 0.1 0.4 abc,car\n"
        "img/s2.png,snd/s2_dog.wav,0.1 0.1 0.4 0.5,dog,extra\n"
        "img/s0.png,snd/s0_bell.wav,nan 0.1 0.4 0.5,bell\n"
    )
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("manifest", manifest_dir)
    problems = _problems(excinfo)
    assert any("manifest.csv:2" in p and "has 3 values" in p for p in problems)
    assert any("manifest.csv:3" in p and "abc" in p for p in problems)
    assert any("manifest.csv:4" in p and "columns" in p for p in problems)
    assert any("manifest.csv:5" in p and "finite" in p for p in problems)
    (manifest_dir / "manifest.csv").write_text("picture,sound\na.png,a.wav\n")
    with pytest.raises(DataError, match=r"manifest\.csv: expected a header row with columns image, audio"):
        load_dataset("manifest", manifest_dir)


def test_no_offscreen_candidate(manifest_dir):
    _write_manifest(manifest_dir, [{"image": "img/s0.png", "audio": "snd/s0_dog.wav", "class": "dog", "group": 1},
                                   {"image": "img/s0.png", "audio": "snd/s0_bell.wav", "class": "bell", "group": 1}])
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("manifest", manifest_dir)
    assert sum("expected at least one offscreen class" in p for p in _problems(excinfo)) == 2


def test_corrupt_files_found_by_header_checks_and_by_decoding(is3_dir):
    (is3_dir / "audio_wav" / "cat_car_12_car.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (is3_dir / "images" / "bird_dog_bird.jpg").write_bytes(b"\xff\xd8\xff garbage")
    load_dataset("is3", is3_dir)  # existence checks pass
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("is3", is3_dir, check_headers=True)
    problems = _problems(excinfo)
    assert any("cat_car_12_car.wav" in p and "readable audio" in p for p in problems)
    assert any("bird_dog_bird.jpg" in p and "readable image" in p for p in problems)
    with pytest.raises(DataError, match=r"cat_car_12_car\.wav: expected a readable audio file"):
        read_audio(is3_dir / "audio_wav" / "cat_car_12_car.wav")


def test_empty_and_missing_audio(tmp_path):
    import soundfile

    soundfile.write(str(tmp_path / "empty.wav"), [], 16000)
    with pytest.raises(DataError, match=r"empty\.wav: expected audio with at least one sample"):
        read_audio(tmp_path / "empty.wav")
    with pytest.raises(DataError, match=r"none\.wav: expected an audio file, got no such file"):
        read_audio(tmp_path / "none.wav")


def test_format_problems_lists_errors_first(vggss_dir):
    (vggss_dir / "frames" / "clipA_000001.jpg").unlink()
    report = validate_dataset(load_dataset("vggss", vggss_dir, validate=False))
    lines = format_problems(report.problems).splitlines()
    assert lines[0].startswith("error:") and lines[-1].startswith("warning:")
    assert format_problems(report.problems, limit=1).endswith("... and 1 more")
