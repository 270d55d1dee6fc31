"""The Evaluator's mergeable state: merge law, round trip, order independence, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vsslrt.errors import InputError
from vsslrt.eval import Evaluator, evaluate
from vsslrt.eval._xp import use_fast_paths

CONDITIONS = ("pos", "silence", "noise", "offscreen")


def _args(batch, idx):
    return tuple(batch[c][idx] for c in (*CONDITIONS, "gt"))


def _update(ev, batch, idx, *, with_optional=True, xp=np):
    kwargs = {"sample_ids": idx}
    if with_optional:
        kwargs.update(obj=xp.asarray(batch["obj"][idx]), group=xp.asarray(batch["group"][idx]))
    return ev.update(*(xp.asarray(a) for a in _args(batch, idx)), **kwargs)


def _same(a: dict, b: dict) -> bool:
    """Bit-for-bit equality of two metric dicts (NaN equal to NaN)."""
    if a.keys() != b.keys():
        return False
    return all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


@pytest.mark.parametrize("protocol", ["fixed", "paper"])
def test_merge_of_random_shards_equals_one_pass(xp, batch_factory, paper_thresholds, protocol):
    batch = batch_factory(n=20, seed=3)
    ids = np.arange(20)
    whole = _update(Evaluator(protocol, paper_thresholds), batch, ids, xp=xp).compute()
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(20)
        cuts = np.sort(rng.choice(np.arange(1, 20), size=2, replace=False))
        shards = np.split(order, cuts)
        evaluators = [_update(Evaluator(protocol, paper_thresholds), batch, s, xp=xp) for s in shards]
        merged = evaluators[0]
        for other in evaluators[1:][::-1]:
            merged.merge(other)
        assert _same(merged.compute(), whole)
        alone = _update(Evaluator(protocol, paper_thresholds), batch, shards[0], xp=xp).compute()
        assert not _same(alone, whole)


def test_state_round_trip_through_npz(xp, tmp_path, batch, paper_thresholds):
    ev = _update(Evaluator("paper", paper_thresholds), batch, np.arange(12), xp=xp)
    assert all(isinstance(v, np.ndarray) for v in ev.state().values())  # state() is host NumPy
    path = tmp_path / "shard.npz"
    np.savez(path, **ev.state())
    with np.load(path) as saved:
        restored = Evaluator.from_state(saved)
    assert restored.config == ev.config
    assert _same(restored.compute(), ev.compute())
    np.testing.assert_array_equal(restored.sample_ids(), np.arange(12))


def test_resume_from_saved_shards_equals_one_pass(tmp_path, batch_factory):
    batch = batch_factory(n=10, seed=5)
    whole = _update(Evaluator(), batch, np.arange(10)).compute()
    for k, part in enumerate((np.arange(0, 4), np.arange(4, 10))):
        np.savez(tmp_path / f"s{k}.npz", **_update(Evaluator(), batch, part).state())
    ev = Evaluator()
    for k in range(2):
        with np.load(tmp_path / f"s{k}.npz") as saved:
            ev.merge(saved)
    assert _same(ev.compute(), whole)


def test_state_is_per_sample_scalars_only(batch):
    ev = _update(Evaluator(), batch, np.arange(12))
    state = ev.state()
    per_sample = {k: v for k, v in state.items() if k != "config"}
    assert all(v.shape[0] == 12 for v in per_sample.values())
    assert max(v[0].size for v in per_sample.values()) < 64  # a few scalars per sample, never a map
    assert state["config"].ndim == 0


def test_update_order_does_not_matter(batch):
    a = _update(Evaluator(), batch, np.arange(12))
    b = Evaluator()
    for idx in (np.array([7, 3, 11]), np.array([0, 1, 2]), np.array([10, 9, 8, 6, 5, 4])):
        _update(b, batch, idx)
    assert _same(a.compute(), b.compute())
    for cond in CONDITIONS:
        np.testing.assert_array_equal(a.max_values()[cond], b.max_values()[cond])


def test_chunks_and_threads_do_not_change_results(batch, paper_thresholds):
    args = (*_args(batch, slice(None)),)
    kw = dict(obj=batch["obj"], group=batch["group"], protocol="paper", thresholds=paper_thresholds)
    one = evaluate(*args, chunk_size=64, num_workers=1, **kw)
    many = evaluate(*args, chunk_size=3, num_workers=2, **kw)
    assert _same(one, many)


def test_generic_path_equals_numpy_fast_path(batch, paper_thresholds):
    """The standard-only path (the one CuPy runs) gives the NumPy fast path's numbers exactly."""
    for protocol in ("paper", "fixed"):
        kw = dict(obj=batch["obj"], group=batch["group"], protocol=protocol, thresholds=paper_thresholds)
        fast = evaluate(*_args(batch, slice(None)), **kw)
        with use_fast_paths(False):
            generic = evaluate(*_args(batch, slice(None)), **kw)
        assert _same(fast, generic)


def test_duplicate_ids_are_refused_on_merge(batch):
    a = _update(Evaluator(), batch, np.arange(0, 6))
    b = _update(Evaluator(), batch, np.arange(4, 10))
    with pytest.raises(InputError, match=r"repeated id\(s\) such as \[4, 5\]"):
        a.merge(b)
    assert len(a) == 6  # nothing was merged


def test_duplicate_ids_are_refused_on_update(batch):
    ev = _update(Evaluator(), batch, np.arange(0, 6))
    with pytest.raises(InputError, match="repeated id"):
        _update(ev, batch, np.arange(5, 8))
    with pytest.raises(InputError, match="duplicates"):
        ev.update(*_args(batch, np.arange(2)), obj=batch["obj"][:2], group=batch["group"][:2], sample_ids=[20, 20])


def test_automatic_ids_continue_after_the_largest(batch):
    ev = Evaluator()
    ev.update(*_args(batch, slice(0, 3)), sample_ids=[10, 11, 12])
    ev.update(*_args(batch, slice(3, 5)))
    np.testing.assert_array_equal(ev.sample_ids(), [10, 11, 12, 13, 14])


def test_merge_refuses_other_settings_and_other_fields(batch, paper_thresholds):
    fixed = _update(Evaluator(), batch, np.arange(4))
    with pytest.raises(InputError, match="same settings"):
        fixed.merge(_update(Evaluator("paper", paper_thresholds), batch, np.arange(4, 8)))
    with pytest.raises(InputError, match="field 'obj'"):
        fixed.merge(_update(Evaluator(), batch, np.arange(4, 8), with_optional=False))
    with pytest.raises(InputError, match="field 'obj'"):
        _update(fixed, batch, np.arange(8, 10), with_optional=False)
    with pytest.raises(InputError, match="same one"):
        fixed.merge(fixed)


def test_reset_and_empty_compute(batch):
    ev = _update(Evaluator(), batch, np.arange(4))
    ev.reset()
    assert len(ev) == 0
    with pytest.raises(InputError, match="at least one evaluated sample"):
        ev.compute()


def test_compute_is_cached_until_update(batch):
    ev = _update(Evaluator(), batch, np.arange(4))
    first = ev.compute()
    first["n_samples"] = -1.0  # callers get a copy
    assert ev.compute()["n_samples"] == 4.0
    _update(ev, batch, np.arange(4, 6))
    assert ev.compute()["n_samples"] == 6.0


def test_max_and_min_accessors_are_raw_and_in_id_order(batch):
    ev = Evaluator()
    idx = np.array([5, 2, 9, 0])
    _update(ev, batch, idx)
    order = np.sort(idx)
    for cond in CONDITIONS:
        np.testing.assert_array_equal(ev.max_values()[cond], batch[cond][order].max(axis=(1, 2)))
        np.testing.assert_array_equal(ev.min_values()[cond], batch[cond][order].min(axis=(1, 2)))


def test_xp_namespace_round_trip(xp, batch, paper_thresholds):
    """Arrays on the device stay there until compute(); results equal NumPy's."""
    host = evaluate(*_args(batch, slice(None)), obj=batch["obj"], group=batch["group"], protocol="paper",
                    thresholds=paper_thresholds)
    dev = {k: xp.asarray(v) for k, v in batch.items()}
    ev = Evaluator("paper", paper_thresholds)
    ev.update(*(dev[c] for c in (*CONDITIONS, "gt")), obj=dev["obj"], group=dev["group"])
    assert type(ev._batches[0]["iou"]).__module__.split(".")[0] == xp.__name__.split(".")[0]
    result = ev.compute()
    assert result.keys() == host.keys()
    for key in host:
        assert result[key] == pytest.approx(host[key], rel=1e-12, abs=1e-9, nan_ok=True), key
