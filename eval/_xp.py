"""Array-namespace helpers: one evaluator for NumPy and CuPy.

Every public entry point resolves `xp` once with `namespace()` and threads it through private
helpers. Functions here either sit outside the array-API standard (order statistics, counting set
bits) or have a much faster NumPy form; each has a NumPy fast path and a generic path written
against the standard, which is the one CuPy runs. `use_fast_paths(False)` switches the NumPy fast
paths off so the generic path can be tested without a GPU.

Nothing here imports CuPy: `array_api_compat.is_cupy_array` checks the class name only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import array_api_compat
import numpy as np

from vsslrt.errors import InputError

_state = threading.local()


def fast_paths_enabled() -> bool:
    """Whether NumPy inputs take the NumPy-specific fast paths (the default)."""
    return getattr(_state, "fast", True)


@contextlib.contextmanager
def use_fast_paths(enabled: bool) -> Iterator[None]:
    """Temporarily enable or disable the NumPy fast paths in this thread (tests use it)."""
    previous = fast_paths_enabled()
    _state.fast = enabled
    try:
        yield
    finally:
        _state.fast = previous


def library_name(array: Any) -> str | None:
    """'numpy', 'cupy' or None for anything else; imports neither library."""
    if array_api_compat.is_numpy_array(array):
        return "numpy"
    if array_api_compat.is_cupy_array(array):
        return "cupy"
    return None


def namespace(fields: Mapping[str, Any], *, subject: str) -> Any:
    """The array namespace shared by every non-None field.

    Args:
        fields: field name -> array (None entries are skipped).
        subject: what the error messages name first (a file, or the calling function).

    Raises:
        InputError: a field is not a NumPy/CuPy array, or the fields mix the two libraries.
    """
    by_library: dict[str, list[str]] = {}
    arrays = []
    for name, value in fields.items():
        if value is None:
            continue
        lib = library_name(value)
        if lib is None:
            raise InputError(
                f"{subject}: expected {name} to be a NumPy or CuPy array, got {type(value).__name__}.",
                hint="convert it with numpy.asarray (or cupy.asarray) before evaluating",
            )
        by_library.setdefault(lib, []).append(name)
        arrays.append(value)
    if len(by_library) > 1:
        found = " and ".join(f"{lib} ({', '.join(names)})" for lib, names in sorted(by_library.items()))
        raise InputError(
            f"{subject}: expected every array to come from one library, got {found}.",
            hint="move all inputs to the same device (numpy.asarray or cupy.asarray)",
        )
    if not arrays:
        raise InputError(f"{subject}: expected at least one array, got none.")
    return array_api_compat.array_namespace(*arrays)


def is_numpy(xp: Any) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def fast(xp: Any) -> bool:
    """True where the NumPy fast paths apply."""
    return is_numpy(xp) and fast_paths_enabled()


def to_numpy(array: Any) -> np.ndarray:
    """Host copy of a NumPy or CuPy array (the only device-to-host move of the evaluator)."""
    if array_api_compat.is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def device_of(array: Any) -> Any:
    return array_api_compat.device(array)


# --------------------------------------------------------------------------------------------------
# Counting set entries along the last axis
# --------------------------------------------------------------------------------------------------

# A boolean mask viewed as uint64 holds one 0/1 byte per pixel in each of its 8 byte lanes. Summing
# at most 255 such words never carries out of a lane, so a row of words reduces to 8 lane totals
# with one SIMD integer sum; the lanes then add up as bytes. It is several times faster than
# count_nonzero along an axis, and exact.
_LANE_BLOCK = 128


def _lane_count(words: np.ndarray) -> np.ndarray:
    lead, n_words = words.shape[:-1], words.shape[-1]
    if n_words % _LANE_BLOCK:
        block = 1
        for candidate in range(min(255, n_words), 0, -1):
            if n_words % candidate == 0:
                block = candidate
                break
    else:
        block = _LANE_BLOCK
    partial = words.reshape(*lead, n_words // block, block).sum(axis=-1, dtype=np.uint64)
    as_bytes = partial.view(np.uint8).reshape(*lead, -1)
    return as_bytes.sum(axis=-1, dtype=np.int64)


def _words(mask: np.ndarray) -> np.ndarray | None:
    """The uint64 view of a boolean mask, or None where the layout does not allow it."""
    if mask.dtype != np.bool_ or mask.shape[-1] % 8 or mask.strides[-1] != 1:
        return None
    try:
        return mask.view(np.uint64)
    except ValueError:
        return None


def count_true(mask: Any, *, xp: Any) -> Any:
    """Number of True entries along the last axis, as int64."""
    if fast(xp):
        words = _words(mask)
        if words is not None:
            return _lane_count(words)
        return np.count_nonzero(mask, axis=-1).astype(np.int64)
    return xp.sum(xp.astype(mask, xp.int64), axis=-1)


def count_both(a: Any, b: Any, *, xp: Any) -> Any:
    """Number of entries True in both masks (broadcast), along the last axis, as int64."""
    if fast(xp):
        wa, wb = _words(a), _words(b)
        if wa is not None and wb is not None:
            return _lane_count(np.bitwise_and(wa, wb))
        return np.count_nonzero(a & b, axis=-1).astype(np.int64)
    return xp.sum(xp.astype(xp.logical_and(a, b), xp.int64), axis=-1)


# --------------------------------------------------------------------------------------------------
# Order statistics
# --------------------------------------------------------------------------------------------------


def order_statistics(rows: Any, k_common: int, k_rows: Any, *, xp: Any) -> tuple[Any, Any]:
    """Values at ascending-sorted position `k_common` (same for every row) and `k_rows[i]` (per row).

    The NumPy path uses selection, not sorting: one partition at `k_common` splits every row into
    a lower and an upper part; each row's own position then lies in one of the two parts, where a
    second single-position partition finds it for all rows at once (see `_select_per_row`). NumPy's
    SIMD selection only handles a single kth, which is why the per-row positions are aligned
    rather than passed as a list of kth (measured on AVX-512: one 50,176-value float32 row takes
    about 80 us to partition at one kth, 190 us to sort, and about 1 ms to partition at two kth).
    The generic path (CuPy) sorts each row once; a GPU segmented sort is cheap.

    Args:
        rows: (B, L) real array without NaN.
        k_common: one position in [0, L).
        k_rows: (B,) integer positions in [0, L).
        xp: the array namespace.

    Returns:
        (values at k_common, values at k_rows), both (B,) in the rows' dtype.
    """
    if not fast(xp):
        ordered = xp.sort(rows, axis=-1)
        at_common = ordered[:, k_common]
        at_rows = xp.take_along_axis(ordered, xp.reshape(xp.astype(k_rows, xp.int64), (-1, 1)), axis=-1)
        return at_common, at_rows[:, 0]
    rows = np.asarray(rows)
    k_rows = np.asarray(k_rows, dtype=np.int64)
    parted = np.partition(rows, k_common, axis=-1)
    at_common = parted[:, k_common].copy()
    at_rows = at_common.copy()
    upper = k_rows > k_common
    lower = k_rows < k_common
    if upper.any():
        at_rows[upper] = _select_per_row(parted[upper, k_common + 1 :], k_rows[upper] - (k_common + 1))
    if lower.any():
        at_rows[lower] = _select_per_row(parted[lower, :k_common], k_rows[lower])
    return at_common, at_rows


def _select_per_row(rows: np.ndarray, k: np.ndarray) -> np.ndarray:
    """k[i]-th smallest value of row i, for all rows with one single-kth partition.

    Row i is padded with (K - k[i]) copies of -inf and (k[i] - k_min) copies of +inf, K = max(k):
    its k[i]-th smallest value moves to position K in every padded row. The padding is as long as
    the spread of k, so this costs one partition of rows at most twice as long.
    """
    k_max, k_min = int(k.max()), int(k.min())
    spread = k_max - k_min
    if spread == 0:
        return np.partition(rows, k_max, axis=-1)[:, k_max]
    length = rows.shape[-1]
    padded = np.empty((rows.shape[0], length + spread), dtype=rows.dtype)
    padded[:, :length] = rows
    n_low = (k_max - k)[:, None]
    padded[:, length:] = np.where(np.arange(spread)[None, :] < n_low, -np.inf, np.inf)
    return np.partition(padded, k_max, axis=-1)[:, k_max]


def count_greater_sorted(ordered: Any, thresholds: Any, *, xp: Any) -> Any:
    """For rows sorted ascending, the number of entries > t for each of K thresholds.

    A binary search vectorised over rows and thresholds (a batched `searchsorted(side="right")`),
    exact for any values and written against the standard so that CuPy runs it unchanged.

    Args:
        ordered: (B, L) rows sorted ascending.
        thresholds: (K,) thresholds in the rows' dtype.

    Returns:
        (B, K) int64 counts.
    """
    b, length = ordered.shape
    k = thresholds.shape[0]
    dev = device_of(ordered)
    lo = xp.zeros((b, k), dtype=xp.int64, device=dev)
    hi = xp.full((b, k), length, dtype=xp.int64, device=dev)
    t = xp.reshape(thresholds, (1, k))
    steps = max(1, int(length).bit_length())
    for _ in range(steps):  # log2(L) halvings, each over the whole (B, K) block
        mid = (lo + hi) // 2
        safe = xp.clip(mid, 0, length - 1) if hasattr(xp, "clip") else xp.minimum(mid, length - 1)
        value = xp.take_along_axis(ordered, safe, axis=-1)
        right = (value <= t) & (mid < hi)
        lo = xp.where(right, mid + 1, lo)
        hi = xp.where(right, hi, mid)
    return length - lo
