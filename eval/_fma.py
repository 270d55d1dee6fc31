"""Correctly rounded float32 fused multiply-add, `fma32(x, y, z) = round_f32(x * y + z)`, on arrays.

The reference's upsampling kernels (PyTorch's vectorised CPU build, Intel IPP inside OpenCV) compute
their lerps with hardware FMA instructions: one rounding of the exact `x * y + z`. NumPy and the
array-API standard have no FMA, so it is emulated in float64:

- the product of two float32 values is exact in float64 (48 significant bits);
- `s = p + z` in float64 is exact whenever the sum fits in 53 bits; rounding `s` to float32 is then
  the correctly rounded result;
- otherwise `s` is rounded twice (to float64, then to float32), which differs from one rounding only
  when `s` lands exactly on the midpoint between two float32 values. The exact error of the float64
  sum (TwoSum) decides those.

`fma32_exact` is the array-API form (CuPy, and the oracle of the compiled NumPy kernel in
`_fma_jit.py`, which applies the same rule). The kernel's float32-midpoint test on the float64 bits
assumes results in the float32 normal range (or zero); `needs_exact_path` tells the caller when
inputs are so small that a subnormal float32 result is possible, and the array-API form then runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Below this magnitude a nonzero map value can lead to a float32-subnormal interpolated value (see
# interp.py: with |values| >= 2**-30, every intermediate is a multiple of 2**-117, hence normal).
TINY = 2.0**-30


def needs_exact_path(maps: Any, *, xp: Any) -> bool:
    """Whether a map has a nonzero value below `TINY` in magnitude (the midpoint test is then unsafe)."""
    mag = xp.abs(maps)
    return bool(xp.any((mag < TINY) & (mag != 0)))


def fma32_exact(x: Any, y: Any, z: Any, *, xp: Any) -> Any:
    """round_f32(x * y + z) for float32 arrays (broadcast), with array-API operations only."""
    p = xp.astype(x, xp.float64) * xp.astype(y, xp.float64)  # exact
    zz = xp.astype(z, xp.float64)
    s = p + zz
    return _round_sum(p, zz, s, xp=xp)


def _round_sum(p: Any, zz: Any, s: Any, *, xp: Any) -> Any:
    """round_f32(p + zz) exactly, given s = round_f64(p + zz)."""
    back = s - p  # TwoSum (Knuth): err is the exact p + zz - s
    err = (p - (s - back)) + (zz - back)
    r = xp.astype(s, xp.float32)
    gap = s - xp.astype(r, xp.float64)  # exact: s and r are within one float32 ulp
    inf = xp.asarray(float("inf"), dtype=xp.float32)
    neighbour = xp.nextafter(r, xp.where(gap > 0, inf, -inf))
    midpoint = (gap != 0) & (2 * gap == xp.astype(neighbour, xp.float64) - xp.astype(r, xp.float64))
    # At a midpoint the exact value lies past s on the side of err: towards the neighbour when err has
    # the sign of gap. With err == 0 the midpoint is exact and the cast's ties-to-even is right.
    away = midpoint & (err != 0) & ((err > 0) == (gap > 0))
    return xp.where(away, neighbour, r)
