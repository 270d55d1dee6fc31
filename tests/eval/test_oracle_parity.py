"""The vectorised evaluator against the per-sample oracle (tests/eval/oracle.py), and the oracle
against hand-computed numbers.

Parity: every key of `evaluate` equals the oracle's to 1e-6 (absolute, on the reported scale), NaN
matches NaN, and the two key sets are equal. The parity batches use maps whose upsampling is exact
in float32 (dyadic values; `cv2` weights are dyadic too) where that is possible, so the comparison
tests the definitions, not the rounding of one particular float32 formula; the bilinear 7x7/14x14
cases cannot be exact and check that the evaluator's upsampling rounds like the correctly rounded one.
"""

from __future__ import annotations

import math

import numpy as np
from eval_helpers import load_sibling
import pytest


oracle = load_sibling("oracle")

SIDE = 224
UNIVERSAL = {"max": 0.5, "max10": 0.55, "maxq3": 0.515625}


def _evaluate(*args, **kwargs):
    from vsslrt.eval import evaluate

    return evaluate(*args, **kwargs)


IMPLEMENTATIONS = {"oracle": oracle.oracle_evaluate, "evaluator": _evaluate}


def assert_metrics_match(got: dict, want: dict, atol: float = 1e-6) -> None:
    """Equal key sets; every value within atol; NaN exactly where the other is NaN."""
    assert set(got) == set(want), (
        f"missing keys {sorted(set(want) - set(got))}, unexpected keys {sorted(set(got) - set(want))}"
    )
    bad = []
    for key in sorted(want):
        g, w = float(got[key]), float(want[key])
        if math.isnan(w) or math.isnan(g):
            if not (math.isnan(w) and math.isnan(g)):
                bad.append(f"{key}: got {g!r}, want {w!r}")
        elif abs(g - w) > atol:
            bad.append(f"{key}: got {g!r}, want {w!r} (diff {g - w:.3g})")
    assert not bad, f"{len(bad)} of {len(want)} keys differ:\n" + "\n".join(bad)


# --------------------------------------------------------------------------------------------------
# Batches for the parity tests
# --------------------------------------------------------------------------------------------------


def _boxes(rng, n: int) -> np.ndarray:
    gt = np.zeros((n, SIDE, SIDE), dtype=bool)
    for i in range(n):
        h, w = rng.integers(8, 120, size=2)
        y, x = rng.integers(0, SIDE - h), rng.integers(0, SIDE - w)
        gt[i, y : y + h, x : x + w] = True
    return gt


def make_batch(seed: int, n: int, size: int, kind: str, with_obj: bool, with_group: bool) -> dict:
    """A batch of raw maps (float32) and boxes; `kind` selects the value distribution.

    - "random": dyadic values k/1024 in [-0.25, 1] (exact under cv2 upsampling), one empty GT;
    - "ties": values on the coarse lattice k/8, so that maps, thresholds and GT pixels tie;
    - "round1": np.round(x, 1): ties on values that float32 cannot hold exactly (0.1, 0.3, ...);
    - "degenerate": all-equal maps, all-zero negatives, empty GT with an all-zero positive, a full GT;
    - "float32": unrestricted float32 values in [0, 1).
    """
    rng = np.random.default_rng(seed)
    shape = (n, size, size)

    def maps():
        if kind == "ties":
            return (rng.integers(0, 9, size=shape) / 8).astype(np.float32)
        if kind == "round1":
            return np.round(rng.random(shape), 1).astype(np.float32)
        if kind == "float32":
            return rng.random(shape, dtype=np.float32)
        return (rng.integers(-256, 1025, size=shape) / 1024).astype(np.float32)

    batch = {c: maps() for c in oracle.CONDITIONS}
    batch["gt"] = _boxes(rng, n)
    batch["gt"][1] = False  # one empty GT in every batch
    obj = maps() if with_obj else None
    if kind == "degenerate":
        for c in oracle.CONDITIONS:
            batch[c][0] = 0.625  # all-equal maps
        if obj is not None:
            obj[0] = 0.875  # all-equal OGL mixtures 0.4*0.625 + 0.6*0.875 = 0.775 > 0.5
            obj[1] = 0.0  # and an all-zero OGL map on the empty GT: NaN kept (paper, Q12)
        for c in oracle.NEGATIVES:
            batch[c][2] = 0.0  # all-zero negatives
        batch["pos"][1] = 0.0  # empty GT and nothing on: the NaN paths of paper mode
        batch["gt"][3] = True  # full GT: t_adap = the minimum
    kwargs = {}
    if obj is not None:
        kwargs["obj"] = obj
    if with_group:
        kwargs["group"] = rng.integers(0, max(1, n // 2), size=n)
    return {"args": tuple(batch[c] for c in (*oracle.CONDITIONS, "gt")), "kwargs": kwargs}


def _parity_cases():
    cases = []
    kinds = ("random", "ties", "degenerate")
    k = 0
    for protocol in ("fixed", "paper"):
        for interp in ("bilinear", "cv2"):
            for size in (7, 14, SIDE):
                for kind in kinds:
                    with_obj = (k % 2) == 0
                    with_group = (k % 3) != 2
                    cases.append((protocol, interp, size, kind, with_obj, with_group, k))
                    k += 1
    # Ties on decimal values, met by decimal thresholds.
    for protocol in ("fixed", "paper"):
        for interp in ("bilinear", "cv2"):
            for size in (7, SIDE):
                cases.append((protocol, interp, size, "round1", size == 7, True, k))
                k += 1
    # Both optional inputs absent and both present, for every protocol.
    for protocol in ("fixed", "paper"):
        cases.append((protocol, "bilinear", 7, "random", False, False, k))
        cases.append((protocol, "cv2", 14, "ties", True, True, k + 1))
        k += 2
    return [
        pytest.param(*c, id=f"{c[0]}-{c[1]}-{c[2]}px-{c[3]}{'-obj' if c[4] else ''}{'-group' if c[5] else ''}")
        for c in cases
    ]


def _thresholds(protocol: str, kind: str = "random") -> dict:
    if kind == "round1":
        # float32(0.3) > 0.3 and float32(0.6) > 0.6, float32(0.7) < 0.7: a pixel equal to float32(0.3)
        # is above the float64 0.3, yet off when the threshold meets the map in float32.
        if protocol == "paper":
            return {"max": 0.3, "max10": 0.7, "maxq3": 0.6}
        return {"maxq3": 0.6, "tenth": 0.3, "seventh": 0.7}
    if protocol == "paper":
        return dict(UNIVERSAL)
    # fixed mode accepts any names; the lattice value 0.375 ties with "ties" maps.
    return {"maxq3": UNIVERSAL["maxq3"], "lattice": 0.375}


@pytest.mark.parametrize("protocol,interp,size,kind,with_obj,with_group,seed", _parity_cases())
def test_evaluate_matches_oracle(xp, protocol, interp, size, kind, with_obj, with_group, seed):
    batch = make_batch(seed, n=8, size=size, kind=kind, with_obj=with_obj, with_group=with_group)
    options = dict(protocol=protocol, thresholds=_thresholds(protocol, kind), fixed=0.5, interp=interp)
    want = oracle.oracle_evaluate(*batch["args"], **batch["kwargs"], **options)
    args = tuple(xp.asarray(a) for a in batch["args"])
    kwargs = {k: xp.asarray(v) for k, v in batch["kwargs"].items()}
    got = _evaluate(*args, **kwargs, **options)
    assert_metrics_match(got, want)


@pytest.mark.parametrize("protocol", ["fixed", "paper"])
@pytest.mark.parametrize("interp", ["bilinear", "cv2"])
@pytest.mark.parametrize("size", [7, 14])
def test_evaluate_matches_oracle_on_unrestricted_float32(xp, protocol, interp, size):
    """Arbitrary float32 maps: the upsampled values must round like the correctly rounded ones."""
    batch = make_batch(1000 + size, n=6, size=size, kind="float32", with_obj=True, with_group=True)
    options = dict(protocol=protocol, thresholds=_thresholds(protocol), interp=interp)
    want = oracle.oracle_evaluate(*batch["args"], **batch["kwargs"], **options)
    args = tuple(xp.asarray(a) for a in batch["args"])
    kwargs = {k: xp.asarray(v) for k, v in batch["kwargs"].items()}
    assert_metrics_match(_evaluate(*args, **kwargs, **options), want)


def test_non_default_fixed_threshold_matches_oracle(xp):
    """A non-default fixed threshold reaches every fixed-threshold key on both sides."""
    batch = make_batch(77, n=6, size=7, kind="ties", with_obj=True, with_group=True)
    for protocol in ("fixed", "paper"):
        options = dict(protocol=protocol, thresholds=_thresholds(protocol), fixed=0.375, interp="cv2")
        want = oracle.oracle_evaluate(*batch["args"], **batch["kwargs"], **options)
        args = tuple(xp.asarray(a) for a in batch["args"])
        kwargs = {k: xp.asarray(v) for k, v in batch["kwargs"].items()}
        assert_metrics_match(_evaluate(*args, **kwargs, **options), want)


# --------------------------------------------------------------------------------------------------
# Hand-computed cases: the oracle and the evaluator against exact numbers
# --------------------------------------------------------------------------------------------------

impl_params = pytest.mark.parametrize("impl", list(IMPLEMENTATIONS), ids=list(IMPLEMENTATIONS))


def _zeros(n: int, size: int = SIDE) -> np.ndarray:
    return np.zeros((n, size, size), dtype=np.float32)


def _quadrant_batch(n: int = 2):
    """A 224x224 positive map that is 1 on its top-left quadrant, GT = that quadrant, zero negatives."""
    pos = _zeros(n)
    pos[:, :112, :112] = 1.0
    gt = np.zeros((n, SIDE, SIDE), dtype=bool)
    gt[:, :112, :112] = True
    return pos, _zeros(n), _zeros(n), _zeros(n), gt


@impl_params
def test_quadrant_fixed_mode(impl):
    out = IMPLEMENTATIONS[impl](*_quadrant_batch(), protocol="fixed", thresholds={"maxq3": 0.75})
    # fixed 0.5, median (sorted[25088] = 0) and maxq3 all switch on exactly the quadrant.
    for thr in ("fixed", "median", "maxq3"):
        assert out[f"pos/miou@{thr}"] == pytest.approx(100.0, abs=1e-9)
        assert out[f"pos/ciou@{thr}"] == pytest.approx(100.0, abs=1e-9)
        assert out[f"pos/auc@{thr}"] == pytest.approx(100.0, abs=1e-9)
        assert out[f"f/pos_neg@{thr}"] == pytest.approx(100.0, abs=1e-9)
        assert out[f"f_auc_aoc/pos_silence@{thr}"] == pytest.approx(100.0, abs=1e-9)
        # the positive map is on and the negatives are empty: IoU 0; two empty negatives: IoU 1.
        assert out[f"iou/pos_silence@{thr}"] == pytest.approx(0.0, abs=1e-9)
        assert out[f"iou/silence_noise@{thr}"] == pytest.approx(100.0, abs=1e-9)
    # adaptive: g = 12,544, t = sorted[N - g] = 1, and nothing is > 1 (Q21 with ties): IoU 0.
    assert out["pos/miou@adaptive"] == pytest.approx(0.0, abs=1e-9)
    assert out["pos/ciou@adaptive"] == pytest.approx(0.0, abs=1e-9)
    assert out["pos/auc@adaptive"] == pytest.approx(2.5, abs=1e-9)  # only x_0 = 0 succeeds
    assert out["f/pos_neg@adaptive"] == pytest.approx(0.0, abs=1e-9)
    # zero negatives: pIA 0 and AOC 100 at every threshold >= 0.
    for neg in ("silence", "noise", "offscreen"):
        for thr in ("fixed", "median", "adaptive", "maxq3"):
            assert out[f"{neg}/pia@{thr}"] == pytest.approx(0.0, abs=1e-9)
            assert out[f"{neg}/aoc@{thr}"] == pytest.approx(100.0, abs=1e-9)
    assert out["n_samples"] == 2
    assert out["n_empty_gt"] == 0


@impl_params
def test_quadrant_paper_mode(impl):
    thresholds = {"max": 0.5, "max10": 0.55, "maxq3": 0.75}
    out = IMPLEMENTATIONS[impl](*_quadrant_batch(), protocol="paper", thresholds=thresholds)
    for key in ("CIoU", "AUC", "CIoU_05", "AUC_05", "CIoU_max", "CIoU_max10", "CIoU_maxq3", "AUC_maxq3"):
        assert out[key] == pytest.approx(100.0, abs=1e-9), key
    assert out["CIoU_adap"] == pytest.approx(0.0, abs=1e-9)
    assert out["AUC_adap"] == pytest.approx(2.5, abs=1e-9)
    assert out["pIA_OffScreem_ThrCIoU_Adap"] == pytest.approx(0.0, abs=1e-9)
    assert out["AOC_Offscreen_ThrCIoU_Adap"] == pytest.approx(100.0, abs=1e-9)
    assert out["AOC_OffScreen_MaxQ3"] == pytest.approx(100.0, abs=1e-9)
    assert out["IoU_Silence_Noise_Max_Q3_WOGL"] == pytest.approx(100.0, abs=1e-9)
    assert out["IoU_Pos_Noise_Max_Q3_WOGL"] == pytest.approx(0.0, abs=1e-9)
    assert out["F_Pos_Neg"] == pytest.approx(100.0, abs=1e-9)
    assert out["F_AUC_AOC_Pos_OffScreen"] == pytest.approx(100.0, abs=1e-9)
    assert out["Max_Heatmap"] == pytest.approx(1.0)
    assert out["Min_Heatmap_Noise"] == pytest.approx(0.0)


def _iou_03_batch(n: int = 3):
    """IoU exactly 0.3 at threshold 0.5: GT = the first 50 rows, the map is on in the first 15."""
    pos = _zeros(n)
    pos[:, :15, :] = 1.0
    gt = np.zeros((n, SIDE, SIDE), dtype=bool)
    gt[:, :50, :] = True
    assert 3360 / 11200 == 0.3
    return pos, _zeros(n), _zeros(n), _zeros(n), gt


@impl_params
def test_constant_iou_list_auc_and_grid(impl):
    """IoU = 0.3 everywhere: the i/20 grid counts x = 0.3 as a success, 0.05*6 = 0.30000000000000004 does not."""
    evaluate = IMPLEMENTATIONS[impl]
    fixed_out = evaluate(*_iou_03_batch(), protocol="fixed", thresholds={"maxq3": 0.5})
    assert fixed_out["pos/miou@fixed"] == pytest.approx(30.0, abs=1e-9)
    assert fixed_out["pos/ciou@fixed"] == pytest.approx(0.0, abs=1e-9)
    assert fixed_out["pos/auc@fixed"] == pytest.approx(32.5, abs=1e-9)  # 6 x 0.05 + 0.025
    # F-scores: a = 30 (mean IoU) or 32.5 (AUC); zero negatives give b = 100.
    assert fixed_out["f/pos_neg@fixed"] == pytest.approx(2 * 30 * 100 / 130, abs=1e-9)
    assert fixed_out["f/pos_noise@maxq3"] == pytest.approx(2 * 30 * 100 / 130, abs=1e-9)
    assert fixed_out["f_auc_aoc/pos_neg@fixed"] == pytest.approx(2 * 32.5 * 100 / 132.5, abs=1e-9)

    paper_out = evaluate(
        *_iou_03_batch(), protocol="paper", thresholds={"max": 0.5, "max10": 0.5, "maxq3": 0.5}
    )
    assert paper_out["CIoU_05"] == pytest.approx(30.0, abs=1e-9)
    assert paper_out["AUC_05"] == pytest.approx(27.5, abs=1e-9)  # 5 x 0.05 + 0.025
    assert paper_out["AUC_maxq3"] == pytest.approx(27.5, abs=1e-9)
    assert paper_out["F_Pos_Neg"] == pytest.approx(2 * 30 * 100 / 130, abs=1e-9)
    assert paper_out["F_AUC_AOC_Pos_Neg"] == pytest.approx(2 * 27.5 * 100 / 127.5, abs=1e-9)
    assert paper_out["F_AUC_AOC_Pos_Silence"] == pytest.approx(2 * 27.5 * 100 / 127.5, abs=1e-9)


@impl_params
def test_known_pia_and_aoc(impl):
    """A negative switched on over exactly a quarter of the image: pIA 25, AOC 77.5 (both grids)."""
    pos, silence, noise, offscreen, gt = _quadrant_batch(n=2)
    noise[:, 112:, :112] = 0.75  # 12,544 pixels > 0.5
    evaluate = IMPLEMENTATIONS[impl]
    fixed_out = evaluate(pos, silence, noise, offscreen, gt, protocol="fixed")
    assert fixed_out["noise/pia@fixed"] == pytest.approx(25.0, abs=1e-9)
    assert fixed_out["noise/aoc@fixed"] == pytest.approx(77.5, abs=1e-9)
    assert fixed_out["silence/aoc@fixed"] == pytest.approx(100.0, abs=1e-9)
    # pos and noise: |A&B| = 0, |A|B| = 25,088.
    assert fixed_out["iou/pos_noise@fixed"] == pytest.approx(0.0, abs=1e-9)
    assert fixed_out["iou/noise_offscreen@fixed"] == pytest.approx(0.0, abs=1e-9)
    assert fixed_out["f/pos_noise@fixed"] == pytest.approx(2 * 100 * 75 / 175, abs=1e-9)
    assert fixed_out["f/pos_neg@fixed"] == pytest.approx(2 * 100 * 91.66666666666667 / 191.66666666666667)

    paper_out = evaluate(
        pos, silence, noise, offscreen, gt, protocol="paper", thresholds={"max": 0.5, "max10": 0.5, "maxq3": 0.5}
    )
    assert paper_out["pIA_Noise"] == pytest.approx(25.0, abs=1e-9)
    assert paper_out["AOC_Noise"] == pytest.approx(77.5, abs=1e-9)
    assert paper_out["AOC_Noise_MaxQ3"] == pytest.approx(77.5, abs=1e-9)


@impl_params
def test_auroc_and_max_statistics(impl):
    """Raw 7x7 maps whose maxima are set by hand."""
    pos, silence, noise, offscreen = (_zeros(3, 7) for _ in range(4))
    pos[:, 3, 3] = [1.0, 2.0, 3.0]
    silence[:, 0, 6] = [0.0, 2.0, 2.5]
    noise[:, 6, 0] = [3.0, 1.0, 2.0]  # the same distribution as pos
    offscreen -= 1.0  # every maximum -1, every minimum -1
    gt = np.ones((3, SIDE, SIDE), dtype=bool)
    evaluate = IMPLEMENTATIONS[impl]
    out = evaluate(pos, silence, noise, offscreen, gt, protocol="fixed")
    # pairs (p, s): 1>0; 2>0, 2=2; 3>0, 3>2, 3>2.5 -> 5.5 of 9.
    assert out["max/auroc/pos_vs_silence"] == pytest.approx(5.5 / 9, abs=1e-12)
    assert out["max/auroc/pos_vs_noise"] == pytest.approx(0.5, abs=1e-12)
    assert out["max/auroc/pos_vs_offscreen"] == pytest.approx(1.0, abs=1e-12)
    assert out["max/pos/mean"] == pytest.approx(2.0)
    assert out["max/pos/median"] == pytest.approx(2.0)
    assert out["max/silence/mean"] == pytest.approx(1.5)
    assert out["max/offscreen/median"] == pytest.approx(-1.0)
    assert out["min/pos/mean"] == pytest.approx(0.0)
    assert out["min/offscreen/mean"] == pytest.approx(-1.0)
    paper = evaluate(
        pos, silence, noise, offscreen, gt, protocol="paper", thresholds={"max": 0.5, "max10": 0.5, "maxq3": 0.5}
    )
    assert paper["Max_Heatmap"] == pytest.approx(2.0)
    assert paper["Median_Max_Heatmap_Silence"] == pytest.approx(2.0)
    assert paper["Max_Heatmap_Silence"] == pytest.approx(1.5)
    assert paper["Min_Heatmap_Offscreen"] == pytest.approx(-1.0)
    assert paper["Median_Min_Heatmap"] == pytest.approx(0.0)


def test_oracle_max_values():
    pos, silence, noise, offscreen = (_zeros(3, 7) for _ in range(4))
    pos[:, 3, 3] = [1.0, 2.0, 3.0]
    offscreen -= 1.0
    maxima = oracle.oracle_max_values(pos, silence, noise, offscreen)
    np.testing.assert_array_equal(maxima["pos"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(maxima["silence"], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(maxima["offscreen"], [-1.0, -1.0, -1.0])


def _interactive_batch():
    """Four 224x224 samples; three localise their 10x10 box (adaptive IoU 99/100), one does not (0)."""
    ramp = (np.arange(SIDE * SIDE, dtype=np.float64).reshape(SIDE, SIDE) / (SIDE * SIDE)).astype(np.float32)
    gt = np.zeros((4, SIDE, SIDE), dtype=bool)
    pos = _zeros(4)
    for i, (y, x) in enumerate([(10, 10), (100, 40), (50, 150), (180, 180)]):
        gt[i, y : y + 10, x : x + 10] = True
        box = gt[i].astype(np.float32)
        # GT pixels highest for the first three, lowest for the last; the ramp breaks every tie.
        pos[i] = (2.0 * box if i < 3 else 2.0 * (1.0 - box)) + ramp
    return pos, _zeros(4), _zeros(4), _zeros(4), gt, np.array([0, 0, 1, 1])


@impl_params
def test_interactive_metrics(impl):
    pos, silence, noise, offscreen, gt, group = _interactive_batch()
    evaluate = IMPLEMENTATIONS[impl]
    # Group 0 succeeds up to x = 0.95, group 1 only at x = 0: curve 1, 0.5 (x19), 0 -> area 0.5.
    out = evaluate(pos, silence, noise, offscreen, gt, group=group, protocol="fixed")
    assert out["pos/miou@adaptive"] == pytest.approx(100 * 0.99 * 3 / 4, abs=1e-9)
    assert out["interactive/ciou@adaptive"] == pytest.approx(50.0, abs=1e-9)
    assert out["interactive/auc@adaptive"] == pytest.approx(50.0, abs=1e-9)
    paper = evaluate(
        pos, silence, noise, offscreen, gt, group=group, protocol="paper",
        thresholds={"max": 0.5, "max10": 0.5, "maxq3": 0.5},
    )
    assert paper["CIoU_adap"] == pytest.approx(75.0, abs=1e-9)
    assert paper["iiou_adap"] == pytest.approx(50.0, abs=1e-9)
    assert paper["IAUC_adap"] == pytest.approx(50.0, abs=1e-9)


@impl_params
def test_empty_gt_policies(impl):
    """Sample 0 is perfect at 0.5; sample 1 has an empty GT and an all-zero map (0/0 in the reference)."""
    pos, silence, noise, offscreen, gt = _quadrant_batch(n=2)
    pos[1] = 0.0
    gt[1] = False
    obj = pos.copy()  # OGL map 0.4*p + 0.6*p: the same binarisation at 0.5
    evaluate = IMPLEMENTATIONS[impl]

    fixed_out = evaluate(pos, silence, noise, offscreen, gt, obj=obj, protocol="fixed")
    assert fixed_out["n_empty_gt"] == 1
    assert fixed_out["pos/miou@fixed"] == pytest.approx(50.0, abs=1e-9)  # empty GT: IoU 0
    assert fixed_out["pos/auc@fixed"] == pytest.approx(51.25, abs=1e-9)
    assert fixed_out["pos_ogl/miou@fixed"] == pytest.approx(50.0, abs=1e-9)

    thresholds = {"max": 0.5, "max10": 0.5, "maxq3": 0.5}
    paper = evaluate(pos, silence, noise, offscreen, gt, obj=obj, protocol="paper", thresholds=thresholds)
    assert paper["CIoU_05"] == pytest.approx(50.0, abs=1e-9)  # WOGL: NaN -> 0
    assert paper["AUC_05"] == pytest.approx(51.25, abs=1e-9)  # ... and 0 >= x_0 counts
    assert math.isnan(paper["CIoU_05_OGL"])  # OGL keeps NaN: the mean is NaN
    assert paper["AUC_05_OGL"] == pytest.approx(50.0, abs=1e-9)  # ... and NaN fails everywhere
    assert paper["CIoU"] == pytest.approx(50.0, abs=1e-9)  # pooled list: NaN counts as failure
    assert paper["AUC"] == pytest.approx(50.0, abs=1e-9)


@impl_params
def test_f_score_zero_over_zero_is_nan(impl):
    """Every positive IoU 0 and every negative fully on: both F terms are 0."""
    n = 2
    pos = _zeros(n)  # nothing on at 0.5 while the GT is not empty: IoU 0
    negatives = [np.ones((n, SIDE, SIDE), dtype=np.float32) for _ in range(3)]
    gt = np.zeros((n, SIDE, SIDE), dtype=bool)
    gt[:, :10, :10] = True
    out = IMPLEMENTATIONS[impl](pos, *negatives, gt, protocol="fixed")
    assert out["pos/miou@fixed"] == 0.0 and out["silence/pia@fixed"] == pytest.approx(100.0)
    assert math.isnan(out["f/pos_neg@fixed"])
    assert math.isnan(out["f/pos_silence@fixed"])


def test_f_score_formula():
    assert oracle.f_score(60.0, 40.0) == pytest.approx(48.0)
    assert oracle.f_score(0.0, 50.0) == 0.0
    assert math.isnan(oracle.f_score(0.0, 0.0))


# --------------------------------------------------------------------------------------------------
# The oracle's upsampling against exact values and against PyTorch
# --------------------------------------------------------------------------------------------------


def test_upsample_known_values():
    ramp = np.tile(np.arange(7, dtype=np.float32), (7, 1))  # value = column index
    bilinear = oracle.upsample(ramp, "bilinear")
    np.testing.assert_allclose(bilinear[0], np.arange(SIDE) * 6 / 223, rtol=0, atol=1e-6)
    cv2 = oracle.upsample(ramp, "cv2")
    expected = np.clip((np.arange(SIDE) + 0.5) * 7 / 224 - 0.5, 0, 6)
    np.testing.assert_array_equal(cv2[100], expected.astype(np.float32))  # dyadic: exact
    assert cv2[0, 0] == 0.0 and cv2[0, 15] == 0.0 and cv2[0, 16] == 0.015625
    same = np.random.default_rng(0).random((SIDE, SIDE), dtype=np.float32)
    np.testing.assert_array_equal(oracle.upsample(same, "bilinear"), same)
    assert oracle.upsample(same, "cv2").dtype == np.float32


@pytest.mark.parametrize("size", [7, 14])
def test_upsample_matches_torch(size):
    """bilinear = F.interpolate(align_corners=True); cv2 INTER_LINEAR = F.interpolate(align_corners=False)
    when upsampling (half-pixel centres, clamped edges)."""
    torch = pytest.importorskip("torch")
    raw = np.random.default_rng(size).random((size, size))
    tensor = torch.from_numpy(raw)[None, None]  # float64: compares the formulas, not the rounding
    for interp, align in (("bilinear", True), ("cv2", False)):
        ref = torch.nn.functional.interpolate(tensor, size=(SIDE, SIDE), mode="bilinear", align_corners=align)
        np.testing.assert_allclose(oracle.upsample(raw, interp), ref[0, 0].numpy(), rtol=0, atol=1e-12)


def test_oracle_thresholds_and_strict_binarisation():
    up = np.arange(SIDE * SIDE, dtype=np.float32).reshape(SIDE, SIDE)
    assert oracle.median_threshold(up) == 25088
    gt = np.zeros((SIDE, SIDE), dtype=bool)
    gt[:10, :10] = True
    assert oracle.adaptive_threshold(up, gt) == SIDE * SIDE - 100
    assert oracle.adaptive_threshold(up, np.zeros_like(gt)) == 25088  # g = N//2 when empty
    assert int(oracle.binarise(up, 25088).sum()) == 25087
    # thresholds meet float32 maps in float32: 0.3 -> float32(0.3), so the pixel equal to it is off.
    v = np.full((2, 2), np.float32(0.3))
    assert not oracle.binarise(v, 0.3).any()


@impl_params
def test_negatives_use_cv2_in_paper_mode(impl):
    """Q10: a column ramp 0..1 over 7 columns, threshold 0.9: cv2 switches on columns 189-223 (35),
    align-corners bilinear columns 201-223 (23). Paper mode upsamples negatives with cv2 whatever
    `interp` is; fixed mode uses `interp` for every map."""
    ramp = np.tile((np.arange(7) / 6).astype(np.float32), (2, 7, 1))
    gt = _quadrant_batch(n=2)[-1]
    pos, noise, offscreen = _zeros(2, 7), _zeros(2, 7), _zeros(2, 7)
    silence = ramp
    evaluate = IMPLEMENTATIONS[impl]
    thresholds = {"max": 0.9, "max10": 0.9, "maxq3": 0.9}
    paper = evaluate(pos, silence, noise, offscreen, gt, protocol="paper", thresholds=thresholds,
                     fixed=0.9, interp="bilinear")
    assert paper["pIA_Silence"] == pytest.approx(100 * 35 / 224, abs=1e-9)
    assert paper["pIA_Silence_MaxQ3"] == pytest.approx(100 * 35 / 224, abs=1e-9)
    for interp, columns in (("bilinear", 23), ("cv2", 35)):
        out = evaluate(pos, silence, noise, offscreen, gt, protocol="fixed", fixed=0.9, interp=interp)
        assert out["silence/pia@fixed"] == pytest.approx(100 * columns / 224, abs=1e-9), interp


# --------------------------------------------------------------------------------------------------
# The accumulator: chunking, per-sample maxima, batches of empty GTs
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["fixed", "paper"])
def test_chunked_evaluation_matches_oracle(xp, protocol):
    """Chunks that do not divide the batch, and worker threads, change nothing."""
    batch = make_batch(321, n=7, size=14, kind="degenerate", with_obj=True, with_group=True)
    options = dict(protocol=protocol, thresholds=_thresholds(protocol), interp="cv2")
    want = oracle.oracle_evaluate(*batch["args"], **batch["kwargs"], **options)
    args = tuple(xp.asarray(a) for a in batch["args"])
    kwargs = {k: xp.asarray(v) for k, v in batch["kwargs"].items()}
    assert_metrics_match(_evaluate(*args, **kwargs, **options, chunk_size=3, num_workers=2), want)


def test_evaluator_max_values_match_oracle(xp):
    from vsslrt.eval import Evaluator

    batch = make_batch(5, n=6, size=7, kind="random", with_obj=False, with_group=False)
    evaluator = Evaluator(protocol="fixed")
    evaluator.update(*(xp.asarray(a) for a in batch["args"]))
    maxima = evaluator.max_values()
    want = oracle.oracle_max_values(*batch["args"][:4])
    assert set(maxima) == set(want)
    for cond, values in want.items():
        np.testing.assert_array_equal(np.asarray(maxima[cond], dtype=np.float64), values)


def test_batch_of_empty_ground_truths_matches_oracle():
    """docs/metrics.md defines every metric for empty GTs, so a shard holding only such samples is
    measurable (the evaluator's default input check rejects it as a likely rasterisation error)."""
    from vsslrt.eval import Evaluator

    batch = make_batch(9, n=3, size=7, kind="random", with_obj=True, with_group=True)
    gt = np.zeros_like(batch["args"][4])
    args = (*batch["args"][:4], gt)
    for protocol in ("fixed", "paper"):
        options = dict(protocol=protocol, thresholds=_thresholds(protocol))
        evaluator = Evaluator(**options, validate=False)
        evaluator.update(*args, **batch["kwargs"])
        got = evaluator.compute()
        assert_metrics_match(got, oracle.oracle_evaluate(*args, **batch["kwargs"], **options))
        if protocol == "fixed":
            assert got["n_empty_gt"] == 3
