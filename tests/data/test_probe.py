"""The header probe finds every bad file at once, names the samples they belong to, and the error and
warning summaries list the problems themselves (not a Python API)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.data.conftest import write_image, write_wav
from vsslrt.data import probe_media
from vsslrt.data.datasets import load_dataset
from vsslrt.data.loader import BatchLoader
from vsslrt.data.problems import MESSAGE_LIMIT, DatasetProblemsError, Problem, summarize_warnings
from vsslrt.data.validation import validate_dataset


def _truncate(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _damage(root) -> dict[str, str]:
    """Four kinds of bad file in the manifest fixture; returns file -> the phrase its problem has."""
    write_wav(root / "snd" / "s1_car.wav", 1.0, seed=1)
    _truncate(root / "snd" / "s1_car.wav", 44 + 2 * 960)
    (root / "snd" / "s2_dog.wav").write_bytes(bytes([0xFF, 0xFB, 0x90, 0xC4]) + bytes(range(256)) * 8)
    data = (root / "img" / "s1.png").read_bytes()
    (root / "img" / "s1.png").write_bytes(data[: len(data) // 2])
    (root / "img" / "s2.png").write_bytes(b"not an image at all")
    return {
        "snd/s1_car.wav": "the header promises 16000 frames (1.00 s), the file holds 960 (0.06 s",
        "snd/s2_dog.wav": "not a", "img/s1.png": "truncated", "img/s2.png": "expected a readable image",
    }


def test_probe_reports_every_bad_file_with_its_samples(manifest_dir, capfd):
    expected = _damage(manifest_dir)
    expected["snd/s2_dog.wav"] = "got data in no audio format"
    ds = load_dataset("manifest", manifest_dir)  # existence checks only: passes
    probe = probe_media(ds)
    assert not probe.ok and probe.images == 3 and probe.audio == 4 and probe.files == 7
    found = {p.where.split("mine/", 1)[1]: p for p in probe.problems}
    assert sorted(found) == sorted(expected)
    for name, phrase in expected.items():
        assert phrase in found[name].message, (name, found[name].message)
        assert found[name].severity == "error" and not found[name].message.startswith(str(manifest_dir))
    by_name = {s.name.split("/")[-1]: s.index for s in ds}
    assert found["snd/s1_car.wav"].samples == (by_name["s1_car"],)
    assert set(probe.bad_samples) == {by_name["s1_car"], by_name["s2_dog"]}
    assert probe.bad_samples[by_name["s2_dog"]].startswith(str(manifest_dir / "img" / "s2.png"))  # first problem of the sample
    assert "probed 3 image and 4 audio headers" in probe.summary() and "4 bad files" in probe.summary()
    serial = probe_media(ds, workers=0)
    assert [str(p) for p in serial.problems] == [str(p) for p in probe.problems]  # same order either way
    assert capfd.readouterr().err == ""


def test_probe_of_a_good_dataset_is_clean(manifest_dir, is3_mini):
    for root, kind in ((manifest_dir, "manifest"), (is3_mini, "is3")):
        probe = probe_media(load_dataset(kind, root))
        assert probe.ok and probe.problems == [] and probe.files > 0, probe.format()


def test_validation_with_headers_lists_every_problem_in_the_one_line(manifest_dir):
    expected = _damage(manifest_dir)
    (manifest_dir / "snd" / "s0_bell.wav").unlink()
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("manifest", manifest_dir, check_headers=True)
    err = excinfo.value
    message = str(err)
    assert "\n" not in message and "got 5 errors: " in message
    for name in list(expected) + ["snd/s0_bell.wav"]:
        assert f"; {name}: " in message or f"errors: {name}: " in message, name
    assert "no such file" in message and "holds 960" in message
    assert "--skip-bad" in message and "format_problems" not in message and err.problems_file is None
    # Missing and unreadable files belong to samples: the report says which ones to leave out.
    report = validate_dataset(load_dataset("manifest", manifest_dir, validate=False), check_headers=True)
    assert report.only_bad_files and len(report.errors) == 5
    assert sorted(report.bad_samples) == [1, 2, 3]


def test_missing_file_shared_by_samples_is_one_problem(manifest_dir):
    (manifest_dir / "img" / "s0.png").unlink()  # the image of two samples
    report = validate_dataset(load_dataset("manifest", manifest_dir, validate=False))
    (problem,) = report.errors
    assert problem.samples == (0, 1) and "samples snd/s0_dog, snd/s0_bell" in problem.message


def test_more_problems_than_the_line_holds_go_to_a_file(tmp_path):
    root = tmp_path / "many"
    records = []
    for i in range(MESSAGE_LIMIT + 7):
        write_wav(root / "snd" / f"c{i}.wav", 0.1, seed=i)
        records.append({"image": f"img/i{i}.png", "audio": f"snd/c{i}.wav", "class": f"k{i % 3}", "group": i})
    write_image(root / "img" / "i0.png")
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("manifest", root)
    err = excinfo.value
    message = str(err)
    n = MESSAGE_LIMIT + 6  # every image but the first is missing
    assert f"got {n} errors: img/i1.png: " in message and "\n" not in message
    assert message.count("got no such file") == MESSAGE_LIMIT
    assert f"... ({n - MESSAGE_LIMIT} more; all problems are listed in {err.problems_file})" in message
    listed = err.problems_file.read_text().splitlines()
    assert listed[0].startswith(f"# manifest dataset at {root}: {n} errors")
    assert sum(line.startswith("error: ") for line in listed) == n
    assert any(f"i{n}.png" in line for line in listed)  # the last one, which the message leaves out
    # A named file (e.g. in the run folder) instead of the temporary one.
    report = validate_dataset(load_dataset("manifest", root, validate=False))
    with pytest.raises(DatasetProblemsError) as named:
        report.raise_for_errors(problems_file=tmp_path / "run" / "problems.txt")
    assert named.value.problems_file == tmp_path / "run" / "problems.txt"
    assert str(tmp_path / "run" / "problems.txt") in str(named.value)


def test_metadata_errors_get_a_fix_hint_not_skip_bad(manifest_dir):
    (manifest_dir / "manifest.jsonl").write_text(json.dumps({"image": "img/s0.png", "audio": "snd/s0_dog.wav", "boxes": [[0.5, 0.1, 0.1, 0.5]], "class": "dog"}) + "\n"
                                                 + json.dumps({"image": "img/s1.png", "audio": "snd/s1_car.wav", "class": "car"}) + "\n")
    with pytest.raises(DatasetProblemsError) as excinfo:
        load_dataset("manifest", manifest_dir)
    assert "--skip-bad" not in str(excinfo.value) and "Hint: fix the listed files and metadata records" in str(excinfo.value)


def test_warnings_summary(is3_dir):
    report = validate_dataset(load_dataset("is3", is3_dir, validate=False))
    assert report.warnings_summary() == ""
    problems = [Problem(str(is3_dir / f"images/x{i}.jpg"), f"has no boxes {i}", "warning") for i in range(7)]
    problems.append(Problem("elsewhere", "an error", "error"))
    line = summarize_warnings(problems, root=is3_dir)
    assert line == "7 warnings; first 5: " + "; ".join(f"images/x{i}.jpg: has no boxes {i}" for i in range(5)) + "."
    assert summarize_warnings(problems[:2]) == f"2 warnings: {problems[0].where}: has no boxes 0; {problems[1].where}: has no boxes 1."


def test_truncated_wav_becomes_a_skipped_sample_with_the_reason(is3_dir):
    ds = load_dataset("is3", is3_dir)
    bad = ds[2].audio
    _truncate(bad, 44 + 2 * 100)
    with pytest.raises(Exception, match=r"header promises \d+ frames .* the file holds 100 "):
        list(BatchLoader(ds, "lvs", batch_size=3, workers=0, noise_inputs=False))
    loader = BatchLoader(ds, "lvs", batch_size=3, workers=0, skip_bad=True, noise_inputs=False)
    seen = [int(i) for batch in loader for i in batch.indices]
    own = [s for s in loader.skipped if s.index == 2]
    assert len(own) == 1 and own[0].file == str(bad)
    assert "truncated" in own[0].reason and "the file holds 100 " in own[0].reason
    assert 2 not in seen and sorted(seen + [s.index for s in loader.skipped]) == list(range(len(ds)))
    assert np.all([s.file == str(bad) for s in loader.skipped])  # others skipped drew it as offscreen audio
