"""Parity of the exported graphs against PyTorch, on realistic inputs.

Inputs look like what the front-ends produce, not uniform noise (engine-notes section 4.4):
ImageNet-normalised images made of smooth multi-scale random textures, and spectrograms shaped like
log(PSD + 1e-7) / 12 (EZ-VSL, FNAC, LVS front-ends) or mel power in dB (SSL-TIE).

Maps are compared, because maps are what the evaluator consumes: the map formed from the split
graphs by ``vsslrt.head`` and the fused graph's map, each against the official PyTorch formula
(``reference_map``). Gates: fp32 max |diff| <= 1e-4; fp16 max |diff| <= 5e-3 with the argmax location
unchanged on >= 99 % of samples. The object prior is unnormalised, so its gate is relative to its
largest value.

On the CPU, ONNX Runtime runs fp16 nodes that have no fp16 kernel through inserted casts (with
onnxruntime 1.32 on x86 the optimised fp16 ResNet-18 is all fp32 convolutions), so an fp16 parity
figure measured here mostly reflects the rounding of the weights to fp16, not fp16 arithmetic; the
engine stage repeats the check on the device that runs the fp16 engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vsslrt.manifest import ParityFigures

FP32_MAX_ABS = 1e-4
FP16_MAX_ABS = 5e-3
FP16_MIN_ARGMAX = 0.99
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of (..., h, w) to (..., height, width), align_corners style."""
    h, w = grid.shape[-2:]
    ys = np.linspace(0, h - 1, height)
    xs = np.linspace(0, w - 1, width)
    y0 = np.floor(ys).astype(int).clip(0, h - 2) if h > 1 else np.zeros(height, int)
    x0 = np.floor(xs).astype(int).clip(0, w - 2) if w > 1 else np.zeros(width, int)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    top = grid[..., y0, :][..., :, x0] * (1 - fx) + grid[..., y0, :][..., :, x1] * fx
    bottom = grid[..., y1, :][..., :, x0] * (1 - fx) + grid[..., y1, :][..., :, x1] * fx
    return top * (1 - fy) + bottom * fy


def realistic_images(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """(n, 3, size, size) float32 ImageNet-normalised images of smooth random textures."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, 3, size, size), dtype=np.float64)
    for cells, weight in ((3, 1.0), (7, 0.6), (15, 0.35), (31, 0.2)):
        img += weight * _upsample(rng.random((n, 3, cells, cells)), size, size)
    img += 0.03 * rng.standard_normal(img.shape)  # sensor-like grain
    lo = img.min(axis=(1, 2, 3), keepdims=True)
    hi = img.max(axis=(1, 2, 3), keepdims=True)
    img = (img - lo) / (hi - lo)
    img = (img - IMAGENET_MEAN[None, :, None, None]) / IMAGENET_STD[None, :, None, None]
    return img.astype(np.float32)


def realistic_spectrograms(n: int, shape: Sequence[int], frontend: str, seed: int = 0) -> np.ndarray:
    """(n, C, F, T) float32 spectrogram-like inputs for a front-end.

    A smooth spectral envelope (falling with frequency) times slow temporal modulation times
    exponential (chi-square, 2 dof) periodogram noise gives a PSD around 1e-6..1e-2; it is then
    mapped like the front-end maps a real PSD.
    """
    rng = np.random.default_rng(seed + 1)
    c, f, t = (int(d) for d in shape)
    freq = np.arange(f, dtype=np.float64)[:, None]
    envelope = 1e-2 / (1.0 + freq / rng.uniform(5, 40, size=(n, c, 1, 1))) ** 2
    modulation = _upsample(rng.uniform(0.05, 1.0, size=(n, c, 4, 12)), f, t)
    psd = envelope * modulation * rng.exponential(1.0, size=(n, c, f, t))
    if frontend == "ssltie":
        # mel power in dB (AmplitudeToDB: 10 log10(max(x, 1e-10)), no further scaling)
        return (10.0 * np.log10(np.maximum(psd * 1e4, 1e-10))).astype(np.float32)
    return (np.log(psd + 1e-7) / 12.0).astype(np.float32)


def run_in_batches(fn: Callable[..., np.ndarray], arrays: Sequence[np.ndarray], batches: Sequence[int]) -> np.ndarray:
    """Run ``fn`` on consecutive slices of ``arrays`` of the given batch sizes, concatenated."""
    outs, start = [], 0
    for size in batches:
        outs.append(fn(*(a[start : start + size] for a in arrays)))
        start += size
    if start != len(arrays[0]):
        raise ValueError(f"batches {list(batches)} do not cover {len(arrays[0])} samples")
    return np.concatenate(outs, axis=0)


def compare_maps(
    reference: np.ndarray,
    candidate: np.ndarray,
    max_abs: float,
    min_argmax: float,
    batch_sizes: Sequence[int],
    runtime: str,
) -> ParityFigures:
    """Parity figures of (N, h, w) maps: max/mean |diff| and argmax-location agreement."""
    if reference.shape != candidate.shape:
        raise ValueError(f"map shapes differ: reference {reference.shape}, candidate {candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    n = reference.shape[0]
    flat_ref = reference.reshape(n, -1)
    flat_new = candidate.reshape(n, -1)
    agree = float(np.mean(np.argmax(flat_ref, axis=1) == np.argmax(flat_new, axis=1)))
    max_diff = float(diff.max())
    finite = bool(np.isfinite(candidate).all())
    return ParityFigures(
        max_abs_diff=max_diff if finite else float("inf"),
        mean_abs_diff=float(diff.mean()) if finite else float("inf"),
        argmax_agreement=agree,
        n_samples=int(n),
        batch_sizes=tuple(int(b) for b in batch_sizes),
        max_abs_tolerance=float(max_abs),
        min_argmax_agreement=float(min_argmax),
        runtime=runtime,
        passed=finite and max_diff <= max_abs and agree >= min_argmax,
    )
