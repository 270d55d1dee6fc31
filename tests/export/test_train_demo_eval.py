"""The demo figures of `train_demo.evaluate_maps` (the evaluator's sweep) against a per-sample loop oracle."""

from __future__ import annotations

import numpy as np

from vsslrt.export.train_demo import box_masks, evaluate_maps


def _upsample(m: np.ndarray, size: int = 224) -> np.ndarray:
    """Bilinear, align-corners, float64: the textbook formula, one sample at a time."""
    h, w = m.shape
    ys, xs = np.arange(size) * (h - 1) / (size - 1), np.arange(size) * (w - 1) / (size - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    m = m.astype(np.float64)
    top = m[y0][:, x0] * (1 - fx) + m[y0][:, x1] * fx
    bottom = m[y1][:, x0] * (1 - fx) + m[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _oracle(conds: dict[str, np.ndarray], boxes: np.ndarray, n_thresholds: int) -> dict:
    lo = min(float(m.min()) for m in conds.values())
    hi = max(float(m.max()) for m in conds.values())
    grid = np.linspace(lo, hi, n_thresholds)
    gt = box_masks(boxes)
    n = len(boxes)
    iou = np.zeros((n, n_thresholds))
    pia = {c: np.zeros((n, n_thresholds)) for c in ("silence", "noise", "offscreen")}
    for i in range(n):
        up = {c: _upsample(m[i]) for c, m in conds.items()}
        for k, t in enumerate(grid):
            pred = up["pos"] > t
            iou[i, k] = (pred & gt[i]).sum() / (pred | gt[i]).sum()
            for c in pia:
                pia[c][i, k] = (up[c] > t).mean()
    a = 100 * iou.mean(axis=0)
    b = np.mean([100 - 100 * pia[c].mean(axis=0) for c in pia], axis=0)
    f = 2 * a * b / (a + b)
    best = int(np.argmax(f))
    return {"threshold": grid[best], "f": f[best], "miou": iou[:, best].mean(),
            **{f"pia_{c}": pia[c][:, best].mean() for c in pia}}


def test_evaluate_maps_matches_a_per_sample_oracle():
    rng = np.random.default_rng(7)
    n = 6
    conds = {c: (0.5 + s * np.tanh(rng.normal(size=(n, 7, 7)))).astype(np.float32)
             for c, s in (("pos", 0.3), ("silence", 0.45), ("noise", 0.4), ("offscreen", 0.35))}
    corners = rng.integers(0, 120, size=(n, 2))
    boxes = np.concatenate([corners, corners + rng.integers(40, 100, size=(n, 2))], axis=1).astype(np.float64)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int) * 7 // 224):
        conds["pos"][i, y1:y2 + 1, x1:x2 + 1] += np.float32(0.3)  # the sound source is brighter
    got = evaluate_maps(conds["pos"], conds["silence"], conds["noise"], conds["offscreen"], boxes, n_thresholds=41)
    want = _oracle(conds, boxes, 41)
    # float32 maps against float64 formulas: the same threshold, figures equal to float32 rounding
    assert got["threshold"] == want["threshold"]
    for key in ("f", "miou", "pia_silence", "pia_noise", "pia_offscreen"):
        assert abs(got[key] - want[key]) <= 1e-4 * max(1.0, abs(want[key])), key
    assert got["box_fraction"] == float(box_masks(boxes).mean())
    assert got["median_max_pos"] == float(np.median(conds["pos"].reshape(n, -1).max(axis=1).astype(np.float64)))
    assert 0.0 <= got["peak_in_box"] <= 1.0 and got["n_records"] == n
