"""Map resizing for the protocol evaluators: the evaluator's bilinear/cv2 weights plus bicubic.

SLAVC and ACL upsample with PyTorch's bicubic interpolation (align_corners=True, cubic convolution
with A = -0.75, border taps clamped). Like `vsslrt.eval.interp.upsample`, the resize is separable
(out = Ry @ M @ Rx^T) with float64 weights, and the result is rounded once to the maps' dtype.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from vsslrt.eval import _xp
from vsslrt.eval.interp import INTERPOLATIONS, upsample

SIZE = 224
RESIZES = INTERPOLATIONS + ("bicubic",)
CUBIC_A = -0.75  # PyTorch's cubic convolution coefficient


def _cubic(t: float) -> tuple[float, float, float, float]:
    a = CUBIC_A

    def near(x: float) -> float:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return far(t + 1), near(t), near(1 - t), far(2 - t)


@functools.lru_cache(maxsize=16)
def bicubic_matrix(n_in: int, size: int = SIZE) -> np.ndarray:
    """(size, n_in) float64 weights of PyTorch bicubic align-corners upsampling along one axis."""
    out = np.zeros((size, n_in), dtype=np.float64)
    scale = (n_in - 1) / (size - 1) if size > 1 else 0.0
    for i in range(size):
        real = i * scale
        base = int(np.floor(real))
        for offset, w in zip((-1, 0, 1, 2), _cubic(real - base)):
            out[i, min(max(base + offset, 0), n_in - 1)] += w
    out.setflags(write=False)
    return out


def resize(maps: Any, how: str, *, xp: Any, dtype: Any, out_tag: str | None = None) -> Any:
    """(B, h, w) maps -> (B, 224*224) rows in `dtype`; 224x224 maps are only reshaped.

    out_tag: bilinear/cv2 on the NumPy fast path: write the result into this per-thread work buffer
    (valid until the same tag is requested again) instead of a new array.
    """
    b, h, w = (int(d) for d in maps.shape)
    if (h, w) == (SIZE, SIZE):
        return xp.reshape(xp.astype(maps, dtype, copy=False), (b, SIZE * SIZE))  # read-only use
    if how != "bicubic":
        return xp.reshape(upsample(maps, how, xp=xp, dtype=dtype, out_tag=out_tag), (b, SIZE * SIZE))
    dev = _xp.device_of(maps)
    ry = xp.asarray(bicubic_matrix(h), device=dev)
    rx = xp.asarray(bicubic_matrix(w), device=dev)
    m = xp.astype(maps, xp.float64)
    out = xp.matmul(xp.matmul(ry, m), xp.permute_dims(rx, (1, 0)))
    return xp.reshape(xp.astype(out, dtype), (b, SIZE * SIZE))

