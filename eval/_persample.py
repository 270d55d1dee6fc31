"""A mergeable store of per-sample arrays, shared by the protocol evaluators (extended, interactive,
masks, retrieval, multi-source), and the evaluator methods every one of them has (`PerSampleEvaluator`).

Each `update` appends one dict of per-sample arrays (first axis = samples, NumPy or CuPy) with its
sample ids; `state()` copies them to the host sorted by id, with the configuration as a JSON string;
`merge()` appends another store's (or a saved state's) samples when the configurations are equal
and no id repeats. Every reduction reads the id-sorted host arrays, so shards merge exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _xp
from vsslrt.eval.validate import validate_sample_ids


class PerSampleEvaluator:
    """What every per-sample evaluator shares: its `_store` (a `PerSampleStore`) as length, state and merge.

    Subclasses set `_store` in `__init__` and give `update`, `from_state` and `compute`; `_unit`
    names what one id stands for in the merge error.
    """

    mergeable = True
    _unit = "sample"
    _store: PerSampleStore

    def __len__(self) -> int:
        return len(self._store)

    def state(self) -> dict[str, np.ndarray]:
        """Host arrays sorted by sample id (`np.savez(path, **ev.state())`), the settings in `config`."""
        return self._store.state()

    def merge(self, other: Any) -> Any:
        """Add another evaluator's (or a saved state's) samples; settings must be equal, ids unique."""
        if other is self:
            raise InputError(f"merge: expected another evaluator, got the same one (every {self._unit} would repeat).")
        self._store.merge_state(other.state() if isinstance(other, type(self)) else other)
        return self

    def per_sample(self) -> dict[str, np.ndarray]:
        """The per-sample arrays on the host, sorted by sample id."""
        return self._store.host()


class PerSampleStore:
    """Per-sample arrays of several batches, keyed by unique sample ids."""

    def __init__(self, config_json: str, source: str) -> None:
        self.config_json = config_json
        self.source = source
        self.reset()

    def reset(self) -> None:
        self._batches: list[dict[str, Any]] = []
        self._ids = np.empty(0, dtype=np.int64)
        self._keys: frozenset[str] | None = None

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def next_ids(self, n: int, sample_ids: Any, source: str) -> np.ndarray:
        """The batch's ids: the given ones (checked, unseen) or consecutive ones after the largest."""
        if sample_ids is None:
            start = int(self._ids.max()) + 1 if self._ids.shape[0] else 0
            return np.arange(start, start + n, dtype=np.int64)
        ids = validate_sample_ids(sample_ids, n, source=source)
        refuse_duplicates(self._ids, ids, source=source)
        return ids

    def append(self, arrays: dict[str, Any], ids: np.ndarray, source: str) -> None:
        keys = frozenset(arrays)
        if self._keys is not None and keys != self._keys:
            raise InputError(
                f"{source}: expected the per-sample fields {sorted(self._keys)} of the earlier batches, got {sorted(keys)}.",
                hint="give the optional fields (e.g. confidence, group) for every batch or for none",
            )
        self._batches.append({**arrays, "sample_id": ids})
        self._ids = np.concatenate([self._ids, ids])
        self._keys = keys

    def host(self) -> dict[str, np.ndarray]:
        """Every per-sample array on the host, sorted by sample id."""
        return sorted_on_host(self._batches)

    def state(self) -> dict[str, np.ndarray]:
        out = self.host()
        out["config"] = np.array(self.config_json)
        return out

    def merge_state(self, state: Mapping[str, Any]) -> None:
        config = config_json_of(state)
        if config != self.config_json:
            raise InputError(f"merge: expected the same settings on both sides, got {config} and {self.config_json}.")
        names = [k for k in (state.files if hasattr(state, "files") else state.keys()) if k != "config"]
        arrays = {k: np.asarray(state[k]) for k in names}
        if "sample_id" not in arrays:
            raise InputError("state: expected a 'sample_id' array, got none.", hint="save the evaluator's state() whole")
        n = arrays["sample_id"].shape[0]
        for k, v in arrays.items():
            if v.ndim == 0 or v.shape[0] != n:
                raise InputError(f"state: expected {k!r} to hold {n} per-sample rows, got shape {v.shape}.")
        if n == 0:
            return
        ids = arrays.pop("sample_id").astype(np.int64)
        if np.unique(ids).shape[0] != n:
            raise InputError("state: expected unique sample ids, got duplicates.")
        refuse_duplicates(self._ids, ids, source="merge")
        self.append(arrays, ids, "merge")


def config_json_of(state: Mapping[str, Any]) -> str:
    if "config" not in state:
        raise InputError("state: expected a 'config' entry, got none.", hint="save the evaluator's state() whole")
    return str(np.asarray(state["config"]))


def refuse_duplicates(seen: np.ndarray, ids: np.ndarray, *, source: str) -> None:
    shared = np.intersect1d(seen, ids)
    if shared.shape[0]:
        raise InputError(
            f"{source}: expected sample ids not seen before, got {shared.shape[0]} repeated id(s) "
            f"such as {shared[:5].tolist()}.",
            hint="each sample may be evaluated once; skip shards that are already merged",
        )


CONSENSUS_WEIGHTS = (0.0, 0.5, 1.0)


def split_consensus(gt: Any, *, source: str) -> tuple[Any, Any]:
    """A consensus-weighted GT (values 0, 0.5, 1) as (pixels with any weight, pixels of weight 1).

    Binary ground truth (bool, or numbers that are all 0 or 1) is returned as it is with None, so
    every binary dataset goes through the evaluator exactly as before.
    """
    if not (_xp.library_name(gt) and getattr(gt, "ndim", 0) == 3):
        return gt, None
    xp = _xp.namespace({"gt": gt}, subject=source)
    if not xp.isdtype(gt.dtype, "real floating"):
        return gt, None
    half = gt == 0.5
    other = xp.logical_not(xp.logical_or(half, xp.logical_or(gt == 0, gt == 1)))
    if bool(xp.any(other)):
        found = _xp.to_numpy(xp.unique_values(gt[other]))[:5].tolist()
        raise InputError(
            f"{source}: expected field 'gt' to be binary or consensus weights (0, 0.5, 1), got values such as {found}.",
            hint="a consensus map counts 0.5 for a pixel one annotator marked and 1 for two or more",
        )
    if not bool(xp.any(half)):
        return gt, None
    return gt > 0, gt == 1


def sorted_on_host(batches: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per-batch arrays (each with a "sample_id") concatenated on the host and sorted by sample id: the
    mergeable state of every per-sample evaluator."""
    if not batches:
        return {"sample_id": np.empty(0, dtype=np.int64)}
    host = {k: np.concatenate([_xp.to_numpy(b[k]) for b in batches], axis=0) for k in batches[0].keys()}
    order = np.argsort(host["sample_id"], kind="stable")
    return {k: v[order] for k, v in host.items()}

