"""Per-sample oracles for the protocol evaluators (extended sets, IS3 interactive, retrieval, consensus GT).

Written from protocols-extended.md (sections 1, 2a, 5, 6, C1-C3) and docs/metrics.md alone, sample by
sample with plain loops, and independent of vsslrt.eval: nothing here imports it. Upsampling reuses
the per-pixel formulas of tests/eval/oracle.py (itself independent), plus a per-pixel bicubic.
"""

from __future__ import annotations

import math

import numpy as np
from eval_helpers import load_sibling

N = 224 * 224
SIDE = 224


def _base_oracle():
    return load_sibling("oracle")


# --------------------------------------------------------------------------------------------------
# Maps


def cubic_weight(x: float, a: float = -0.75) -> float:
    """Keys cubic convolution kernel (PyTorch's A = -0.75)."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def upsample(raw: np.ndarray, how: str) -> np.ndarray:
    """One (h, w) map -> (224, 224) in its float dtype; 224x224 maps unchanged."""
    raw = np.asarray(raw)
    dtype = np.promote_types(raw.dtype, np.float32)
    if raw.shape == (SIDE, SIDE):
        return raw.astype(dtype)
    if how != "bicubic":
        return _base_oracle().upsample(raw, how)
    h, w = raw.shape
    src = raw.astype(np.float64)

    def taps(n_in):
        out = []
        for i in range(SIDE):
            real = i * (n_in - 1) / (SIDE - 1)
            base = math.floor(real)
            t = real - base
            out.append([(min(max(base + o, 0), n_in - 1), cubic_weight(t - o)) for o in (-1, 0, 1, 2)])
        return out

    ty, tx = taps(h), taps(w)
    value = np.zeros((SIDE, SIDE), dtype=np.float64)
    for y in range(SIDE):
        for iy, wy in ty[y]:
            row = np.zeros(SIDE, dtype=np.float64)
            for k in range(4):
                idx = np.array([tx[x][k][0] for x in range(SIDE)])
                wts = np.array([tx[x][k][1] for x in range(SIDE)])
                row += wts * src[iy, idx]
            value[y] += wy * row
    return value.astype(dtype)


def minmax(m: np.ndarray) -> np.ndarray:
    """(m - min) / (max - min) in m's dtype; unchanged when constant (the reference's normalize_img)."""
    lo, hi = m.min(), m.max()
    if hi - lo == 0:
        return m
    return (m - lo) / (hi - lo)


def weighted_ciou(on: np.ndarray, gt: np.ndarray, eps: float = 0.0) -> float:
    """C2: sum(B*G) / (sum(G) + sum(B*[G=0]) + eps); 0/0 is NaN."""
    b = on.astype(np.float64)
    g = gt.astype(np.float64)
    den = g.sum() + (b * (g == 0)).sum() + eps
    if den == 0:
        return math.nan
    return float((b * g).sum() / den)


def consensus(boxes, size: int = SIDE) -> np.ndarray:
    """C1 Flickr consensus: +1 per box, then min(G / 2, 1)."""
    g = np.zeros((size, size))
    for x1, y1, x2, y2 in boxes:
        g[y1:y2, x1:x2] += 1
    return np.minimum(g / 2, 1)


# --------------------------------------------------------------------------------------------------
# Extended sets (SLAVC EvaluatorFull, ACL-SSL extend_eval_utils)


def slavc_sample(raw: np.ndarray, gt: np.ndarray, *, relative: bool, pred_thr: float, how: str):
    """(confidence, cIoU) of one sample as SLAVC's test.py + EvaluatorFull.update."""
    up = upsample(raw, how)
    flat = np.sort(up.ravel())
    confidence = float(np.mean(flat[-(N // 4):].astype(np.float64)))
    if relative:
        pred = minmax(up)
        thr = np.sort(pred.ravel())[int(N * 0.5)]
        on = pred >= thr
    else:
        on = up >= np.asarray(pred_thr).astype(up.dtype)
    return confidence, weighted_ciou(on, gt)


def acl_sample(raw: np.ndarray, gt: np.ndarray, thr: float, how: str) -> float:
    up = upsample(raw, how)
    return weighted_ciou(up >= np.asarray(thr).astype(up.dtype), gt, eps=1e-12)


def calc_precision_recall(bb, ciou, conf, t, theta):
    tp = fp = fn = 0
    for b, c, s in zip(bb, ciou, conf):
        if b == 0:
            if s >= t:
                fp += 1
        elif s >= t:
            if c >= theta:
                tp += 1
            else:
                fp += 1
        else:
            fn += 1
    p = 1.0 if tp + fp == 0 else tp / (tp + fp)
    r = 1.0 if tp + fn == 0 else tp / (tp + fn)
    return p, r


def calc_ap(bb, ciou, conf, theta):
    skip = max(1, len(conf) // 200)
    precision, recall = [], []
    for t in np.sort(np.array(conf))[:-1][::-skip]:
        p, r = calc_precision_recall(bb, ciou, conf, t, theta)
        precision.append(p)
        recall.append(r)
    best = [max(precision[i:]) for i in range(len(precision))]
    return sum(best[i] * (recall[i + 1] - recall[i]) for i in range(len(best) - 1))


def trapezoid_auc(values, grid):
    ys = [sum(1 for v in values if v >= x) / len(values) for x in grid]
    return sum((grid[i + 1] - grid[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(grid) - 1))


PAPER_GRID = [0.05 * i for i in range(21)]
FIXED_GRID = [i / 20 for i in range(21)]
BINS = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 144**2), "huge": (144**2, 10000**2)}


def _members(subset, bb, area):
    if subset == "all":
        return list(range(len(bb)))
    if subset == "visible":
        return [i for i, b in enumerate(bb) if b > 0]
    lo, hi = BINS[subset]
    return [i for i, (b, a) in enumerate(zip(bb, area)) if b > 0 and lo <= a < hi]


def slavc_paper(bb, area, ciou, conf, thetas=(0.5, 0.75), subsets=("all", "visible", "small", "medium", "large", "huge"),
                acl=False, sfx=""):
    """The SLAVC finalize_stats keys (x100; max-F1 from the one-decimal F1 list); ACL: AP, MaxF1 only."""
    out = {}
    for theta in thetas:
        for subset in subsets:
            idx = _members(subset, bb, area)
            tag = f"{subset}@{int(theta * 100)}{sfx}"
            keys = ["AP", "MaxF1"] if acl else ["Precision", "AP", "MaxF1", "AUC"]
            if not idx:
                out.update({f"{k}-{tag}": math.nan for k in keys})
                continue
            b = [bb[i] for i in idx]
            c = [ciou[i] for i in idx]
            s = [conf[i] for i in idx]
            if not acl:
                out[f"Precision-{tag}"] = 100 * calc_precision_recall(b, c, s, -1000, theta)[0]
            out[f"AP-{tag}"] = 100 * calc_ap(b, c, s, theta)
            thresholds = list(sorted(s))[:: max(1, len(s) // 10)]
            f1 = []
            for t in thresholds:
                p, r = calc_precision_recall(b, c, s, t, theta)
                f1.append(2 * r * p / (r + p) if r + p > 0 else 0.0)
            out[f"MaxF1-{tag}"] = max(float(x) for x in " ".join(f"{f * 100:.1f}" for f in f1).split())
            if not acl:
                pos = [c[i] for i in range(len(c)) if b[i] > 0]
                out[f"AUC-{tag}"] = 100 * trapezoid_auc(pos, PAPER_GRID) if pos else math.nan
    return out


def extended_fixed(positive, area, ciou, conf, thetas=(0.5, 0.75),
                   subsets=("all", "visible", "small", "medium", "large", "huge"), sfx=""):
    """docs/metrics.md fixed mode: R = TP / positives, all-point AP from R = 0, exact max-F1."""
    ciou = [0.0 if (isinstance(c, float) and math.isnan(c)) else c for c in ciou]
    bb = [1 if p else 0 for p in positive]
    out = {}
    for theta in thetas:
        for subset in subsets:
            idx = _members(subset, bb, area)
            keys = {f"extended/{subset}/ap@{theta:g}{sfx}", f"extended/{subset}/max_f1@{theta:g}{sfx}",
                    f"extended/{subset}/locacc@{theta:g}{sfx}", f"extended/{subset}/auc{sfx}"}
            pos = [i for i in idx if positive[i]]
            if not pos:
                out.update({k: math.nan for k in keys})
                continue
            points = []
            for t in sorted({conf[i] for i in idx}, reverse=True):
                tp = sum(1 for i in idx if conf[i] >= t and positive[i] and ciou[i] >= theta)
                det = sum(1 for i in idx if conf[i] >= t)
                points.append((tp / det, tp / len(pos)))
            ap, prev = 0.0, 0.0
            for k, (_, r) in enumerate(points):
                ap += (r - prev) * max(p for p, _ in points[k:])
                prev = r
            out[f"extended/{subset}/ap@{theta:g}{sfx}"] = 100 * ap
            out[f"extended/{subset}/max_f1@{theta:g}{sfx}"] = 100 * max(2 * p * r / (p + r) if p + r > 0 else 0.0
                                                                         for p, r in points)
            out[f"extended/{subset}/locacc@{theta:g}{sfx}"] = 100 * sum(1 for i in pos if ciou[i] >= theta) / len(pos)
            out[f"extended/{subset}/auc{sfx}"] = 100 * trapezoid_auc([ciou[i] for i in pos], FIXED_GRID)
    out["extended/n_positive"] = float(sum(1 for p in positive if p))
    out["extended/n_negative"] = float(sum(1 for p in positive if not p))
    return out


def slavc_evaluate(maps, gt, positive, n_boxes, *, mode, relative=True, pred_thr=0.5, how="bicubic"):
    conf, ciou = [], []
    for i in range(len(maps)):
        c, u = slavc_sample(maps[i], gt[i], relative=relative, pred_thr=pred_thr, how=how)
        conf.append(c)
        ciou.append(u)
    area = [float(np.asarray(gt[i], dtype=np.float64).sum()) for i in range(len(maps))]
    if mode == "paper":
        return slavc_paper(list(n_boxes), area, ciou, conf)
    return extended_fixed([bool(p) for p in positive], area, ciou, conf)


def acl_evaluate(maps, gt, positive, confidence, thresholds, *, mode, how="bilinear"):
    out = {}
    area = [float(np.asarray(gt[i], dtype=np.float64).sum()) for i in range(len(maps))]
    bb = [1 if p else 0 for p in positive]
    many = len(thresholds) > 1
    for t in thresholds:
        ciou = [acl_sample(maps[i], gt[i], t, how) for i in range(len(maps))]
        sfx = f"[thr={t:g}]" if many else ""
        if mode == "paper":
            out.update(slavc_paper(bb, area, ciou, list(confidence), thetas=(0.5,), subsets=("all",), acl=True, sfx=sfx))
        else:
            out.update(extended_fixed([bool(p) for p in positive], area, ciou, list(confidence), thetas=(0.5,),
                                      subsets=("all",), sfx=sfx))
    return out


# --------------------------------------------------------------------------------------------------
# IS3 interactive (SSLalignment Evaluator_iiou)


def ssla_sample(raw, gt, how="bilinear"):
    pred = minmax(upsample(raw, how))
    ordered = np.sort(pred.ravel())
    t_med = ordered[N // 2]
    g = int(np.count_nonzero(np.asarray(gt) != 0))
    if g == 0:
        g = N // 2
    t_adap = ordered[N - g]
    return weighted_ciou(pred > t_med, gt), weighted_ciou(pred > t_adap, gt)


def ssla_evaluate(maps, gt, group, *, mode, how="bilinear"):
    grid = PAPER_GRID if mode == "paper" else FIXED_GRID
    pairs = [ssla_sample(maps[i], gt[i], how) for i in range(len(maps))]
    out = {}
    for j, column in enumerate(("median", "adaptive")):
        ciou = [p[j] for p in pairs]
        if mode == "fixed":
            ciou = [0.0 if math.isnan(c) else c for c in ciou]
        members: dict[int, list[float]] = {}
        for c, g in zip(ciou, group):
            members.setdefault(int(g), []).append(c)

        def group_rate(x):
            return sum(1 for vals in members.values() if all(v >= x for v in vals)) / len(members)

        rates = [group_rate(x) for x in grid]
        iauc = 100 * sum((grid[i + 1] - grid[i]) * (rates[i] + rates[i + 1]) / 2 for i in range(len(grid) - 1))
        success = 100 * sum(1 for c in ciou if c >= 0.5) / len(ciou)
        if mode == "paper":
            sfx = "" if column == "median" else "_adap"
            out[f"cIoU{sfx}"] = success
            out[f"AUC{sfx}"] = 100 * trapezoid_auc(ciou, grid)
            out[f"IIoU{sfx}"] = 100 * group_rate(0.5)
            out[f"IAUC{sfx}"] = iauc
            if column == "median":
                out["mIoU(persample)"] = 100 * float(np.mean(ciou))
        else:
            name = "median" if column == "median" else "adaptive_oracle"
            out[f"is3/ciou@{name}"] = success
            out[f"is3/miou@{name}"] = 100 * float(np.mean(ciou))
            out[f"is3/auc@{name}"] = 100 * trapezoid_auc(ciou, grid)
            out[f"is3/iiou@{name}"] = 100 * group_rate(0.5)
            out[f"is3/iauc@{name}"] = iauc
    if mode == "fixed":
        out["is3/n_groups"] = float(len(set(int(g) for g in group)))
    return out


# --------------------------------------------------------------------------------------------------
# Retrieval (docs/metrics.md, vsslrt's own definition)


def retrieval_evaluate(visual, audio, group, ks=(1, 5, 10), pooling="max"):
    """Recall@K both ways with explicit loops over queries and gallery items."""
    n, k_maps = audio.shape[0], audio.shape[1]

    def unit(v):
        v = v.astype(np.float64)
        norm = np.sqrt((v * v).sum())
        return v / norm if norm else v

    pooled_v = []
    for i in range(n):
        per_k = []
        for k in range(k_maps):
            m = visual[i, k].reshape(visual.shape[2], -1)
            per_k.append(unit(m.max(axis=1) if pooling == "max" else m.mean(axis=1)))
        pooled_v.append(per_k)
    pooled_a = [[unit(audio[i, k]) for k in range(k_maps)] for i in range(n)]

    def sim(i, j):
        return sum(float(np.dot(pooled_a[i][k], pooled_v[j][k])) for k in range(k_maps)) / k_maps

    images = {}
    for i, g in enumerate(group):
        images.setdefault(int(g), i)
    gallery = list(images.items())
    out = {}
    a2i, i2a = [], []
    for i in range(n):
        target = sim(i, images[int(group[i])])
        a2i.append(sum(1 for g, j in gallery if g != int(group[i]) and sim(i, j) >= target))
    for g, j in gallery:
        own = [i for i in range(n) if int(group[i]) == g]
        best = max(sim(i, j) for i in own)
        i2a.append(sum(1 for i in range(n) if int(group[i]) != g and sim(i, j) >= best))
    for k in ks:
        out[f"retrieval/audio_to_image/recall@{k}"] = 100 * sum(1 for r in a2i if r < k) / len(a2i)
        out[f"retrieval/image_to_audio/recall@{k}"] = 100 * sum(1 for r in i2a if r < k) / len(i2a)
    out["retrieval/n_queries_audio"] = float(n)
    out["retrieval/n_gallery_images"] = float(len(gallery))
    return out


# --------------------------------------------------------------------------------------------------
# Consensus GT through the negative-audio evaluator: per-sample IoU at its threshold columns


def main_evaluator_ious(pos, gt_weights, thresholds, interp="bilinear"):
    """(n, 3 + U) IoU of the positive map at median, adaptive, fixed and each universal threshold,
    binarised strictly as docs/metrics.md says, scored with C2 on the weighted GT."""
    base = _base_oracle()
    rows = []
    for i in range(len(pos)):
        up = base.upsample(pos[i], interp)
        marked = gt_weights[i] > 0
        ts = [base.median_threshold(up), base.adaptive_threshold(up, marked), *thresholds]
        rows.append([weighted_ciou(base.binarise(up, t), gt_weights[i]) for t in ts])
    return np.array(rows, dtype=np.float64)
