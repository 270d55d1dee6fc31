"""Upsampling of raw maps to 224x224 as separable weight matrices: out = Ry @ M @ Rx^T.

Two interpolations (docs/metrics.md, "Shared definitions"):

- `bilinear`, align-corners (PyTorch `F.interpolate(..., align_corners=True)`): output index x reads
  source coordinate x*(h-1)/223;
- `cv2`, OpenCV INTER_LINEAR: source coordinate (x+0.5)*h/224 - 0.5, clamped to [0, h-1] (edges
  replicated).

Each row of a weight matrix holds the two linear weights of one output index. The products run in
float64 and are rounded once to the working dtype (float32 for float32 maps), the precision the
reference code works in. A map that already is 224x224 is not resampled.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

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
def weight_matrix(n_in: int, interp: str, size: int = SIZE) -> np.ndarray:
    """The (size, n_in) float64 linear-interpolation matrix R with out = R @ column.

    Row x has weight 1 - f at floor(c) and f at floor(c) + 1 (clamped to n_in - 1), where c is the
    source coordinate of x and f its fractional part. Read-only (it is cached).
    """
    coords = source_coordinates(n_in, interp, size)
    lower = np.floor(coords).astype(np.int64)
    upper = np.minimum(lower + 1, n_in - 1)
    frac = coords - lower
    weights = np.zeros((size, n_in), dtype=np.float64)
    rows = np.arange(size)
    # np.add.at: lower == upper at the last source index, where the two weights must add up.
    np.add.at(weights, (rows, lower), 1.0 - frac)
    np.add.at(weights, (rows, upper), frac)
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
    from vsslrt.eval import _xp

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
