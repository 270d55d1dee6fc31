"""Order statistics of map rows by radix selection, compiled: the protocol evaluators' NumPy fast path.

The extended (SLAVC) and IS3 interactive evaluators need, per map, a few values at given sorted
positions (the median, the value at N - |G|, the start of the top quarter) and the sum of the top
quarter. A full partition (`np.partition`) per position costs most of their time; a radix
selection costs about two passes over the row:

1. each pixel's bucket among 2,048 on the row's own value scale, min((x - lo) * 2048 / (hi - lo),
   2047) in float64 (vectorised; lo and hi are the caller's, `_select.range_of`): monotone in x, so
   a narrow range of values (a (cos + 1) / 2 map) spreads over the buckets as well as a wide one;
2. a histogram of the buckets, which tells the bucket holding each asked position;
3. one pass that copies the order-preserving integer keys of those buckets' pixels (a vectorised
   match count per group of 64 pixels; only groups with a match are copied), and a sum of the
   values above the top quarter's bucket;
4. each copy is narrowed by digits of its keys until one key is left or the copy is small enough
   to sort.

Values at a position do not depend on how they are selected, so they equal a partition's (or a
sort's) bit for bit. The top-quarter sum is a float64 sum in row order; it is exact, and so
equal to the cut-point formula's (`_select._top_mean_from_cut`), for float32 rows whose top
quarter lies within 2**15 in magnitude of a positive start (`exact` tells which rows).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_DIGIT = 11
_BUCKETS = 1 << _DIGIT
_SMALL = 64  # a copy this small is sorted instead of narrowed
_GROUP = 64  # pixels per group of the gather's vectorised match count
# float32 values in [v, hi] with v > 0 are multiples of 2**(e(v) - 23) (e = floor(log2)), and a sum of at
# most 2**14 of them stays below 2**(e(hi) + 15): with e(hi) - e(v) <= 15 every partial sum has at most
# 53 significant bits, so a float64 sum of the top block is exact in any order.
_EXACT_SPREAD = 15


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _bit_length(x):
    n = 0
    while x:
        x >>= 1
        n += 1
    return n


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def order_key(bits, sign, top):
    """The unsigned key of a float's bits that sorts as the float: negative floats have every bit
    flipped, the others their sign bit set (sign: the sign bit's position, top: 1 << sign)."""
    zero = top ^ top  # 0 of the keys' unsigned type
    return bits ^ ((zero - (bits >> sign)) | top)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _from_key(k, top):
    """The float bits of key k (`order_key` inverted)."""
    if k & top:
        return k ^ top
    return ~k


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _narrow(cand, m, rank, buf):
    """The key at ascending position `rank` among cand[:m] (cand is overwritten; buf: scratch of size m)."""
    utype = cand.dtype.type
    hist = np.zeros(_BUCKETS, np.int64)
    while m > _SMALL:
        lo = cand[:m].min()
        hi = cand[:m].max()
        if lo == hi:
            return lo
        shift = utype(max(_bit_length(hi - lo) - _DIGIT, 0))
        hist[:] = 0
        for i in range(m):
            hist[np.int64((cand[i] - lo) >> shift)] += 1
        seen = 0
        bucket = 0
        while seen + hist[bucket] <= rank:
            seen += hist[bucket]
            bucket += 1
        first = lo + (utype(bucket) << shift)
        last = first + ((utype(1) << shift) - utype(1))
        kept = 0
        for i in range(m):
            k = cand[i]
            buf[kept] = k
            kept += (k >= first) & (k <= last)
        cand[:kept] = buf[:kept]
        m = kept
        rank -= seen
    part = np.sort(cand[:m])
    return part[rank]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _buckets(x, lo, scale, out):
    """out[i] = min(floor((x[i] - lo) * scale), 2047) in float64: monotone in x (vectorised)."""
    top = np.float64(_BUCKETS - 1)
    for i in range(x.shape[0]):
        out[i] = np.uint16(min((np.float64(x[i]) - lo) * scale, top))


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _histogram(buckets, split, hist):
    """hist (2048,) int64 = the count of each bucket (split: (4, 2048) int32 scratch)."""
    split[:] = 0
    for i in range(buckets.shape[0]):
        split[i & 3, buckets[i]] += 1
    for j in range(_BUCKETS):
        hist[j] = np.int64(split[0, j]) + split[1, j] + split[2, j] + split[3, j]


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _sum_above(x, buckets, bucket):
    """The float64 sum of x where buckets > bucket, in any order (vectorised: the caller uses it where exact)."""
    total = 0.0
    for i in range(x.shape[0]):
        total += np.float64(x[i]) if buckets[i] > bucket else 0.0
    return total


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _copy_matches(x, buckets, start, stop, wanted, n_wanted, cand, sizes, top, sign):
    bits = x.view(cand.dtype)
    for i in range(start, stop):
        for t in range(n_wanted):
            if buckets[i] == wanted[t]:
                cand[t, sizes[t]] = order_key(bits[i], sign, top)
                sizes[t] += 1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _gather(x, buckets, wanted, n_wanted, cand, sizes):
    """The keys (order-preserving, `_from_key` inverts) of the pixels in each wanted bucket, into cand[t].

    Per group of 64 pixels a vectorised count of matches; only groups with one are copied.
    """
    n = x.shape[0]
    utype = cand.dtype.type
    sign = utype(cand.itemsize * 8 - 1)
    top = utype(1) << sign
    w0, w1, w2 = wanted[0], wanted[1], wanted[2]
    sizes[:] = 0
    for g in range((n + _GROUP - 1) // _GROUP):
        start = g * _GROUP
        stop = min(start + _GROUP, n)
        hits = 0
        if stop - start == _GROUP:
            for i in range(_GROUP):
                b = buckets[start + i]
                hits += np.int32(b == w0) | np.int32(b == w1) | np.int32(b == w2)
        else:
            hits = 1
        if hits:
            _copy_matches(x, buckets, start, stop, wanted, n_wanted, cand, sizes, top, sign)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _value(key, top, one, one_bits):
    """The float whose key is `key` (one: a 1-element array of the rows' dtype; one_bits: its key-typed view)."""
    one_bits[0] = _from_key(key, top)
    return one[0]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def select_rows(rows, lows, highs, positions, n_top, key_dtype_probe, values, top_sums, exact):
    """values[r, j] = the value at ascending position positions[r, j] of rows[r]; the top n_top sum.

    With a top block, values has one more column: the value at N - n_top (the block's first).

    rows: (B, N) float32 or float64 without NaN; lows, highs: (B,) each row's smallest and
    largest value (the caller has them: `_select.range_of`); positions: (B, J) int64 in [0, N), J <= 2 (3
    with no top block); n_top: 0 (no sum) or the length of the top block, 1 <= n_top < N;
    key_dtype_probe: an empty uint32 (float32 rows) or uint64 (float64 rows) array. top_sums[r]:
    the float64 sum of the n_top largest values (the values above the one at N - n_top, plus as
    many copies of it as complete the block); exact[r]: that sum is exact (module docstring).
    """
    b, n = rows.shape
    n_pos = positions.shape[1]
    kdtype = key_dtype_probe.dtype
    top = kdtype.type(1) << kdtype.type(key_dtype_probe.itemsize * 8 - 1)
    targets = n_pos + (1 if n_top > 0 else 0)
    ranks = np.empty(3, np.int64)
    seen_below = np.empty(3, np.int64)
    wanted = np.full(3, _BUCKETS, np.int64)  # unused slots match no bucket
    sizes = np.zeros(3, np.int64)
    hist = np.zeros(_BUCKETS, np.int64)
    split = np.zeros((4, _BUCKETS), np.int32)
    buckets = np.empty(n, np.uint16)
    cand = np.empty((3, n), kdtype)
    buf = np.empty(n, kdtype)
    one = np.empty(1, rows.dtype)
    one_bits = one.view(kdtype)
    for r in range(b):
        x = rows[r]
        lo = np.float64(lows[r])
        hi = np.float64(highs[r])
        for j in range(n_pos):
            ranks[j] = positions[r, j]
        if n_top > 0:
            ranks[n_pos] = n - n_top
        span = hi - lo
        scale = _BUCKETS / span if span > 0 else 0.0
        if not (scale < np.inf):  # a span too small to divide by, or one beyond float64: one bucket
            scale = 0.0
        _buckets(x, lo, scale, buckets)
        _histogram(buckets, split, hist)
        for t in range(targets):  # each target's bucket, and how many pixels lie below it
            seen = 0
            bucket = 0
            while seen + hist[bucket] <= ranks[t]:
                seen += hist[bucket]
                bucket += 1
            seen_below[t] = seen
            wanted[t] = bucket
        _gather(x, buckets, wanted, targets, cand, sizes)
        if n_top > 0:  # the top target first: narrowing overwrites its copy, whose keys above the cut count
            t = targets - 1
            found = _narrow(cand[t, : sizes[t]].copy(), sizes[t], ranks[t] - seen_below[t], buf)
            v = _value(found, top, one, one_bits)
            above = _sum_above(x, buckets, wanted[t])
            count_above = n - (seen_below[t] + sizes[t])
            for i in range(sizes[t]):
                k = cand[t, i]
                if k > found:
                    above += np.float64(_value(k, top, one, one_bits))
                    count_above += 1
            top_sums[r] = above + np.float64(n_top - count_above) * np.float64(v)
            values[r, n_pos] = v
            exact[r] = False
            if rows.itemsize == 4 and v > 0:
                exact[r] = math.frexp(hi)[1] - math.frexp(np.float64(v))[1] <= _EXACT_SPREAD
        for t in range(n_pos):
            values[r, t] = _value(_narrow(cand[t], sizes[t], ranks[t] - seen_below[t], buf), top, one, one_bits)
        wanted[:] = _BUCKETS
    return values
