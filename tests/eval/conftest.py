"""Small synthetic heatmap batches for the evaluator tests (tiny on purpose: CI has 2 cores)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_helpers, for the test modules

PAPER_THRESHOLDS = {"max": 0.6, "max10": 0.66, "maxq3": 0.63}


def make_batch(n: int = 12, size: int = 7, seed: int = 0, *, empty_every: int = 5) -> dict[str, np.ndarray]:
    """Random float32 maps, one GT box per sample (every `empty_every`-th GT empty), obj, pairs of groups."""
    rng = np.random.default_rng(seed)
    fields = {c: rng.random((n, size, size), dtype=np.float32) for c in ("pos", "silence", "noise", "offscreen")}
    gt = np.zeros((n, 224, 224), dtype=bool)
    for i in range(n):  # test data only: building boxes one by one is clearer than vectorising
        if empty_every and i % empty_every == empty_every - 1:
            continue
        y0, x0 = rng.integers(0, 150, 2)
        h, w = rng.integers(8, 74, 2)
        gt[i, y0 : y0 + h, x0 : x0 + w] = True
    fields["gt"] = gt
    fields["obj"] = rng.random((n, size, size), dtype=np.float32)
    fields["group"] = np.arange(n, dtype=np.int64) // 2
    return fields


def maps_of(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    return tuple(batch[c] for c in ("pos", "silence", "noise", "offscreen", "gt"))


@pytest.fixture
def batch() -> dict[str, np.ndarray]:
    return make_batch()


@pytest.fixture
def batch_factory():
    """The `make_batch` function, for tests that need several batches."""
    return make_batch


@pytest.fixture
def paper_thresholds() -> dict[str, float]:
    return dict(PAPER_THRESHOLDS)
