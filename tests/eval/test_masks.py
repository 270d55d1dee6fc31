"""Mask metrics (vsslrt.eval.masks) against the per-frame oracle (tests/eval/oracle_masks.py).

Parity to 1e-6 on random, tied and edge-case frames (empty masks, full masks, map values exactly
at the binarisation threshold and at the F-curve thresholds), in both modes and both scales; shard
merges equal one pass; the paper mode's batch dependence is reproduced for a given batch split,
and the fixed mode does not depend on the split.
"""

from __future__ import annotations


import numpy as np
import pytest
from eval_helpers import assert_match, load_sibling

from vsslrt.errors import InputError
from vsslrt.eval.masks import MaskEvaluator, f_thresholds, mask_metric_keys


oracle = load_sibling("oracle_masks")
CONDS = ("pos", "silence", "noise", "offscreen")


def _frames(n_videos=5, frames_per_video=(3, 2, 3, 1, 2), seed=0, kind="random"):
    """Frames of several videos: maps (224x224 float32) per condition, masks, video index."""
    rng = np.random.default_rng(seed)
    tau = f_thresholds()
    out = []
    for v in range(n_videos):
        for _ in range(frames_per_video[v % len(frames_per_video)]):
            gt = np.zeros((224, 224), dtype=bool)
            choice = len(out) % 6
            if choice == 1:
                pass  # empty mask
            elif choice == 2:
                gt[:] = True  # full mask
            else:
                y0, x0 = rng.integers(0, 150, 2)
                h, w = rng.integers(5, 74, 2)
                gt[y0:y0 + h, x0:x0 + w] = True
            maps = {}
            for c in CONDS:
                if kind == "tied":  # values on the F grid and exactly at 0.5
                    m = rng.choice(np.concatenate([tau[::17], np.float32([0.5, 0.5, 0.5])]), size=(224, 224))
                    m = m.astype(np.float32)
                elif kind == "logits":
                    m = rng.normal(0, 2, (224, 224)).astype(np.float32)
                else:
                    m = rng.random((224, 224), dtype=np.float32)
                    m[gt] = np.minimum(m[gt] + np.float32(0.3), np.float32(1))  # some localisation signal
                maps[c] = m
            if choice == 4:
                maps["silence"] = np.zeros((224, 224), dtype=np.float32)  # an empty prediction
            if choice == 5:
                maps["noise"] = np.ones((224, 224), dtype=np.float32)  # everything foreground
            out.append({"maps": maps, "gt": gt, "video": v})
    return out


def _arrays(frames):
    maps = {c: np.stack([f["maps"][c] for f in frames]) for c in CONDS}
    gt = np.stack([f["gt"] for f in frames])
    video = np.array([f["video"] for f in frames], dtype=np.int64)
    return maps, gt, video


def _evaluate(frames, *, chunks=(None,), **options):
    maps, gt, video = _arrays(frames)
    ev = MaskEvaluator(**options)
    n = gt.shape[0]
    bounds = [0, *[c for c in chunks if c is not None], n]
    for a, b in zip(bounds[:-1], bounds[1:]):
        ev.update({c: maps[c][a:b] for c in CONDS}, gt[a:b], video=video[a:b], sample_ids=np.arange(a, b))
    return ev


# sha256 of torch.linspace(0, 1 - 1e-10, 255).numpy().tobytes() (float32), recorded with torch 2.x on
# the CPU; importing torch here would cost more than the whole file.
TORCH_LINSPACE_SHA256 = "ea873a094de68c3e60e5fcff152b8e7797e47bae83bdfb26d0fe2fc10868cb52"


def test_thresholds_equal_torch_linspace():
    import hashlib

    assert hashlib.sha256(f_thresholds().tobytes()).hexdigest() == TORCH_LINSPACE_SHA256
    assert np.array_equal(np.array(oracle.THRESHOLDS, dtype=np.float32), f_thresholds())
    assert f_thresholds()[0] == 0 and f_thresholds()[-1] == 1  # 1 - 1e-10 rounds to 1 in float32


@pytest.mark.parametrize("kind", ["random", "tied"])
@pytest.mark.parametrize("mode,batch_videos", [("fixed", 4), ("paper", 4), ("paper", 1), ("paper", 3)])
def test_parity_with_oracle(kind, mode, batch_videos):
    frames = _frames(kind=kind, seed=1)
    got = _evaluate(frames, mode=mode, batch_videos=batch_videos, chunks=(7, 11)).compute()
    want = oracle.oracle_masks(frames, mode=mode, batch_videos=batch_videos)
    assert set(got) == set(mask_metric_keys(MaskEvaluator(mode).config))
    assert_match(got, want)


def test_parity_logits_scale_and_threshold():
    frames = _frames(kind="logits", seed=2)
    for mode in ("fixed", "paper"):
        got = _evaluate(frames, mode=mode, scale="logits", threshold=0.5).compute()
        assert_match(got, oracle.oracle_masks(frames, mode=mode, scale="logits"))
    frames = _frames(seed=3)
    got = _evaluate(frames, mode="fixed", threshold=0.7).compute()
    assert_match(got, oracle.oracle_masks(frames, mode="fixed", threshold=0.7))


def test_edge_cases_by_hand():
    """One frame each: empty mask + empty map (IoU 1, no F), full mask + full map (IoU 1, F 1)."""
    gt = np.zeros((2, 224, 224), dtype=bool)
    gt[1] = True
    maps = np.stack([np.zeros((224, 224), np.float32), np.ones((224, 224), np.float32)])
    out = MaskEvaluator("fixed", conditions=("pos",)).update(maps, gt).compute()
    assert out["mask/pos/miou@0.5"] == pytest.approx(100.0 * (224 * 224) / (224 * 224 + 1e-7), abs=1e-9)
    assert out["mask/pos/f_beta"] == pytest.approx(100.0, abs=1e-9)  # only the full frame has a curve
    assert out["mask/pos/fpr@0.5"] == pytest.approx(50.0, abs=1e-6)
    assert out["mask/n_empty_gt"] == 1.0
    # Values exactly at the threshold are background (strict >); at tau they are selected (>=).
    at = np.full((1, 224, 224), 0.5, dtype=np.float32)
    full = np.ones((1, 224, 224), dtype=bool)
    out = MaskEvaluator("fixed", conditions=("pos",)).update(at, full).compute()
    assert out["mask/pos/miou@0.5"] == 0.0 and out["mask/pos/fpr@0.5"] == 0.0
    assert out["mask/pos/f_beta"] == pytest.approx(100.0)
    # Paper mode: a batch of empty masks only contributes F = 0.
    out = MaskEvaluator("paper", conditions=("pos",), batch_videos=1).update(
        maps, gt, video=np.array([0, 1])).compute()
    assert out["pos/F_score"] == pytest.approx(0.5)


def test_paper_mode_is_batch_dependent_and_fixed_mode_is_not():
    frames = _frames(seed=4)
    papers = {bv: _evaluate(frames, mode="paper", batch_videos=bv).compute() for bv in (1, 2, 4)}
    for bv, got in papers.items():
        assert_match(got, oracle.oracle_masks(frames, mode="paper", batch_videos=bv))
    assert papers[1]["pos/F_score"] != pytest.approx(papers[4]["pos/F_score"], abs=1e-6)
    # Per-batch maxima are never below the maximum of the pooled curve averaged the same way.
    fixed = [_evaluate(frames, mode="fixed", batch_videos=bv, chunks=ch).compute()
             for bv, ch in ((1, (None,)), (4, (3,)), (2, (1, 2, 9)))]
    for other in fixed[1:]:
        assert other == fixed[0]


def test_shards_merge_to_one_pass_in_any_order(tmp_path):
    frames = _frames(seed=5)
    maps, gt, video = _arrays(frames)
    n = gt.shape[0]
    for mode in ("fixed", "paper"):
        whole = _evaluate(frames, mode=mode).compute()
        order = np.random.default_rng(0).permutation(n)
        shards = [order[: n // 3], order[n // 3: n // 2], order[n // 2:]]
        parts = []
        for idx in shards:
            ev = MaskEvaluator(mode)
            ev.update({c: maps[c][idx] for c in CONDS}, gt[idx], video=video[idx], sample_ids=idx)
            path = tmp_path / f"{mode}-{len(parts)}.npz"
            np.savez(path, **ev.state())
            parts.append(path)
        merged = MaskEvaluator.from_state(np.load(parts[2]))
        merged.merge(np.load(parts[0])).merge(MaskEvaluator.from_state(np.load(parts[1])))
        assert merged.compute() == whole
        with pytest.raises(InputError, match="repeated id"):
            merged.merge(np.load(parts[0]))


def test_small_maps_are_upsampled_like_the_evaluator():
    from vsslrt.eval.interp import upsample

    rng = np.random.default_rng(6)
    small = rng.random((4, 7, 7), dtype=np.float32)
    gt = np.zeros((4, 224, 224), dtype=bool)
    gt[:, 30:90, 40:160] = True
    up = np.asarray(upsample(small, "bilinear", xp=np, dtype=np.float32)).reshape(4, 224, 224)
    a = MaskEvaluator("fixed", conditions=("pos",)).update(small, gt).compute()
    b = MaskEvaluator("fixed", conditions=("pos",)).update(up, gt).compute()
    assert a == b


def test_bad_inputs_are_one_line_errors():
    ev = MaskEvaluator("fixed", conditions=("pos",))
    with pytest.raises(InputError, match=r"'gt' of shape \(N, 224, 224\)"):
        ev.update(np.zeros((1, 7, 7), np.float32), np.zeros((1, 100, 100), bool))
    with pytest.raises(InputError, match="conditions"):
        ev.update({"silence": np.zeros((1, 7, 7), np.float32)}, np.zeros((1, 224, 224), bool))
    for size, value in ((7, np.nan), (7, np.inf), (224, -np.inf), (224, np.nan)):
        bad = np.zeros((1, size, size), np.float32)
        bad[0, 0, 0] = value
        with pytest.raises(InputError, match=r"finite maps\['pos'\]"):
            ev.update(bad, np.zeros((1, 224, 224), bool))
        with pytest.raises(InputError, match=r"finite maps\['pos'\]"):  # a sigmoid would hide an infinite logit
            MaskEvaluator("fixed", conditions=("pos",), scale="logits").update(bad, np.zeros((1, 224, 224), bool))
    assert len(ev) == 0  # nothing kept from a refused batch
    with pytest.raises(InputError, match="batch_videos"):
        MaskEvaluator("paper", batch_videos=0)
    with pytest.raises(InputError, match="mode"):
        MaskEvaluator("official")
    with pytest.raises(InputError, match="mask-protocol state"):
        from vsslrt.eval.interactive import InteractiveEvaluator

        MaskEvaluator.from_state(InteractiveEvaluator().state())


@pytest.mark.cupy
def test_cupy_matches_numpy():
    import cupy

    frames = _frames(seed=7)
    maps, gt, video = _arrays(frames)
    for mode in ("fixed", "paper"):
        want = _evaluate(frames, mode=mode).compute()
        ev = MaskEvaluator(mode)
        ev.update({c: cupy.asarray(maps[c]) for c in CONDS}, cupy.asarray(gt), video=cupy.asarray(video))
        assert_match(ev.compute(), want, atol=1e-9)


def test_grid_bins_equal_a_binary_search():
    from vsslrt.eval.masks import _grid_bins

    tau = f_thresholds()
    rng = np.random.default_rng(8)
    edges = np.concatenate([tau, np.nextafter(tau, np.float32(-1)), np.nextafter(tau, np.float32(2))])
    p = np.concatenate([rng.random(50000, dtype=np.float32), edges,
                        np.float32([-5, -0.0, 1e30, 2, 1.0000001, -1e30])]).reshape(1, -1)
    for dtype in (np.float32, np.float64):
        got = _grid_bins(p.astype(dtype), tau.astype(dtype), np).ravel()
        np.testing.assert_array_equal(got, np.searchsorted(tau.astype(dtype), p.astype(dtype).ravel(), side="right"))
