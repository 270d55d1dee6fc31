"""Multi-source ("duet") localisation: one query per source on a mixture of panels.

A mixture is P images (panels) shown together with the sum of their sounds; the model is queried
once per source, giving Q = P maps, each over every panel (query q's map on panel p). Ground truth
is one map per panel. The evaluator takes the maps panel by panel, (N, Q, P, h, w), upsamples each
panel to 224x224 (bicubic, as both references; they resize the whole canvas at once, so the pixels
next to a panel border differ), and keeps per-mixture scalars only, so shards merge exactly.

Two published definitions are computed from the same maps (protocols-extended.md 7b and 7c):

* T-VSL (`duet`): query q is scored on the whole canvas against [0 .. G_q .. 0] (its own panel's
  GT, every other panel empty), the score being the canvas min-max normalised map (T-VSL inverts
  it, 1 - minmax, for its own model's maps: `invert=True`). cIoU at `ciou_thr` with `>=` (C2 over
  the canvas, no epsilon), IoU at `iou_thr` with 1e-4 smoothing, the C3 AUC of the cIoUs, and the
  pixel AP (GT as labels, the score as scores; a query with an empty GT has no AP and is skipped).
* NoPrior (`greedy`): every map is min-max normalised per panel and binarised above the panel's
  median (sorted index N // 2); the maps are taken in query order, each matched to the panel whose
  remaining GT gives it the highest cIoU, which is recorded with the AP of that binary panel
  against that panel's GT (CAP), and that panel's GT is then emptied. PIAP is the AP of the
  binarised sum of all maps against every panel's GT. Reported: success at cIoU 0.5 and 0.3, the
  C3 AUC, CAP and PIAP.

Not computed (the specification marks them unverifiable or they do not apply): the test lists and
mixture compositions of either paper, the thresholds T-VSL's paper reports, AVGN's multi-source
definitions, and NoPrior's count accuracy (vsslrt queries every source, so Q always equals P).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _stats, _xp
from vsslrt.eval._persample import PerSampleEvaluator, PerSampleStore, config_json_of
from vsslrt.eval._resize import RESIZES, resize
from vsslrt.eval._select import select_fast

MODES = ("paper", "fixed")
SIDE = 224
N_PIXELS = SIDE * SIDE
IOU_SMOOTH = 1e-4


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Step-wise average precision (scikit-learn's definition): sum over the distinct scores, in
    descending order, of (R_k - R_(k-1)) P_k, with R_0 = 0. NaN when there is no positive label.

    Scores may be bool (a binarised map: two groups, counted directly) or real (sorted: on NumPy
    by the compiled radix sort of `_rank_jit`); the sum is formed alike from each group's last
    position and positive count, so every path gives the same float."""
    labels = labels.reshape(-1).astype(bool)
    positives = int(np.count_nonzero(labels))
    if positives == 0:
        return math.nan
    flat = scores.reshape(-1)
    if flat.shape != labels.shape:
        raise ValueError(f"average_precision: expected one score per label, got {flat.shape} and {labels.shape}")
    if flat.dtype == np.bool_:  # binary scores: the group of 1s (if any) then the group of 0s (if any)
        on = int(np.count_nonzero(flat))
        hit = int(np.count_nonzero(flat & labels))
        groups = [(on - 1, hit)] if on else []
        if on < flat.shape[0]:
            groups.append((flat.shape[0] - 1, positives))
        last, tp = (np.array(column, dtype=np.int64) for column in zip(*groups))
    elif _xp.fast_paths_enabled() and flat.dtype in (np.float32, np.float64):  # a compiled radix sort
        from vsslrt.eval import _rank_jit

        probe = np.empty(0, np.uint32 if flat.dtype == np.float32 else np.uint64)
        last, tp = _rank_jit.group_ends(np.ascontiguousarray(flat), np.ascontiguousarray(labels), probe)
    else:
        order = np.argsort(-flat, kind="stable")
        s, y = flat[order], labels[order]
        last = np.r_[np.nonzero(np.diff(s))[0], s.shape[0] - 1]  # the last index of each distinct score
        tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return np.zeros_like(x) if hi == lo else (x - lo) / (hi - lo)


def _ciou(b: np.ndarray, g: np.ndarray) -> float:
    den = np.count_nonzero(g) + np.count_nonzero(b & ~g)
    return math.nan if den == 0 else np.count_nonzero(b & g) / den


def _median_binary(panel: np.ndarray, paper: bool) -> np.ndarray:
    v = _minmax(panel)
    flat = np.ascontiguousarray(v.reshape(1, -1))
    if _xp.fast_paths_enabled() and flat.dtype in (np.float32, np.float64):  # compiled selection
        thr = select_fast(flat, None, None, np.full((1, 1), v.size // 2, dtype=np.int64))[0][0, 0]
    else:
        thr = np.sort(flat[0])[v.size // 2]
    on = v > thr
    if paper:  # NoPrior sets > thr to 1 and then < 1 to 0: a pixel already equal to 1 stays on
        on |= v == 1
    return on


def measure_mixture(up: np.ndarray, gt: np.ndarray, config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-mixture scalars of one mixture: up (Q, P, 224, 224) float maps, gt (P, 224, 224) bool."""
    q_count, p_count = up.shape[:2]
    paper = config["mode"] == "paper"
    duet_ciou = np.zeros(q_count)
    duet_iou = np.zeros(q_count)
    duet_ap = np.zeros(q_count)
    for q in range(q_count):
        score = _minmax(up[q])  # the whole canvas at once
        if config["invert"]:
            score = 1 - score
        target = np.zeros_like(gt)
        if q < p_count:
            target[q] = gt[q]
        b = score >= score.dtype.type(config["ciou_thr"])
        duet_ciou[q] = _ciou(b, target)
        c = score >= score.dtype.type(config["iou_thr"])
        duet_iou[q] = (np.count_nonzero(c & target) + IOU_SMOOTH) / (np.count_nonzero(c | target) + IOU_SMOOTH)
        duet_ap[q] = average_precision(target, score)

    remaining = gt.copy()
    match_ciou = np.zeros(p_count)
    cap = np.zeros(p_count)
    for m in range(min(q_count, p_count)):  # greedy, in query order
        binary = [_median_binary(up[m, p], paper) for p in range(p_count)]
        cious = np.array([_ciou(binary[p], remaining[p]) for p in range(p_count)])
        cious = np.where(np.isnan(cious), 0.0, cious)  # an emptied panel with an empty prediction
        best = int(np.argmax(cious))  # the first maximum
        match_ciou[m] = cious[best]
        ap = average_precision(remaining[best], binary[best])
        cap[m] = 0.0 if math.isnan(ap) else ap  # an emptied panel has no positive: AP 0
        remaining[best] = False
    total = up.sum(axis=0)  # (P, 224, 224): the sum of every query's map
    summed = np.stack([_median_binary(total[p], paper) for p in range(p_count)])
    piap = average_precision(gt, summed)
    return {"duet_ciou": duet_ciou, "duet_iou": duet_iou, "duet_ap": duet_ap, "match_ciou": match_ciou,
            "cap": cap, "piap": np.array(piap)}


def reduce_multisource(s: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> dict[str, float]:
    """The multi-source keys of docs/metrics.md ("Multi-source duets") from id-sorted scalars."""
    if s["sample_id"].shape[0] == 0:
        raise InputError("compute: expected at least one evaluated mixture, got none.", hint="call update() first")
    paper = config["mode"] == "paper"
    grid = _stats.threshold_grid(config["mode"])
    duet = s["duet_ciou"].ravel()
    if not paper:
        duet = np.where(np.isnan(duet), 0.0, duet)
    ap = s["duet_ap"].ravel()
    ap = ap[~np.isnan(ap)]
    matched = s["match_ciou"].ravel()
    piap = s["piap"][~np.isnan(s["piap"])]
    scale = 1.0 if paper else 100.0
    values = {
        "duet/ciou": scale * float(np.mean(duet)),
        "duet/iou": scale * float(np.mean(s["duet_iou"])),
        "duet/auc": _stats.auc(duet, grid) / 100.0 * scale,
        "duet/ap": scale * float(np.mean(ap)) if ap.size else math.nan,
        "greedy/ciou@0.5": _stats.success_rate(matched, 0.5) / 100.0 * scale,
        "greedy/ciou@0.3": _stats.success_rate(matched, 0.3) / 100.0 * scale,
        "greedy/auc": _stats.auc(matched, grid) / 100.0 * scale,
        "greedy/cap": scale * float(np.mean(s["cap"])),
        "greedy/piap": scale * float(np.mean(piap)) if piap.size else math.nan,
    }
    if paper:
        names = {"duet/ciou": "tvsl/CIoU", "duet/iou": "tvsl/IoU", "duet/auc": "tvsl/AUC", "duet/ap": "tvsl/AP",
                 "greedy/ciou@0.5": "noprior/cIoU", "greedy/ciou@0.3": "noprior/cIoU0.3", "greedy/auc": "noprior/AUC",
                 "greedy/cap": "noprior/CAP", "greedy/piap": "noprior/PIAP"}
        return {names[k]: v for k, v in values.items()}
    t1, t2 = f"{config['ciou_thr']:g}", f"{config['iou_thr']:g}"
    out = {f"multi/{k}": v for k, v in values.items()}
    out[f"multi/duet/ciou@{t1}"] = out.pop("multi/duet/ciou")
    out[f"multi/duet/iou@{t2}"] = out.pop("multi/duet/iou")
    out["multi/n_mixtures"] = float(s["sample_id"].shape[0])
    return out


class MultiSourceEvaluator(PerSampleEvaluator):
    """Accumulates mixtures (per-mixture scalars only) and computes the duet and greedy metrics.

    Args:
        mode: "paper" (the references' names, 0-1 scale, grid 0.05 i, NoPrior's binarisation
            quirk) or "fixed" (explicit names, x100, grid i / 20, one NaN policy).
        ciou_thr: T-VSL's cIoU binarisation of the normalised score. Defaults to 0.3 (its README).
        iou_thr: T-VSL's IoU binarisation. Defaults to 0.3.
        invert: score = 1 - minmax(map), T-VSL's convention for its model. Defaults to False.
        resize_with: upsampling of each panel: "bicubic" (default), "bilinear" or "cv2".
    """

    def __init__(self, mode: str = "fixed", *, ciou_thr: float = 0.3, iou_thr: float = 0.3, invert: bool = False,
                 resize_with: str = "bicubic") -> None:
        if mode not in MODES:
            raise InputError(f"multi-source protocol: expected a mode in {', '.join(MODES)}, got {mode!r}.",
                             hint="--protocol fixed (default) or --protocol paper")
        if resize_with not in RESIZES:
            raise InputError(f"multi-source protocol: expected an upsampling in {', '.join(RESIZES)}, got {resize_with!r}.")
        for name, value in (("ciou_thr", ciou_thr), ("iou_thr", iou_thr)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"multi-source protocol: expected a finite {name}, got {value!r}.")
        self.config = {"mode": mode, "ciou_thr": float(ciou_thr), "iou_thr": float(iou_thr), "invert": bool(invert),
                       "resize": resize_with}
        self._store = PerSampleStore(json.dumps({"multisource": self.config}), "MultiSourceEvaluator")

    def update(self, maps: Any, gt: Any, *, sample_ids: Any = None) -> MultiSourceEvaluator:
        """Measure a batch of mixtures.

        Args:
            maps: (N, Q, P, h, w) raw maps, query q's map on panel p (Q = P: one query per source).
            gt: (N, P, 224, 224) bool ground truth of each panel.
            sample_ids: (N,) unique integer mixture ids. Defaults to consecutive ids.
        """
        source = "MultiSourceEvaluator.update"
        xp = _xp.namespace({"maps": maps, "gt": gt}, subject=source)
        if maps.ndim != 5 or not xp.isdtype(maps.dtype, "real floating"):
            raise InputError(f"{source}: expected 'maps' to be real floating (N, Q, P, h, w), got {maps.dtype} {tuple(maps.shape)}.")
        n, q, p, h, w = (int(d) for d in maps.shape)
        if gt.ndim != 4 or tuple(gt.shape) != (n, p, SIDE, SIDE):
            raise InputError(f"{source}: expected 'gt' of shape ({n}, {p}, {SIDE}, {SIDE}), got {tuple(gt.shape)}.")
        if q != p:
            raise InputError(f"{source}: expected one query per source (Q = P = {p}), got Q = {q}.",
                             hint="query the mixture once with each panel's own sound")
        if not bool(xp.all(xp.isfinite(maps))):
            raise InputError(f"{source}: expected finite 'maps', got NaN or inf.", hint="check the model output")
        ids = self._store.next_ids(n, sample_ids, source)
        # Few mixtures and per-mixture loops (matching is sequential): measured on the host.
        dtype = xp.result_type(maps.dtype, xp.float32)
        up = _xp.to_numpy(resize(xp.reshape(maps, (n * q * p, h, w)), self.config["resize"], xp=xp, dtype=dtype))
        up = up.reshape(n, q, p, SIDE, SIDE)
        masks = _xp.to_numpy(gt).astype(bool)
        rows = [measure_mixture(up[i], masks[i], self.config) for i in range(n)]
        keys = ("duet_ciou", "duet_iou", "duet_ap", "match_ciou", "cap", "piap")
        arrays = {k: np.stack([r[k] for r in rows]) if rows else np.zeros((0,) + ((p,) if k != "piap" else ()))
                  for k in keys}
        self._store.append(arrays, ids, source)
        return self

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MultiSourceEvaluator:
        raw = json.loads(config_json_of(state)).get("multisource")
        if raw is None:
            raise InputError("state: expected a multi-source state, got another evaluator's state.")
        ev = cls(raw["mode"], ciou_thr=raw["ciou_thr"], iou_thr=raw["iou_thr"], invert=raw["invert"],
                 resize_with=raw["resize"])
        ev._store.merge_state(state)
        return ev

    def compute(self) -> dict[str, float]:
        return reduce_multisource(self._store.host(), self.config)
