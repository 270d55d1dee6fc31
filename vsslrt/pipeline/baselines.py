"""Audio-agnostic baseline "models", scored with every metric beside the real one.

They answer the question the negative-audio protocol raises: how well does a map score when it
ignores the audio altogether? Each baseline returns the SAME map for the positive and the three
negative conditions, on the evaluated model's value range [lo, hi], so that universal thresholds
(which live on the model's scale) mean the same thing for the baseline and for the model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BASELINES = ("centre", "whole", "random", "objectness")


def _unit_centre_prior(size: int, sigma: float = 0.25) -> np.ndarray:
    """A centred isotropic Gaussian in [0, 1], sigma as a fraction of the side."""
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    return np.exp(-(xx**2 + yy**2) / (2.0 * sigma**2))


def centre_prior(n: int, size: int, value_range: tuple[float, float]) -> np.ndarray:
    lo, hi = value_range
    unit = _unit_centre_prior(size)
    return np.broadcast_to(lo + (hi - lo) * unit, (n, size, size)).astype(np.float32)


def whole_image(n: int, size: int, value_range: tuple[float, float]) -> np.ndarray:
    """Every pixel at the top of the scale: the 'the object is everywhere' prediction."""
    return np.full((n, size, size), value_range[1], dtype=np.float32)


def random_map(sample_ids: np.ndarray, size: int, value_range: tuple[float, float], seed: int = 0) -> np.ndarray:
    """Uniform noise, drawn per sample from (seed, sample id): independent of batching."""
    lo, hi = value_range
    out = np.empty((len(sample_ids), size, size), dtype=np.float32)
    for row, sid in enumerate(np.asarray(sample_ids, dtype=np.int64)):
        rng = np.random.default_rng([seed, 0xBA5E, int(sid)])
        out[row] = rng.uniform(lo, hi, size=(size, size))
    return out


def objectness(obj_maps: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """The object-saliency map alone, min-max normalised per sample onto the model's range."""
    lo, hi = value_range
    flat = obj_maps.reshape(obj_maps.shape[0], -1).astype(np.float64)
    mn = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - mn
    unit = np.where(span > 0, (flat - mn) / np.where(span > 0, span, 1.0), 0.0)
    return (lo + (hi - lo) * unit).reshape(obj_maps.shape).astype(np.float32)


def baseline_maps(
    name: str,
    *,
    sample_ids: np.ndarray,
    size: int,
    value_range: tuple[float, float],
    obj_maps: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The (N, size, size) map of one baseline for a batch of samples."""
    n = len(sample_ids)
    makers: dict[str, Callable[[], np.ndarray]] = {
        "centre": lambda: centre_prior(n, size, value_range),
        "whole": lambda: whole_image(n, size, value_range),
        "random": lambda: random_map(sample_ids, size, value_range, seed),
    }
    if name == "objectness":
        if obj_maps is None:
            raise ValueError("the objectness baseline needs the object-saliency maps")
        return objectness(obj_maps, value_range)
    return makers[name]()
