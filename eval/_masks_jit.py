"""The mask evaluator's per-frame measurement (`masks.measure` on NumPy), compiled.

Each pixel gets a key: its F-grid bin (the number of thresholds tau_j <= p, 0..255), whether it
lies in the mask (bit 8) and whether p > threshold (bit 9). One histogram of the keys per frame
then gives every count the mask metrics need (mIoU and FPR at the threshold, the 255-point
F-curve): one vectorised pass computes the keys, one scalar pass counts them.

The bin without a search: the grid is uniform up to rounding (|254 tau_j - j| < 7.9e-6,
`masks.f_thresholds`), so away from the grid points the bin is floor(254 p) + 1. The first,
vectorised pass takes that guess from q = 254 p in the maps' dtype (clipped to [-0.5, 254.5], so
that values below 0 and above 1 land in bins 0 and 255) and flags the pixels whose q lies within
1e-4 of an integer (about 1 in 5,000 of random maps, and exact values such as 0, 0.5 and 1),
counting them per group of 64 pixels. The second pass counts every key; the third visits only
the groups holding a flagged pixel and moves each such pixel to its bin counted against tau.
"""

from __future__ import annotations

import numba
import numpy as np

_GT_BIT = 8
_ON_BIT = 9
_NEAR_BIT = 10  # set by the first pass: this pixel's bin is counted exactly by the third
KEYS = 1 << 10
_SPLIT = 4  # histograms interleaved by pixel index: runs of one key do not serialise the counts
_GROUP = 64  # pixels per group of the first pass (a fixed trip count LLVM vectorises)
# |q + 2 - (254 p + 2)| <= 3.1e-5 (two float32 roundings below 256.5) and |254 tau_j - j| < 7.9e-6:
# outside this distance of an integer the guess floor(q) + 1 is exact.
_NEAR = 1e-4


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _key_of(v, inside, threshold):
    """(bin guess | gt << 8 | (v > threshold) << 9 | near << 10, near, non-finite) of one pixel."""
    dtype = type(v)
    d = v - v  # NaN only for NaN and inf
    q = min(max(v * dtype(254.0), dtype(-0.5)), dtype(254.5)) + dtype(2.0)  # in [1.5, 256.5]: truncation floors
    whole = np.int32(q)
    frac = q - dtype(whole)
    near = np.int32(frac < dtype(_NEAR)) | np.int32(frac > dtype(1.0 - _NEAR))
    key = np.uint16(((whole - 1) & 255) | (np.int32(inside) << _GT_BIT) | (np.int32(v > threshold) << _ON_BIT)
                    | (near << _NEAR_BIT))
    return key, near, np.int32(d != d)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _keys(x, inside, threshold, key, flagged):
    """Every pixel's key (`_key_of`), and per group of 64 pixels how many are near a grid point.

    Returns the number of non-finite values; their keys are meaningless but within range, and
    the caller refuses the frame.
    """
    n = x.shape[0]
    bad = 0
    for g in range(flagged.shape[0]):
        start = g * _GROUP
        hits = 0
        if start + _GROUP <= n:  # a full group: a fixed trip count, vectorised
            for i in range(_GROUP):
                k, near, nonfinite = _key_of(x[start + i], inside[start + i], threshold)
                key[start + i] = k
                hits += near
                bad += nonfinite
        else:
            for i in range(start, n):
                k, near, nonfinite = _key_of(x[i], inside[i], threshold)
                key[i] = k
                hits += near
                bad += nonfinite
        flagged[g] = hits
    return bad


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _exact_bin(v, tau, guess):
    """The number of tau_j <= v, from a guess at most a step off (tau ascending)."""
    k = tau.shape[0]
    c = min(max(guess, 0), k)
    while c < k and tau[c] <= v:
        c += 1
    while c > 0 and tau[c - 1] > v:
        c -= 1
    return c


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _count(key, counts):
    for i in range(key.shape[0]):
        counts[i & (_SPLIT - 1), key[i] & (KEYS - 1)] += 1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _fix(x, key, flagged, tau, counts):
    """Move the near pixels (only in flagged groups) from their guessed bin to their exact one."""
    low_bits = np.int32((1 << _GT_BIT) - 1)
    for g in range(flagged.shape[0]):
        if flagged[g] == 0:
            continue
        for i in range(g * _GROUP, min((g + 1) * _GROUP, x.shape[0])):
            k = np.int32(key[i])
            if k & (1 << _NEAR_BIT):
                guess = k & (KEYS - 1)
                counts[0, guess] -= 1
                counts[0, (guess & ~low_bits) | _exact_bin(x[i], tau, guess & low_bits)] += 1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _work(n):
    """A row's scratch: keys, per-group near counts, split histograms, their total."""
    return (np.empty(n, np.uint16), np.empty((n + _GROUP - 1) // _GROUP, np.int32),
            np.zeros((_SPLIT, KEYS), np.int32), np.empty(KEYS, np.int64))


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _row_counts(x, inside, threshold, tau, key, flagged, counts):
    """counts (SPLIT, 1024) = the row's key histogram, split by pixel index; returns the non-finite count."""
    counts[:] = 0
    bad = _keys(x, inside, threshold, key, flagged)
    _count(key, counts)
    _fix(x, key, flagged, tau, counts)
    return bad


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _row_metrics(counts, total, n, iou_eps, pr_eps, beta2, r, iou, fpr, f_curve, g_out):
    """Row r's IoU, FPR, F-curve and mask size from its split key histogram (formulas: `keyed_measure`).

    total: (1024,) int64 scratch, the split histograms added up.
    """
    steps = f_curve.shape[1]
    g = np.int64(0)
    predicted = np.int64(0)
    inter = np.int64(0)
    for k in range(KEYS):
        c = np.int64(counts[0, k])
        for s in range(1, _SPLIT):
            c += counts[s, k]
        total[k] = c
        inside = (k >> _GT_BIT) & 1
        on = (k >> _ON_BIT) & 1
        g += c * inside
        predicted += c * on
        inter += c * inside * on
    empty = g == 0
    num = n - predicted if empty else inter
    den = n if empty else g + predicted - inter
    iou[r] = np.float64(num) / (np.float64(den) + iou_eps)
    fpr[r] = np.float64(predicted) / (np.float64(n) + iou_eps)
    g_out[r] = g
    if empty:  # no F-curve for an empty mask (never averaged)
        f_curve[r, :] = 0.0
        return
    # pixels with p >= tau_j: those whose bin exceeds j, accumulated from the top bin down
    in_bit = 1 << _GT_BIT
    on_bit = 1 << _ON_BIT
    above = np.int64(0)
    above_in = np.int64(0)
    one_plus = 1.0 + beta2
    for j in range(steps, 0, -1):  # bin j, then the threshold j - 1
        inside = total[j | in_bit] + total[j | in_bit | on_bit]
        above += total[j] + total[j | on_bit] + inside
        above_in += inside
        tp = np.float64(above_in)
        precision = tp / (np.float64(above) + pr_eps)
        recall = tp / (np.float64(g) + pr_eps)
        den_f = beta2 * precision + recall
        f_curve[r, j - 1] = 0.0 if den_f == 0 else one_plus * precision * recall / den_f


@numba.njit(nogil=True, cache=True, error_model="numpy")
def keyed_measure(p, gt, threshold, tau, iou_eps, pr_eps, beta2, iou, fpr, f_curve, g_out):
    """`masks.measure` on NumPy: per row the IoU and FPR at the threshold, the F-curve and the mask size.

    The formulas of the array path (`masks.measure`), on the key histogram of each row:
    IoU = inter / (union + eps) (an empty mask: (#B = 0) / (N + eps)), FPR = #B / (N + eps),
    F_j = (1 + b2) P_j R_j / (b2 P_j + R_j) (0 where that is 0/0, and for an empty mask), with
    P_j = TP_j / (#[p >= tau_j] + eps'), R_j = TP_j / (|G| + eps'). Returns the non-finite count.
    """
    b, n = p.shape
    key, flagged, counts, total = _work(n)
    bad = 0
    for r in range(b):
        bad += _row_counts(p[r], gt[r], threshold, tau, key, flagged, counts)
        _row_metrics(counts, total, n, iou_eps, pr_eps, beta2, r, iou, fpr, f_curve, g_out)
    return bad


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _upsample(m, ly, uy, wy0, wy1, lx, ux, wx0, wx1, wide, out):
    """out (H * W,) = the two-tap separable upsampling of m (h, w), in float64 rounded once to out's dtype.

    The horizontal pass over the h source rows first (into wide, (h, W) float64), then the vertical
    one, each output value w0 * a + w1 * b of its two taps (`interp.linear_taps`).
    """
    h = m.shape[0]
    size_x = wide.shape[1]
    dtype = out.dtype.type
    for r in range(h):
        for x in range(size_x):
            wide[r, x] = wx0[x] * np.float64(m[r, lx[x]]) + wx1[x] * np.float64(m[r, ux[x]])
    for y in range(ly.shape[0]):
        a = wide[ly[y]]
        c = wide[uy[y]]
        w0 = wy0[y]
        w1 = wy1[y]
        base = y * size_x
        for x in range(size_x):
            out[base + x] = dtype(w0 * a[x] + w1 * c[x])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def keyed_measure_upsampled(maps, ly, uy, wy0, wy1, lx, ux, wx0, wx1, gt, threshold, tau, iou_eps, pr_eps,
                            beta2, iou, fpr, f_curve, g_out):
    """`keyed_measure` of maps (B, h, w) upsampled on the fly (bilinear or cv2 taps per axis).

    Each map is upsampled into one reused row (`_upsample`) and measured from there, so no
    (B, 224 * 224) array is written; the values are the fixed protocol's (float64 weights,
    rounded once to the maps' dtype).
    """
    b = maps.shape[0]
    n = ly.shape[0] * lx.shape[0]
    row = np.empty(n, maps.dtype)
    wide = np.empty((maps.shape[1], lx.shape[0]), np.float64)
    key, flagged, counts, total = _work(n)
    bad = 0
    for r in range(b):
        _upsample(maps[r], ly, uy, wy0, wy1, lx, ux, wx0, wx1, wide, row)
        bad += _row_counts(row, gt[r], threshold, tau, key, flagged, counts)
        _row_metrics(counts, total, n, iou_eps, pr_eps, beta2, r, iou, fpr, f_curve, g_out)
    return bad
