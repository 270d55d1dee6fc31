"""Known answers on hand-built 224x224 maps (no resampling), one rule of docs/metrics.md at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vsslrt.eval import evaluate, metric_keys
from vsslrt.eval._stats import auroc, threshold_grid

N = 224 * 224
PAPER = {"max": 0.6, "max10": 0.66, "maxq3": 0.63}


def box(n=1, y=(20, 70), x=(30, 90)):
    gt = np.zeros((n, 224, 224), dtype=bool)
    gt[:, y[0] : y[1], x[0] : x[1]] = True
    return gt


def flat(value, n=1):
    return np.full((n, 224, 224), value, dtype=np.float32)


def with_box_value(inside, outside, n=1, **kw):
    m = flat(outside, n)
    m[box(n, **kw)] = inside
    return m


def run(xp, *arrays, **kwargs):
    """evaluate() on arrays moved to the namespace under test (NumPy, or CuPy on a GPU)."""
    moved = [xp.asarray(a) for a in arrays]
    for key in ("obj", "group"):
        if kwargs.get(key) is not None:
            kwargs[key] = xp.asarray(kwargs[key])
    return evaluate(*moved, **kwargs)


def test_key_sets_are_exactly_the_documented_ones():
    gt = box(2)
    maps = [np.random.default_rng(i).random((2, 7, 7), dtype=np.float32) for i in range(5)]
    for protocol in ("fixed", "paper"):
        for obj in (None, maps[4]):
            for group in (None, np.array([0, 0])):
                out = evaluate(*maps[:4], gt, obj=obj, group=group, protocol=protocol, thresholds=PAPER)
                expected = metric_keys(protocol, tuple(PAPER), ogl=obj is not None, interactive=group is not None)
                assert sorted(out) == sorted(expected)
                assert all(type(v) is float for v in out.values())


def test_paper_keys_keep_the_reference_spelling():
    keys = set(metric_keys("paper", tuple(PAPER), ogl=True, interactive=True))
    for k in ("pIA_OffScreem_ThrCIoU_Adap", "pIA_Noise_OG_OGLL_OGL", "pIA_OffScreen_ThrCIoU_Adap_OGL",
              "AOC_Offscreen", "AOC_Offscreen_ThrCIoU_Adap", "AOC_OffScreen_MaxQ3", "AOC_OffScreen_Max_OGL",
              "IoU_Pos_Offscreen_Max_Q3_WOGL", "IoU_Silence_Noise_Adap_OGL", "CIoU_05", "AUC_maxq3_OGL",
              "Median_Min_Heatmap_Offscreen", "iiou_adap", "IAUC_adap", "F_AUC_AOC_Pos_OffScreen"):
        assert k in keys, k
    assert "pIA_Noise_OGL" not in keys and "pIA_OffScreen_ThrCIoU_Adap" not in keys


def test_strict_threshold_and_sort_index_thresholds(xp):
    # Positive: 0.9 in the box (3,000 px), 0.1 elsewhere. Median = 0.1 -> the box is on: IoU 1.
    # Adaptive = sorted[N - g] = 0.9 itself -> strict '>' leaves nothing on: IoU 0 (Q21).
    pos = with_box_value(0.9, 0.1)
    zeros = flat(0.0)
    out = run(xp, pos, zeros, zeros, zeros, box())
    assert out["pos/miou@median"] == 100.0 and out["pos/ciou@median"] == 100.0
    assert out["pos/miou@adaptive"] == 0.0 and out["pos/ciou@adaptive"] == 0.0
    assert out["pos/miou@fixed"] == 100.0


def test_iou_counts_false_positives_in_the_denominator(xp):
    pos = with_box_value(0.9, 0.1)
    pos[0, 20:70, 90:150] = 0.9  # 50x60 px on outside a 50x60 box
    out = run(xp, pos, flat(0.0), flat(0.0), flat(0.0), box())
    assert out["pos/miou@fixed"] == pytest.approx(100.0 * 3000 / 6000)
    assert out["pos/ciou@fixed"] == 100.0  # IoU 0.5 counts as a success (>=)


def test_pia_and_aoc_of_known_areas(xp):
    silence = flat(0.0)
    silence[0, :112, :] = 0.7  # half the image above 0.5
    noise = flat(0.7)  # the whole image
    off = flat(0.0)  # nothing
    pos = with_box_value(0.9, 0.1)
    out = run(xp, pos, silence, noise, off, box())
    assert out["silence/pia@fixed"] == 50.0 and out["noise/pia@fixed"] == 100.0 and out["offscreen/pia@fixed"] == 0.0
    grid = threshold_grid("fixed")
    assert out["silence/aoc@fixed"] == pytest.approx(100 * np.trapezoid((grid >= 0.5).astype(float), grid))
    assert out["offscreen/aoc@fixed"] == 100.0  # all-zero negatives give 100
    assert out["noise/aoc@fixed"] == pytest.approx(100 * np.trapezoid((grid >= 1.0).astype(float), grid))
    # median/adaptive of the *positive* map threshold the negatives: t_med = 0.1, t_adap = 0.9
    assert out["silence/pia@median"] == 50.0 and out["silence/pia@adaptive"] == 0.0


def test_pair_iou_rules(xp):
    pos = with_box_value(0.9, 0.1)
    silence = flat(0.0)  # empty at 0.5
    noise = flat(0.0)  # empty too
    off = with_box_value(0.9, 0.1, y=(20, 70), x=(60, 120))  # half-overlapping the positive
    out = run(xp, pos, silence, noise, off, box())
    assert out["iou/pos_silence@fixed"] == 0.0  # B empty, A not: 0
    assert out["iou/silence_noise@fixed"] == 100.0  # both empty: 1
    assert out["iou/silence_offscreen@fixed"] == 0.0  # A empty, B not: 0
    assert out["iou/pos_offscreen@fixed"] == pytest.approx(100 * 1500 / 4500)


def test_thresholds_meet_float32_maps_in_float32(xp):
    # float32(0.6) = 0.60000002 > 0.6 in float64, but not > float32(0.6): the map's dtype decides.
    pos = with_box_value(np.float32(0.6), 0.1)
    out = run(xp, pos, flat(0.0), flat(0.0), flat(0.0), box(), thresholds={"t": 0.6})
    assert out["pos/miou@t"] == 0.0
    out64 = run(xp, pos.astype(np.float64), flat(0.0), flat(0.0), flat(0.0), box(), thresholds={"t": 0.6})
    assert out64["pos/miou@t"] == 100.0


def test_fixed_mode_empty_gt_scores_zero_and_is_counted(xp):
    pos = with_box_value(0.9, 0.1, n=2)
    gt = box(2)
    gt[1] = False
    out = run(xp, pos, flat(0.0, 2), flat(0.0, 2), flat(0.0, 2), gt)
    assert out["n_empty_gt"] == 1.0 and out["n_samples"] == 2.0
    assert out["pos/miou@fixed"] == 50.0  # sample 0 has IoU 1, the empty-GT sample 0


def test_paper_nan_policies(xp):
    # Sample 1: empty GT and an all-zero positive -> IoU 0/0 = NaN at every constant threshold.
    pos = with_box_value(0.9, 0.1, n=2)
    pos[1] = 0.0
    gt = box(2)
    gt[1] = False
    z = flat(0.0, 2)
    obj = flat(0.0, 2)
    out = run(xp, pos, z, z, z, gt, obj=obj, protocol="paper", thresholds=PAPER)
    assert out["CIoU_05"] == 50.0  # WOGL: NaN -> 0, then mean of (1, 0)
    assert math.isnan(out["CIoU_05_OGL"])  # OGL keeps NaN: the mean is NaN
    # AUC: NaN replaced by 0 still passes x_0 = 0 (WOGL); NaN fails everywhere (OGL)
    grid = threshold_grid("paper")
    assert out["AUC_05"] == pytest.approx(100 * np.trapezoid(np.where(grid <= 0, 1.0, 0.5), grid))


def test_paper_pooled_ciou_mixes_five_thresholds(xp):
    # Positive 0.62 in the box, 0.05 outside: IoU 1 at t_med (0.05), fixed 0.5, max 0.6;
    # IoU 0/g = 0 at max10 0.66 and maxq3 0.63 -> pooled success 3/5.
    pos = with_box_value(0.62, 0.05)
    z = flat(0.0)
    out = run(xp, pos, z, z, z, box(), protocol="paper", thresholds=PAPER)
    assert out["CIoU"] == pytest.approx(60.0)
    assert out["CIoU_max"] == 100.0 and out["CIoU_maxq3"] == 0.0  # Q20: mean IoU


def test_paper_and_fixed_grids_differ_where_documented():
    paper, fixed = threshold_grid("paper"), threshold_grid("fixed")
    assert sorted(np.flatnonzero(paper != fixed).tolist()) == [3, 6, 7, 12, 14, 17, 19]


def test_f_scores_and_their_nan():
    pos = with_box_value(0.9, 0.1)
    noise = flat(0.7)
    z = flat(0.0)
    out = evaluate(pos, z, noise, z, box())
    keep = [100.0, 0.0, 100.0]
    assert out["f/pos_neg@fixed"] == pytest.approx(2 * 100 * np.mean(keep) / (100 + np.mean(keep)))
    assert out["f/pos_noise@fixed"] == 0.0  # 2 * 100 * 0 / (100 + 0)
    # mIoU 0 (nothing on) and 100 - pIA = 0 (every negative fully on): 0/0 is NaN
    assert math.isnan(evaluate(flat(0.0), flat(0.9), flat(0.9), flat(0.9), box())["f/pos_neg@fixed"])


def test_interactive_group_fails_when_one_member_fails(xp):
    pos = with_box_value(0.9, 0.1, n=4)
    pos[3] = 0.0  # the 4th sample finds nothing
    z = flat(0.0, 4)
    out = run(xp, pos, z, z, z, box(4), group=np.array([0, 0, 1, 1]))
    assert out["interactive/ciou@fixed"] == 50.0 and out["pos/ciou@fixed"] == 75.0


def test_max_min_are_raw_and_auroc_counts_ties_half():
    pos = np.zeros((3, 7, 7), dtype=np.float32)
    neg = np.zeros((3, 7, 7), dtype=np.float32)
    pos[:, 0, 0] = [0.9, 0.5, 0.3]
    neg[:, 0, 0] = [0.5, 0.2, 0.1]
    out = evaluate(pos, neg, neg, neg, box(3))
    assert out["max/pos/mean"] == pytest.approx((0.9 + 0.5 + 0.3) / 3, rel=1e-6)
    assert out["max/pos/median"] == pytest.approx(0.5) and out["min/pos/mean"] == 0.0
    # pairs: 0.9 beats 3; 0.5 beats 2, ties 1; 0.3 beats 2 -> (3 + 2.5 + 2) / 9
    assert out["max/auroc/pos_vs_silence"] == pytest.approx(7.5 / 9)
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5


def test_ogl_fixed_mode_normalises_and_ignores_universal_thresholds(xp):
    pos = with_box_value(0.3, 0.2)  # low raw scale
    obj = with_box_value(10.0, 5.0)  # another scale entirely
    z = flat(0.0)
    out = run(xp, pos, z, z, z, box(), obj=obj, thresholds={"max": 0.25})
    # min-max: pos -> box 1 / rest 0, obj -> same; the mixture is 1 in the box, 0 outside
    assert out["pos_ogl/miou@fixed"] == 100.0
    assert not any(k.endswith("@max") and k.startswith(("pos_ogl", "silence_ogl")) for k in out)
    assert out["silence_ogl/pia@fixed"] == pytest.approx(100 * 3000 / N)  # constant silence -> 0, obj shows
