"""Shared per-sample steps of the protocol evaluators: GT masks, cIoU counts, min-max cut points.

Min-max normalisation f(x) = (x - lo) / (hi - lo), rounded in the maps' dtype, is monotone, so
"f(map) >= f(t)" (or ">") selects the pixels at or above one cut point of the raw map. The NumPy
path finds that cut point exactly with a binary search over the float's order-preserving integer
keys (33 steps over the rows, instead of normalising every pixel); the generic path (CuPy)
normalises the whole map. Both give the same mask bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _xp
from vsslrt.eval._resize import SIZE, bicubic_matrix, resize
from vsslrt.eval.state import MAX_DEFAULT_WORKERS, _available_cpus, _pool

N_PIXELS = 224 * 224


def gt_masks(gt: Any, n: int, *, xp: Any, source: str) -> tuple[Any, Any]:
    """(N, 224, 224) GT -> ((N, 50176) pixels with any weight, pixels of weight 1 or None).

    bool or 0/1 GT is binary (None); consensus weights 0 / 0.5 / 1 give both masks.
    """
    if gt.ndim != 3 or tuple(gt.shape) != (n, 224, 224):
        raise InputError(f"{source}: expected 'gt' of shape ({n}, 224, 224), got {tuple(gt.shape)}.")
    flat = xp.reshape(gt, (n, N_PIXELS))
    if xp.isdtype(flat.dtype, "bool"):
        return flat, None
    if not xp.isdtype(flat.dtype, ("integral", "real floating")):
        raise InputError(f"{source}: expected 'gt' to be bool or consensus weights, got dtype {gt.dtype}.")
    half = flat == 0.5
    bad = xp.logical_not(xp.logical_or(half, xp.logical_or(flat == 0, flat == 1)))
    if bool(xp.any(bad)):
        found = _xp.to_numpy(xp.unique_values(flat[bad]))[:5].tolist()
        raise InputError(f"{source}: expected 'gt' to be binary or consensus weights (0, 0.5, 1), got values such as {found}.",
                         hint="a consensus map counts 0.5 for a pixel one annotator marked and 1 for two or more")
    marked = flat != 0
    return marked, (flat == 1) if bool(xp.any(half)) else None


class PackedGT:
    """A chunk's GT masks in the evaluator's packed representation, with their pixel counts.

    Every threshold column of a chunk is scored against the same GT: packing it (and counting
    it) once per chunk, instead of once per `ciou` call, saves a pass over the masks per column.

    Args:
        marked, full: (B, 50176) bool masks from `gt_masks` (full may be None).
    """

    def __init__(self, marked: Any, full: Any, *, xp: Any) -> None:
        self.marked = _xp.as_mask(marked, xp=xp)
        self.full = None if full is None else _xp.as_mask(full, xp=xp)
        self.n_marked = _xp.count_true(self.marked, xp=xp)[:, 0]  # int64 (B,)
        self.n_full = None if full is None else _xp.count_true(self.full, xp=xp)[:, 0]

    def area(self, *, xp: Any) -> Any:
        """(B,) float64 GT size: the pixel count, or the consensus-weighted sum (halves: exact)."""
        area = xp.astype(self.n_marked, xp.float64)
        return area if self.full is None else 0.5 * (area + xp.astype(self.n_full, xp.float64))


def ciou(on: Any, marked: Any, full: Any, eps: float, *, xp: Any, packed: PackedGT | None = None) -> Any:
    """(B,) float64 C2: sum(B*G) / (sum(G) + |B outside G| + eps), NaN where that is 0/0.

    Masks are counted in the evaluator's packed representation (`_xp.as_mask`: bit-packed words
    and a hardware popcount on NumPy, plain booleans on CuPy). `packed`: the same GT already
    packed (`PackedGT`), so that several columns share one packing; marked and full are then unused.
    """
    def count(mask: Any) -> Any:
        return xp.astype(_xp.count_true(mask, xp=xp)[:, 0], xp.float64)

    def both(a: Any, b: Any) -> Any:
        return xp.astype(_xp.count_both(a, b, xp=xp)[:, 0], xp.float64)

    gt = packed if packed is not None else PackedGT(marked, full, xp=xp)
    on_m = _xp.as_mask(on, xp=xp)
    hit = both(on_m, gt.marked)
    outside = count(on_m) - hit
    if gt.full is None:
        inter, area = hit, xp.astype(gt.n_marked, xp.float64)
    else:  # halves of integers: exact
        inter = 0.5 * (hit + both(on_m, gt.full))
        area = gt.area(xp=xp)
    den = area + outside + eps
    zero = den == 0
    return xp.where(zero, xp.full_like(den, math.nan), inter / xp.where(zero, xp.ones_like(den), den))


def gt_area(marked: Any, full: Any, *, xp: Any) -> Any:
    def count(mask: Any) -> Any:
        return xp.astype(_xp.count_true(_xp.as_mask(mask, xp=xp), xp=xp)[:, 0], xp.float64)

    area = count(marked)
    return area if full is None else 0.5 * (area + count(full))


def resize_into(maps: Any, how: str, *, xp: Any, dtype: Any, tag: str) -> Any:
    """`_resize.resize` whose result, on the NumPy fast path, lives in the per-thread buffer `tag`.

    `resize` writes every chunk into a fresh (B, 50176) array (bicubic also into a float64
    temporary twice that size), whose pages fault in again for every chunk; the evaluator's own
    upsampling reuses per-thread buffers for the same reason. Same operations on the same
    operands, so the same values; the result is valid until `tag` is requested again on this
    thread (the caller's chunk). 224x224 maps are only reshaped (no copy), as by `resize`.
    """
    b, h, w = (int(d) for d in maps.shape)
    if how != "bicubic" or (h, w) == (SIZE, SIZE) or not _xp.fast(xp):
        return resize(maps, how, xp=xp, dtype=dtype, out_tag=tag)
    ry, rx = bicubic_matrix(h), bicubic_matrix(w)
    wide = np.matmul(ry, maps.astype(np.float64))  # (B, 224, w), small
    full = np.matmul(wide, rx.T, out=_xp.scratch(f"{tag}:f64", (b, SIZE, SIZE), np.float64))
    out = _xp.scratch(tag, (b, SIZE * SIZE), dtype)
    out[...] = full.reshape(b, SIZE * SIZE)  # rounded once to dtype, as astype
    return out


def range_of(up: Any, *, xp: Any, source: str) -> tuple[Any, Any]:
    """(lo, hi) per row, (B, 1); NaN or inf maps are refused (min/max show them)."""
    lo = xp.min(up, axis=1, keepdims=True)
    hi = xp.max(up, axis=1, keepdims=True)
    if not (bool(xp.all(xp.isfinite(lo))) and bool(xp.all(xp.isfinite(hi)))):
        raise InputError(f"{source}: expected finite 'maps', got NaN or inf.", hint="check the model output")
    return lo, hi


def normalised_mask(up: Any, t: Any, lo: Any, hi: Any, *, strict: bool, xp: Any) -> Any:
    """The mask f(up) > f(t) (strict) or f(up) >= f(t), f the per-row min-max normalisation.

    A constant row is left as it is (the references' normalize_img): the mask compares up with t.

    Args:
        up: (B, N) maps; t: (B,) raw cut values (order statistics of the rows); lo, hi: (B, 1).
    """
    t = xp.reshape(t, (-1, 1))
    span = hi - lo
    flat = span == 0
    safe = xp.where(flat, xp.ones_like(span), span)
    if _xp.fast(xp) and up.dtype == np.float32:  # float64 keys could overflow the search's int64 midpoints
        cut = _cut_point(t, lo, hi, safe, flat, strict)
        return up >= cut  # every pixel at or above the cut point, exactly the normalised mask
    pred = xp.where(flat, up, (up - lo) / safe)
    target = xp.where(flat, t, (t - lo) / safe)
    return pred > target if strict else pred >= target


_KEYS = {np.dtype(np.float32): (np.int32, np.uint32), np.dtype(np.float64): (np.int64, np.uint64)}


def _to_keys(x: np.ndarray) -> np.ndarray:
    signed, _ = _KEYS[x.dtype]
    bits = np.ascontiguousarray(x).view(signed).astype(np.int64)
    width = np.dtype(signed).itemsize * 8
    return np.where(bits < 0, bits ^ ((1 << (width - 1)) - 1), bits)


def _from_keys(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    signed, _ = _KEYS[dtype]
    width = np.dtype(signed).itemsize * 8
    bits = np.where(keys < 0, keys ^ ((1 << (width - 1)) - 1), keys).astype(signed)
    return bits.view(dtype)


def _bracket(a: np.ndarray, b: np.ndarray, ok, width: int, *, downward: bool) -> tuple[np.ndarray, np.ndarray]:
    """Narrow the key interval [a, b] (R, 1) that holds the smallest key where `ok` (monotone) holds.

    The floats that collide with t under f lie next to t, a few keys away, while [a, b] spans up
    to 2**32 keys: probing at distances 1, 2, 4, ... from t's end (one vectorised evaluation of
    every distance) brackets the answer between two successive probes, so the bisection that
    follows takes a few steps instead of 32 (each step costs a handful of NumPy calls on tiny
    arrays). The bracket holds the same smallest key, so the search finds the same cut point.

    downward (f(x) >= f(t)): ok(b) holds (b = t's key); probes b - 2**j, clipped at a.
    upward (f(x) > f(t)): ok(a) fails (a = the key after t); probes a + 2**j, clipped at b.
    """
    steps = np.int64(1) << np.arange(min(width, 62) + 1, dtype=np.int64)[None, :]  # (1, J)
    if downward:
        probes = np.maximum(b - steps, a)  # descending
        fail = ~ok(probes)
        first = np.argmax(fail, axis=1)[:, None]
        found = np.take_along_axis(fail, first, axis=1)
        at = np.take_along_axis(probes, first, axis=1)
        above = np.take_along_axis(probes, np.maximum(first - 1, 0), axis=1)
        new_a = np.where(found, at + 1, a)  # every key up to a failing probe fails
        new_b = np.where(found, np.where(first > 0, above, b), probes[:, -1:])  # a passing probe
    else:
        probes = np.minimum(a + steps, b)  # ascending
        good = ok(probes)
        first = np.argmax(good, axis=1)[:, None]
        found = np.take_along_axis(good, first, axis=1)
        at = np.take_along_axis(probes, first, axis=1)
        below = np.take_along_axis(probes, np.maximum(first - 1, 0), axis=1)
        new_b = np.where(found, at, b)  # a passing probe; none found: b as before
        new_a = np.where(found, np.where(first > 0, below, a) + 1, np.minimum(probes[:, -1:] + 1, b))
    return new_a, new_b


def _cut_point(t, lo, hi, safe, flat, strict) -> np.ndarray:
    """(B, 1) smallest float c in [lo, hi] with f(c) >= f(t) (or > f(t) when strict).

    The pixels with f(pixel) at/above f(t) are exactly those >= c, as f is monotone. Strict with
    no such float: c = +inf (empty mask). Constant rows: c = t (>=) or the float after t (>).
    Usually the neighbouring float already decides (no two floats collide under f there); only
    the other rows are searched.
    """
    dtype = t.dtype
    target = (t - lo) / safe
    inf = np.asarray(np.inf, dtype=dtype)

    def passes(x: np.ndarray) -> np.ndarray:
        value = (x - lo) / safe
        return value > target if strict else value >= target

    if strict:
        cut = np.nextafter(t, inf)
        search = ~passes(cut) & ~flat  # the next float collides with t: search above it
        low, high = cut, hi
    else:
        cut = t.copy()
        search = passes(np.nextafter(t, -inf)) & ~flat  # the float below t collides too
        low, high = lo, t
    if np.any(search):
        rows = np.flatnonzero(search[:, 0])
        sub_lo, sub_safe, sub_target = lo[rows], safe[rows], target[rows]

        def sub_passes(x):
            value = (x - sub_lo) / sub_safe
            return value > sub_target if strict else value >= sub_target

        a, b = _to_keys(low[rows]), _to_keys(high[rows])
        none = ~sub_passes(high[rows])  # strict only: nothing in the row maps above f(t)
        a, b = _bracket(a, b, lambda keys: sub_passes(_from_keys(keys, dtype)), np.dtype(dtype).itemsize * 8,
                        downward=not strict)
        for _ in range(66):  # keys span at most 2**64: the interval halves every step
            if not np.any(a < b):
                break
            mid = a + (b - a) // 2
            ok = sub_passes(_from_keys(mid, dtype))
            b = np.where(ok, mid, b)
            a = np.where(ok, a, mid + 1)
        cut[rows] = np.where(none, inf, _from_keys(b, dtype))
    return cut


def top_mean_and_median(up: Any, *, xp: Any, need_top: bool, need_median: bool,
                        nonnegative: bool = False, lo: Any = None, hi: Any = None) -> tuple[Any, Any]:
    """(mean of the top N // 4 values in float64, value at ascending index N // 2), None unless asked.

    `nonnegative`: every value is >= 0, so the generic selection can skip its key transform.
    lo, hi: the rows' minima and maxima where the caller has them (the NumPy fast path reads them).
    The top-quarter mean is computed from the order statistic v at index N - N // 4: the values
    above v plus as many copies of v as complete the quarter (the same multiset as the top block).
    On the NumPy fast path one compiled selection gives both (`_top_mean_fast`).
    """
    k_top = N_PIXELS // 4
    k_med = N_PIXELS // 2
    b = int(up.shape[0])
    if not (need_top or need_median):
        return None, None
    if _xp.fast(xp) and up.dtype in (np.float32, np.float64) and b:
        return _top_mean_fast(up, need_top, need_median, lo, hi)
    at_top = xp.full((b,), N_PIXELS - k_top, dtype=xp.int64, device=_xp.device_of(up))
    t_med, v = _xp.order_statistics(up, k_med, at_top, xp=xp, nonnegative=nonnegative)
    mean = None
    if need_top:
        mean = _top_mean_from_cut(up, v, xp=xp)
    return (t_med if need_median else None), mean


def _top_mean_from_cut(up: Any, v: Any, *, xp: Any) -> Any:
    """(B,) float64 mean of the top N // 4 values of each row, given v, the value at N - N // 4."""
    k_top = N_PIXELS // 4
    b = int(up.shape[0])
    v_col = xp.reshape(v, (b, 1))
    above = up > v_col
    n_above = xp.astype(xp.count_nonzero(above, axis=1), xp.float64)
    if _xp.fast(xp):  # the kept values into a reused work buffer, then a float64 sum (a masked
        # sum, or a fresh np.where array, costs several times more)
        kept = np.multiply(up, above, out=_xp.scratch("top", up.shape, up.dtype))
        total = kept.sum(axis=1, dtype=np.float64)
    else:
        total = xp.sum(xp.astype(xp.where(above, up, xp.zeros_like(up)), xp.float64), axis=1)
    return (total + (k_top - n_above) * xp.astype(v, xp.float64)) / k_top


def select_fast(up: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None, positions: np.ndarray,
                n_top: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy float32/float64 rows: values at sorted positions, and the top-n_top sum (`_select_jit.select_rows`).

    Args:
        up: (B, N) rows without NaN; lo, hi: (B, 1) or (B,) their minima and maxima (None: computed).
        positions: (B, J) int64 ascending positions, J <= 2 (3 without a top block).
        n_top: 0, or the top block's length (1 <= n_top < N).

    Returns:
        (B, J [+ 1]) values (with a top block, the last column is the value at N - n_top), the
        (B,) float64 top sums and (B,) whether each sum is exact (module `_select_jit`).
    """
    from vsslrt.eval import _select_jit

    rows = np.ascontiguousarray(up)
    b = rows.shape[0]
    lows = (rows.min(axis=1) if lo is None else np.asarray(lo, dtype=rows.dtype).reshape(b))
    highs = (rows.max(axis=1) if hi is None else np.asarray(hi, dtype=rows.dtype).reshape(b))
    positions = np.ascontiguousarray(positions, dtype=np.int64)
    n = rows.shape[1] if rows.ndim == 2 else 0
    # The kernel trusts its arguments (no bounds checks in compiled code): refuse what it cannot take.
    if (rows.ndim != 2 or positions.shape[0] != b or positions.shape[1] + (1 if n_top else 0) > 3
            or (positions.size and (positions.min() < 0 or positions.max() >= n)) or not 0 <= n_top < max(n, 1)):
        raise ValueError(f"select_fast: expected (B, N) rows, (B, J) positions in [0, N) with J + (top block) <= 3 "
                         f"and 0 <= n_top < N, got rows {rows.shape}, positions {positions.shape}, n_top {n_top}")
    values = np.empty((b, positions.shape[1] + (1 if n_top else 0)), dtype=rows.dtype)
    sums = np.zeros(b, np.float64)
    exact = np.zeros(b, np.bool_)
    if b:
        probe = np.empty(0, np.uint32 if rows.dtype == np.float32 else np.uint64)
        _select_jit.select_rows(rows, lows, highs, positions, int(n_top), probe, values, sums, exact)
    return values, sums, exact


def _top_mean_fast(up: np.ndarray, need_top: bool, need_median: bool, lo: Any, hi: Any):
    """NumPy: the median and the top-quarter mean from one compiled selection (`select_fast`).

    Where the selection's float64 sum of the top block is exact (float32 rows whose top quarter
    spans at most 2**15 in magnitude: any (cos + 1) / 2 or probability map) the mean is that sum
    over N // 4, bit for bit what the cut-point formula gives (whose sum is exact too, then). The
    other rows take that formula.
    """
    k_top = N_PIXELS // 4
    b = up.shape[0]
    positions = np.full((b, 1 if need_median else 0), N_PIXELS // 2, dtype=np.int64)
    values, sums, exact = select_fast(up, lo, hi, positions, k_top if need_top else 0)
    t_med = values[:, 0] if need_median else None
    if not need_top:
        return t_med, None
    v = values[:, -1]
    mean = sums / k_top
    if not exact.all():
        rows = np.flatnonzero(~exact)
        mean[rows] = _top_mean_from_cut(np.ascontiguousarray(up[rows]), v[rows], xp=np)
    return t_med, mean


def run_chunks(fn: Any, n: int, chunk: int, *, xp: Any) -> list[Any]:
    """fn(start, stop) over the chunks of n samples; NumPy chunks run on the evaluator's threads."""

    starts = list(range(0, n, chunk))

    def one(start: int) -> Any:
        with np.errstate(all="ignore"):
            return fn(start, min(start + chunk, n))

    workers = min(MAX_DEFAULT_WORKERS, _available_cpus())
    if _xp.is_numpy(xp) and workers > 1 and len(starts) > 1:
        return list(_pool(workers).map(one, starts))
    return [one(s) for s in starts]
