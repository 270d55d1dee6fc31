"""Per-sample scalars -> the metric dictionary of docs/metrics.md (host NumPy).

Inputs are the evaluator's state arrays sorted by sample id; the mode's policies (Q1 pooling, Q12
NaN handling, Q20 names) are applied here, never in the per-sample measurements.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vsslrt.eval import _stats
from vsslrt.eval.config import EvalConfig
from vsslrt.eval.keys import (
    CONDITIONS,
    NEGATIVES,
    PAIRS,
    PAPER_NEG_VARIANTS,
    PAPER_PAIR_VARIANTS,
    PAPER_PAIR_VARIANTS_OGL,
    PAPER_POOLED_VARIANTS,
    PAPER_POS_VARIANTS,
    paper_aoc_key,
    paper_f_keys,
    paper_maxmin_keys,
    paper_pair_key,
    paper_pia_key,
    paper_pos_keys,
)
from vsslrt.errors import InputError


def reduce_metrics(s: Mapping[str, np.ndarray], config: EvalConfig) -> dict[str, float]:
    """The metric dictionary of the configured protocol from id-sorted per-sample scalars."""
    if s["sample_id"].shape[0] == 0:

        raise InputError("compute: expected at least one evaluated sample, got none.", hint="call update() first")
    if config.protocol == "paper":
        return _paper(s, config)
    return _fixed(s, config)


def _paper(s: Mapping[str, np.ndarray], config: EvalConfig) -> dict[str, float]:
    grid = _stats.threshold_grid("paper")
    out: dict[str, float] = {}
    families = [("", False)] + ([("_ogl", True)] if "iou_ogl" in s else [])
    for suffix, ogl in families:
        columns = config.ogl_columns if ogl else config.columns
        col = {name: i for i, name in enumerate(columns)}
        iou = s["iou" + suffix]  # raw: NaN where GT and binary map are both empty

        # Q1: one list pooling t_med, fixed, max, max10, maxq3; NaN counts as a failure.
        pooled = iou[:, [col[v] for v in PAPER_POOLED_VARIANTS]].ravel()
        k_ciou, k_auc = paper_pos_keys("median", ogl)
        out[k_ciou], out[k_auc] = _stats.success_rate(pooled), _stats.auc(pooled, grid)
        adaptive = iou[:, col["adaptive"]]
        k_ciou, k_auc = paper_pos_keys("adaptive", ogl)
        out[k_ciou], out[k_auc] = _stats.success_rate(adaptive), _stats.auc(adaptive, grid)
        for variant in PAPER_POS_VARIANTS:
            values = iou[:, col[variant]]
            if not ogl:
                values = np.where(np.isnan(values), 0.0, values)  # Q12: WOGL lists replace NaN by 0
            k_ciou, k_auc = paper_pos_keys(variant, ogl)
            out[k_ciou] = _stats.mean_x100(values)  # Q20: a mean IoU under a cIoU name
            out[k_auc] = _stats.auc(values, grid)

        pia = s["pia" + suffix]
        for ni, neg in enumerate(NEGATIVES):
            for variant in PAPER_NEG_VARIANTS:
                values = pia[:, ni, col[variant]]
                out[paper_pia_key(neg, variant, ogl)] = _stats.mean_x100(values)
                out[paper_aoc_key(neg, variant, ogl)] = _stats.aoc(values, grid)

        pair = s["pair_iou" + suffix]
        start = config.ogl_pair_columns[0] if ogl else config.pair_start
        for pi, (a, b) in enumerate(PAIRS):
            for variant in PAPER_PAIR_VARIANTS_OGL if ogl else PAPER_PAIR_VARIANTS:
                out[paper_pair_key(a, b, variant, ogl)] = _stats.mean_x100(pair[:, pi, col[variant] - start])

    c_pos, a_pos = out["CIoU_maxq3"], out["AUC_maxq3"]
    keep = {neg: 100.0 - out[paper_pia_key(neg, "maxq3", False)] for neg in NEGATIVES}
    aocs = {neg: out[paper_aoc_key(neg, "maxq3", False)] for neg in NEGATIVES}
    for key, (kind, which) in paper_f_keys().items():
        a = c_pos if kind == "ciou" else a_pos
        terms = keep if kind == "ciou" else aocs
        b = float(np.mean(list(terms.values()))) if which == "neg" else terms[which]
        out[key] = _stats.f_score(a, b)

    if "group" in s:
        adaptive = s["iou"][:, config.columns.index("adaptive")]
        out["iiou_adap"], out["IAUC_adap"] = _stats.interactive(adaptive, s["group"], grid)

    for ci, cond in enumerate(CONDITIONS):
        for key, (stat, how) in paper_maxmin_keys(cond).items():
            values = s[stat][:, ci]
            out[key] = float(np.mean(values)) if how == "mean" else float(np.median(values))
    return out


def _fixed(s: Mapping[str, np.ndarray], config: EvalConfig) -> dict[str, float]:
    grid = _stats.threshold_grid("fixed")
    empty = s["gt_pixels"] == 0
    out: dict[str, float] = {}
    families = [("", config.columns)] + ([("_ogl", config.ogl_columns)] if "iou_ogl" in s else [])
    for suffix, columns in families:
        iou = np.where(empty[:, None], 0.0, s["iou" + suffix])  # Q12 fixed: empty GT -> IoU 0
        pia, pair = s["pia" + suffix], s["pair_iou" + suffix]
        start = config.ogl_pair_columns[0] if suffix else config.pair_start
        for j, name in enumerate(columns):
            values = iou[:, j]
            out[f"pos{suffix}/ciou@{name}"] = _stats.success_rate(values)
            out[f"pos{suffix}/miou@{name}"] = _stats.mean_x100(values)
            out[f"pos{suffix}/auc@{name}"] = _stats.auc(values, grid)
            for ni, neg in enumerate(NEGATIVES):
                out[f"{neg}{suffix}/pia@{name}"] = _stats.mean_x100(pia[:, ni, j])
                out[f"{neg}{suffix}/aoc@{name}"] = _stats.aoc(pia[:, ni, j], grid)
            for pi, (a, b) in enumerate(PAIRS):
                out[f"iou{suffix}/{a}_{b}@{name}"] = _stats.mean_x100(pair[:, pi, j - start])

    iou = np.where(empty[:, None], 0.0, s["iou"])
    for j, name in enumerate(config.columns):
        miou, pos_auc = out[f"pos/miou@{name}"], out[f"pos/auc@{name}"]
        keep = {neg: 100.0 - out[f"{neg}/pia@{name}"] for neg in NEGATIVES}
        aocs = {neg: out[f"{neg}/aoc@{name}"] for neg in NEGATIVES}
        out[f"f/pos_neg@{name}"] = _stats.f_score(miou, float(np.mean(list(keep.values()))))
        out[f"f_auc_aoc/pos_neg@{name}"] = _stats.f_score(pos_auc, float(np.mean(list(aocs.values()))))
        for neg in NEGATIVES:
            out[f"f/pos_{neg}@{name}"] = _stats.f_score(miou, keep[neg])
            out[f"f_auc_aoc/pos_{neg}@{name}"] = _stats.f_score(pos_auc, aocs[neg])
        if "group" in s:
            ciou, iauc = _stats.interactive(iou[:, j], s["group"], grid)
            out[f"interactive/ciou@{name}"] = ciou
            out[f"interactive/auc@{name}"] = iauc

    for ci, cond in enumerate(CONDITIONS):
        out[f"max/{cond}/mean"] = float(np.mean(s["max"][:, ci]))
        out[f"max/{cond}/median"] = float(np.median(s["max"][:, ci]))
        out[f"min/{cond}/mean"] = float(np.mean(s["min"][:, ci]))
        out[f"min/{cond}/median"] = float(np.median(s["min"][:, ci]))
    for ni, neg in enumerate(NEGATIVES, start=1):
        out[f"max/auroc/pos_vs_{neg}"] = _stats.auroc(s["max"][:, 0], s["max"][:, ni])
    out["n_samples"] = float(s["sample_id"].shape[0])
    out["n_empty_gt"] = float(np.count_nonzero(empty))
    return out
