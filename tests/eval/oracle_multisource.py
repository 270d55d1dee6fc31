"""Per-mixture oracle of the multi-source metrics, written from protocols-extended.md 7b and 7c.

Literal and slow: average precision walks every distinct score from the highest down and counts
the predicted and true pixels at that cut; the matching loop, the median binarisation and the C3
AUC are spelled out as the specification words them. It shares no code with vsslrt.eval.multisource.
Maps are given at 224x224 per panel (the evaluator's upsampling is tested on its own).
"""

from __future__ import annotations

import math

import numpy as np


def ap(labels, scores):
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if not labels.any():
        return math.nan
    total, prev_recall = 0.0, 0.0
    for cut in sorted(set(scores.tolist()), reverse=True):
        chosen = scores >= cut
        tp = int(np.count_nonzero(chosen & labels))
        precision = tp / int(np.count_nonzero(chosen))
        recall = tp / int(np.count_nonzero(labels))
        total += (recall - prev_recall) * precision
        prev_recall = recall
    return total


def minmax(x):
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros_like(x)
    return (x - x.dtype.type(lo)) / x.dtype.type(hi - lo)


def ciou(b, g):
    num = int(np.count_nonzero(b & g))
    den = int(np.count_nonzero(g)) + int(np.count_nonzero(b & ~g))
    return math.nan if den == 0 else num / den


def median_binary(panel, paper):
    v = minmax(panel)
    thr = sorted(v.ravel().tolist())[v.size // 2]
    out = v > v.dtype.type(thr)
    if paper:
        out = out | (v == 1)
    return out


def c3_auc(values, paper):
    xs = [0.05 * i for i in range(21)] if paper else [i / 20 for i in range(21)]
    ys = [sum(1 for u in values if u >= x) / len(values) for x in xs]  # NaN never passes
    return sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(20))


def oracle_multisource(maps, gt, *, mode="fixed", ciou_thr=0.3, iou_thr=0.3, invert=False):
    paper = mode == "paper"
    duet_c, duet_i, duet_ap, matched, caps, piaps = [], [], [], [], [], []
    for n in range(maps.shape[0]):
        Q, P = maps.shape[1], maps.shape[2]
        canvas_gt = np.concatenate(list(gt[n]), axis=1)  # panels side by side
        for q in range(Q):
            canvas = np.concatenate(list(maps[n, q]), axis=1)
            score = minmax(canvas)
            if invert:
                score = 1 - score
            target = np.zeros_like(canvas_gt)
            target[:, q * 224:(q + 1) * 224] = canvas_gt[:, q * 224:(q + 1) * 224]
            c = ciou(score >= score.dtype.type(ciou_thr), target)
            duet_c.append(c)
            b = score >= score.dtype.type(iou_thr)
            duet_i.append((np.count_nonzero(b & target) + 1e-4) / (np.count_nonzero(b | target) + 1e-4))
            a = ap(target, score)
            if not math.isnan(a):
                duet_ap.append(a)
        gts = [g.copy() for g in gt[n]]
        for m in range(Q):
            results = []
            for p in range(P):
                b = median_binary(maps[n, m, p], paper)
                c = ciou(b, gts[p])
                results.append((0.0 if math.isnan(c) else c, b))
            best = max(range(P), key=lambda p: (results[p][0], -p))
            matched.append(results[best][0])
            a = ap(gts[best], results[best][1].astype(float))
            caps.append(0.0 if math.isnan(a) else a)
            gts[best] = np.zeros_like(gts[best])
        summed = maps[n].sum(axis=0)
        binary = np.concatenate([median_binary(summed[p], paper) for p in range(P)], axis=0)
        a = ap(np.concatenate(list(gt[n]), axis=0), binary.astype(float))
        if not math.isnan(a):
            piaps.append(a)
    scale = 1.0 if paper else 100.0
    if not paper:
        duet_c = [0.0 if math.isnan(c) else c for c in duet_c]
    vals = {
        "duet/ciou": scale * sum(duet_c) / len(duet_c),
        "duet/iou": scale * sum(duet_i) / len(duet_i),
        "duet/auc": scale * c3_auc(duet_c, paper),
        "duet/ap": scale * sum(duet_ap) / len(duet_ap) if duet_ap else math.nan,
        "greedy/ciou@0.5": scale * sum(1 for c in matched if c >= 0.5) / len(matched),
        "greedy/ciou@0.3": scale * sum(1 for c in matched if c >= 0.3) / len(matched),
        "greedy/auc": scale * c3_auc(matched, paper),
        "greedy/cap": scale * sum(caps) / len(caps),
        "greedy/piap": scale * sum(piaps) / len(piaps) if piaps else math.nan,
    }
    if paper:
        names = {"duet/ciou": "tvsl/CIoU", "duet/iou": "tvsl/IoU", "duet/auc": "tvsl/AUC", "duet/ap": "tvsl/AP",
                 "greedy/ciou@0.5": "noprior/cIoU", "greedy/ciou@0.3": "noprior/cIoU0.3", "greedy/auc": "noprior/AUC",
                 "greedy/cap": "noprior/CAP", "greedy/piap": "noprior/PIAP"}
        return {names[k]: v for k, v in vals.items()}
    out = {f"multi/{k}": v for k, v in vals.items()}
    out[f"multi/duet/ciou@{ciou_thr:g}"] = out.pop("multi/duet/ciou")
    out[f"multi/duet/iou@{iou_thr:g}"] = out.pop("multi/duet/iou")
    out["multi/n_mixtures"] = float(maps.shape[0])
    return out
