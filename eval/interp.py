"""Upsampling of raw maps to 224x224 as separable weight matrices: out = Ry @ M @ Rx^T.

Two interpolations (docs/metrics.md, "Shared definitions"):

- `bilinear`, align-corners (PyTorch `F.interpolate(..., align_corners=True)`): output index x reads
  source coordinate x*(h-1)/223;
- `cv2`, OpenCV INTER_LINEAR: source coordinate (x+0.5)*h/224 - 0.5, clamped to [0, h-1] (edges
  replicated).

Each row of a weight matrix holds the two linear weights of one output index. The products run in
float64 and are rounded once to the working dtype (float32 for float32 maps). A map that already is
224x224 is not resampled. This is the fixed protocol's upsampling (`upsample`).

The paper protocol reproduces the reference's own float32 arithmetic instead (`upsample_reference`),
so that a map binarises as the reference's does, pixel for pixel. Both kernels are separable: a
horizontal pass over the h source rows, then a vertical pass, each output value one float32 fused
multiply-add of float32 weights, emulated exactly in float64 (`_fma.py`; on NumPy the compiled kernel
of `_fma_jit.py`, one pass over the output):

- `bilinear`: PyTorch's CPU `upsample_bilinear2d` (align_corners=True) as its vectorised builds
  (AVX2, AVX-512) run it. scale = f32(n-1) / f32(223); src = f32(scale * x); i0 = min(floor(src), n-1),
  i1 = i0 + 1 below the last index, else i0; l1 = clamp(src - i0, 0, 1), l0 = 1 - l1 (all float32).
  Each pass computes `t0 * l0 + t1 * l1`, which the compiler contracts to fma(t0, l0, f32(t1 * l1)).
  (A build run with ATEN_CPU_CAPABILITY=default rounds the two products separately instead.)
- `cv2`: `cv2.resize(INTER_LINEAR)` on float32 maps as OpenCV's x86-64 wheels run it, through Intel
  IPP: c = clamp((x + 0.5) * n / 224 - 0.5, 0, n-1) in float64, i0 = floor(c), i1 = min(i0 + 1, n-1),
  f = f32(c - i0); each pass computes the lerp fma(v1 - v0, f, v0) with v1 - v0 rounded to float32.
  (OpenCV's own code, used where IPP is off, rounds `v0 * (1 - f) + v1 * f` differently at the
  vertical borders and in the last bit.)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from vsslrt.eval import _fma
from vsslrt.eval import _xp

SIZE = 224
INTERPOLATIONS = ("bilinear", "cv2")


def source_coordinates(n_in: int, interp: str, size: int = SIZE) -> np.ndarray:
    """Continuous source coordinate of every output index, float64 (size,)."""
    x = np.arange(size, dtype=np.float64)
    if interp == "bilinear":
        if size == 1:
            return np.zeros(1)
        return x * (n_in - 1) / (size - 1)
    if interp == "cv2":
        return np.clip((x + 0.5) * n_in / size - 0.5, 0.0, n_in - 1.0)
    raise ValueError(f"unknown interpolation {interp!r}; expected one of {INTERPOLATIONS}")


@functools.lru_cache(maxsize=64)
def linear_taps(n_in: int, interp: str, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, 1 - f, f) of every output index: the two source indices and their float64 weights.

    lower = floor(c), upper = lower + 1 clamped to n_in - 1, f = c - lower, with c the source
    coordinate of the index (`source_coordinates`). Read-only (cached).
    """
    coords = source_coordinates(n_in, interp, size)
    lower = np.floor(coords).astype(np.int64)
    upper = np.minimum(lower + 1, n_in - 1)
    frac = coords - lower
    taps = (lower, upper, 1.0 - frac, frac)
    for a in taps:
        a.setflags(write=False)
    return taps


@functools.lru_cache(maxsize=64)
def weight_matrix(n_in: int, interp: str, size: int = SIZE) -> np.ndarray:
    """The (size, n_in) float64 linear-interpolation matrix R with out = R @ column.

    Row x has weight 1 - f at floor(c) and f at floor(c) + 1 (clamped to n_in - 1), where c is the
    source coordinate of x and f its fractional part (`linear_taps`). Read-only (it is cached).
    """
    lower, upper, w_lower, w_upper = linear_taps(n_in, interp, size)
    weights = np.zeros((size, n_in), dtype=np.float64)
    rows = np.arange(size)
    # np.add.at: lower == upper at the last source index, where the two weights must add up.
    np.add.at(weights, (rows, lower), w_lower)
    np.add.at(weights, (rows, upper), w_upper)
    weights.setflags(write=False)
    return weights


def upsample(maps: Any, interp: str, *, xp: Any, dtype: Any, out_tag: str | None = None) -> Any:
    """Upsample a batch (B, h, w) to (B, 224*224) rows in `dtype`.

    Args:
        maps: (B, h, w) real array (NumPy or CuPy).
        interp: "bilinear" or "cv2".
        xp: the array namespace of `maps`.
        dtype: the working dtype of the result.
        out_tag: on the NumPy fast path, write the result into this per-thread work buffer
            (valid until the same tag is requested again) instead of a new array.

    Returns:
        (B, 50176) array; a copy in `dtype` (no resampling) when h = w = 224.
    """
    b, h, w = maps.shape
    if (h, w) == (SIZE, SIZE):
        return xp.reshape(xp.astype(maps, dtype, copy=False), (b, SIZE * SIZE))

    dev = _xp.device_of(maps)
    ry = xp.asarray(weight_matrix(h, interp), device=dev)
    rxt = xp.asarray(_transposed(w, interp), device=dev)
    wide = xp.matmul(ry, xp.astype(maps, xp.float64))  # (B, 224, w)
    if _xp.fast(xp):  # temporaries go to reused buffers: fresh ones cost more in page faults
        full = np.matmul(wide, rxt, out=_xp.scratch("upsample", (b, SIZE, SIZE), np.float64))
        if out_tag is not None:
            out = _xp.scratch(out_tag, (b, SIZE * SIZE), dtype)
            out[...] = full.reshape(b, SIZE * SIZE)  # rounds like astype; faster than copyto here
            return out
    else:
        full = xp.matmul(wide, rxt)  # (B, 224, 224), float64
    return xp.reshape(xp.astype(full, dtype, copy=True), (b, SIZE * SIZE))


@functools.lru_cache(maxsize=64)
def _transposed(n_in: int, interp: str) -> np.ndarray:
    out = np.ascontiguousarray(weight_matrix(n_in, interp).T)
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------------------------------
# The reference's float32 arithmetic (paper protocol)
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def reference_taps(n_in: int, interp: str, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w0, w1) of every output index as the reference computes them (module docstring).

    i0, i1 are int64 source indices; w0, w1 float32 weights (`cv2`: w1 is the lerp fraction f and
    w0 = 1 - f, unused by its kernel). Read-only (cached).
    """
    x = np.arange(size)
    if interp == "bilinear":
        if n_in == size:  # PyTorch copies an axis of the same size
            lower, upper = x.copy(), x.copy()
            w1 = np.zeros(size, dtype=np.float32)
        else:
            scale = np.float32(n_in - 1) / np.float32(size - 1) if size > 1 else np.float32(0)
            src = (scale * x.astype(np.float32)).astype(np.float32)
            lower = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
            upper = np.where(lower < n_in - 1, lower + 1, lower)
            w1 = np.clip(src - lower.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    elif interp == "cv2":
        coords = np.clip((x + 0.5) * n_in / size - 0.5, 0.0, n_in - 1.0)
        lower = np.minimum(np.floor(coords).astype(np.int64), n_in - 1)
        upper = np.minimum(lower + 1, n_in - 1)
        w1 = (coords - lower).astype(np.float32)
    else:
        raise ValueError(f"unknown interpolation {interp!r}; expected one of {INTERPOLATIONS}")
    w0 = (np.float32(1) - w1).astype(np.float32)
    for a in (lower, upper, w0, w1):
        a.setflags(write=False)
    return lower, upper, w0, w1


def upsample_reference(maps: Any, interp: str, *, xp: Any, out_tag: str | None = None) -> Any:
    """Upsample a batch (B, h, w) of float32 maps to (B, 224*224) float32 rows with the reference's
    float32 arithmetic (module docstring); a 224x224 map is returned as it is (as a copy).

    Args:
        maps: (B, h, w) float32 array (NumPy or CuPy); narrower floats are widened to float32.
        interp: "bilinear" (PyTorch, align-corners) or "cv2" (OpenCV INTER_LINEAR through IPP).
        xp: the array namespace of `maps`.
        out_tag: on the NumPy fast path, write the result into this per-thread work buffer (valid
            until the same tag is requested again) instead of a new array.
    """

    b, h, w = maps.shape
    maps = xp.astype(maps, xp.float32, copy=False)
    if (h, w) == (SIZE, SIZE):
        return xp.reshape(xp.astype(maps, xp.float32, copy=True), (b, SIZE * SIZE))
    if interp not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interp!r}; expected one of {INTERPOLATIONS}")
    if not _xp.fast(xp) or _fma.needs_exact_path(maps, xp=xp):
        return _reference_generic(maps, interp, xp=xp)
    # Imported here: Numba takes half a second to import, and only paper mode on resampled maps
    # runs this kernel.
    from vsslrt.eval import _fma_jit

    if out_tag is not None:
        out = _xp.scratch(out_tag, (b, SIZE, SIZE), np.float32)
    else:
        out = np.empty((b, SIZE, SIZE), np.float32)
    _fma_jit.upsample(np.ascontiguousarray(maps), *reference_taps(w, interp), *reference_taps(h, interp),
                      interp == "bilinear", out)
    return out.reshape(b, SIZE * SIZE)


def _reference_generic(maps: Any, interp: str, *, xp: Any) -> Any:
    """The array-API form of `upsample_reference` (CuPy; NumPy with the fast paths off, or with tiny
    values): full gathers and the TwoSum rule on every element."""

    b, h, w = maps.shape
    dev = _xp.device_of(maps)
    lx, ux, w0x, w1x = (xp.asarray(a, device=dev) for a in reference_taps(w, interp))
    ly, uy, w0y, w1y = (xp.asarray(a, device=dev) for a in reference_taps(h, interp))

    def lerp(v0: Any, v1: Any, w0: Any, w1: Any) -> Any:
        if interp == "bilinear":
            return _fma.fma32_exact(v0, w0, v1 * w1, xp=xp)
        return _fma.fma32_exact(v1 - v0, w1, v0, xp=xp)

    wide = lerp(xp.take(maps, lx, axis=2), xp.take(maps, ux, axis=2), w0x, w1x)  # (B, h, 224)
    full = lerp(xp.take(wide, ly, axis=1), xp.take(wide, uy, axis=1), w0y[:, None], w1y[:, None])
    return xp.reshape(full, (b, SIZE * SIZE))
