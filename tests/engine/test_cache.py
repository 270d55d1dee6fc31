"""Engine cache: keys, diffs, atomic writes under interruption, lookup and reuse."""

from __future__ import annotations

import json
import os
import shutil

import onnx
import pytest

from vsslrt.engine import cache as cache_mod
from vsslrt.files import sha256_file
from vsslrt.engine.cache import (
    BuildEnvironment,
    EngineCache,
    EngineKey,
    atomic_write_bytes,
    describe,
    diff,
    onnx_sha256,
    read_key,
)
from vsslrt.errors import InputError, ManifestMismatchError

ENV = BuildEnvironment("11.4.0.106", "NVIDIA H100 80GB HBM3", "9.0", "13.0", "13.0")


def make_key(**changes):
    fields = dict(
        onnx_sha256="a" * 64, precision="fp16", profile="1:16:64", builder_optimization_level=3,
        workspace_bytes=1 << 30, environment=ENV,
    )
    fields.update(changes)
    return EngineKey.create(**fields)


def test_key_digest_is_stable_and_sensitive():
    assert make_key().digest() == make_key().digest()
    variants = [
        make_key(onnx_sha256="b" * 64),
        make_key(precision="fp32"),
        make_key(profile="1:8:64"),
        make_key(builder_optimization_level=5),
        make_key(workspace_bytes=1 << 31),
        make_key(environment=BuildEnvironment(**{**ENV.__dict__, "tensorrt_version": "10.16.1"})),
    ]
    digests = {k.digest() for k in variants} | {make_key().digest()}
    assert len(digests) == len(variants) + 1


def test_every_environment_field_invalidates():
    for field in ("tensorrt_version", "gpu_name", "compute_capability", "driver_version", "cuda_version"):
        env = BuildEnvironment(**{**ENV.__dict__, field: "changed"})
        changes = diff(make_key(), make_key(environment=env))
        assert [c.field for c in changes] == [field]


def test_diff_names_what_changed_in_key_order():
    old = make_key(environment=BuildEnvironment(**{**ENV.__dict__, "tensorrt_version": "10.16.1"}), precision="fp32")
    changes = diff(old, make_key())
    assert [(c.field, c.old, c.new) for c in changes] == [
        ("precision", "fp32", "fp16"),
        ("tensorrt_version", "10.16.1", "11.4.0.106"),
    ]
    assert describe(changes) == "precision fp32 -> fp16; tensorrt_version 10.16.1 -> 11.4.0.106"
    assert describe(diff(make_key(), make_key())) == "nothing"


def test_key_round_trips_and_rejects_other_schemas():
    key = make_key()
    assert EngineKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key
    with pytest.raises(ManifestMismatchError, match="missing gpu_name"):
        EngineKey.from_dict({k: v for k, v in key.to_dict().items() if k != "gpu_name"})
    with pytest.raises(ManifestMismatchError, match="got schema 99"):
        EngineKey.from_dict({**key.to_dict(), "schema": 99})
    with pytest.raises(InputError, match="expected precision to be one of fp32, fp16, int8, got 'int4'"):
        make_key(precision="int4")


def test_atomic_write_interrupted_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "engine.plan"
    atomic_write_bytes(target, b"old engine")

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new engine that never lands")
    assert target.read_bytes() == b"old engine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine.plan"]


def test_atomic_write_failing_mid_write_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(tmp_path / "x.plan", b"data")
    assert list(tmp_path.iterdir()) == []


def test_store_then_lookup_reuses(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    key = make_key()
    assert cache.lookup("visual", key) is None
    path = cache.store("visual", key, b"PLAN", info={"inspector": {"fp16_share": 0.9}})
    assert path.name == f"visual-{key.digest()}.plan"
    assert cache.lookup("visual", key) == path
    assert read_key(path) == (key, sha256_file(path))
    assert cache_mod.read_record(path)["info"] == {"inspector": {"fp16_share": 0.9}}
    assert cache.lookup("audio", key) is None
    assert cache.lookup("visual", make_key(precision="fp32")) is None


def test_interrupted_store_is_not_loadable(tmp_path, monkeypatch):
    """The plan lands but the key file write is interrupted: lookup and read_key refuse the plan."""
    cache = EngineCache(tmp_path)
    key = make_key()
    real_write = cache_mod.atomic_write_text

    def fail_key_write(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "atomic_write_text", fail_key_write)
    with pytest.raises(KeyboardInterrupt):
        cache.store("visual", key, b"PLAN")
    monkeypatch.setattr(cache_mod, "atomic_write_text", real_write)
    assert cache.plan_path("visual", key).is_file()
    assert cache.lookup("visual", key) is None
    with pytest.raises(ManifestMismatchError, match="expected its key file .* got none"):
        read_key(cache.plan_path("visual", key))


def test_damaged_plan_is_not_reused(tmp_path):
    cache = EngineCache(tmp_path)
    key = make_key()
    path = cache.store("visual", key, b"PLAN")
    path.write_bytes(b"PLAM")
    assert cache.lookup("visual", key) is None
    assert cache.lookup("visual", key, verify_plan=False) == path


def test_stale_entries_say_what_changed(tmp_path):
    cache = EngineCache(tmp_path)
    old = make_key(environment=BuildEnvironment(**{**ENV.__dict__, "gpu_name": "NVIDIA A100-SXM4-80GB"}))
    cache.store("visual", old, b"OLD")
    cache.store("audio", old, b"OLD")
    stale = cache.stale_entries("visual", make_key())
    assert len(stale) == 1
    assert describe(stale[0][1]) == "gpu_name NVIDIA A100-SXM4-80GB -> NVIDIA H100 80GB HBM3"


def test_timing_cache_is_per_tensorrt_and_gpu(tmp_path):
    cache = EngineCache(tmp_path)
    a = cache.timing_cache_path(ENV)
    assert a == cache.timing_cache_path(BuildEnvironment(**{**ENV.__dict__, "driver_version": "13.1"}))
    assert a != cache.timing_cache_path(BuildEnvironment(**{**ENV.__dict__, "tensorrt_version": "11.5.0"}))
    assert a != cache.timing_cache_path(BuildEnvironment(**{**ENV.__dict__, "gpu_name": "L4"}))


def test_onnx_hash_covers_external_data(tmp_path, models_dir):
    model = onnx.load(str(models_dir / "audio.onnx"))
    path = tmp_path / "audio.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="audio.onnx.data", size_threshold=0)
    first = onnx_sha256(path)
    assert first == onnx_sha256(path)
    data = tmp_path / "audio.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert onnx_sha256(path) != first
    os.remove(data)
    with pytest.raises(InputError, match="expected external data file 'audio.onnx.data' beside the model"):
        onnx_sha256(path)


def test_onnx_hash_depends_on_content_not_folder(tmp_path, models_dir):
    shutil.copy(models_dir / "visual.onnx", tmp_path / "visual.onnx")
    assert onnx_sha256(tmp_path / "visual.onnx") == onnx_sha256(models_dir / "visual.onnx")
    assert onnx_sha256(models_dir / "visual.onnx") != onnx_sha256(models_dir / "audio.onnx")
    assert len(onnx_sha256(models_dir / "visual.onnx")) == 64
