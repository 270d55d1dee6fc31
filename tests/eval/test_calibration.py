"""Threshold rules on constructed distributions with known answers, and the sweep."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.errors import InputError
from vsslrt.eval import Evaluator, evaluate
from vsslrt.eval.calibration import (
    auroc,
    candidate_grid,
    max_value_distributions,
    max_value_summary,
    quantile,
    sweep_curves,
    threshold_balanced_accuracy,
    threshold_from_quantile,
    threshold_max_f,
)

SEPARATED = {
    "pos": np.array([0.6, 0.7, 0.8, 0.9]),
    "silence": np.array([0.1, 0.2]),
    "noise": np.array([0.3, 0.4]),
    "offscreen": np.array([0.35, 0.25]),
}


def test_quantile_rule_with_factor_reproduces_max10():
    maxima = dict(SEPARATED, pos=np.arange(1, 101) / 100.0)
    t = threshold_from_quantile(maxima, "pos", 0.5)
    assert t.value == pytest.approx(0.505)
    t10 = threshold_from_quantile(maxima, "pos", 0.5, factor=1.1)
    assert t10.value == pytest.approx(1.1 * 0.505)
    assert "1.1 x quantile q=0.5" in t10.provenance and "pos map maxima (n=100)" in t10.provenance
    q3 = threshold_from_quantile(maxima, "negatives", 0.75)
    assert q3.value == pytest.approx(np.quantile([0.1, 0.2, 0.3, 0.4, 0.35, 0.25], 0.75))
    with pytest.raises(InputError, match="distribution to be one of"):
        threshold_from_quantile(maxima, "everything", 0.5)
    with pytest.raises(InputError, match=r"q in \[0, 1\]"):
        threshold_from_quantile(maxima, "pos", 75)


def test_balanced_accuracy_separable_gives_midpoint_of_the_gap():
    t = threshold_balanced_accuracy(SEPARATED)
    assert t.value == pytest.approx(0.5)  # between the largest negative 0.4 and the smallest positive 0.6
    assert "BA=1.0000" in t.provenance


def test_balanced_accuracy_overlapping_known_answer():
    maxima = {"pos": np.array([0.5, 0.7, 0.9]), "silence": np.array([0.2, 0.6, 0.8]),
              "noise": np.array([0.1]), "offscreen": np.array([0.1])}
    # Against silence only. Cut after 0.2: TPR 1, TNR 1/3 -> 0.667; after 0.6: TPR 2/3, TNR 2/3 -> 0.667;
    # after 0.8: TPR 1/3, TNR 1 -> 0.667; after 0.5: TPR 2/3, TNR 1/3 -> 0.5. Ties -> the smallest cut, 0.2.
    t = threshold_balanced_accuracy(maxima, negatives=("silence",))
    assert t.value == pytest.approx(0.35)  # midpoint of 0.2 and the next maximum 0.5
    assert "BA=0.6667" in t.provenance


def test_auroc_known_values():
    assert auroc(SEPARATED["pos"], SEPARATED["silence"]) == 1.0
    assert auroc(SEPARATED["silence"], SEPARATED["pos"]) == 0.0
    assert auroc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    assert auroc(np.array([0.5, 0.7]), np.array([0.5, 0.6, 0.8])) == pytest.approx((0.5 + 0 + 0) / 6 + (1 + 1 + 0) / 6)


def test_summary_and_distributions_from_an_evaluator(batch_factory):
    batch = batch_factory(n=8, seed=2)
    ev = Evaluator()
    ev.update(*(batch[c] for c in ("pos", "silence", "noise", "offscreen", "gt")))
    dist = max_value_distributions(ev)
    assert dist["negatives"].shape == (24,)
    np.testing.assert_array_equal(dist["pos"], batch["pos"].max(axis=(1, 2)))
    summary = max_value_summary(ev)
    assert summary["distributions"]["pos"]["median"] == pytest.approx(np.median(dist["pos"]))
    assert summary["distributions"]["noise"]["q3"] == pytest.approx(quantile(dist["noise"], 0.75))
    assert summary["auroc"]["pos_vs_silence"] == pytest.approx(auroc(dist["pos"], dist["silence"]))


def _sweep_batch():
    """Positives light up their box at 0.8; negatives light up 1,000 px at 0.55 and 4,000 px at 0.3."""
    n = 4
    gt = np.zeros((n, 224, 224), bool)
    gt[:, 50:100, 50:110] = True
    pos = np.full((n, 224, 224), 0.1, np.float32)
    pos[gt] = 0.8
    neg = np.zeros((n, 224, 224), np.float32)
    neg[:, :20, :50] = 0.55
    neg[:, 20:100, 150:200] = 0.3
    return pos, neg, gt


def test_sweep_matches_evaluate_at_each_candidate():
    pos, neg, gt = _sweep_batch()
    grid = [0.2, 0.5, 0.7, 0.9]
    ev = Evaluator(sweep=grid)
    ev.update(pos, neg, neg, neg, gt)
    curves = sweep_curves(ev)
    for k, t in enumerate(grid):
        ref = evaluate(pos, neg, neg, neg, gt, fixed=t)
        assert curves["pos_miou"][k] == pytest.approx(ref["pos/miou@fixed"])
        assert curves["silence_pia"][k] == pytest.approx(ref["silence/pia@fixed"])
        assert curves["f_pos_neg"][k] == pytest.approx(ref["f/pos_neg@fixed"])


def test_max_f_rule_picks_the_best_candidate():
    pos, neg, gt = _sweep_batch()
    ev = Evaluator(sweep=[0.2, 0.5, 0.7, 0.9])
    ev.update(pos, neg, neg, neg, gt)
    t = threshold_max_f(ev)
    # 0.2: negatives 5,000 px on; 0.5: 1,000 px; 0.7: none and the positive box intact -> best
    assert t.value == 0.7
    assert "maximises F_Pos_Neg over 4 candidate thresholds" in t.provenance


def test_sweep_state_merges_and_is_required():
    pos, neg, gt = _sweep_batch()
    with pytest.raises(InputError, match="candidate thresholds"):
        sweep_curves(Evaluator().update(pos, neg, neg, neg, gt))
    a = Evaluator(sweep=[0.5, 0.7]).update(pos[:2], neg[:2], neg[:2], neg[:2], gt[:2], sample_ids=[0, 1])
    b = Evaluator(sweep=[0.5, 0.7]).update(pos[2:], neg[2:], neg[2:], neg[2:], gt[2:], sample_ids=[2, 3])
    whole = Evaluator(sweep=[0.5, 0.7]).update(pos, neg, neg, neg, gt)
    merged = Evaluator.from_state(a.merge(b).state())
    for key, value in sweep_curves(whole).items():
        np.testing.assert_array_equal(sweep_curves(merged)[key], value)


def test_candidate_grid():
    grid = candidate_grid((0.0, 1.0), 11)
    np.testing.assert_allclose(grid, np.arange(11) / 10)
    with pytest.raises(InputError):
        candidate_grid((1.0, 0.0))


def test_sweep_generic_path_equals_fast_path():
    from vsslrt.eval._xp import use_fast_paths

    pos, neg, gt = _sweep_batch()
    fast = sweep_curves(Evaluator(sweep=[0.2, 0.55, 0.7]).update(pos, neg, neg, neg, gt))
    with use_fast_paths(False):
        generic = sweep_curves(Evaluator(sweep=[0.2, 0.55, 0.7]).update(pos, neg, neg, neg, gt))
    for key, value in fast.items():
        np.testing.assert_array_equal(generic[key], value)


def test_rules_by_name_dispatch_to_the_rule_functions():
    from vsslrt.eval.calibration import RULES, fit_threshold

    pos, neg, gt = _sweep_batch()
    ev = Evaluator(sweep=[0.2, 0.5, 0.7, 0.9]).update(pos, neg, neg, neg, gt)
    assert RULES == ("max_f", "balanced_accuracy", "quantile")
    assert fit_threshold(ev, "max_f") == threshold_max_f(ev)
    assert fit_threshold(ev) == threshold_max_f(ev)
    assert fit_threshold(ev, "balanced_accuracy") == threshold_balanced_accuracy(ev)
    assert fit_threshold(SEPARATED, "balanced_accuracy", negatives=("noise",)) == \
        threshold_balanced_accuracy(SEPARATED, ("noise",))
    assert fit_threshold(SEPARATED, "quantile", distribution="negatives", q=0.5, factor=1.1) == \
        threshold_from_quantile(SEPARATED, "negatives", 0.5, 1.1)
    with pytest.raises(InputError, match="expected one of max_f, balanced_accuracy, quantile, got 'median'"):
        fit_threshold(ev, "median")


def test_run_candidates_name_their_rules_and_an_undefined_rule_is_none_with_the_reason():
    from vsslrt.eval.calibration import RUN_CANDIDATES, fit_candidates

    pos, neg, gt = _sweep_batch()
    ev = Evaluator(sweep=[0.2, 0.5, 0.7, 0.9]).update(pos, neg, neg, neg, gt)
    got = fit_candidates(ev)
    assert list(got) == ["max_f", "balanced_accuracy", "pos_q3", "pos_median_x1.1"] == list(RUN_CANDIDATES)
    assert got["max_f"] == {"value": 0.7, "provenance": threshold_max_f(ev).provenance}
    q = threshold_from_quantile(ev, "pos", 0.5, 1.1)
    assert got["pos_median_x1.1"] == {"value": q.value, "provenance": q.provenance}
    # Without a sweep the F rule is undefined; the rules on maxima still give their thresholds.
    plain = fit_candidates(Evaluator().update(pos, neg, neg, neg, gt))
    assert plain["max_f"]["value"] is None and plain["max_f"]["provenance"].startswith("undefined: sweep:")
    assert plain["balanced_accuracy"] == got["balanced_accuracy"]


def test_protocol_is_checked_by_one_function():
    from vsslrt.eval.config import PROTOCOLS, check_protocol

    assert [check_protocol(p) for p in PROTOCOLS] == ["fixed", "paper"]
    with pytest.raises(InputError, match=r"^run.json: source.protocol: expected one of fixed, paper, got 'exact'\.$"):
        check_protocol("exact", "run.json: source.protocol", hint=None)
    with pytest.raises(InputError, match="Hint: --protocol fixed"):
        check_protocol(None)
