"""Multi-source duet metrics (vsslrt.eval.multisource) against the per-mixture oracle
(tests/eval/oracle_multisource.py): random, tied and edge-case mixtures, both modes, shard merges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_helpers import assert_match, load_sibling

from vsslrt.errors import InputError
from vsslrt.eval.multisource import MultiSourceEvaluator, average_precision


oracle = load_sibling("oracle_multisource")


def _mixtures(n=5, p=2, seed=0, levels=12):
    """Quantised maps (few distinct values: ties everywhere), boxes as GT; edge cases included."""
    rng = np.random.default_rng(seed)
    maps = (rng.integers(0, levels, (n, p, p, 224, 224)) / (levels - 1)).astype(np.float32)
    gt = np.zeros((n, p, 224, 224), dtype=bool)
    for i in range(n):
        for j in range(p):
            y0, x0 = rng.integers(0, 150, 2)
            gt[i, j, y0:y0 + rng.integers(10, 70), x0:x0 + rng.integers(10, 70)] = True
            maps[i, j, j, y0:y0 + 40, x0:x0 + 40] = 1.0  # query j lights up its own panel
    gt[1, 0] = False  # an empty panel
    maps[2] = 0.5  # constant maps: every normalised score 0
    gt[3, 1] = True  # a full panel
    maps[4, 0] = maps[4, 1]  # both queries give the same maps: the second match finds an emptied panel
    return maps, gt


@pytest.mark.parametrize("mode", ["fixed", "paper"])
@pytest.mark.parametrize("p,levels,invert", [(2, 12, False), (2, 3, True), (3, 7, False)])
def test_parity_with_oracle(mode, p, levels, invert):
    maps, gt = _mixtures(n=5, p=p, seed=p + levels, levels=levels)
    ev = MultiSourceEvaluator(mode, ciou_thr=0.5, iou_thr=0.3, invert=invert)
    ev.update(maps[:2], gt[:2]).update(maps[2:], gt[2:])
    assert_match(ev.compute(), oracle.oracle_multisource(maps, gt, mode=mode, ciou_thr=0.5, iou_thr=0.3, invert=invert))


def test_average_precision_by_hand():
    labels = np.array([1, 0, 1, 0], bool)
    scores = np.array([0.9, 0.8, 0.8, 0.1])
    # cuts 0.9: P 1, R 0.5; 0.8: P 2/3, R 1; 0.1: R stays 1
    assert average_precision(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert math.isnan(average_precision(np.zeros(4, bool), scores))
    assert oracle.ap(labels, scores) == pytest.approx(average_precision(labels, scores))


def test_greedy_matching_by_hand():
    """Two panels; both queries light up panel 0 only: the first takes it, the second gets the
    emptied panel 0 or panel 1, whichever is higher (both 0 here), so one of two sources is found."""
    gt = np.zeros((1, 2, 224, 224), bool)
    gt[0, 0, :90] = True
    gt[0, 1, 112:] = True
    maps = np.zeros((1, 2, 2, 224, 224), np.float32)
    maps[0, :, 0, :90] = 1.0  # under half the panel: above its median (exactly half would select nothing)
    out = MultiSourceEvaluator("fixed").update(maps, gt).compute()
    assert out["multi/greedy/ciou@0.5"] == pytest.approx(50.0)
    assert out["multi/greedy/cap"] == pytest.approx(50.0)


def test_shards_merge_exactly(tmp_path):
    maps, gt = _mixtures(n=6, seed=9)
    whole = MultiSourceEvaluator().update(maps, gt).compute()
    a = MultiSourceEvaluator().update(maps[3:], gt[3:], sample_ids=np.arange(3, 6))
    b = MultiSourceEvaluator().update(maps[:3], gt[:3], sample_ids=np.arange(3))
    np.savez(tmp_path / "a.npz", **a.state())
    merged = MultiSourceEvaluator.from_state(np.load(tmp_path / "a.npz")).merge(b)
    assert merged.compute() == whole
    with pytest.raises(InputError, match="repeated id"):
        merged.merge(b)


def test_bad_inputs():
    ev = MultiSourceEvaluator()
    with pytest.raises(InputError, match="one query per source"):
        ev.update(np.zeros((1, 1, 2, 7, 7), np.float32), np.zeros((1, 2, 224, 224), bool))
    with pytest.raises(InputError, match="'gt' of shape"):
        ev.update(np.zeros((1, 2, 2, 7, 7), np.float32), np.zeros((1, 2, 100, 100), bool))
    with pytest.raises(InputError, match="mode"):
        MultiSourceEvaluator("official")


@pytest.mark.cupy
def test_cupy_inputs_match_numpy():
    import cupy

    maps, gt = _mixtures(n=3, seed=4)
    want = MultiSourceEvaluator().update(maps, gt).compute()
    got = MultiSourceEvaluator().update(cupy.asarray(maps), cupy.asarray(gt)).compute()
    assert_match(got, want, atol=1e-9)
