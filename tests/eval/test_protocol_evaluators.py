"""IS3 interactive, retrieval and consensus-weighted GT against the independent oracles; presets."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from eval_helpers import assert_match, load_sibling

from vsslrt.errors import InputError
from vsslrt.eval import Evaluator
from vsslrt.eval._xp import use_fast_paths
from vsslrt.eval.interactive import InteractiveEvaluator
from vsslrt.eval.protocols import PRESETS, applicable_protocols, check_applicable, parse_protocol
from vsslrt.eval.retrieval import RetrievalEvaluator


oracle = load_sibling("oracle_extended")





def is3_batch(seed: int, n: int, size: int, kind: str):
    """Pairs of queries per image (group = index // 2); GT boxes, a few empty; weighted in places."""
    rng = np.random.default_rng(seed)
    if kind == "tied":
        maps = (rng.integers(0, 3, (n, size, size)) / 2).astype(np.float32)
    elif kind == "edge":
        maps = np.zeros((n, size, size), dtype=np.float32)
        maps[::2] = rng.random((len(maps[::2]), size, size), dtype=np.float32)
    else:
        maps = rng.random((n, size, size), dtype=np.float32)
    gt = np.zeros((n, 224, 224), dtype=np.float32)
    for i in range(n):
        if i % 5 == 4:
            continue  # empty GT
        h, w = rng.integers(20, 200, 2)
        y, x = rng.integers(0, 224 - h), rng.integers(0, 224 - w)
        gt[i, y:y + h, x:x + w] = 1.0
        if i % 3 == 0:
            gt[i, y:y + h // 2, x:x + w // 2] = 0.5
        if size == 224:
            maps[i, y:y + h, x:x + w] += rng.random() * 0.8
    return maps, gt, np.arange(n, dtype=np.int64) // 2


@pytest.mark.parametrize("mode", ["paper", "fixed"])
@pytest.mark.parametrize("kind,size", [("random", 224), ("tied", 224), ("edge", 224), ("random", 7)])
def test_interactive_matches_oracle(mode, kind, size):
    maps, gt, group = is3_batch(1, 16, size, kind)
    got = InteractiveEvaluator(mode).update(maps, gt, group).compute()
    assert_match(got, oracle.ssla_evaluate(maps, gt, group, mode=mode))


def test_interactive_generic_path_and_merge(tmp_path):
    maps, gt, group = is3_batch(2, 20, 224, "random")
    whole = InteractiveEvaluator("paper").update(maps, gt, group).compute()
    with use_fast_paths(False):
        assert_match(InteractiveEvaluator("paper").update(maps, gt, group).compute(), whole, atol=0)
    ids = np.arange(20)
    a = InteractiveEvaluator("paper").update(maps[7:], gt[7:], group[7:], sample_ids=ids[7:])
    b = InteractiveEvaluator("paper").update(maps[:7], gt[:7], group[:7], sample_ids=ids[:7])
    np.savez(tmp_path / "b.npz", **b.state())
    merged = InteractiveEvaluator.from_state(np.load(tmp_path / "b.npz")).merge(a)
    assert merged.compute() == whole or all(
        (math.isnan(v) and math.isnan(whole[k])) or v == whole[k] for k, v in merged.compute().items())
    with pytest.raises(InputError, match="integer 'group'"):
        InteractiveEvaluator().update(maps, gt, group.astype(np.float32))


def test_interactive_cupy(xp):
    maps, gt, group = is3_batch(3, 10, 224, "random")
    want = InteractiveEvaluator("fixed").update(maps, gt, group).compute()
    got = InteractiveEvaluator("fixed").update(xp.asarray(maps), xp.asarray(gt), xp.asarray(group)).compute()
    assert_match(got, want)


def retrieval_batch(seed: int, n: int, tied: bool = False):
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((n, 2, 8)).astype(np.float32)
    visual = rng.standard_normal((n, 2, 8, 3, 3)).astype(np.float32)
    visual[:, :, :, 1, 1] += 1.5 * audio  # a signal: matching pairs score higher, not always
    group = np.arange(n, dtype=np.int64)
    if tied:
        group[1::4] = group[0::4][: len(group[1::4])]  # two clips of one image (IS3-like)
        visual[1::4] = visual[0::4][: len(visual[1::4])]
        audio[3::4] = audio[2::4][: len(audio[3::4])]  # identical clips: tied scores
    return visual, audio, group


@pytest.mark.parametrize("pooling", ["max", "mean"])
@pytest.mark.parametrize("tied", [False, True])
def test_retrieval_matches_oracle_and_merges(pooling, tied):
    visual, audio, group = retrieval_batch(4, 24, tied)
    whole = RetrievalEvaluator(pooling).update(visual, audio, group=group)
    want = oracle.retrieval_evaluate(visual, audio, group, pooling=pooling)
    assert_match(whole.compute(), want)
    ids = np.arange(24)
    a = RetrievalEvaluator(pooling).update(visual[10:], audio[10:], group=group[10:], sample_ids=ids[10:])
    a.merge(RetrievalEvaluator(pooling).update(visual[:10], audio[:10], group=group[:10], sample_ids=ids[:10]).state())
    assert a.compute() == whole.compute()
    assert 0 < want["retrieval/audio_to_image/recall@1"] < 100


def test_consensus_gt_through_the_negative_audio_evaluator():
    """Weighted GT flows through the kernel: per-sample IoU equals C2 on the weights (oracle), and a
    binary GT given as 0/1 floats gives exactly the bool numbers."""
    rng = np.random.default_rng(5)
    n = 10
    maps = [rng.random((n, 7, 7), dtype=np.float32) for _ in range(4)]
    weights = np.zeros((n, 224, 224), dtype=np.float32)
    for i in range(n):
        boxes = [(int(x), int(y), int(x) + 90, int(y) + 80) for x, y in rng.integers(0, 120, (2, 2))]
        weights[i] = oracle.consensus(boxes)
    thresholds = {"max": 0.55}
    for sweep in (None, (0.3, 0.6)):
        ev = Evaluator("fixed", thresholds, sweep=sweep).update(*maps, weights)
        want = oracle.main_evaluator_ious(maps[0], weights, [0.5, 0.55])
        np.testing.assert_allclose(ev.per_sample()["iou"], want, rtol=0, atol=1e-12)
        if sweep is not None:
            sweep_want = oracle.main_evaluator_ious(maps[0], weights, list(sweep))[:, 2:]
            np.testing.assert_allclose(ev.per_sample()["sweep_iou"], sweep_want, rtol=0, atol=1e-12)
    binary = (weights > 0)
    as_bool = Evaluator("paper", {"max": .5, "max10": .55, "maxq3": .52}).update(*maps, binary).compute()
    as_float = Evaluator("paper", {"max": .5, "max10": .55, "maxq3": .52}).update(
        *maps, binary.astype(np.float32)).compute()
    assert all((math.isnan(v) and math.isnan(as_float[k])) or v == as_float[k] for k, v in as_bool.items())
    with pytest.raises(InputError, match=r"consensus weights \(0, 0.5, 1\)"):
        Evaluator().update(*maps, weights * 0.7)


def _dataset(kind, sounding=None, groups=(0, 1, 2)):
    return SimpleNamespace(kind=kind, sounding=sounding, groups=np.asarray(groups))


def test_presets_and_applicability():
    ext = _dataset("flickr-ext", sounding=(True, False, True), groups=(0, 0, 1))
    names = [p.name for p in applicable_protocols(ext)]
    assert names == ["negative-audio", "slavc-extended", "acl-extended", "retrieval"]
    assert [p.name for p in applicable_protocols(_dataset("is3", groups=(0, 0, 1, 1)))] == [
        "negative-audio", "sslalign-is3", "retrieval"]
    with pytest.raises(InputError, match=r"protocol slavc-extended: expected a dataset of kind flickr-ext, vggss-ext, got 'vggss'"):
        check_applicable("slavc-extended", _dataset("vggss"))
    with pytest.raises(InputError, match="expected non-sounding samples"):
        check_applicable("slavc-extended", _dataset("vggss-ext", sounding=(True, True)))
    with pytest.raises(InputError, match="two or more queries per image"):
        check_applicable("sslalign-is3", _dataset("manifest", groups=(0, 1, 2)))
    preset, mode = parse_protocol("slavc-extended:paper")
    block = preset.provenance(mode)
    assert block["reference"].startswith("stoneMo/SLAVC@05b429c") and "E1" in block["quirks_kept"]
    assert "quirks_fixed" in preset.provenance("fixed") and PRESETS["retrieval"].provenance("fixed")["own_definition"]
    assert parse_protocol("paper") == (PRESETS["negative-audio"], "paper")
    with pytest.raises(InputError, match="protocol: expected one of"):
        parse_protocol("avsbench-s4")
