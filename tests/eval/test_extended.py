"""Extended-set metrics (SLAVC / ACL-SSL) against the independent oracle, shard merges and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_helpers import assert_match, load_sibling

from vsslrt.errors import InputError
from vsslrt.eval._xp import use_fast_paths
from vsslrt.eval.extended import ExtendedEvaluator


oracle = load_sibling("oracle_extended")





def make_set(seed: int, n: int, *, size: int = 224, kind: str = "random"):
    """n samples, every other one a positive with one or two (overlapping) consensus boxes."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        maps = rng.random((n, size, size), dtype=np.float32)
    elif kind == "tied":  # few distinct values: plateaus at every threshold, equal confidences
        maps = (rng.integers(0, 4, (n, size, size)) / 4).astype(np.float32)
        maps[1::3] = maps[0::3][: len(maps[1::3])]  # duplicated maps: tied confidences
    else:  # edge: all-zero and constant maps
        maps = np.zeros((n, size, size), dtype=np.float32)
        maps[::3] = 0.5
    positive = np.arange(n) % 2 == 0
    gt = np.zeros((n, 224, 224), dtype=np.float32)
    n_boxes = np.zeros(n, dtype=np.int64)
    for i in np.flatnonzero(positive):
        k = int(rng.integers(1, 3))
        boxes = []
        for _ in range(k):
            h, w = rng.integers(8, 200, 2) if k == 1 else rng.integers(60, 160, 2)
            y, x = rng.integers(0, 224 - h), rng.integers(0, 224 - w)
            boxes.append((x, y, x + w, y + h))
        if i % 8 == 6:  # a sounding sample whose boxes are all degenerate: empty GT
            boxes = [(10, 10, 10, 40)]
        gt[i] = oracle.consensus(boxes)
        n_boxes[i] = len(boxes)
    # a signal: positives are brighter inside their GT, so the metrics are not all zero
    if kind != "edge":  # positives brighter inside their GT, some only faintly: a spread of cIoU
        strength = rng.random(n).astype(np.float32)[:, None, None]
        if size == 224:
            maps += strength * (gt > 0)
        else:
            maps += strength * (gt[:, 16::32, 16::32] > 0)
    return maps, gt, positive, n_boxes


@pytest.mark.parametrize("mode", ["paper", "fixed"])
@pytest.mark.parametrize("kind", ["random", "tied", "edge"])
def test_slavc_matches_oracle(mode, kind):
    maps, gt, positive, n_boxes = make_set(1, 24, kind=kind)
    got = ExtendedEvaluator("slavc", mode).update(maps, gt, positive, n_boxes=n_boxes).compute()
    assert_match(got, oracle.slavc_evaluate(maps, gt, positive, n_boxes, mode=mode))


@pytest.mark.parametrize("mode", ["paper", "fixed"])
def test_slavc_absolute_binarisation_and_bicubic(mode):
    maps, gt, positive, n_boxes = make_set(2, 8, size=7)
    got = ExtendedEvaluator("slavc", mode, relative=False, pred_thr=0.75).update(
        maps, gt, positive, n_boxes=n_boxes).compute()
    want = oracle.slavc_evaluate(maps, gt, positive, n_boxes, mode=mode, relative=False, pred_thr=0.75)
    assert_match(got, want)


def test_slavc_on_the_generic_path_matches_numpy():
    """The array-API path (the one CuPy runs) gives the same numbers as the NumPy fast path."""
    maps, gt, positive, n_boxes = make_set(3, 20)
    fast = ExtendedEvaluator("slavc", "paper").update(maps, gt, positive, n_boxes=n_boxes).compute()
    with use_fast_paths(False):
        generic = ExtendedEvaluator("slavc", "paper").update(maps, gt, positive, n_boxes=n_boxes).compute()
    assert_match(generic, fast, atol=1e-9)


@pytest.mark.parametrize("mode", ["paper", "fixed"])
@pytest.mark.parametrize("tied", [False, True])
def test_acl_matches_oracle(mode, tied):
    maps, gt, positive, _ = make_set(4, 30)
    rng = np.random.default_rng(5)
    conf = rng.random(30) + positive * 0.3
    if tied:
        conf = np.round(conf * 4) / 4  # many equal confidences: ties at every detection threshold
    thresholds = (0.3, 0.5, 0.95)
    got = ExtendedEvaluator("acl", mode, thresholds=thresholds, resize_with="bilinear").update(
        maps, gt, positive, confidence=conf).compute()
    assert_match(got, oracle.acl_evaluate(maps, gt, positive, conf, thresholds, mode=mode))


def test_hand_computed_paper_numbers():
    """Four samples: the reference's P/R rules, AP walk and decile F1, by hand.

    conf = (0.9, 0.8, 0.7, 0.6); sample 0 a localised positive, 1 a negative, 2 a mislocalised
    positive, 3 a localised positive. AP thresholds a[2], a[1], a[0] = 0.8, 0.7, 0.6:
    P = (1/2, 1/3, 1/2), R = (1/3, 1/2, 1) (the mislocalised positive never counts as missed, so R
    reaches 1); envelope (1/2, 1/2, 1/2): AP = 1/2 (1/2 - 1/3) + 1/2 (1 - 1/2) = 1/3, the area below
    R = 1/3 dropped.
    """
    maps = np.zeros((4, 224, 224), dtype=np.float32)
    gt = np.zeros((4, 224, 224), dtype=np.float32)
    for i in (0, 2, 3):
        gt[i, :112] = 1
    maps[[0, 3], :112] = 1.0  # binarised >= its median: exactly the top half
    maps[2, 112:] = 1.0
    positive = np.array([True, False, True, True])
    ev = ExtendedEvaluator("acl", "paper", thresholds=(0.5,))
    got = ev.update(maps, gt, positive, confidence=np.array([0.9, 0.8, 0.7, 0.6])).compute()
    assert got["AP-all@50"] == pytest.approx(100 / 3)
    # F1 thresholds: every confidence (N // 10 = 0 -> step 1): at 0.6 P = 2/4, R = 1 -> F1 = 66.7
    assert got["MaxF1-all@50"] == 66.7
    fixed = ExtendedEvaluator("acl", "fixed", thresholds=(0.5,)).update(
        maps, gt, positive, confidence=np.array([0.9, 0.8, 0.7, 0.6])).compute()
    # fixed: R = TP / 3: (1/3 at 0.9, P 1), (1/3, 1/2), (1/3, 1/3), (2/3, 1/2): AP = 1/3 + 1/3 * 1/2
    assert fixed["extended/all/ap@0.5"] == pytest.approx(100 * (1 / 3 + 1 / 6))
    assert fixed["extended/all/locacc@0.5"] == pytest.approx(200 / 3)


@pytest.mark.parametrize("reference", ["slavc", "acl"])
def test_shards_merge_exactly(reference, tmp_path):
    maps, gt, positive, n_boxes = make_set(6, 30)
    conf = np.random.default_rng(1).random(30) if reference == "acl" else None
    kwargs = {"thresholds": (0.4, 0.6)} if reference == "acl" else {}

    def run(idx):
        ev = ExtendedEvaluator(reference, "paper", **kwargs)
        return ev.update(maps[idx], gt[idx], positive[idx], n_boxes=n_boxes[idx],
                         confidence=None if conf is None else conf[idx], sample_ids=idx)

    whole = run(np.arange(30)).compute()
    order = np.random.default_rng(2).permutation(30)
    a, b = run(order[:11]), run(order[11:])
    np.savez(tmp_path / "a.npz", **a.state())
    merged = ExtendedEvaluator.from_state(np.load(tmp_path / "a.npz")).merge(b.state())
    got = merged.compute()
    assert got.keys() == whole.keys()
    assert all((math.isnan(got[k]) and math.isnan(whole[k])) or got[k] == whole[k] for k in got)
    with pytest.raises(InputError, match="repeated id"):
        merged.merge(b)
    with pytest.raises(InputError, match="same settings"):
        ExtendedEvaluator(reference, "fixed", **kwargs).merge(a.state())


def test_refusals():
    maps, gt, positive, _ = make_set(7, 4)
    with pytest.raises(InputError, match="expected 'confidence' for the ACL reference"):
        ExtendedEvaluator("acl", "paper").update(maps, gt, positive)
    with pytest.raises(InputError, match="expected no 'confidence'"):
        ExtendedEvaluator("slavc", "paper").update(maps, gt, positive, confidence=np.ones(4))
    with pytest.raises(InputError, match=r"binary or consensus weights \(0, 0.5, 1\)"):
        ExtendedEvaluator().update(maps, gt * 3, positive)
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="finite 'maps'"):
        ExtendedEvaluator().update(bad, gt, positive)
    with pytest.raises(InputError, match="expected a reference"):
        ExtendedEvaluator("avsbench")


def test_cupy_matches_numpy(xp):
    maps, gt, positive, n_boxes = make_set(8, 16)
    want = ExtendedEvaluator("slavc", "paper").update(maps, gt, positive, n_boxes=n_boxes).compute()
    got = ExtendedEvaluator("slavc", "paper").update(
        xp.asarray(maps), xp.asarray(gt), xp.asarray(positive), n_boxes=xp.asarray(n_boxes)).compute()
    assert_match(got, want)
