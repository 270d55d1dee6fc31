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


def ciou(on: Any, marked: Any, full: Any, eps: float, *, xp: Any) -> Any:
    """(B,) float64 C2: sum(B*G) / (sum(G) + |B outside G| + eps), NaN where that is 0/0.

    Masks are counted in the evaluator's packed representation (`_xp.as_mask`: bit-packed words
    and a hardware popcount on NumPy, plain booleans on CuPy).
    """
    def count(mask: Any) -> Any:
        return xp.astype(_xp.count_true(mask, xp=xp)[:, 0], xp.float64)

    def both(a: Any, b: Any) -> Any:
        return xp.astype(_xp.count_both(a, b, xp=xp)[:, 0], xp.float64)

    on_m = _xp.as_mask(on, xp=xp)
    marked_m = _xp.as_mask(marked, xp=xp)
    hit = both(on_m, marked_m)
    outside = count(on_m) - hit
    if full is None:
        inter, area = hit, count(marked_m)
    else:  # halves of integers: exact
        full_m = _xp.as_mask(full, xp=xp)
        inter = 0.5 * (hit + both(on_m, full_m))
        area = 0.5 * (count(marked_m) + count(full_m))
    den = area + outside + eps
    zero = den == 0
    return xp.where(zero, xp.full_like(den, math.nan), inter / xp.where(zero, xp.ones_like(den), den))


def gt_area(marked: Any, full: Any, *, xp: Any) -> Any:
    def count(mask: Any) -> Any:
        return xp.astype(_xp.count_true(_xp.as_mask(mask, xp=xp), xp=xp)[:, 0], xp.float64)

    area = count(marked)
    return area if full is None else 0.5 * (area + count(full))


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
                        nonnegative: bool = False) -> tuple[Any, Any]:
    """(mean of the top N // 4 values in float64, value at ascending index N // 2), None unless asked.

    `nonnegative`: every value is >= 0, so the selection can skip its key transform.
    The top-quarter mean is computed from the order statistic v at index N - N // 4: the values
    above v plus as many copies of v as complete the quarter (the same multiset as the top block).
    """
    k_top = N_PIXELS // 4
    k_med = N_PIXELS // 2
    b = int(up.shape[0])
    if not (need_top or need_median):
        return None, None
    at_top = xp.full((b,), N_PIXELS - k_top, dtype=xp.int64, device=_xp.device_of(up))
    t_med, v = _xp.order_statistics(up, k_med, at_top, xp=xp, nonnegative=nonnegative)
    mean = None
    if need_top:
        v_col = xp.reshape(v, (b, 1))
        above = up > v_col
        n_above = xp.astype(xp.count_nonzero(above, axis=1), xp.float64)
        if _xp.fast(xp):  # the kept values into a reused work buffer, then a float64 sum (a masked
            # sum, or a fresh np.where array, costs several times more)
            kept = np.multiply(up, above, out=_xp.scratch("top", up.shape, up.dtype))
            total = kept.sum(axis=1, dtype=np.float64)
        else:
            total = xp.sum(xp.astype(xp.where(above, up, xp.zeros_like(up)), xp.float64), axis=1)
        mean = (total + (k_top - n_above) * xp.astype(v, xp.float64)) / k_top
    return (t_med if need_median else None), mean


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
