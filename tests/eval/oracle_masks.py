"""Per-frame oracle of the mask metrics, written from protocols-extended.md sections 2.6, 3.3 and 4a.

Deliberately literal: it walks the official AVSBench test loop (videos in list order, a batch of
`batch_videos` videos, the batch's frames flattened), and for each batch computes `mask_iou`,
`Eval_Fmeasure` (a Python loop over the 255 thresholds, one precision/recall pair per threshold) and
AVSBench-Robust's FPR exactly as the specification words them, then averages the batch values as
`AverageMeter` does. The fixed mode is ACL-SSL's: every non-empty frame's 255-vector stored, their
mean maximised once; mIoU and FPR as per-frame means. It shares no code with `vsslrt.eval.masks`:
the 255 thresholds are rebuilt here from the float32 rule of `torch.linspace` one value at a time.

Frames: a list of dicts {"maps": {condition: (224, 224) float array}, "gt": (224, 224) bool,
"video": int}. Keys and scales follow docs/metrics.md ("Segmentation masks").
"""

from __future__ import annotations

import math

import numpy as np

SIDE = 224
HW = SIDE * SIDE


def linspace_float32(start: float, end: float, steps: int) -> list[np.float32]:
    """torch.linspace in float32: step in float32; each value one fused multiply-add, rounded once."""
    s, e = np.float32(start), np.float32(end)
    step = np.float32((e - s) / np.float32(steps - 1))
    values = []
    for i in range(steps):
        if i < steps // 2:
            exact = float(s) + float(step) * i  # exact in double: a 24-bit step times an 8-bit index
        else:
            exact = float(e) - float(step) * (steps - 1 - i)
        values.append(np.float32(exact))
    return values


THRESHOLDS = linspace_float32(0.0, 1 - 1e-10, 255)


def probabilities(raw: np.ndarray, scale: str) -> np.ndarray:
    if scale == "logits":
        one = raw.dtype.type(1)
        return one / (one + np.exp(-raw))
    return raw


def mask_iou_frame(p: np.ndarray, g: np.ndarray, thr: float) -> float:
    pred = p > p.dtype.type(thr)
    if not g.any():
        inter = np.count_nonzero(~pred & ~g)
        union = HW
    else:
        inter = np.count_nonzero(pred & g)
        union = np.count_nonzero(pred | g)
    return inter / (union + 1e-7)


def f_curve_frame(p: np.ndarray, g: np.ndarray) -> list[float]:
    curve = []
    gsum = float(np.count_nonzero(g))
    for tau in THRESHOLDS:
        b = p >= p.dtype.type(tau)
        tp = float(np.count_nonzero(b & g))
        prec = tp / (np.count_nonzero(b) + 1e-20)
        rec = tp / (gsum + 1e-20)
        den = 0.3 * prec + rec
        f = (1.3 * prec * rec / den) if den != 0 else math.nan
        curve.append(0.0 if math.isnan(f) else f)
    return curve


def fpr_frame(p: np.ndarray, thr: float) -> float:
    return np.count_nonzero(p > p.dtype.type(thr)) / (HW + 1e-7)


def oracle_masks(frames, *, mode="fixed", conditions=("pos", "silence", "noise", "offscreen"),
                 threshold=0.5, batch_videos=4, scale="probability"):
    out = {}
    t = f"{threshold:g}"
    for cond in conditions:
        if mode == "paper":
            videos = []
            for fr in frames:
                if fr["video"] not in videos:
                    videos.append(fr["video"])
            videos.sort()  # the test list order
            miou_batches, f_batches, fpr_batches = [], [], []
            for start in range(0, len(videos), batch_videos):
                chosen = videos[start:start + batch_videos]
                batch = [fr for v in chosen for fr in frames if fr["video"] == v]
                ious = [mask_iou_frame(probabilities(fr["maps"][cond], scale), fr["gt"], threshold) for fr in batch]
                miou_batches.append(sum(ious) / len(batch))
                fprs = [fpr_frame(probabilities(fr["maps"][cond], scale), threshold) for fr in batch]
                fpr_batches.append(sum(fprs) / len(batch))
                avg, count = None, 0
                for fr in batch:
                    if np.mean(fr["gt"]) == 0.0:
                        continue
                    curve = f_curve_frame(probabilities(fr["maps"][cond], scale), fr["gt"])
                    avg = curve if avg is None else [a + c for a, c in zip(avg, curve)]
                    count += 1
                f_batches.append(0.0 if avg is None else max(a / count for a in avg))
            out[f"{cond}/miou"] = sum(miou_batches) / len(miou_batches)
            out[f"{cond}/F_score"] = sum(f_batches) / len(f_batches)
            out[f"{cond}/FPR"] = sum(fpr_batches) / len(fpr_batches)
        else:
            ious = [mask_iou_frame(probabilities(fr["maps"][cond], scale), fr["gt"], threshold) for fr in frames]
            fprs = [fpr_frame(probabilities(fr["maps"][cond], scale), threshold) for fr in frames]
            curves = [f_curve_frame(probabilities(fr["maps"][cond], scale), fr["gt"]) for fr in frames if fr["gt"].any()]
            out[f"mask/{cond}/miou@{t}"] = 100.0 * sum(ious) / len(ious)
            out[f"mask/{cond}/fpr@{t}"] = 100.0 * sum(fprs) / len(fprs)
            if curves:
                mean = [sum(c[j] for c in curves) / len(curves) for j in range(255)]
                best = max(range(255), key=lambda j: (mean[j], -j))  # the first maximum
                out[f"mask/{cond}/f_beta"] = 100.0 * mean[best]
                out[f"mask/{cond}/f_beta_tau"] = float(THRESHOLDS[best])
            else:
                out[f"mask/{cond}/f_beta"] = math.nan
                out[f"mask/{cond}/f_beta_tau"] = math.nan
    if mode == "fixed":
        out["mask/n_frames"] = float(len(frames))
        out["mask/n_empty_gt"] = float(sum(1 for fr in frames if not fr["gt"].any()))
        out["mask/n_videos"] = float(len({fr["video"] for fr in frames}))
    return out
