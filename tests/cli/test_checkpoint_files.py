"""Weight files that torch cannot (or must not) read, through the real entry point: one line saying
what the file is and what to do, exit 1."""

from __future__ import annotations

import io
import pickle
import sys
import zipfile

import pytest
import torch

from vsslrt.cli.app import main


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["vsslrt", *args])
    monkeypatch.delenv("VSSLRT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        main()
    return stop.value.code, capsys.readouterr().err


def _truncated_torch_file(path):
    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(2, 2)}, buffer)
    path.write_bytes(buffer.getvalue()[:300])
    return path


class Payload:  # stands in for an object whose unpickling runs code
    def __reduce__(self):
        return (print, ("unpickled",))


@pytest.mark.parametrize(("content", "says"), [
    ("truncated", "damaged zip archive"),
    ("html", "HTML/XML page"),
    ("empty", "empty file"),
])
def test_corrupt_imagenet_weights_are_one_line(tmp_path, monkeypatch, capsys, content, says):
    weights = tmp_path / "resnet18.pth"
    if content == "truncated":
        _truncated_torch_file(weights)
    elif content == "html":
        weights.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    else:
        weights.write_bytes(b"")
    code, err = _run(monkeypatch, capsys, "export", "--model", "ezvsl", "--random-init", "--object-net",
                     "--imagenet-weights", str(weights), "--out", str(tmp_path / "e"))
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(weights) in lines[0] and says in lines[0] and "download" in lines[0]


def test_a_pickle_of_code_is_refused_and_named(tmp_path, monkeypatch, capsys):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": {"w": Payload()}}))
    code, err = _run(monkeypatch, capsys, "export", "--model", "ezvsl", "--checkpoint", str(evil),
                     "--out", str(tmp_path / "e"))
    assert code == 1, err
    line = err.strip().splitlines()[-1]
    assert "builtins.print" in line and "could run code" in line and "--trust-checkpoint" in line
    assert "not a pickle" not in line and "unpickled" not in err
    assert zipfile.is_zipfile(evil) is False
