"""Properties of the evaluator that hold for every input (hypothesis): bounds, monotonicity, symmetry,
and shard merging that reproduces a single pass exactly."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vsslrt.eval import Evaluator, evaluate

SIDE = 224
CONDITIONS = ("pos", "silence", "noise", "offscreen")
NEGATIVES = ("silence", "noise", "offscreen")
PAPER_THRESHOLDS = {"max": 0.5, "max10": 0.55, "maxq3": 0.52}

SETTINGS = settings(max_examples=40, deadline=None)

# Values on a coarse lattice as well as arbitrary float32s, so that ties occur often.
LATTICE = [-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0]


def _values(low: float):
    return st.one_of(
        st.sampled_from([v for v in LATTICE if v >= low]),
        st.floats(low, 1.0, width=32, allow_nan=False, allow_infinity=False),
    )


def _ensure_box(gt: np.ndarray, i: int) -> None:
    """Give sample i a non-empty box if it has none (a batch whose GTs are all empty is rejected)."""
    if not gt[i].any():
        gt[i, 50:90, 60:120] = True


@st.composite
def batches(draw, min_n: int = 1, max_n: int = 4, low: float = -1.0) -> dict:
    """A small batch: raw maps (n, s, s) float32, boxes (some empty), groups."""
    n = draw(st.integers(min_n, max_n))
    size = draw(st.sampled_from([7, 14]))
    maps = {
        c: draw(arrays(np.float32, (n, size, size), elements=_values(low))) for c in (*CONDITIONS, "obj")
    }
    gt = np.zeros((n, SIDE, SIDE), dtype=bool)
    for i in range(n):
        y0, y1 = sorted(draw(st.lists(st.integers(0, SIDE), min_size=2, max_size=2)))
        x0, x1 = sorted(draw(st.lists(st.integers(0, SIDE), min_size=2, max_size=2)))
        gt[i, y0:y1, x0:x1] = True  # empty when y0 == y1 or x0 == x1
    _ensure_box(gt, 0)
    group = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    return {**maps, "gt": gt, "group": group, "n": n}


def _args(batch: dict) -> tuple:
    return tuple(batch[c] for c in (*CONDITIONS, "gt"))


def _same(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    return all(
        (math.isnan(float(a[k])) and math.isnan(float(b[k]))) or float(a[k]) == float(b[k]) for k in a
    )


def _differences(a: dict, b: dict) -> list[str]:
    out = [f"key sets differ: {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
    for k in sorted(set(a) & set(b)):
        x, y = float(a[k]), float(b[k])
        if not ((math.isnan(x) and math.isnan(y)) or x == y):
            out.append(f"{k}: {x!r} != {y!r}")
    return out


def _assert_close(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        x, y = float(a[k]), float(b[k])
        assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12), (k, x, y)


@SETTINGS
@given(
    batch=batches(low=0.0),
    fixed=st.floats(0.0, 2.0),
    universal=st.floats(0.0, 2.0),
    interp=st.sampled_from(["bilinear", "cv2"]),
)
def test_all_zero_negatives_give_aoc_100(batch, fixed, universal, interp):
    """Zero negatives are never above a threshold >= 0 (the positive maps are >= 0 here, so the
    median and adaptive thresholds are too): pIA 0 and AOC 100 everywhere."""
    for c in NEGATIVES:
        batch[c] = np.zeros_like(batch[c])
    out = evaluate(*_args(batch), protocol="fixed", thresholds={"u": universal}, fixed=fixed, interp=interp)
    for neg in NEGATIVES:
        for thr in ("median", "adaptive", "fixed", "u"):
            assert float(out[f"{neg}/pia@{thr}"]) == 0.0
            assert math.isclose(float(out[f"{neg}/aoc@{thr}"]), 100.0, abs_tol=1e-9)
    thresholds = {name: universal for name in PAPER_THRESHOLDS}
    paper = evaluate(*_args(batch), protocol="paper", thresholds=thresholds, fixed=fixed, interp=interp)
    aoc_keys = [k for k in paper if k.startswith("AOC_")]
    assert len(aoc_keys) == 18
    for key in aoc_keys:
        assert math.isclose(float(paper[key]), 100.0, abs_tol=1e-9), key


@SETTINGS
@given(
    batch=batches(),
    t1=st.floats(-1.5, 1.5),
    t2=st.floats(-1.5, 1.5),
    interp=st.sampled_from(["bilinear", "cv2"]),
)
def test_pia_is_non_increasing_in_the_threshold(batch, t1, t2, interp):
    low, high = min(t1, t2), max(t1, t2)
    out = evaluate(*_args(batch), protocol="fixed", thresholds={"low": low, "high": high}, interp=interp)
    for neg in NEGATIVES:
        assert float(out[f"{neg}/pia@low"]) >= float(out[f"{neg}/pia@high"])
        assert float(out[f"{neg}/aoc@low"]) <= float(out[f"{neg}/aoc@high"]) + 1e-9
    paper = evaluate(
        *_args(batch), protocol="paper", thresholds={"max": low, "max10": high, "maxq3": high}, interp=interp
    )
    for name in ("Silence", "Noise", "OffScreen"):
        assert float(paper[f"pIA_{name}_Max"]) >= float(paper[f"pIA_{name}_Max10"])


@SETTINGS
@given(
    batch=batches(),
    protocol=st.sampled_from(["fixed", "paper"]),
    interp=st.sampled_from(["bilinear", "cv2"]),
    with_obj=st.booleans(),
)
def test_percentages_are_within_0_and_100(batch, protocol, interp, with_obj):
    """IoUs lie in [0, 1], so every IoU/AUC/pIA/AOC/F key lies in [0, 100] (or is a documented NaN)."""
    kwargs = {"obj": batch["obj"]} if with_obj else {}
    out = evaluate(
        *_args(batch), **kwargs, group=batch["group"], protocol=protocol,
        thresholds=dict(PAPER_THRESHOLDS), interp=interp,
    )
    raw_keys = ("max/", "min/", "n_", "Max_", "Min_", "Median_")
    for key, value in out.items():
        if key.startswith(raw_keys):
            continue
        value = float(value)
        if math.isnan(value):
            # fixed mode: only an F-score can be NaN (0/0); paper mode: OGL means (Q12) and F-scores.
            allowed = key.startswith("f") if protocol == "fixed" else (key.endswith("_OGL") or key.startswith("F_"))
            assert allowed, f"{key} is NaN"
            continue
        assert -1e-9 <= value <= 100.0 + 1e-9, f"{key} = {value}"
    if protocol == "fixed":
        assert out["n_samples"] == batch["n"]
        assert out["n_empty_gt"] == int((~batch["gt"].any(axis=(1, 2))).sum())


@SETTINGS
@given(batch=batches(min_n=1, max_n=5), data=st.data())
def test_auroc_of_identical_distributions_is_one_half(batch, data):
    n = batch["n"]
    permutation = np.array(data.draw(st.permutations(range(n))))
    batch["silence"] = batch["pos"][permutation]  # the same maxima, in another order
    batch["noise"] = batch["pos"].copy()
    out = evaluate(*_args(batch), protocol="fixed")
    assert math.isclose(float(out["max/auroc/pos_vs_silence"]), 0.5, abs_tol=1e-12)
    assert math.isclose(float(out["max/auroc/pos_vs_noise"]), 0.5, abs_tol=1e-12)


@SETTINGS
@given(
    batch=batches(min_n=2, max_n=6),
    protocol=st.sampled_from(["fixed", "paper"]),
    interp=st.sampled_from(["bilinear", "cv2"]),
    with_obj=st.booleans(),
    data=st.data(),
)
def test_merged_shards_equal_one_pass_exactly(batch, protocol, interp, with_obj, data):
    n = batch["n"]
    cuts = sorted(data.draw(st.lists(st.integers(1, n - 1), max_size=3, unique=True)))
    bounds = [0, *cuts, n]
    for lo in bounds[:-1]:
        _ensure_box(batch["gt"], lo)  # every shard is a valid batch on its own
    options = dict(protocol=protocol, thresholds=dict(PAPER_THRESHOLDS), interp=interp)

    def update(evaluator, lo, hi):
        kwargs = {"obj": batch["obj"][lo:hi]} if with_obj else {}
        evaluator.update(
            *(a[lo:hi] for a in _args(batch)), **kwargs, group=batch["group"][lo:hi],
            sample_ids=np.arange(lo, hi),
        )

    one_pass = Evaluator(**options)
    update(one_pass, 0, n)
    expected = one_pass.compute()

    shards = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        shard = Evaluator(**options)
        update(shard, lo, hi)
        shards.append(shard)
    # Merge in order, every other shard through a state round trip: exactly one pass.
    merged = Evaluator(**options)
    for k, shard in enumerate(shards):
        merged.merge(Evaluator.from_state(shard.state()) if k % 2 else shard)
    got = merged.compute()
    assert _same(got, expected), "\n".join(_differences(got, expected))
    # In a shuffled order the samples are the same, so the metrics agree up to summation order.
    order = data.draw(st.permutations(range(len(shards))))
    shuffled = Evaluator(**options)
    for k in order:
        shuffled.merge(shards[k])
    _assert_close(shuffled.compute(), expected)
    # The one-shot function agrees with the accumulator.
    kwargs = {"obj": batch["obj"]} if with_obj else {}
    direct = evaluate(*_args(batch), **kwargs, group=batch["group"], **options)
    assert _same(direct, expected), "\n".join(_differences(direct, expected))
