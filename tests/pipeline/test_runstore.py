from __future__ import annotations

import json
import os

import numpy as np
import pytest

from vsslrt.errors import InputError, ManifestMismatchError
from vsslrt.files import atomic_write_json, atomic_write_text
from vsslrt.pipeline.runstore import ShardCheckpoint


def test_checkpoint_round_trip(tmp_path):
    ckpt = ShardCheckpoint(tmp_path / "shard-0", {"dataset": "is3", "seed": 1})
    assert not ckpt.exists()
    state = {"iou": np.linspace(0, 1, 5, dtype=np.float32), "ids": np.arange(5)}
    ckpt.save(state, {0, 1, 2, 3, 4}, {"batches": 2})
    loaded, done, extra = ShardCheckpoint(tmp_path / "shard-0", {"dataset": "is3", "seed": 1}).load()
    assert done == {0, 1, 2, 3, 4}
    assert extra == {"batches": 2}
    np.testing.assert_array_equal(loaded["iou"], state["iou"])
    np.testing.assert_array_equal(loaded["ids"], state["ids"])


def test_resume_with_other_settings_is_refused_and_names_them(tmp_path):
    ShardCheckpoint(tmp_path, {"dataset": "is3", "seed": 1, "repeats": 1}).save({}, set())
    with pytest.raises(ManifestMismatchError, match="seed"):
        ShardCheckpoint(tmp_path, {"dataset": "is3", "seed": 2, "repeats": 1}).load()


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    ckpt = ShardCheckpoint(tmp_path, {"a": 1})
    ckpt.path.write_bytes(b"not an npz")
    with pytest.raises(InputError, match="checkpoint.npz"):
        ckpt.load()


def test_reserved_keys_rejected(tmp_path):
    with pytest.raises(ValueError):
        ShardCheckpoint(tmp_path, {}).save({"__done__": np.zeros(1)}, set())


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"ok": 1})

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "half")
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_part_log_appends_and_loads_in_order(tmp_path):
    from vsslrt.pipeline.runstore import PartLog

    log = PartLog(tmp_path / "engine", {"seed": 0})
    log.start()
    log.append({"x": np.arange(2)}, {0, 1}, {"skipped": []})
    log.append({"x": np.arange(2, 4)}, {2, 3}, {"skipped": [{"index": 9}]})
    parts = PartLog(tmp_path / "engine", {"seed": 0}).load()
    assert [sorted(done) for _, done, _ in parts] == [[0, 1], [2, 3]]
    np.testing.assert_array_equal(np.concatenate([s["x"] for s, _, _ in parts]), np.arange(4))
    assert parts[1][2] == {"skipped": [{"index": 9}]}
    with pytest.raises(InputError, match="--resume"):
        PartLog(tmp_path / "engine", {"seed": 0}).start()
    with pytest.raises(ManifestMismatchError, match="seed"):
        PartLog(tmp_path / "engine", {"seed": 1}).load()


def test_part_files_are_world_readable(tmp_path):
    from vsslrt.pipeline.runstore import PartLog

    log = PartLog(tmp_path, {"a": 1})
    log.start()
    path = log.append({}, set())
    assert path.stat().st_mode & 0o044 == 0o044
