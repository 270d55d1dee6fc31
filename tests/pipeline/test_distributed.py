"""Sharding without Ray: shard states merged on a driver equal one pass; layout rules (the CLI's --ray: tests/cli).

These run everywhere (Ray not needed); tests/pipeline/test_ray_bench.py runs the same pipeline on a
local Ray instance.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.pipeline.bench import EngineSession, run_bench  # noqa: E402
from vsslrt.pipeline.results import BenchSettings  # noqa: E402
from vsslrt.pipeline.runfolder import write_run_folder  # noqa: E402
from vsslrt.pipeline.distributed import block_ranges, merge_shards, pack_shard, plan_layout, unpack_shard  # noqa: E402
from vsslrt.errors import BackendUnavailableError  # noqa: E402

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))
needs_data = pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}")


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    return make_tiny_engine(tmp_path_factory.mktemp("engines") / "tiny")


def assert_same_metrics(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])))]
    assert not different, {k: (a[k], b[k]) for k in different[:5]}


def assert_same_run_folders(single: Path, other: Path) -> None:
    """Same files; metrics.json equal but for its creation time; identical max values and final states."""
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in other.iterdir())
    for ckpt in sorted((single / "shards").glob("*/checkpoint.npz")):
        twin = other / "shards" / ckpt.parent.name / "checkpoint.npz"
        with np.load(ckpt) as x, np.load(twin) as y:
            assert sorted(x.files) == sorted(y.files)
            for key in x.files:
                if key != "__meta__":
                    np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (single, other))
    a.pop("created"), b.pop("created")
    assert a == b
    with np.load(single / "max_values.npz") as x, np.load(other / "max_values.npz") as y:
        assert x.files == y.files
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key])


@needs_data
def test_shards_merged_on_a_driver_equal_one_pass(engine, tmp_path):
    """Skip-bad, two repetitions, a noise bank, uneven shards merged in reverse order after transport."""
    data = tmp_path / "is3"
    shutil.copytree(IS3_MINI, data)
    (data / "audio_wav" / "lion_cat_872_cat.wav").write_bytes(b"RIFF not really a wav")
    settings = BenchSettings(dataset="is3", data_dir=data, batch=3, workers=1, repeats=2, noise_bank=2, skip_bad=True)
    (single,) = run_bench([engine], settings, tmp_path / "single")

    from vsslrt.data import load_dataset
    from vsslrt.manifest import Manifest

    dataset = load_dataset("is3", data)
    with EngineSession(engine, dataset, settings) as session:
        shards = [session.run_shard(range(start, min(start + 6, 16))) for start in (0, 6, 12)]
    assert [s.done for s in shards] == [list(range(0, 6)), list(range(6, 12)), list(range(12, 16))]
    transported = [unpack_shard(*pack_shard(s)) for s in shards]
    merged = merge_shards(engine, Manifest.read(engine), settings, transported[::-1])
    assert single.skipped and {s["index"] for s in merged.skipped} == {s["index"] for s in single.skipped}
    assert merged.n_samples == single.n_samples == 16 - len(single.skipped)
    assert_same_metrics(single.metrics, merged.metrics)
    for name in single.baselines:
        assert_same_metrics(single.baselines[name], merged.baselines[name])
    in_order = merge_shards(engine, Manifest.read(engine), settings, transported)
    write_run_folder(tmp_path / "merged", [in_order], settings, dataset)
    assert_same_run_folders(tmp_path / "single", tmp_path / "merged")


def test_block_ranges_cover_what_is_left_from_the_old_block_boundaries():
    indices = list(range(16))
    assert block_ranges(indices, set(), 6) == [(0, 6), (6, 12), (12, 16)]
    # Blocks [0, 4) and [8, 12) were finished: the rest is cut from the start of each unfinished run.
    assert block_ranges(indices, {*range(0, 4), *range(8, 12)}, 6) == [(4, 8), (12, 16)]
    assert block_ranges(indices, {*range(4, 8)}, 3) == [(0, 3), (3, 4), (8, 11), (11, 14), (14, 16)]
    assert block_ranges(indices, set(indices), 4) == []


def test_layout_cpu_cluster():
    layout = plan_layout(100, 4, backend="ort", resources={"CPU": 8.0})
    assert layout == {"actors": 8, "cpus_per_actor": 1, "num_gpus": 0, "block_size": 4}
    # Few samples: no more actors than blocks; explicit choices are kept.
    assert plan_layout(10, 5, backend="ort", resources={"CPU": 8.0})["actors"] == 2
    assert plan_layout(100, 4, backend="ort", resources={"CPU": 8.0}, actors=2, cpus_per_actor=3, block_size=20) == {
        "actors": 2, "cpus_per_actor": 3, "num_gpus": 0, "block_size": 20}


def test_layout_gpu_cluster():
    layout = plan_layout(100, 4, backend="trt", resources={"CPU": 16.0, "GPU": 2.0})
    assert layout == {"actors": 2, "cpus_per_actor": 7, "num_gpus": 1, "block_size": 16}
    with pytest.raises(BackendUnavailableError, match="--backend ort"):
        plan_layout(100, 4, backend="ort-cuda", resources={"CPU": 16.0})


def test_missing_ray_names_the_extra(monkeypatch, engine, tmp_path):
    from vsslrt.pipeline.distributed import run_bench_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI)
    with pytest.raises(BackendUnavailableError, match=r"vsslrt\[dist\]"):
        run_bench_ray([engine], settings, tmp_path / "run")
