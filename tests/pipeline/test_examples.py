"""Failure views (vsslrt.pipeline.examples): exact, mergeable worst-K selection, and the grids of a
real benchmark run of a tiny engine on the synthetic set, whose recomputed maps give back the
scores the run stored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.errors import InputError  # noqa: E402
from vsslrt.pipeline.examples import (  # noqa: E402
    WorstK,
    failure_scores,
    recompute_maps,
    select_failures,
    threshold_values,
    write_failure_views,
)


def _brute(scores, ids, k, largest):
    keyed = sorted(zip(scores.tolist(), ids.tolist()), key=lambda p: ((-p[0] if largest else p[0]), p[1]))
    return [i for _, i in keyed[:k]]


@pytest.mark.parametrize("largest", [False, True])
def test_worst_k_is_exact_across_shards(largest):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 200).astype(np.float64) / 5  # many ties
    ids = rng.permutation(1000)[:200]
    want = _brute(scores, ids, 7, largest)
    assert WorstK(7, largest).update(scores, ids).ids.tolist() == want
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(200)
        parts = np.array_split(order, 5)
        merged = WorstK(7, largest)
        for part in reversed(parts):
            merged.merge(WorstK(7, largest).update(scores[part], ids[part]))
        assert merged.ids.tolist() == want
    with pytest.raises(InputError, match="positive integer"):
        WorstK(0)


def test_nan_counts_as_the_worst():
    sel = WorstK(2).update(np.array([0.3, np.nan, 0.1]), np.array([5, 9, 7]))
    assert sel.ids.tolist() == [9, 7]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    from vsslrt.data import synth
    from vsslrt.pipeline.bench import run_bench
    from vsslrt.pipeline.results import BenchSettings

    root = tmp_path_factory.mktemp("examples")
    data = synth.write_split(root / "synth", 12, seed=5, split="test")
    engine = make_tiny_engine(root / "engines" / "tiny", with_object=False)
    settings = BenchSettings(dataset="manifest", data_dir=Path(data), batch=5, workers=1, repeats=2, baselines=False)
    run = root / "run"
    run_bench([engine], settings, run)
    return engine, settings, run


def test_failure_views_of_a_run(bench_run):
    from vsslrt.data import load_dataset
    from vsslrt.eval.config import EvalConfig
    from vsslrt.pipeline.bench import EngineSession

    engine, settings, run = bench_run
    dataset = load_dataset(settings.dataset, settings.data_dir)
    checkpoint = np.load(run / "shards" / engine.name / "checkpoint.npz")
    written = write_failure_views(run, engine, dataset, checkpoint, 3, settings=settings, threshold="fixed")
    assert set(written) == {"pos", "silence", "noise", "offscreen", "index"}
    for path in written.values():
        assert path.is_file() and path.stat().st_size > 0
    assert written["pos"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = json.loads(written["index"].read_text())
    assert index["threshold"] == "fixed" and len(index["conditions"]["noise"]) == 3

    # The selection is the brute-force one over every stored sample (24: 12 samples x 2 repetitions).
    state = {k.partition("/")[2]: checkpoint[k] for k in checkpoint.files if k.startswith("model/")}
    config = EvalConfig.from_json(str(state["config"]))
    j = config.columns.index("fixed")
    ids = state["sample_id"]
    iou = np.where(state["gt_pixels"] == 0, 0.0, state["iou"][:, j])
    assert [e["sample_id"] for e in index["conditions"]["pos"]] == _brute(iou, ids, 3, False)
    assert [e["sample_id"] for e in index["conditions"]["noise"]] == _brute(state["pia"][:, 1, j], ids, 3, True)

    # The maps recomputed from the engine give back the stored IoU and pIA of every chosen sample.
    selections = select_failures(checkpoint, 3, "fixed")
    chosen = np.unique(np.concatenate([s.ids for s in selections.values()]))
    with EngineSession(engine, dataset, settings) as session:
        maps = recompute_maps(session, dataset, chosen, config)
    thresholds = threshold_values(checkpoint, "fixed", chosen)
    scores = failure_scores(maps, dataset.gt_maps([int(i) % len(dataset) for i in chosen]), thresholds)
    rows = np.searchsorted(ids, chosen)
    np.testing.assert_allclose(scores["pos"], iou[rows], atol=1e-12)
    for ni, neg in enumerate(("silence", "noise", "offscreen")):
        np.testing.assert_allclose(scores[neg], state["pia"][rows, ni, j], atol=1e-12)


def test_bad_threshold_and_state(bench_run):
    engine, settings, run = bench_run
    checkpoint = np.load(run / "shards" / engine.name / "checkpoint.npz")
    with pytest.raises(InputError, match="expected a threshold among"):
        select_failures(checkpoint, 2, "nope")
    with pytest.raises(InputError, match="evaluator state"):
        select_failures({"x": np.zeros(2)}, 2)
