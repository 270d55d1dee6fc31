"""The NumPy fast path of the reference's float32 upsampling (`interp.upsample_reference`), compiled.

Each output value is one correctly rounded float32 fused multiply-add `round_f32(x * y + z)` of
float32 operands (interp.py's docstring says which, per interpolation). As in `_fma.py`, it is
computed in float64: the product `p = x * y` is exact, the sum `s = p + z` is rounded to float64,
and `s` rounded to float32 is the answer unless `s` lands exactly on a float32 midpoint (its 29
dropped mantissa bits are 1000...0) while `p + z` itself was inexact. Such rows are rare; for them
the exact error of the float64 sum (TwoSum) decides the direction.

One pass over the output, with the hot loops written so that LLVM vectorises them, replaces the
chain of NumPy calls (and their full-size temporaries) that the same arithmetic needs in array
form. Numba compiles the kernels on first use and caches them on disk (`cache=True`). Results
are valid for float32 values of normal magnitude (`_fma.needs_exact_path` routes the rest to the
array-API path).
"""

from __future__ import annotations

import numba
import numpy as np

# Rounding a float64 to float32 drops 29 mantissa bits: an f32 midpoint has them equal to 1000...0.
_DROPPED = np.uint64((1 << 29) - 1)
_HALF = np.uint64(1 << 28)


@numba.njit(nogil=True, cache=True)
def _round_sum(p: float, zz: float, s: float) -> np.float32:
    """round_f32(p + zz), given s = round_f64(p + zz) on a float32 midpoint."""
    back = s - p  # TwoSum (Knuth): err is the exact p + zz - s
    err = (p - (s - back)) + (zz - back)
    r = np.float32(s)
    gap = s - np.float64(r)  # nonzero: a midpoint is no float32
    # The exact value lies past s on the side of err: across the midpoint when err has the sign of
    # gap, at the neighbour r + 2 gap (exact). err == 0: s is exact and ties-to-even is right.
    if err != 0.0 and (err > 0.0) == (gap > 0.0):
        return np.float32(np.float64(r) + 2.0 * gap)
    return r


@numba.njit(nogil=True, cache=True)
def _fma_row(x: np.ndarray, y: np.ndarray, z: np.ndarray, out: np.ndarray, s: np.ndarray) -> None:
    """out[:] = round_f32(x * y + z) for float32 rows of one length (s: a float64 work row)."""
    n = out.shape[0]
    for i in range(n):
        v = np.float64(x[i]) * np.float64(y[i]) + np.float64(z[i])
        s[i] = v
        out[i] = np.float32(v)
    # Separate vectorised tests, cheaper than a branch per value: first any midpoint, then any
    # inexact midpoint (exact ones, which the cast already rounds right, are common where the
    # weights have few bits; inexact ones are rare), then the scalar repair.
    bits = s.view(np.uint64)
    hit = False
    for i in range(n):
        hit |= (bits[i] & _DROPPED) == _HALF
    if not hit:
        return
    inexact = False
    for i in range(n):
        p = np.float64(x[i]) * np.float64(y[i])
        zz = np.float64(z[i])
        back = s[i] - p  # TwoSum: the sum's exact error is (p - (s - back)) + (zz - back)
        inexact |= ((bits[i] & _DROPPED) == _HALF) & ((p - (s[i] - back)) + (zz - back) != 0.0)
    if inexact:
        for i in range(n):
            if (bits[i] & _DROPPED) == _HALF:
                out[i] = _round_sum(np.float64(x[i]) * np.float64(y[i]), np.float64(z[i]), s[i])


@numba.njit(nogil=True, cache=True)
def fma32(x: np.ndarray, y: np.ndarray, z: np.ndarray, out: np.ndarray) -> None:
    """out[:] = round_f32(x * y + z) for 1-D float32 arrays of one length."""
    _fma_row(x, y, z, out, np.empty(out.shape[0], np.float64))


@numba.njit(nogil=True, cache=True)
def upsample(
    maps: np.ndarray,
    lx: np.ndarray, ux: np.ndarray, w0x: np.ndarray, w1x: np.ndarray,
    ly: np.ndarray, uy: np.ndarray, w0y: np.ndarray, w1y: np.ndarray,
    bilinear: bool,
    out: np.ndarray,
) -> None:
    """out (B, H, W) float32 = the reference's separable upsampling of maps (B, h, w) float32.

    (lx, ux, w0x, w1x), (ly, uy, w0y, w1y): `interp.reference_taps` of each axis. The horizontal
    pass runs first, over the h source rows; each pass computes, per output index,
    bilinear: fma(v0, w0, f32(v1 * w1)); cv2: fma(f32(v1 - v0), w1, v0).
    """
    b, h, _ = maps.shape
    size_y, size_x = out.shape[1], out.shape[2]
    wide = np.empty((h, size_x), np.float32)
    xs = np.empty(size_x, np.float32)
    ys = np.empty(size_x, np.float32)
    zs = np.empty(size_x, np.float32)
    s = np.empty(size_x, np.float64)
    for i in range(b):
        for k in range(h):
            row = maps[i, k]
            for x in range(size_x):
                v0, v1 = row[lx[x]], row[ux[x]]
                if bilinear:
                    xs[x], zs[x] = v0, v1 * w1x[x]
                else:
                    xs[x], zs[x] = v1 - v0, v0
            _fma_row(xs, w0x if bilinear else w1x, zs, wide[k], s)
        for y in range(size_y):
            v0, v1 = wide[ly[y]], wide[uy[y]]
            if bilinear:
                ys[:] = w0y[y]
                for x in range(size_x):
                    zs[x] = v1[x] * w1y[y]
                _fma_row(v0, ys, zs, out[i, y], s)
            else:
                ys[:] = w1y[y]
                for x in range(size_x):
                    xs[x] = v1[x] - v0[x]
                _fma_row(xs, ys, v0, out[i, y], s)
