"""Pixel average precision's ranking, compiled: `multisource.average_precision`'s NumPy fast path.

Scikit-learn's step-wise AP needs the pixels in descending score order, grouped by distinct score:
per group, its last position in that order and the positives up to it. A comparison sort of a
100,352-pixel canvas (`np.argsort`) is most of the multi-source evaluator's time; a least-significant-
digit radix sort of the scores' order-preserving integer keys (11 bits a pass, three passes for
float32, six for float64) gives the same order of groups, and so the same positions and counts,
in a few linear passes. The caller forms precision, recall and their sum from them exactly as
the array path does, so the AP is the same float.
"""

from __future__ import annotations

import numba
import numpy as np

from vsslrt.eval._select_jit import order_key

_DIGIT = 11
_BUCKETS = 1 << _DIGIT


@numba.njit(nogil=True, cache=True, error_model="numpy")
def group_ends(scores, labels, key_probe):
    """(last, tp): per distinct score, in descending order, its last position and the positives up to it.

    scores: (N,) float32 or float64 without NaN; labels: (N,) bool; key_probe: an empty uint32
    (float32 scores) or uint64 (float64 scores) array. -0.0 and 0.0 form one group, as they
    compare equal.
    """
    n = scores.shape[0]
    kdtype = key_probe.dtype
    utype = kdtype.type
    width = key_probe.itemsize * 8
    sign = utype(width - 1)
    top = utype(1) << sign
    zero = utype(0)
    bits = scores.view(kdtype)
    keys = np.empty(n, kdtype)
    for i in range(n):
        b = bits[i]
        if (b & ~top) == zero:  # +-0.0: one key
            b = zero
        keys[i] = ~order_key(b, sign, top)  # descending order: the complement
    flags = labels.view(np.uint8).copy()
    other_keys = np.empty(n, kdtype)
    other_flags = np.empty(n, np.uint8)
    passes = (width + _DIGIT - 1) // _DIGIT
    counts = np.zeros((passes, _BUCKETS), np.int64)  # every digit's histogram from one pass
    mask = utype(_BUCKETS - 1)
    for i in range(n):
        k = keys[i]
        for p in range(passes):
            counts[p, np.int64((k >> utype(p * _DIGIT)) & mask)] += 1
    for p in range(passes):
        if counts[p].max() == n:  # every key has this digit: the pass would not move anything
            continue
        s = utype(p * _DIGIT)
        total = 0
        for j in range(_BUCKETS):
            c = counts[p, j]
            counts[p, j] = total
            total += c
        for i in range(n):  # stable scatter
            d = np.int64((keys[i] >> s) & mask)
            at = counts[p, d]
            other_keys[at] = keys[i]
            other_flags[at] = flags[i]
            counts[p, d] = at + 1
        keys, other_keys = other_keys, keys
        flags, other_flags = other_flags, flags
    groups = 1
    for i in range(1, n):
        groups += keys[i] != keys[i - 1]
    last = np.empty(groups, np.int64)
    tp = np.empty(groups, np.int64)
    g = 0
    positives = np.int64(0)
    for i in range(n):
        positives += flags[i]
        if i == n - 1 or keys[i + 1] != keys[i]:
            last[g] = i
            tp[g] = positives
            g += 1
    return last, tp
