"""Ordinary system faults (disk full, read-only, permissions, a file where a folder should be) through
the real entry point: one line naming the path and what to do, exit 1, never "a bug in vsslrt"."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from vsslrt.cli.app import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_maps.npz"


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["vsslrt", *args])
    monkeypatch.delenv("VSSLRT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        main()
    return stop.value.code, capsys.readouterr().err


def _failing_mkstemp(code: int):
    def mkstemp(*_args, dir=None, **_kwargs):  # noqa: A002 - tempfile's own keyword
        raise OSError(code, os.strerror(code), str(dir))

    return mkstemp


@pytest.mark.parametrize(
    ("code", "says", "todo"),
    [
        (errno.ENOSPC, "no space left on the device", "free some space"),
        (errno.EROFS, "read-only file system", "writable folder"),
        (errno.EACCES, "permission denied", "permissions"),
        (errno.EDQUOT, "disk quota exceeded", "free some space"),
    ],
)
def test_write_faults_are_one_line_naming_the_path(tmp_path, monkeypatch, capsys, code, says, todo):
    import vsslrt.files

    monkeypatch.setattr(vsslrt.files.tempfile, "mkstemp", _failing_mkstemp(code))
    status, err = _run(monkeypatch, capsys, "metrics", str(EXAMPLE), "--json", str(tmp_path / "out" / "m.json"))
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(tmp_path / "out") in lines[0]
    assert says in lines[0] and todo in lines[0]
    assert "bug" not in lines[0] and "Traceback" not in err


def test_disk_full_while_flushing_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    import vsslrt.files

    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(vsslrt.files.os, "fsync", full)
    status, err = _run(monkeypatch, capsys, "metrics", str(EXAMPLE), "--json", str(tmp_path / "m.json"))
    assert status == 1
    assert "no space left on the device" in err and "bug" not in err
    assert list(tmp_path.iterdir()) == []  # neither the report nor a temporary file


def test_a_file_where_a_folder_should_be(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    status, err = _run(monkeypatch, capsys, "data", "synth", "--out", str(blocker / "synth"), "--n", "2")
    assert status == 1
    line = err.strip()
    assert "\n" not in line and str(blocker) in line
    assert "bug" not in line


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    import vsslrt.files

    monkeypatch.setattr(vsslrt.files.tempfile, "mkstemp", _failing_mkstemp(errno.ENOSPC))
    monkeypatch.setattr(sys, "argv", ["vsslrt", "metrics", str(EXAMPLE), "--json", str(tmp_path / "m.json")])
    monkeypatch.setenv("VSSLRT_DEBUG", "1")
    with pytest.raises(OSError) as raised:
        main()
    assert raised.value.errno == errno.ENOSPC
