"""Max-value distribution analysis and universal-threshold rules (protocol.md section 6).

The paper's universal thresholds (`max`, `max10`, `maxq3`) are literal constants in the reference
code; their derivation is not in the available sources. This module makes the derivation an
explicit, recorded rule. Three rules, each returning a `Threshold` (value + provenance string):

- `threshold_from_quantile`: quantile q of a named max-value distribution, times a factor
  (hypothesis H1 of protocol.md: `max` = median of the maxima, `max10` = 1.1 x max,
  `maxq3` = third quartile);
- `threshold_max_f`: the candidate threshold with the best paper F-score `F_Pos_Neg`;
- `threshold_balanced_accuracy`: the threshold on map maxima that best separates "sounding"
  (positive audio) from "not sounding" (silence, noise, offscreen) by balanced accuracy.

`fit_threshold` applies a rule by name (`RULES`), the one dispatch `vsslrt calibrate` and a
benchmark run's calibration candidates (`fit_candidates`, `RUN_CANDIDATES`) share.

Sweep design: the F rule needs every sample's positive IoU and negative pIA at each candidate
threshold, which per-sample maxima cannot give. The `Evaluator` therefore takes a fixed candidate
grid (`Evaluator(..., sweep=grid)`) and keeps, per sample, the IoU and pIAs at every grid point
(per-sample scalars: the state stays mergeable and bit-exact under any sharding). Choose the grid
before evaluating, e.g. `candidate_grid(model_spec.value_range)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval._stats import auroc
from vsslrt.eval.keys import CONDITIONS, NEGATIVES
from vsslrt.models import Threshold

DISTRIBUTIONS = CONDITIONS + ("negatives",)
RULES = ("max_f", "balanced_accuracy", "quantile")
#: The calibration candidates every benchmark run fits and reports: name -> (rule, parameters).
RUN_CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "max_f": ("max_f", {}),
    "balanced_accuracy": ("balanced_accuracy", {}),
    "pos_q3": ("quantile", {"distribution": "pos", "q": 0.75, "factor": 1.0}),
    "pos_median_x1.1": ("quantile", {"distribution": "pos", "q": 0.5, "factor": 1.1}),
}

__all__ = [
    "DISTRIBUTIONS",
    "RULES",
    "RUN_CANDIDATES",
    "Threshold",
    "auroc",
    "candidate_grid",
    "fit_candidates",
    "fit_threshold",
    "max_value_distributions",
    "max_value_summary",
    "quantile",
    "sweep_curves",
    "threshold_balanced_accuracy",
    "threshold_from_quantile",
    "threshold_max_f",
]


def candidate_grid(value_range: tuple[float, float], n: int = 101) -> np.ndarray:
    """n evenly spaced candidate thresholds over a model's map value range (inclusive)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo) or n < 2:
        raise InputError(f"candidate_grid: expected a finite range lo < hi and n >= 2, got {value_range} and {n}.")
    return np.linspace(lo, hi, n)


def max_value_distributions(source: Any) -> dict[str, np.ndarray]:
    """Per-sample maxima of the raw maps by condition, plus `negatives` (the three pooled).

    Args:
        source: an `Evaluator`, or a mapping condition -> 1-D array of maxima (pos, silence, noise,
            offscreen).
    """
    if hasattr(source, "max_values"):
        per_condition = source.max_values()
    elif isinstance(source, Mapping):
        per_condition = {}
        for cond in CONDITIONS:
            if cond not in source:
                raise InputError(f"max values: expected the condition {cond!r}, got {sorted(source)}.")
            per_condition[cond] = np.asarray(source[cond], dtype=np.float64).ravel()
    else:
        raise InputError(f"max values: expected an Evaluator or a mapping, got {type(source).__name__}.")
    out = {c: np.asarray(per_condition[c], dtype=np.float64) for c in CONDITIONS}
    out["negatives"] = np.concatenate([out[n] for n in NEGATIVES])
    return out


def quantile(values: np.ndarray, q: float | Sequence[float]) -> Any:
    """Linear-interpolation quantile(s) of a 1-D list (NumPy's default, as protocol.md section 6)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        raise InputError("quantile: expected at least one value, got none.")
    result = np.quantile(values, q)
    return float(result) if np.ndim(result) == 0 else result


def max_value_summary(source: Any) -> dict[str, Any]:
    """Distribution statistics of the maxima and the AUROC of positive vs each negative.

    Returns:
        {"distributions": {name: {n, mean, min, q1, median, q3, max}},
         "auroc": {"pos_vs_<neg>": value, ..., "pos_vs_negatives": value}}.
    """
    dist = max_value_distributions(source)
    stats = {}
    for name, values in dist.items():
        if values.shape[0] == 0:
            stats[name] = {"n": 0}
            continue
        q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        stats[name] = {
            "n": int(values.shape[0]),
            "mean": float(np.mean(values)),
            "min": float(np.min(values)),
            "q1": float(q1),
            "median": float(med),
            "q3": float(q3),
            "max": float(np.max(values)),
        }
    aurocs = {f"pos_vs_{neg}": auroc(dist["pos"], dist[neg]) for neg in NEGATIVES + ("negatives",)}
    return {"distributions": stats, "auroc": aurocs}


def threshold_from_quantile(source: Any, distribution: str = "pos", q: float = 0.5, factor: float = 1.0) -> Threshold:
    """Rule (a): factor x the q-quantile of one max-value distribution.

    Args:
        source: an `Evaluator` or a mapping of maxima (see `max_value_distributions`).
        distribution: pos, silence, noise, offscreen, or negatives (the three pooled).
        q: quantile in [0, 1] (linear interpolation). Defaults to 0.5.
        factor: multiplier, e.g. 1.1 for the reference's max10 = 1.1 x max. Defaults to 1.0.
    """
    if distribution not in DISTRIBUTIONS:
        raise InputError(
            f"threshold rule: expected distribution to be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}."
        )
    if not (0.0 <= float(q) <= 1.0):
        raise InputError(f"threshold rule: expected q in [0, 1], got {q!r}.")
    values = max_value_distributions(source)[distribution]
    value = float(factor) * quantile(values, float(q))
    scale = "" if factor == 1.0 else f"{float(factor):g} x "
    return Threshold(
        value=value,
        provenance=f"{scale}quantile q={float(q):g} (linear) of the {distribution} map maxima (n={values.shape[0]})",
    )


def threshold_balanced_accuracy(source: Any, negatives: Sequence[str] = NEGATIVES) -> Threshold:
    """Rule (c): the cut on map maxima that best separates positives from the chosen negatives.

    A sample is called "sounding" when its map maximum is > t. Every distinct maximum is tried
    as t; the best balanced accuracy 0.5 x (TPR + TNR) wins (the smallest such t on ties), and the
    returned value is the midpoint between that t and the next larger maximum, so it classifies
    the observed samples the same way with the widest margin.
    """
    for neg in negatives:
        if neg not in NEGATIVES:
            raise InputError(f"threshold rule: expected negatives among {', '.join(NEGATIVES)}, got {neg!r}.")
    if not negatives:
        raise InputError("threshold rule: expected at least one negative condition, got none.")
    dist = max_value_distributions(source)
    pos = np.sort(dist["pos"])
    neg = np.sort(np.concatenate([dist[n] for n in negatives]))
    if pos.shape[0] == 0 or neg.shape[0] == 0:
        raise InputError("threshold rule: expected positive and negative maxima, got an empty list.")
    candidates = np.unique(np.concatenate([pos, neg]))
    tpr = (pos.shape[0] - np.searchsorted(pos, candidates, side="right")) / pos.shape[0]
    tnr = np.searchsorted(neg, candidates, side="right") / neg.shape[0]
    balanced = 0.5 * (tpr + tnr)
    best = int(np.argmax(balanced))
    value = float(candidates[best])
    if best + 1 < candidates.shape[0]:
        mid = 0.5 * (value + float(candidates[best + 1]))
        if value < mid < float(candidates[best + 1]):
            value = mid
    names = "+".join(negatives)
    return Threshold(
        value=value,
        provenance=(
            f"maximises balanced accuracy of 'max > t' for pos vs {names} map maxima "
            f"(BA={float(balanced[best]):.4f}, TPR={float(tpr[best]):.4f}, TNR={float(tnr[best]):.4f}, "
            f"n_pos={pos.shape[0]}, n_neg={neg.shape[0]})"
        ),
    )


def sweep_curves(evaluator: Any) -> dict[str, np.ndarray]:
    """Curves over the evaluator's candidate thresholds, for plots and rule (b).

    Returns:
        `threshold` (K,), `pos_miou` (100 x mean IoU), `pos_ciou` (100 x fraction IoU >= 0.5),
        `<neg>_pia` for each negative and `neg_pia` (their mean), 100 x mean pIA, and `f_pos_neg`
        (the paper's F_Pos_Neg at each threshold; NaN where 0/0). An empty GT gives IoU 0.
    """
    grid = evaluator.config.sweep
    if grid is None:
        raise InputError(
            "sweep: expected an evaluator built with candidate thresholds, got none.",
            hint="Evaluator(..., sweep=candidate_grid(spec.value_range))",
        )
    scalars = evaluator.per_sample()
    if scalars["sample_id"].shape[0] == 0:
        raise InputError("sweep: expected at least one evaluated sample, got none.")
    iou, pia = scalars["sweep_iou"], scalars["sweep_pia"]
    out = {
        "threshold": np.asarray(grid, dtype=np.float64),
        "pos_miou": 100.0 * np.mean(iou, axis=0),
        "pos_ciou": 100.0 * np.count_nonzero(iou >= 0.5, axis=0) / iou.shape[0],
    }
    for i, neg in enumerate(NEGATIVES):
        out[f"{neg}_pia"] = 100.0 * np.mean(pia[:, i, :], axis=0)
    keep = np.mean(np.stack([100.0 - out[f"{neg}_pia"] for neg in NEGATIVES]), axis=0)
    out["neg_pia"] = 100.0 - keep
    a, b = out["pos_miou"], keep
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        out["f_pos_neg"] = np.where(total == 0, np.nan, 2.0 * a * b / np.where(total == 0, 1.0, total))
    return out


def threshold_max_f(evaluator: Any) -> Threshold:
    """Rule (b): the candidate threshold with the highest F_Pos_Neg (smallest one on ties)."""
    curves = sweep_curves(evaluator)
    f = curves["f_pos_neg"]
    if np.all(np.isnan(f)):
        raise InputError("threshold rule: expected a defined F-score at some candidate, got NaN everywhere.")
    best = int(np.nanargmax(f))
    grid = curves["threshold"]
    return Threshold(
        value=float(grid[best]),
        provenance=(
            f"maximises F_Pos_Neg over {grid.shape[0]} candidate thresholds in [{grid[0]:g}, {grid[-1]:g}] "
            f"(F={f[best]:.2f}, mIoU={curves['pos_miou'][best]:.2f}, mean pIA={curves['neg_pia'][best]:.2f}, "
            f"n={evaluator.per_sample()['sample_id'].shape[0]})"
        ),
    )


def fit_threshold(source: Any, rule: str = "max_f", *, distribution: str = "pos", q: float = 0.75,
                  factor: float = 1.0, negatives: Sequence[str] = NEGATIVES) -> Threshold:
    """The threshold of a rule named in `RULES`.

    Args:
        source: an `Evaluator` (`max_f` needs one built with a sweep), or for the rules on map
            maxima a mapping of maxima (see `max_value_distributions`).
        rule: "max_f" (`threshold_max_f`), "balanced_accuracy" (`threshold_balanced_accuracy`) or
            "quantile" (`threshold_from_quantile`).
        distribution, q, factor: the quantile rule's parameters.
        negatives: the balanced-accuracy rule's negative conditions. Defaults to all three.

    Raises:
        InputError: an unknown rule, bad parameters, or a rule undefined on these samples.
    """
    if rule == "max_f":
        return threshold_max_f(source)
    if rule == "balanced_accuracy":
        return threshold_balanced_accuracy(source, negatives)
    if rule == "quantile":
        return threshold_from_quantile(source, distribution, q, factor)
    raise InputError(f"threshold rule: expected one of {', '.join(RULES)}, got {rule!r}.")


def fit_candidates(
    source: Any, candidates: Mapping[str, tuple[str, Mapping[str, Any]]] = RUN_CANDIDATES
) -> dict[str, dict[str, Any]]:
    """Each candidate rule's threshold as {"value", "provenance"}, by candidate name.

    A rule that is undefined on these samples (e.g. F is NaN at every candidate) gets value None
    and a provenance saying why, so one undefined rule does not hide the others.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, (rule, params) in candidates.items():
        try:
            t = fit_threshold(source, rule, **params)
        except InputError as exc:
            out[name] = {"value": None, "provenance": f"undefined: {exc.one_line()}"}
            continue
        out[name] = {"value": float(t.value), "provenance": t.provenance}
    return out
