"""Extended-set localisation metrics: sounding and non-sounding samples in one list (SLAVC, ACL-SSL).

Protocol (protocols-extended.md section 1 for SLAVC, 2a for ACL-SSL): every sample is one image with
one audio clip; positives ("sounding") carry boxes, negatives ("non-sounding": the image with another
clip's audio) an empty ground truth. Per sample the evaluator keeps three scalars and the GT size:
the confidence (SLAVC: the mean of the top quarter of the map's pixels; ACL: given by the caller),
the cIoU at every binarisation column, whether it is a positive (and its box count), the GT area.
Everything else is a reduction over those scalars, so shards merge exactly (`ExtendedEvaluator`).

Detection at a confidence threshold t: a sample is detected when conf >= t. A detected positive with
cIoU >= theta is a true positive; in `paper` mode every other detection is a false positive and an
undetected positive a false negative (so a detected but mislocalised positive is never missed: the
recall reaches 1 at the lowest threshold whatever the localisation, quirk E1). `fixed` mode counts
that positive as missed too (recall = TP / positives). docs/metrics.md lists every key and quirk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _stats, _xp
from vsslrt.eval._persample import PerSampleEvaluator, PerSampleStore, config_json_of
from vsslrt.eval._resize import RESIZES
from vsslrt.eval._select import (PackedGT, ciou, gt_masks, normalised_mask, range_of, resize_into, run_chunks,
                                top_mean_and_median)

N_PIXELS = 224 * 224
REFERENCES = ("slavc", "acl")
MODES = ("paper", "fixed")
SLAVC_SUBSETS = ("all", "visible", "small", "medium", "large", "huge")
# SLAVC size bins on the GT area (the soft sum for Flickr consensus maps): [low, high).
SIZE_BINS = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 144**2), "huge": (144**2, 10000**2)}
ACL_SWEEP = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95
DEFAULT_CHUNK = 16


@dataclass(frozen=True)
class ExtendedConfig:
    """What the extended evaluator measures (see `make_extended_config`)."""

    reference: str = "slavc"
    mode: str = "fixed"
    columns: tuple[tuple[str, float], ...] = (("relative", 0.5),)
    iou_thresholds: tuple[float, ...] = (0.5, 0.75)
    subsets: tuple[str, ...] = SLAVC_SUBSETS
    confidence: str = "top25"  # or "given"
    eps: float = 0.0
    resize: str = "bicubic"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple("relative" if kind == "relative" else f"thr={value:g}" for kind, value in self.columns)

    def to_json(self) -> str:
        return json.dumps({"extended": {
            "reference": self.reference, "mode": self.mode, "columns": [list(c) for c in self.columns],
            "iou_thresholds": list(self.iou_thresholds), "subsets": list(self.subsets),
            "confidence": self.confidence, "eps": self.eps, "resize": self.resize}})

    @classmethod
    def from_json(cls, text: str) -> ExtendedConfig:
        raw = json.loads(text).get("extended")
        if raw is None:
            raise InputError("state: expected an extended-protocol state, got another evaluator's state.")
        return cls(raw["reference"], raw["mode"], tuple((k, float(v)) for k, v in raw["columns"]),
                   tuple(raw["iou_thresholds"]), tuple(raw["subsets"]), raw["confidence"], raw["eps"], raw["resize"])


def make_extended_config(
    reference: str = "slavc",
    mode: str = "fixed",
    *,
    relative: bool = True,
    pred_thr: float = 0.5,
    thresholds: Sequence[float] | None = None,
    resize_with: str | None = None,
) -> ExtendedConfig:
    """Validate the settings of one extended protocol.

    Args:
        reference: "slavc" (SLAVC `EvaluatorFull`) or "acl" (ACL-SSL `extend_eval_utils`).
        mode: "paper" (reference numbers and key names, quirks kept) or "fixed".
        relative: SLAVC's `--relative_prediction` switch (the configuration its author says
            reproduces the README): binarise the per-image min-max normalised map at its median
            value with `>=`. False: binarise `map >= pred_thr`. Defaults to True.
        pred_thr: SLAVC's absolute binarisation threshold when `relative` is False. Defaults to 0.5.
        thresholds: ACL's binarisation sweep (`map >= t`). Defaults to 0.05, 0.10, ..., 0.95.
        resize_with: how maps smaller than 224x224 are upsampled: "bicubic" (SLAVC's and ACL's
            PyTorch bicubic, align-corners), "bilinear" or "cv2". Defaults to "bicubic".
    """
    if reference not in REFERENCES:
        raise InputError(f"extended protocol: expected a reference in {', '.join(REFERENCES)}, got {reference!r}.")
    if mode not in MODES:
        raise InputError(f"extended protocol: expected a mode in {', '.join(MODES)}, got {mode!r}.",
                         hint="--protocol fixed (default) or --protocol paper")
    how = resize_with or "bicubic"
    if how not in RESIZES:
        raise InputError(f"extended protocol: expected an upsampling in {', '.join(RESIZES)}, got {how!r}.")
    if reference == "slavc":
        columns = (("relative", 0.5),) if relative else (("absolute", _finite(pred_thr, "pred_thr")),)
        return ExtendedConfig("slavc", mode, columns, (0.5, 0.75), SLAVC_SUBSETS, "top25", 0.0, how)
    sweep = ACL_SWEEP if thresholds is None else tuple(sorted({_finite(t, "threshold") for t in thresholds}))
    if not sweep:
        raise InputError("extended protocol (acl): expected at least one binarisation threshold, got none.")
    return ExtendedConfig("acl", mode, tuple(("absolute", t) for t in sweep), (0.5,), ("all",), "given", 1e-12, how)


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"extended protocol: expected {what} to be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise InputError(f"extended protocol: expected {what} to be finite, got {value!r}.")
    return number


# ------------------------------------------------------------------------------------------------
# Per-sample measurement (NumPy or CuPy, vectorised over the chunk)


def measure(maps: Any, marked: Any, full: Any, config: ExtendedConfig, *, xp: Any,
            source: str = "ExtendedEvaluator.update") -> dict[str, Any]:
    """Per-sample `ciou` (B, T), `area` (B,) and, for the top-25 % rule, `confidence` (B,).

    Args:
        maps: (B, h, w) raw maps on the model's reported scale.
        marked, full: (B, 50176) GT masks (`_select.gt_masks`): any weight, weight 1 (or None).
    """
    dtype = xp.result_type(maps.dtype, xp.float32)
    up = resize_into(maps, config.resize, xp=xp, dtype=dtype, tag="extended:up")  # read-only below
    lo, hi = range_of(up, xp=xp, source=source)
    out: dict[str, Any] = {}
    need_median = any(kind == "relative" for kind, _ in config.columns)
    t_med, top = top_mean_and_median(up, xp=xp, need_top=config.confidence == "top25", need_median=need_median,
                                     lo=lo, hi=hi)
    if top is not None:
        out["confidence"] = top
    gt = PackedGT(marked, full, xp=xp)  # packed and counted once for every column and the area
    cious = []
    for kind, value in config.columns:
        if kind == "relative":  # min-max normalised map >= its median value
            on = normalised_mask(up, t_med, lo, hi, strict=False, xp=xp)
        else:
            on = up >= xp.asarray(value, dtype=dtype)
        cious.append(ciou(on, marked, full, config.eps, xp=xp, packed=gt))
    out["ciou"] = xp.stack(cious, axis=1)
    out["area"] = gt.area(xp=xp)
    return out


# ------------------------------------------------------------------------------------------------
# Reductions (host NumPy, id-sorted per-sample scalars)


def _counts(conf: np.ndarray, good: np.ndarray, is_pos: np.ndarray, thresholds: np.ndarray):
    """(detected, TP, positives detected) at each threshold, detection being conf >= t."""
    def at_least(values: np.ndarray) -> np.ndarray:
        ordered = np.sort(values)
        return ordered.shape[0] - np.searchsorted(ordered, thresholds, side="left")

    return at_least(conf), at_least(conf[good]), at_least(conf[is_pos])


def paper_precision_recall(conf, good, is_pos, thresholds):
    """SLAVC's P and R: empty denominators give 1; a detected mislocalised positive is only an FP."""
    det, tp, pos_det = _counts(conf, good, is_pos, thresholds)
    fp = det - tp
    fn = int(np.count_nonzero(is_pos)) - pos_det
    p = np.where(tp + fp == 0, 1.0, tp / np.maximum(tp + fp, 1))
    r = np.where(tp + fn == 0, 1.0, tp / np.maximum(tp + fn, 1))
    return p, r


def paper_ap(conf, good, is_pos) -> float:
    """SLAVC's AP: every s-th sorted confidence below the largest, no (R=0, P=1) start (quirk E2)."""
    a = np.sort(conf)
    n = a.shape[0]
    step = max(1, n // 200)
    thresholds = a[np.arange(n - 2, -1, -step)] if n >= 2 else a[:0]
    p, r = paper_precision_recall(conf, good, is_pos, thresholds)
    if p.shape[0] < 2:
        return 0.0
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    return float(sum((envelope[:-1] * (r[1:] - r[:-1])).tolist()))  # sequential, as the reference


def paper_max_f1(conf, good, is_pos) -> float:
    """Max of SLAVC's F1 list at the deciles of the sorted confidences, each rounded to 0.1 (E3)."""
    a = np.sort(conf)
    thresholds = a[:: max(1, a.shape[0] // 10)]
    p, r = paper_precision_recall(conf, good, is_pos, thresholds)
    f1 = [2 * ri * pi / (ri + pi) if ri + pi > 0 else 0.0 for pi, ri in zip(p.tolist(), r.tolist())]
    return max(float(f"{f * 100:.1f}") for f in f1)


def fixed_curve(conf, good, is_pos):
    """P and R at every distinct confidence (descending); R = TP / positives."""
    thresholds = np.unique(conf)[::-1]
    det, tp, _ = _counts(conf, good, is_pos, thresholds)
    n_pos = int(np.count_nonzero(is_pos))
    p = tp / det  # every threshold is a confidence: at least one detection
    r = tp / n_pos if n_pos else np.full(tp.shape, math.nan)
    return p, r


def fixed_ap(conf, good, is_pos) -> float:
    """All-point interpolated AP from R = 0: sum of (R_k - R_(k-1)) max_(j>=k) P_j."""
    p, r = fixed_curve(conf, good, is_pos)
    if not np.count_nonzero(is_pos):
        return math.nan
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum(np.diff(np.concatenate([[0.0], r])) * envelope))


def fixed_max_f1(conf, good, is_pos) -> float:
    p, r = fixed_curve(conf, good, is_pos)
    if not np.count_nonzero(is_pos):
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
    return float(np.max(f1))


def reduce_extended(s: Mapping[str, np.ndarray], config: ExtendedConfig) -> dict[str, float]:
    """The metric dictionary of docs/metrics.md ("Extended sets") from id-sorted per-sample scalars."""
    n = s["sample_id"].shape[0]
    if n == 0:
        raise InputError("compute: expected at least one evaluated sample, got none.", hint="call update() first")
    paper = config.mode == "paper"
    # E4 (SLAVC, paper): a sample counts as sounding when it has boxes (bb = number of boxes).
    is_pos_all = (s["n_boxes"] > 0) if paper and config.reference == "slavc" else s["positive"].astype(bool)
    area = s["area"]
    grid = _stats.threshold_grid(config.mode)
    names = config.column_names
    suffix = (lambda j: "") if len(names) == 1 else (lambda j: f"[{names[j]}]")
    out: dict[str, float] = {}
    for j in range(len(names)):
        ciou_all = s["ciou"][:, j]
        if not paper:  # one NaN policy: an empty GT and an empty prediction give cIoU 0
            ciou_all = np.where(np.isnan(ciou_all), 0.0, ciou_all)
        for theta in config.iou_thresholds:
            for subset in config.subsets:
                members = _subset(subset, is_pos_all, area)
                conf, ciou, is_pos = s["confidence"][members], ciou_all[members], is_pos_all[members]
                good = is_pos & (ciou >= theta)  # NaN fails
                if paper:
                    out.update(_paper_keys(config, subset, theta, conf, ciou, good, is_pos, grid, suffix(j)))
                else:
                    out.update(_fixed_keys(subset, theta, conf, ciou, good, is_pos, grid, suffix(j)))
    if not paper:
        out["extended/n_positive"] = float(np.count_nonzero(is_pos_all))
        out["extended/n_negative"] = float(n - np.count_nonzero(is_pos_all))
    return out


def _subset(name: str, is_pos: np.ndarray, area: np.ndarray) -> np.ndarray:
    if name == "all":
        return np.ones(is_pos.shape, dtype=bool)
    if name == "visible":
        return is_pos.copy()
    low, high = SIZE_BINS[name]
    return is_pos & (area >= low) & (area < high)


def _paper_keys(config, subset, theta, conf, ciou, good, is_pos, grid, sfx) -> dict[str, float]:
    tag = f"{subset}@{int(theta * 100)}{sfx}"
    empty = conf.shape[0] == 0
    keys: dict[str, float] = {}
    if config.reference == "slavc":
        p, _ = paper_precision_recall(conf, good, is_pos, np.array([-1000.0]))
        keys[f"Precision-{tag}"] = math.nan if empty else 100.0 * float(p[0])
    keys[f"AP-{tag}"] = math.nan if empty else 100.0 * paper_ap(conf, good, is_pos)
    keys[f"MaxF1-{tag}"] = math.nan if empty else paper_max_f1(conf, good, is_pos)
    if config.reference == "slavc":
        positives = ciou[is_pos]
        keys[f"AUC-{tag}"] = math.nan if positives.shape[0] == 0 else _stats.auc(positives, grid)
    return keys


def _fixed_keys(subset, theta, conf, ciou, good, is_pos, grid, sfx) -> dict[str, float]:
    positives = ciou[is_pos]
    none = positives.shape[0] == 0
    return {
        f"extended/{subset}/ap@{theta:g}{sfx}": math.nan if none else 100.0 * fixed_ap(conf, good, is_pos),
        f"extended/{subset}/max_f1@{theta:g}{sfx}": math.nan if none else 100.0 * fixed_max_f1(conf, good, is_pos),
        f"extended/{subset}/locacc@{theta:g}{sfx}": math.nan if none else _stats.success_rate(positives, theta),
        f"extended/{subset}/auc{sfx}": math.nan if none else _stats.auc(positives, grid),
    }


# ------------------------------------------------------------------------------------------------
# The mergeable evaluator


class ExtendedEvaluator(PerSampleEvaluator):
    """Accumulates extended-set samples (per-sample scalars only) and computes their metrics.

    Args:
        reference, mode, relative, pred_thr, thresholds, resize_with: see `make_extended_config`.
        chunk_size: samples measured together. Defaults to 16 on NumPy, the whole batch on CuPy.

    Example:
        >>> ev = ExtendedEvaluator("slavc", "paper")  # doctest: +SKIP
        >>> ev.update(maps, gt_weights, sounding, n_boxes=n_boxes, sample_ids=ids)  # doctest: +SKIP
        >>> ev.compute()["AP-all@50"]  # doctest: +SKIP
    """

    def __init__(self, reference: str = "slavc", mode: str = "fixed", *, relative: bool = True,
                 pred_thr: float = 0.5, thresholds: Sequence[float] | None = None, resize_with: str | None = None,
                 chunk_size: int | None = None, config: ExtendedConfig | None = None) -> None:
        self.config = config or make_extended_config(reference, mode, relative=relative, pred_thr=pred_thr,
                                                     thresholds=thresholds, resize_with=resize_with)
        self.chunk_size = chunk_size
        self._store = PerSampleStore(self.config.to_json(), "ExtendedEvaluator")

    def update(self, maps: Any, gt: Any, positive: Any, *, n_boxes: Any = None, confidence: Any = None,
               sample_ids: Any = None) -> ExtendedEvaluator:
        """Measure one batch.

        Args:
            maps: (N, h, w) raw maps of each sample's own image and audio (NumPy or CuPy).
            gt: (N, 224, 224) GT: bool, or Flickr consensus weights 0 / 0.5 / 1; negatives empty.
            positive: (N,) bool, True for sounding samples.
            n_boxes: (N,) int box counts (SLAVC's `bb`). Defaults to 1 for positives, 0 otherwise.
            confidence: (N,) per-sample confidences; required by the ACL reference (its confidence
                is model-specific) and refused otherwise.
            sample_ids: (N,) unique integer ids. Defaults to consecutive ids.
        """
        source = "ExtendedEvaluator.update"
        xp = _xp.namespace({"maps": maps, "gt": gt, "positive": positive, "n_boxes": n_boxes,
                            "confidence": confidence}, subject=source)
        if maps.ndim != 3 or not xp.isdtype(maps.dtype, "real floating"):
            raise InputError(f"{source}: expected 'maps' to be real floating (N, h, w), got {maps.dtype} {tuple(maps.shape)}.")
        n = int(maps.shape[0])
        marked, full = gt_masks(gt, n, xp=xp, source=source)
        pos = _per_sample(positive, n, "positive", xp, source)
        if not xp.isdtype(pos.dtype, "bool"):
            pos = pos != 0
        boxes = xp.astype(pos, xp.int64) if n_boxes is None else xp.astype(_per_sample(n_boxes, n, "n_boxes", xp, source), xp.int64)
        given = confidence is not None
        if self.config.confidence == "given" and not given:
            raise InputError(f"{source}: expected 'confidence' for the ACL reference (its confidence is the "
                             "model's masked-embedding cosine), got none.", hint="pass confidence=...")
        if self.config.confidence == "top25" and given:
            raise InputError(f"{source}: expected no 'confidence' for the SLAVC reference (it is the mean of "
                             "the top 25 % of the map), got one.")
        ids = self._store.next_ids(n, sample_ids, source)
        chunk = self.chunk_size or (DEFAULT_CHUNK if _xp.is_numpy(xp) else max(n, 1))
        parts = run_chunks(lambda a, b: measure(maps[a:b], marked[a:b], None if full is None else full[a:b],
                                                self.config, xp=xp, source=source), n, chunk, xp=xp)
        arrays = {k: xp.concat([p[k] for p in parts], axis=0) for k in parts[0]} if parts else {}
        if given:
            arrays["confidence"] = xp.astype(_per_sample(confidence, n, "confidence", xp, source), xp.float64)
        arrays["positive"] = pos
        arrays["n_boxes"] = boxes
        self._store.append(arrays, ids, source)
        return self

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **options: Any) -> ExtendedEvaluator:
        ev = cls(config=ExtendedConfig.from_json(config_json_of(state)), **options)
        ev._store.merge_state(state)
        return ev

    def compute(self) -> dict[str, float]:
        return reduce_extended(self._store.host(), self.config)


def _per_sample(values: Any, n: int, name: str, xp: Any, source: str) -> Any:
    if values.ndim != 1 or int(values.shape[0]) != n:
        raise InputError(f"{source}: expected '{name}' of shape ({n},), got {tuple(values.shape)}.")
    return values
