"""The protocol evaluators' NumPy shortcuts against the plain computations they replace, bit for bit.

Each shortcut (the compiled radix selection of the median, the adaptive positions and the
top-quarter block, the bracketed cut-point search, the packed GT)
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
    t_med, mean = _select.top_mean_and_median(up, xp=np, need_top=need_top, need_median=need_median)
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS + ["extreme", "subnormal"])
def test_compiled_selection_equals_sorting(kind, dtype):
    """`select_fast` (radix selection): the values a sort puts at each position, the top sums exact where flagged."""
    import math

    rng = np.random.default_rng(2)
    if kind == "extreme":  # a span beyond float32 (or float64): one bucket, narrowed by keys
        info = np.finfo(dtype)
        up = rng.choice(np.array([info.min, -1.0, -0.0, 0.0, 1.0, info.max], dtype=dtype), (6, N))
    elif kind == "subnormal":  # a span too small to scale by
        tiny = np.finfo(dtype).smallest_subnormal
        up = (rng.integers(0, 4, (6, N)) * tiny).astype(dtype)
    else:
        up = _rows(kind, rng).astype(dtype)
    b = up.shape[0]
    ordered = np.sort(up, axis=1)
    positions = np.stack([np.full(b, N // 2), np.array([N - 1, 0, N // 2 + 1, N // 2 - 1, 17, int(rng.integers(0, N))])],
                         axis=1)
    for n_top in (0, N // 4, 1, N - 1):
        values, sums, exact = _select.select_fast(up, None, None, positions, n_top)
        np.testing.assert_array_equal(values[:, :2], np.take_along_axis(ordered, positions, axis=1))
        assert values.dtype == up.dtype
        if not n_top:
            assert values.shape == (b, 2) and not exact.any()
            continue
        np.testing.assert_array_equal(values[:, 2], ordered[:, N - n_top])
        def exact_sum(block: np.ndarray) -> float:
            try:
                return math.fsum(block.astype(np.float64))
            except OverflowError:  # float64 extremes: no finite sum to compare with
                return math.inf

        truth = np.array([exact_sum(row[N - n_top:]) for row in ordered])
        np.testing.assert_array_equal(sums[exact], truth[exact])  # exact where it says so
        finite = np.isfinite(truth)
        np.testing.assert_allclose(sums[finite], truth[finite], rtol=1e-9)
        if dtype == np.float64:
            assert not exact.any()


def test_compiled_selection_reads_the_callers_range():
    up = np.random.default_rng(5).random((3, N), dtype=np.float32)
    lo, hi = up.min(axis=1, keepdims=True), up.max(axis=1, keepdims=True)
    positions = np.full((3, 1), 1000)
    np.testing.assert_array_equal(_select.select_fast(up, lo, hi, positions)[0], _select.select_fast(up, None, None, positions)[0])


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


@pytest.mark.parametrize("positions, n_top", [(np.full((2, 1), N), 0), (np.full((2, 1), -1), 0),
                                               (np.zeros((2, 3), np.int64), 1), (np.zeros((3, 1), np.int64), 0),
                                               (np.zeros((2, 1), np.int64), N)])
def test_compiled_selection_refuses_what_it_cannot_take(positions, n_top):
    with pytest.raises(ValueError, match="select_fast"):
        _select.select_fast(np.zeros((2, N), np.float32), None, None, positions, n_top)
