"""`vsslrt.pipeline.calibrate` on real benchmark runs: rules, the record, the held-out report, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vsslrt.pipeline.bench import run_bench
from vsslrt.pipeline.calibrate import Calibration, RuleChoice, as_calibration, calibrate, load_run, threshold_metrics
from vsslrt.errors import DataError, InputError, ManifestMismatchError
from vsslrt.files import sha256_file

NEGATIVES = ("silence", "noise", "offscreen")


def _max_values(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "max_values.npz") as npz:
        return {k.split("/", 1)[1]: npz[k] for k in npz.files}


def _engine_entry(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["engines"]["tiny"]


def test_default_calibration_equals_the_runs_candidates_and_names_the_engine(fit_run, engine):
    cal = calibrate(fit_run)
    candidates = _engine_entry(fit_run)["calibration"]
    # The bench computed the same rules on the same state when the run finished.
    assert cal.localization_threshold == pytest.approx(candidates["max_f"]["value"], abs=0)
    assert cal.detection_threshold == pytest.approx(candidates["balanced_accuracy"]["value"], abs=0)
    doc = cal.document
    assert doc["localization"]["rule"] == "max_f" and doc["localization"]["provenance"].startswith("maximises F_Pos_Neg")
    assert doc["detection"]["rule"] == "balanced_accuracy"
    assert doc["manifest_sha256"] == sha256_file(engine / "manifest.json")
    assert doc["model"] == "ezvsl" and doc["engine"] == "tiny"
    assert doc["source"]["run"] == str(fit_run.resolve())
    assert doc["source"]["dataset"] == "manifest" and doc["source"]["protocol"] == "fixed"
    assert doc["source"]["n_samples"] == 8
    assert "holdout" not in doc


def test_quantile_rule_is_factor_times_quantile_of_the_named_maxima(fit_run):
    maxima = _max_values(fit_run)
    pooled = np.concatenate([maxima[n] for n in NEGATIVES])
    cal = calibrate(fit_run, choice=RuleChoice("quantile", "negatives", 0.9, 1.1))
    assert cal.localization_threshold == pytest.approx(1.1 * np.quantile(pooled, 0.9), rel=1e-12)
    assert cal.document["localization"]["params"] == {"distribution": "negatives", "q": 0.9, "factor": 1.1}
    cal_pos = calibrate(fit_run, choice=RuleChoice("quantile", "pos", 0.75))
    assert cal_pos.localization_threshold == pytest.approx(np.quantile(maxima["pos"], 0.75), rel=1e-12)


def test_detection_threshold_separates_maxima_with_the_best_balanced_accuracy(fit_run):
    maxima = _max_values(fit_run)
    pos, neg = maxima["pos"], np.concatenate([maxima[n] for n in NEGATIVES])
    t = calibrate(fit_run).detection_threshold

    def balanced(cut: float) -> float:
        return 0.5 * (np.mean(pos > cut) + np.mean(neg <= cut))

    best = max(balanced(c) for c in np.concatenate([pos, neg, [-np.inf]]))
    assert balanced(t) == pytest.approx(best)


def test_round_trip_through_the_file(fit_run, tmp_path):
    from vsslrt.pipeline.calibrate import write_calibration

    cal = calibrate(fit_run, choice=RuleChoice("balanced_accuracy"))
    path = write_calibration(cal, tmp_path / "sub" / "cal.json")
    again = Calibration.read(path)
    assert again.document == cal.document
    assert (again.localization_threshold, again.detection_threshold) == (cal.localization_threshold, cal.detection_threshold)
    assert as_calibration(json.loads(path.read_text())).manifest_sha256 == cal.manifest_sha256
    assert as_calibration(str(path)).origin == str(path)


def test_threshold_metrics_match_the_evaluators_own_metrics(fit_run):
    # 0.5 is both a candidate of the sweep grid and the run's fixed threshold: two computations.
    run = load_run(fit_run)
    metrics = _engine_entry(fit_run)["metrics"]
    block = threshold_metrics(run.evaluator, 0.5, 0.45)
    loc = block["localization"]
    assert loc["exact"] and loc["evaluated_at"] == 0.5
    assert loc["pos_miou"] == pytest.approx(metrics["pos/miou@fixed"], rel=1e-9)
    for neg in NEGATIVES:
        assert loc["pia"][neg] == pytest.approx(metrics[f"{neg}/pia@fixed"], rel=1e-9, abs=1e-9)
    assert loc["f_pos_neg"] == pytest.approx(metrics["f/pos_neg@fixed"], rel=1e-9)
    maxima = _max_values(fit_run)
    assert block["detection"]["tpr"] == np.mean(maxima["pos"] > 0.45)
    assert block["detection"]["tnr"]["noise"] == np.mean(maxima["noise"] <= 0.45)


def test_holdout_report_applies_the_fitted_thresholds(fit_run, holdout_run):
    cal = calibrate(fit_run, holdout=holdout_run)
    held = cal.document["holdout"]
    assert held["source"]["run"] == str(holdout_run.resolve()) and held["n_samples"] == 8
    # Not refitted: the same thresholds, measured on the other run's maxima.
    assert held["localization"]["threshold"] == cal.localization_threshold
    t = cal.detection_threshold
    assert held["detection"]["threshold"] == t
    maxima = _max_values(holdout_run)
    assert held["detection"]["tpr"] == np.mean(maxima["pos"] > t)
    pooled = np.concatenate([maxima[n] for n in NEGATIVES])
    assert held["detection"]["tnr"]["negatives"] == pytest.approx(np.mean(pooled <= t))
    assert held["detection"]["balanced_accuracy"] == pytest.approx(0.5 * (np.mean(maxima["pos"] > t) + np.mean(pooled <= t)))
    for key in ("pos_miou", "pos_ciou", "f_pos_neg", "gated"):
        assert key in held["localization"]
    # The fitted run's own numbers sit beside them, and differ (other samples).
    assert cal.document["fit"]["detection"]["tpr"] == np.mean(_max_values(fit_run)["pos"] > t)


def test_gated_metrics_zero_the_samples_the_detection_rejects(fit_run):
    run = load_run(fit_run)
    maxima = _max_values(fit_run)
    # A detection threshold above every maximum: nothing is shown, so IoU and pIA are all 0.
    block = threshold_metrics(run.evaluator, 0.3, float(max(v.max() for v in maxima.values())) + 1.0)
    assert block["localization"]["gated"]["pos_miou"] == 0.0
    assert all(v == 0.0 for v in block["localization"]["gated"]["pia"].values())
    assert block["detection"]["tpr"] == 0.0 and block["detection"]["tnr"]["negatives"] == 1.0
    # Below every maximum: gating changes nothing.
    low = threshold_metrics(run.evaluator, 0.3, -10.0)["localization"]
    assert low["gated"]["pos_miou"] == pytest.approx(low["pos_miou"])


def test_an_undefined_f_score_is_nan_like_the_evaluators_and_null_in_the_file(tmp_path):
    import math

    from vsslrt.eval import Evaluator
    from vsslrt.files import atomic_write_json, to_jsonable

    # Empty ground truth (IoU 0) and negatives above the threshold everywhere (pIA 100 %): F is 0/0.
    n, bright = 3, np.full((3, 7, 7), 0.9, np.float32)
    ev = Evaluator("fixed", sweep=[0.25, 0.5]).update(bright, bright, bright, bright, np.zeros((n, 224, 224), bool))
    block = threshold_metrics(ev, 0.5, 0.1)
    assert math.isnan(block["localization"]["f_pos_neg"]) and math.isnan(block["localization"]["gated"]["f_pos_neg"])
    path = atomic_write_json(tmp_path / "block.json", to_jsonable(block), allow_nan=False)
    written = json.loads(path.read_text())["localization"]
    assert written["f_pos_neg"] is None and written["gated"]["f_pos_neg"] is None
    assert written["pos_miou"] == 0.0 and written["pia"] == {neg: 100.0 for neg in NEGATIVES}


# ------------------------------------------------------------------------------------------------
# Bad inputs


def test_not_a_run_folder(tmp_path):
    with pytest.raises(InputError, match="expected a run folder written by `vsslrt bench`"):
        load_run(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        load_run(tmp_path / "missing")


def test_unfinished_run(tmp_path, engine, splits, make_settings):
    out = tmp_path / "partial"
    run_bench([engine], make_settings(splits[0], batch=4), out, stop_after_batches=1)
    with pytest.raises(InputError, match="unfinished") as info:
        calibrate(out)
    assert "--resume" in str(info.value)


def test_finished_files_but_partial_state_is_unfinished(tmp_path, fit_run):
    run = tmp_path / "run"
    shutil.copytree(fit_run, run)
    ckpt = run / "shards" / "tiny" / "checkpoint.npz"
    with np.load(ckpt) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["__done__"] = arrays["__done__"][:3]
    np.savez(ckpt, **arrays)
    with pytest.raises(InputError, match="at 3 of 8 samples"):
        calibrate(run)


def test_engine_not_in_run(fit_run):
    with pytest.raises(InputError, match=r"one of the run's engines \(tiny\), got 'ezvsl'"):
        calibrate(fit_run, engine="ezvsl")


def test_missing_state_is_a_damaged_run(tmp_path, fit_run):
    run = tmp_path / "run"
    shutil.copytree(fit_run, run)
    (run / "shards" / "tiny" / "checkpoint.npz").unlink()
    with pytest.raises(DataError, match="evaluator state"):
        calibrate(run)


def test_holdout_of_another_engine_is_refused(tmp_path, fit_run, other_engine, splits, make_settings):
    other = tmp_path / "other-run"
    run_bench([other_engine], make_settings(splits[1], limit=2), other)
    with pytest.raises(ManifestMismatchError, match="expected a run of engine tiny"):
        calibrate(fit_run, holdout=other)
    with pytest.raises(InputError, match="the calibration run itself"):
        calibrate(fit_run, holdout=fit_run)


def test_bad_rule_parameters():
    with pytest.raises(InputError, match="--rule"):
        RuleChoice("median")
    with pytest.raises(InputError, match="--q"):
        RuleChoice("quantile", q=1.5)
    with pytest.raises(InputError, match="--distribution"):
        RuleChoice("quantile", distribution="music")


def test_calibration_file_validation(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Calibration.read(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        Calibration.read(tmp_path / "bad.json")
    with pytest.raises(InputError, match="written by `vsslrt calibrate`"):
        as_calibration({"thresholds": {}})
    doc = {"format": "vsslrt-calibration", "format_version": 1, "model": "m", "manifest_sha256": "ab",
           "interp": "bilinear", "localization": {"threshold": "high"}, "detection": {"threshold": 0.5}}
    with pytest.raises(InputError, match="localization.threshold to be a finite number, got 'high'"):
        as_calibration(doc)
