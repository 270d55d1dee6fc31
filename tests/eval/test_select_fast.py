"""The protocol evaluators' NumPy shortcuts against the plain computations they replace, bit for bit.

Each shortcut (one selection for the median and the top-quarter block, per-row selection of the
adaptive positions, selection on raw float bits, the bracketed cut-point search, the packed GT)
must give exactly the values of the generic path (`_xp.use_fast_paths(False)`: sorting, full
normalisation) on rows that exercise every branch: negative values, -0.0, ties, tiny and wide
magnitudes, constant rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval import _select, _xp

N = 224 * 224


def _rows(kind: str, rng: np.random.Generator, b: int = 6) -> np.ndarray:
    if kind == "unit":  # (cos + 1) / 2 maps
        x = rng.random((b, N), dtype=np.float32)
    elif kind == "few_negative":  # bicubic overshoot: a few pixels below 0
        x = rng.random((b, N), dtype=np.float32)
        x[:, :300] -= 0.5
    elif kind == "mostly_negative":
        x = (rng.standard_normal((b, N)) * 2 - 1).astype(np.float32)
    elif kind == "tiny":  # top quarter spread over more than 2**15: the exact-sum check fails
        x = (rng.random((b, N)) ** 12).astype(np.float32)
    elif kind == "wide":
        x = np.exp(rng.standard_normal((b, N)) * 8).astype(np.float32)
    elif kind == "ties":  # few distinct values, zeros and -0.0 among them
        x = (np.round(rng.random((b, N)) * 4) / 4 - 0.25).astype(np.float32)
        x[:, ::7] = -0.0
    elif kind == "large":  # f(x) = (x - lo) / span collides neighbouring floats: the cut point is searched
        x = (rng.random((b, N)) * 1e4 + 1e4).astype(np.float32)
    elif kind == "constant":
        x = np.full((b, N), 0.25, np.float32)
        x[::2, :10] = 0.75
    else:
        raise ValueError(kind)
    return np.ascontiguousarray(x)


KINDS = ["unit", "few_negative", "mostly_negative", "tiny", "wide", "ties", "large", "constant"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("need", [(True, True), (True, False), (False, True)])
def test_top_mean_and_median_equal_the_cut_point_formula(kind, need):
    """The block mean is the cut-point formula's value bit for bit (where the block sum is not exact
    the formula itself runs), the median the sorted row's."""
    up = _rows(kind, np.random.default_rng(1))
    need_top, need_median = need
    nonnegative = bool(np.all(up.min(axis=1) >= 0))
    t_med, mean = _select.top_mean_and_median(up, xp=np, need_top=need_top, need_median=need_median,
                                              nonnegative=nonnegative)
    ordered = np.sort(up, axis=1)
    if need_median:
        np.testing.assert_array_equal(t_med, ordered[:, N // 2])
    else:
        assert t_med is None
    if need_top:
        np.testing.assert_array_equal(mean, _select._top_mean_from_cut(up, ordered[:, N - N // 4], xp=np))
        with _xp.use_fast_paths(False):  # the generic path sums in another order: equal up to rounding
            xp = _xp.namespace({"up": up}, subject="test")
            _, generic = _select.top_mean_and_median(up, xp=xp, need_top=True, need_median=False)
        np.testing.assert_allclose(mean, np.asarray(generic), rtol=1e-12, atol=0)
    else:
        assert mean is None


@pytest.mark.parametrize("kind", KINDS)
def test_per_row_selection_equals_sorting(kind):
    rng = np.random.default_rng(2)
    up = _rows(kind, rng)
    k_rows = np.array([N // 2, N - 1, 0, N // 2 + 1, N // 2 - 1, int(rng.integers(0, N))])
    ordered = np.sort(up, axis=1)
    for nonnegative in ([False, True] if np.all(up.min(axis=1) >= 0) else [False]):
        at_common, at_rows = _xp.order_statistics_per_row(up, N // 2, k_rows, nonnegative=nonnegative)
        np.testing.assert_array_equal(at_common, ordered[:, N // 2])
        np.testing.assert_array_equal(at_rows, ordered[np.arange(up.shape[0]), k_rows])
        assert at_common.dtype == up.dtype and at_rows.dtype == up.dtype


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k_common", [N // 2, None])
def test_median_and_top_block_equal_sorting(kind, k_common):
    up = _rows(kind, np.random.default_rng(3))
    n_top = N // 4
    at_common, at_start, block = _xp.median_and_top_block(up, k_common, n_top)
    ordered = np.sort(up, axis=1)
    if k_common is None:
        assert at_common is None
    else:
        np.testing.assert_array_equal(at_common, ordered[:, k_common])
    np.testing.assert_array_equal(at_start, ordered[:, N - n_top])
    for r in np.flatnonzero(at_start > 0):  # documented: positive blocks are the float bits
        np.testing.assert_array_equal(np.sort(block[r].view(up.dtype)), ordered[r, N - n_top:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strict", [False, True])
def test_normalised_mask_equals_full_normalisation(kind, strict):
    """The cut point (bracketed search) selects the pixels that normalising every pixel selects."""
    rng = np.random.default_rng(4)
    up = _rows(kind, rng)
    lo, hi = _select.range_of(up, xp=np, source="test")
    ordered = np.sort(up, axis=1)
    picks = [ordered[:, N // 2], ordered[:, N - N // 8], ordered[:, 0], ordered[:, -1],
             ordered[np.arange(up.shape[0]), rng.integers(0, N, up.shape[0])]]
    for t in picks:
        fast = _select.normalised_mask(up, t, lo, hi, strict=strict, xp=np)
        with _xp.use_fast_paths(False), np.errstate(all="ignore"):
            slow = _select.normalised_mask(up, t, lo, hi, strict=strict, xp=np)
        np.testing.assert_array_equal(fast, slow)


def test_packed_gt_gives_the_unpacked_ciou_and_area():
    rng = np.random.default_rng(5)
    on = rng.random((5, N)) < 0.3
    marked = rng.random((5, N)) < 0.2
    marked[0] = False
    full = marked & (rng.random((5, N)) < 0.5)
    for f in (None, full):
        packed = _select.PackedGT(marked, f, xp=np)
        np.testing.assert_array_equal(_select.ciou(on, marked, f, 0.0, xp=np, packed=packed),
                                      _select.ciou(on, marked, f, 0.0, xp=np))
        np.testing.assert_array_equal(packed.area(xp=np), _select.gt_area(marked, f, xp=np))


@pytest.mark.parametrize("how", ["bicubic", "bilinear", "cv2"])
def test_resize_into_equals_resize(how):
    from vsslrt.eval._resize import resize

    maps = np.random.default_rng(6).random((3, 7, 9), dtype=np.float32)
    got = _select.resize_into(maps, how, xp=np, dtype=np.float32, tag="test:up").copy()
    np.testing.assert_array_equal(got, resize(maps, how, xp=np, dtype=np.float32))
