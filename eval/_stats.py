"""Host-side reductions of per-sample scalars (NumPy; the inputs are small 1-D lists).

All results are on the 0-100 scale of the paper except `auroc`.
"""

from __future__ import annotations

import math

import numpy as np

GRID_SIZE = 21
# np.trapezoid is NumPy >= 2.0; np.trapz is the same rule under its older name.
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")


def threshold_grid(protocol: str) -> np.ndarray:
    """The 21 abscissae of every AUC/AOC: `0.05*i` in paper mode (as the reference), `i/20` otherwise."""
    if protocol == "paper":
        return np.array([0.05 * i for i in range(GRID_SIZE)], dtype=np.float64)
    return np.array([i / 20 for i in range(GRID_SIZE)], dtype=np.float64)


def success_rate(values: np.ndarray, cut: float = 0.5) -> float:
    """100 x fraction of entries >= cut; NaN counts as a failure."""
    return 100.0 * int(np.count_nonzero(values >= cut)) / values.shape[0]


def mean_x100(values: np.ndarray) -> float:
    """100 x mean (NaN propagates)."""
    return 100.0 * float(np.mean(values))


def auc(values: np.ndarray, grid: np.ndarray) -> float:
    """100 x trapezoid over the grid of the fraction of entries >= x_i (NaN fails)."""
    curve = np.count_nonzero(values[:, None] >= grid[None, :], axis=0) / values.shape[0]
    return 100.0 * float(_trapezoid(curve, grid))


def aoc(pia: np.ndarray, grid: np.ndarray) -> float:
    """100 x trapezoid over the grid of the fraction of pIA entries (fractions) <= x_i."""
    curve = np.count_nonzero(pia[:, None] <= grid[None, :], axis=0) / pia.shape[0]
    return 100.0 * float(_trapezoid(curve, grid))


def f_score(a: float, b: float) -> float:
    """2ab / (a + b); NaN when a + b = 0 (the reference has no guard)."""
    if a + b == 0:
        return math.nan
    return 2.0 * a * b / (a + b)


def interactive(iou: np.ndarray, groups: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """(success rate at 0.5, AUC) over groups, a group succeeding only when all its members do.

    Returns:
        100 x mean over groups of min over members of [IoU >= 0.5], and 100 x trapezoid over the
        grid of the mean over groups of min over members of [IoU >= x_i]. NaN IoU fails.
    """
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    cuts = np.concatenate([[0.5], grid])
    failed = ~(iou[:, None] >= cuts[None, :])  # (n, 1 + K)
    failures = np.zeros((n_groups, cuts.shape[0]), dtype=np.int64)
    np.add.at(failures, inverse, failed.astype(np.int64))
    rate = np.count_nonzero(failures == 0, axis=0) / n_groups
    return 100.0 * float(rate[0]), 100.0 * float(_trapezoid(rate[1:], grid))


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive > negative) + 0.5 P(positive == negative) over all pairs (Mann-Whitney U).

    Computed from average ranks, exact in float64: ranks are half-integers and their sums stay far
    below 2**53 for any realistic list length.
    """
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    if n_pos == 0 or n_neg == 0:
        return math.nan
    values, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    mean_rank = last_rank - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    rank_sum = float(np.sum(mean_rank[inverse[:n_pos]]))
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)
