"""A benchmark run verified as one unit, through the CLI: the data it read (fingerprint), a folder
finished atomically (completion marker), one writer per folder (lock), dataset warnings and media
problems shown before the first batch, and resume parts cut short."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from vsslrt.cli.app import main

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))
pytestmark = pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path) -> Path:
    copy = tmp_path / "is3"
    shutil.copytree(IS3_MINI, copy)
    return copy


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _cli(*args: str) -> Result:
    """The real entry point (`vsslrt.cli.app.main`, which turns errors into one line), argv patched."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", ["vsslrt", *args]), mock.patch.dict(os.environ, {"COLUMNS": "400"}), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        os.environ.pop("VSSLRT_DEBUG", None)
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


def _bench(engine, data, out, *extra, limit=8) -> Result:
    return _cli("bench", "--engine", str(engine), "--dataset", "is3", "--data-dir", str(data), "--out", str(out),
                "--limit", str(limit), "--batch", "2", "--no-baselines", "--workers", "0", *extra)


def _one_line(result: Result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1, result.output
    return lines[-1]


def _interrupt_after(monkeypatch, batches: int) -> None:
    """Ctrl-C right after `batches` batches were saved (as a user stopping the run would)."""
    from vsslrt.pipeline.runstore import PartLog

    real = PartLog.append
    calls = {"n": 0}

    def append(self, *args, **kwargs):
        path = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= batches:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(PartLog, "append", append)


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())["engines"]["tiny"]["metrics"]


# -- 1. the run identity covers the data ------------------------------------------------------------


def test_fingerprint_is_recorded_and_equal_for_the_same_split(engine, data, tmp_path):
    a, b = _bench(engine, data, tmp_path / "a"), _bench(engine, data, tmp_path / "b")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    fa = json.loads((tmp_path / "a" / "metrics.json").read_text())["dataset"]["fingerprint"]
    fb = json.loads((tmp_path / "b" / "metrics.json").read_text())["dataset"]["fingerprint"]
    assert fa == fb and len(fa["digest"]) == 16
    assert str((data / "synthetic3240_bbox.json").resolve()) in fa["metadata"]
    assert fa["digest"] in (tmp_path / "a" / "report.md").read_text()
    c = _bench(engine, data, tmp_path / "c", limit=6)  # another split: another fingerprint
    assert c.exit_code == 0
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["dataset"]["fingerprint"]["digest"] != fa["digest"]


@pytest.mark.parametrize("change", ["box file content", "class dictionary option", "sample list"])
def test_resume_with_changed_data_is_refused_naming_it(engine, data, tmp_path, monkeypatch, change):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        assert _bench(engine, data, out).exit_code != 0
    extra: tuple[str, ...] = ()
    boxes = data / "synthetic3240_bbox.json"
    if change == "box file content":
        records = json.loads(boxes.read_text())
        records[0]["gt_box"] = [0.0, 0.0, 50.0, 50.0]
        boxes.write_text(json.dumps(records))
        expected = "synthetic3240_bbox.json"
    elif change == "class dictionary option":
        other = tmp_path / "classes.json"
        other.write_text((data / "class_files_dict.json").read_text())
        extra = ("--class-dict", str(other))
        expected = "classes.json"
    else:
        extra = ("--limit", "6")  # the same files, fewer samples
        expected = "the sample list"
    result = _bench(engine, data, out, "--resume", *extra)
    assert result.exit_code == 1, result.output
    line = _one_line(result)
    assert "cannot resume" in line and "another --out" in line
    assert expected in line


# -- 2. a folder is finished by its completion marker only --------------------------------------------


def test_disk_full_before_the_report_leaves_an_unfinished_run_that_resume_finishes(engine, data, tmp_path, monkeypatch):
    import vsslrt.pipeline.runfolder as runfolder

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        def full(path, *_a, **_k):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        m.setattr(runfolder, "atomic_write_text", full)
        assert _bench(engine, data, out).exit_code == 1
    assert (out / "metrics.json").is_file() and not (out / "run.complete.json").exists()
    cal = _cli("calibrate", str(out))
    assert cal.exit_code == 1
    assert "unfinished" in _one_line(cal) and "--resume" in _one_line(cal)
    again = _bench(engine, data, out)  # the plain command is refused, with what to type
    assert again.exit_code == 1 and "--resume" in _one_line(again)
    done = _bench(engine, data, out, "--resume")
    assert done.exit_code == 0, done.output
    marker = json.loads((out / "run.complete.json").read_text())
    assert {"metrics.json", "report.md", "shards/tiny/checkpoint.npz"} <= set(marker["files"])
    assert not list((out / "shards" / "tiny").glob("part-*.npz"))  # parts go only after the marker
    assert _cli("calibrate", str(out)).exit_code == 0
    finished = _bench(engine, data, out, "--resume")
    assert finished.exit_code == 1 and "finished run" in _one_line(finished)


def test_calibrate_refuses_a_file_changed_after_the_marker(engine, data, tmp_path):
    out = tmp_path / "run"
    assert _bench(engine, data, out).exit_code == 0
    with open(out / "metrics.json", "a") as handle:
        handle.write(" ")
    cal = _cli("calibrate", str(out))
    assert cal.exit_code == 1 and "metrics.json" in _one_line(cal) and "changed" in _one_line(cal)


# -- 3. one writer per run folder ----------------------------------------------------------------------


def test_second_writer_is_refused_at_once(engine, data, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from vsslrt.pipeline.runlock import RunLock
        with RunLock({str(out)!r}):
            print("held", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = _bench(engine, data, out)
        assert result.exit_code == 1
        line = _one_line(result)
        assert f"is being written by another vsslrt process (pid {holder.pid}" in line
        assert "choose another --out" in line and "--resume" not in line
        assert not (out / "shards").exists()
    finally:
        holder.communicate("", timeout=30)
    assert _bench(engine, data, out).exit_code == 0  # released when the writer exits


# -- 4./5. warnings and media problems before the first batch --------------------------------------------


def test_dataset_warnings_are_shown_and_listed(engine, data, tmp_path):
    (data / "class_files_dict.json").unlink()  # classes derived from the names: a warning
    boxes = data / "synthetic3240_bbox.json"
    records = json.loads(boxes.read_text())
    boxes.write_text(json.dumps(records + records[:6]))  # six repeated images: a warning each
    out = tmp_path / "run"
    result = _bench(engine, data, out)
    assert result.exit_code == 0, result.output
    shown = re.search(r"(\d+) warnings; first 5: (.*)", result.stdout)
    assert shown, result.output
    n = int(shown.group(1))
    assert n == 7  # more than the five quoted
    assert shown.group(2).count("repeats an image already listed") == 5
    report = (out / "report.md").read_text()
    section = report.split(f"### Dataset warnings ({n})", 1)[1].split("\n\n#", 1)[0]
    assert len([line for line in section.splitlines() if line.startswith("- ")]) == n  # every one listed
    assert "no IS3 class dictionary" in section


def test_bad_media_are_all_reported_before_the_first_batch(engine, data, tmp_path):
    (data / "audio_wav" / "lion_cat_872_cat.wav").write_bytes(b"RIFF not really a wav")
    images = sorted((data / "images").glob("*.jpg"))
    images[1].write_bytes(images[1].read_bytes()[:500])  # cut short
    out = tmp_path / "run"
    result = _bench(engine, data, out, limit=16)
    assert result.exit_code == 1
    line = _one_line(result)
    assert "lion_cat_872_cat.wav" in line and images[1].name in line
    assert not (out / "shards").exists()  # nothing ran
    ok = _bench(engine, data, out, "--skip-bad", limit=16)
    assert ok.exit_code == 0, ok.output
    assert "found before the run are skipped" in ok.output
    report = (out / "report.md").read_text()
    assert "lion_cat_872_cat" in report and images[1].stem in report


def test_skip_bad_skips_missing_files(engine, data, tmp_path):
    victim = sorted((data / "images").glob("*.jpg"))[0]
    victim.unlink()
    strict = _bench(engine, data, tmp_path / "strict")
    assert strict.exit_code == 1 and victim.name in _one_line(strict)
    out = tmp_path / "lenient"
    result = _bench(engine, data, out, "--skip-bad", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert doc["engines"]["tiny"]["n_samples"] == 7 and doc["engines"]["tiny"]["skipped"] >= 1
    assert victim.stem in (out / "report.md").read_text()


def test_mid_run_data_error_continues_with_the_same_command(engine, data, tmp_path, monkeypatch):
    from vsslrt.errors import DataError
    from vsslrt.pipeline.runstore import PartLog

    out = tmp_path / "run"
    real = PartLog.append
    with monkeypatch.context() as m:
        def append(self, *args, **kwargs):  # a damaged stream found while decoding the second batch
            if len(self.parts()) == 1:
                raise DataError(f"{data}/images/x.jpg: expected a JPEG image, got a damaged stream.")
            return real(self, *args, **kwargs)

        m.setattr(PartLog, "append", append)
        failed = _bench(engine, data, out)
    assert failed.exit_code == 1 and "run the same command again" in _one_line(failed)
    again = _bench(engine, data, out)  # the same command, no --resume to add
    assert again.exit_code == 0, again.output
    assert _metrics(out) == _metrics_of_fresh_run(engine, data, tmp_path)


def _metrics_of_fresh_run(engine, data, tmp_path) -> dict:
    assert _bench(engine, data, tmp_path / "fresh").exit_code == 0
    return _metrics(tmp_path / "fresh")


# -- 7. resume parts cut short ----------------------------------------------------------------------------


def test_truncated_last_part_is_recomputed(engine, data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        assert _bench(engine, data, out).exit_code != 0
    parts = sorted((out / "shards" / "tiny").glob("part-*.npz"))
    assert len(parts) == 2
    parts[-1].write_bytes(parts[-1].read_bytes()[:100])
    result = _bench(engine, data, out, "--resume")
    assert result.exit_code == 0, result.output
    assert _metrics(out) == _metrics_of_fresh_run(engine, data, tmp_path)


def test_truncated_earlier_part_is_named_with_the_fix(engine, data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        assert _bench(engine, data, out).exit_code != 0
    first = sorted((out / "shards" / "tiny").glob("part-*.npz"))[0]
    first.write_bytes(first.read_bytes()[:100])
    result = _bench(engine, data, out, "--resume")
    assert result.exit_code == 1
    line = _one_line(result)
    assert first.name in line and "delete" in line


# -- 9. batch localize interrupted ---------------------------------------------------------------------


def test_ctrl_c_in_batch_localize_writes_the_summary_of_what_finished(engine, calibration_file, tmp_path, monkeypatch):
    import vsslrt.pipeline.overlay as overlay

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for image in sorted((IS3_MINI / "images").glob("*.jpg"))[:5]:
        shutil.copy(image, pairs / image.name)
        shutil.copy(IS3_MINI / "audio_wav" / f"{image.stem}.wav", pairs / f"{image.stem}.wav")
    out = tmp_path / "out"
    real = overlay.write_overlay_png
    calls = {"n": 0}

    def png(result, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third pair's outputs are written
        return real(result, path, *a, **k)

    monkeypatch.setattr(overlay, "write_overlay_png", png)
    result = _cli("localize", "--engine", str(engine), "--calibration", str(calibration_file), "--folder", str(pairs),
                  "--out", str(out), "--batch", "2")
    assert result.exit_code != 0
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    assert rows[-1] == {"interrupted": True, "finished": 2, "pairs": 5}
    finished = {r["name"] for r in rows[:-1]}
    assert len(finished) == 2
    assert {p.stem for p in out.glob("*.json")} == finished  # no .json without its pair finished
    assert {p.stem for p in out.glob("*.png")} == finished


# -- 10. --trust-engine-code -----------------------------------------------------------------------------


@pytest.mark.parametrize("trust", [False, True])
def test_trust_engine_code_reaches_the_encoders(engine, data, calibration_file, tmp_path, monkeypatch, trust):
    import vsslrt.pipeline.encoders as encoders

    seen: list[bool] = []
    real = encoders.open_encoders

    def spy(*args, **kwargs):
        seen.append(kwargs.get("allow_host_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(encoders, "open_encoders", spy)
    flag = ("--trust-engine-code",) if trust else ()
    assert _bench(engine, data, tmp_path / "run", *flag, limit=2).exit_code == 0
    image = sorted((IS3_MINI / "images").glob("*.jpg"))[0]
    loc = _cli("localize", str(image), str(IS3_MINI / "audio_wav" / f"{image.stem}.wav"), "--engine", str(engine),
               "--calibration", str(calibration_file), "--out", str(tmp_path / "loc"), *flag)
    assert loc.exit_code == 0, loc.output
    assert seen == [trust, trust]


# -- 6. one rule for an empty ground truth ------------------------------------------------------------


def _manifest(tmp_path: Path, boxes: str) -> Path:
    folder = tmp_path / f"manifest-{boxes}"
    (folder / "frames").mkdir(parents=True)
    (folder / "audio").mkdir()
    lines = []
    for i, image in enumerate(sorted((IS3_MINI / "images").glob("*.jpg"))[:6]):
        shutil.copy(image, folder / "frames" / image.name)
        shutil.copy(IS3_MINI / "audio_wav" / f"{image.stem}.wav", folder / "audio" / f"{image.stem}.wav")
        rec = {"image": f"frames/{image.name}", "audio": f"audio/{image.stem}.wav", "group": f"g{i}"}
        if boxes == "empty":
            rec["boxes"] = []
        lines.append(json.dumps(rec))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_dataset_without_boxes_by_design_runs_the_negative_metrics_only(engine, tmp_path):
    out = tmp_path / "run"
    result = _cli("bench", "--engine", str(engine), "--dataset", "manifest", "--data-dir", str(_manifest(tmp_path, "none")),
                  "--out", str(out), "--batch", "3", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "no boxes by design" in result.output and "positive metrics are skipped" in result.output
    metrics = _metrics(out)
    assert not [k for k in metrics if k.startswith(("pos/", "pos_", "f/"))]
    assert any(k.startswith("silence/") for k in metrics) and any(k.startswith("max/") for k in metrics)
    assert "no boxes by design" in (out / "report.md").read_text()


def test_empty_ground_truth_is_refused_like_the_metrics_command(engine, tmp_path):
    import numpy as np

    data = _manifest(tmp_path, "empty")
    result = _cli("bench", "--engine", str(engine), "--dataset", "manifest", "--data-dir", str(data),
                  "--out", str(tmp_path / "run"), "--batch", "3", "--workers", "0")
    assert result.exit_code == 1
    bench_line = _one_line(result)
    example = dict(np.load(ROOT / "examples" / "example_maps.npz"))
    example["gt"] = np.zeros_like(example["gt"])
    np.savez(tmp_path / "empty.npz", **example)
    metrics = _cli("metrics", str(tmp_path / "empty.npz"))
    assert metrics.exit_code == 1
    metrics_line = _one_line(metrics)
    rule = "expected field 'gt' to mark at least one pixel, got an empty ground truth for all"
    assert rule in bench_line and rule in metrics_line
    assert bench_line.split(rule, 1)[1].split("samples.", 1)[1] == metrics_line.split(rule, 1)[1].split("samples.", 1)[1]
    assert str(data) in bench_line
