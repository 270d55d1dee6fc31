"""`vsslrt bench --ray` on a local Ray instance (2 CPUs): exactly the single-process numbers and run folder.

Needs the `dist` extra (`pip install 'vsslrt[dist]'`); skipped otherwise.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import IS3_MINI, MARKS, local_ray, ray  # noqa: E402, F401 - local_ray is a fixture
from test_distributed import assert_same_metrics, assert_same_run_folders  # noqa: E402
from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.pipeline.bench import run_bench  # noqa: E402
from vsslrt.pipeline.results import BenchSettings  # noqa: E402
from vsslrt.pipeline.distributed import run_bench_ray  # noqa: E402

pytestmark = MARKS


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    return make_tiny_engine(tmp_path_factory.mktemp("engines") / "tiny")


def test_ray_run_equals_single_process(local_ray, engine, tmp_path):
    """Fixed protocol, baselines and OGL: 16 samples in 4 blocks of 2 batches on 2 CPU actors."""
    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI, batch=2, workers=1)
    (single,) = run_bench([engine], settings, tmp_path / "single")
    seen = []
    (dist,) = run_bench_ray([engine], settings, tmp_path / "ray", block_size=4,
                            progress=lambda name, done, total: seen.append((name, done, total)))
    assert ray.is_initialized()  # attached to the running instance, did not shut it down
    assert dist.latency["distributed"]["blocks"] == 4 and dist.latency["distributed"]["actors"] == 2
    assert seen[-1] == ("tiny", 16, 16) and len(seen) == 4
    assert dist.n_samples == single.n_samples == 16
    assert_same_metrics(single.metrics, dist.metrics)
    assert dist.baselines.keys() == single.baselines.keys() == {"centre", "whole", "random", "objectness"}
    for name in single.baselines:
        assert_same_metrics(single.baselines[name], dist.baselines[name])
    assert dist.calibration == single.calibration
    assert_same_run_folders(tmp_path / "single", tmp_path / "ray")


def test_ray_paper_protocol_uneven_blocks(local_ray, engine, tmp_path):
    """Paper protocol, 2 repetitions, blocks of 6, 6 and 4 samples (the last batch is short)."""
    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI, batch=3, workers=1, protocol="paper", repeats=2,
                             seed=3, baselines=False)
    (single,) = run_bench([engine], settings, tmp_path / "single")
    (dist,) = run_bench_ray([engine], settings, tmp_path / "ray", block_size=6)
    assert dist.latency["distributed"]["blocks"] == 3
    assert "F_Pos_Neg" in dist.metrics
    assert_same_metrics(single.metrics, dist.metrics)
    assert_same_run_folders(tmp_path / "single", tmp_path / "ray")


def test_interrupted_ray_run_resumes_from_its_saved_blocks(local_ray, engine, tmp_path):
    """A Ray run whose part log holds blocks [0, 4) and [8, 12) of 16 samples: --resume computes only
    the other two blocks, and the run equals an uninterrupted single-process run."""
    from vsslrt.pipeline.bench import EngineSession
    from vsslrt.data import load_dataset
    from vsslrt.pipeline.distributed import ray_identity, save_block
    from vsslrt.errors import InputError, ManifestMismatchError
    from vsslrt.pipeline.runstore import PartLog

    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI, batch=2, workers=1)
    (single,) = run_bench([engine], settings, tmp_path / "single")
    out = tmp_path / "ray"
    log = PartLog(out / "shards" / engine.name, ray_identity(engine, settings, 16))
    log.start()
    with EngineSession(engine, load_dataset("is3", IS3_MINI), settings) as session:
        for start in (0, 8):
            save_block(log, session.run_shard(range(start, start + 4)))

    with pytest.raises(InputError, match="interrupted run"):
        run_bench_ray([engine], settings, out, block_size=4)
    with pytest.raises(ManifestMismatchError, match=r"settings changed \(seed\)"):
        run_bench_ray([engine], replace(settings, seed=1), out, block_size=4, resume=True)
    seen = []
    (dist,) = run_bench_ray([engine], settings, out, block_size=4, resume=True,
                            progress=lambda name, done, total: seen.append((name, done, total)))
    assert dist.latency["distributed"]["resumed_blocks"] == 2 and dist.latency["distributed"]["blocks"] == 2
    assert seen[0] == ("tiny", 12, 16) and seen[-1] == ("tiny", 16, 16)
    assert dist.n_samples == single.n_samples == 16
    assert_same_metrics(single.metrics, dist.metrics)
    for name in single.baselines:
        assert_same_metrics(single.baselines[name], dist.baselines[name])
    assert dist.calibration == single.calibration
    assert_same_run_folders(tmp_path / "single", out)
    assert not list((out / "shards" / engine.name).glob("part-*.npz"))  # merged into the final checkpoint


def test_ray_run_with_skip_bad_leaves_out_the_bad_sample_as_one_process_does(local_ray, engine, tmp_path):
    """A sample whose audio file is missing: with --skip-bad both runs leave out the same samples (the
    actors load the dataset without failing on it) and give the same numbers."""
    import shutil

    data = tmp_path / "is3"
    shutil.copytree(IS3_MINI, data)
    victim = sorted((data / "audio_wav").iterdir())[3]
    victim.unlink()
    settings = BenchSettings(dataset="is3", data_dir=data, batch=2, workers=1, skip_bad=True)
    (single,) = run_bench([engine], settings, tmp_path / "single")
    (dist,) = run_bench_ray([engine], settings, tmp_path / "ray", block_size=4)
    # The missing file's own sample and the one that drew it as its offscreen clip.
    assert dist.n_samples == single.n_samples == 14

    def by_index(skipped):
        return sorted(skipped, key=lambda s: s["index"])

    assert by_index(dist.skipped) == by_index(single.skipped) and len(single.skipped) == 2
    assert_same_metrics(single.metrics, dist.metrics)
