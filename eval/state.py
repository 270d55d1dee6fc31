"""`Evaluator`: the mergeable accumulator behind `evaluate()`.

State is per-sample scalars only (never maps, never means): per-sample IoU at every threshold
column, pIA of each negative, IoU of each map pair, raw max/min, GT size, group and sample id.
It grows by a few hundred bytes per sample, whatever the map size.

Merge law: `compute()` sorts the samples by id before any reduction, and every per-sample value
depends on its own sample only, so evaluating shards and merging them gives the same numbers, bit
for bit, as one pass over all samples, in any order of updates and merges. A sample id may occur
only once: merging two states that share an id is an error (a resumed run that re-evaluates a
shard must not count it twice).

Arrays stay where the inputs live (NumPy or CuPy) until `state()` or `compute()` copies the
per-sample scalars to the host.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _xp
from vsslrt.eval._kernel import batch_scalars
from vsslrt.eval._persample import sorted_on_host, split_consensus
from vsslrt.eval._reduce import reduce_metrics
from vsslrt.eval.config import EvalConfig, make_config
from vsslrt.eval.keys import CONDITIONS
from vsslrt.eval.validate import check_batch_fields, check_finite_extremes, validate_maps, validate_sample_ids

# Samples per chunk. On a CPU a chunk's maps and masks should stay near the cache (a 224x224 float32
# map is 200 KB, and each threshold column adds a 50 KB mask per map); on a GPU larger chunks
# amortise kernel launches while bounding device memory (about 3 MB per sample and column set).
DEFAULT_CHUNK_NUMPY = 8
DEFAULT_CHUNK_CUPY = 256
MAX_DEFAULT_WORKERS = 4

def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Evaluator:
    """Accumulates per-sample measurements of heatmap batches; computes docs/metrics.md.

    Args:
        protocol: "fixed" (default) or "paper".
        thresholds: universal thresholds by name; max, max10 and maxq3 are required in paper
            mode. Defaults to none.
        fixed: the fixed threshold. Defaults to 0.5.
        interp: "bilinear" (align-corners) or "cv2". Defaults to "bilinear".
        sweep: candidate thresholds at which every sample's positive IoU and negative pIA are
            also kept, for calibration (`vsslrt.eval.calibration`). Costs about five extra sorts
            per sample. Defaults to none.
        chunk_size: samples processed together. Defaults to 8 on NumPy, 256 on CuPy.
        num_workers: threads over chunks for NumPy inputs (NumPy releases the GIL). Defaults to
            the available CPUs, at most 4.
        validate: check every batch (`validate_maps`). Defaults to True.

    Example:
        >>> ev = Evaluator(protocol="fixed")  # doctest: +SKIP
        >>> ev.update(pos, silence, noise, offscreen, gt, sample_ids=ids)  # doctest: +SKIP
        >>> metrics = ev.compute()  # doctest: +SKIP
    """

    mergeable = True

    def __init__(
        self,
        protocol: str = "fixed",
        thresholds: Mapping[str, float] | None = None,
        fixed: float = 0.5,
        interp: str = "bilinear",
        *,
        sweep: Any = None,
        chunk_size: int | None = None,
        num_workers: int | None = None,
        validate: bool = True,
    ) -> None:
        self.config: EvalConfig = make_config(protocol, thresholds, fixed, interp, sweep)
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise InputError(f"Evaluator: expected chunk_size to be a positive integer, got {chunk_size!r}.")
        if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
            raise InputError(f"Evaluator: expected num_workers to be a positive integer, got {num_workers!r}.")
        self.chunk_size = chunk_size
        self.num_workers = num_workers
        self.validate = validate
        self.reset()

    # ----- accumulation -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every sample (the configuration stays)."""
        self._batches: list[dict[str, Any]] = []
        self._ids = np.empty(0, dtype=np.int64)
        self._fields: dict[str, bool] | None = None
        self._cache: dict[str, float] | None = None

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def update(
        self,
        pos: Any,
        silence: Any,
        noise: Any,
        offscreen: Any,
        gt: Any,
        *,
        obj: Any = None,
        group: Any = None,
        sample_ids: Any = None,
        _source: str = "Evaluator.update",
        _require_gt: bool = False,
    ) -> Evaluator:
        """Measure one batch.

        Args:
            pos, silence, noise, offscreen: raw maps (N, H, W), NumPy or CuPy, real floating.
            gt: (N, 224, 224) bool ground truth, or consensus weights 0 / 0.5 / 1 (Flickr, C1).
            obj: raw object-saliency maps (N, H', W') for the OGL metrics; give it for every
                batch or for none.
            group: (N,) int group ids for the interactive metrics; every batch or none.
            sample_ids: (N,) unique integer ids. Defaults to consecutive ids after the largest
                one seen so far.

        Returns:
            self.

        Raises:
            InputError: invalid inputs, inconsistent optional fields, or a sample id seen before.
        """
        gt, gt_full = split_consensus(gt, source=_source)  # weighted GT -> (any, weight-1) masks
        if self.validate:
            info = validate_maps(
                pos,
                silence,
                noise,
                offscreen,
                gt,
                obj=obj,
                group=group,
                source=_source,
                check_finite=False,
                require_gt=_require_gt,
            )
            xp, n = info.xp, info.n
        else:
            fields = {"pos": pos, "silence": silence, "noise": noise, "offscreen": offscreen, "gt": gt}
            xp = _xp.namespace({**fields, "obj": obj, "group": group}, subject=_source)
            n = int(pos.shape[0])
        given = {"obj": obj is not None, "group": group is not None}
        if self._fields is not None:
            check_batch_fields(self._fields, given, source=_source)

        if sample_ids is None:
            start = int(self._ids.max()) + 1 if self._ids.shape[0] else 0
            ids = np.arange(start, start + n, dtype=np.int64)
        else:
            ids = validate_sample_ids(sample_ids, n, source=_source)
            _refuse_duplicates(self._ids, ids, source=_source)

        raw = {"pos": pos, "silence": silence, "noise": noise, "offscreen": offscreen}
        scalars = self._measure(raw, gt, obj, n, xp, gt_full)
        obj_range = scalars.pop("obj_range", None)
        if self.validate:  # the maxima/minima of every map show any NaN or inf
            for i, cond in enumerate(CONDITIONS):
                check_finite_extremes(cond, scalars["max"][:, i], scalars["min"][:, i], source=_source, xp=xp)
            if obj_range is not None:
                check_finite_extremes("obj", obj_range[:, 0], obj_range[:, 1], source=_source, xp=xp)
        scalars["sample_id"] = ids
        if group is not None:
            scalars["group"] = xp.astype(group, xp.int64)
        self._batches.append(scalars)
        self._ids = np.concatenate([self._ids, ids])
        self._fields = given
        self._cache = None
        return self

    def _measure(self, raw: dict[str, Any], gt: Any, obj: Any, n: int, xp: Any, gt_full: Any = None) -> dict[str, Any]:
        numpy_inputs = _xp.is_numpy(xp)
        chunk = self.chunk_size or (DEFAULT_CHUNK_NUMPY if numpy_inputs else DEFAULT_CHUNK_CUPY)
        starts = list(range(0, n, chunk))

        def one(start: int) -> dict[str, Any]:
            stop = min(start + chunk, n)
            part = {c: raw[c][start:stop] for c in CONDITIONS}
            # NaN/inf maps are refused right after measuring (their max/min show them); until then
            # NumPy must not warn about the arithmetic on them. errstate is per thread.
            with np.errstate(all="ignore"):
                return batch_scalars(
                    part, gt[start:stop], None if obj is None else obj[start:stop], self.config, xp=xp,
                    gt_full=None if gt_full is None else gt_full[start:stop],
                )

        workers = self.num_workers or min(MAX_DEFAULT_WORKERS, _available_cpus())
        if numpy_inputs and workers > 1 and len(starts) > 1:
            parts = list(_pool(workers).map(one, starts))
        else:
            parts = [one(s) for s in starts]
        if len(parts) == 1:
            return parts[0]
        return {key: xp.concat([p[key] for p in parts], axis=0) for key in parts[0]}

    # ----- state --------------------------------------------------------------------------------
    def _host_scalars(self) -> dict[str, np.ndarray]:
        """Every per-sample array on the host, sorted by sample id."""
        return sorted_on_host(self._batches)

    def state(self) -> dict[str, np.ndarray]:
        """Host NumPy arrays, sorted by sample id, savable with `np.savez(path, **ev.state())`.

        `config` holds the settings as a JSON string (0-d unicode array); `from_state` reads it.
        """
        out = self._host_scalars()
        out["config"] = np.array(self.config.to_json())
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **options: Any) -> Evaluator:
        """Rebuild an evaluator from `state()` (or an `np.load` of it).

        Args:
            state: the saved arrays.
            **options: chunk_size, num_workers, validate for later updates.
        """
        config = _config_of(state)
        ev = cls(
            config.protocol,
            dict(config.thresholds),
            config.fixed,
            config.interp,
            sweep=config.sweep,
            **options,
        )
        ev.merge(state)
        return ev

    def merge(self, other: Evaluator | Mapping[str, Any]) -> Evaluator:
        """Add the samples of another evaluator (or of a saved state) to this one.

        Raises:
            InputError: different configuration, different optional fields, or a shared sample id.
        """
        if isinstance(other, Evaluator):
            if other is self:
                raise InputError("merge: expected another evaluator, got the same one (every sample would repeat).")
            config, incoming = other.config, other._host_scalars()
            fields = other._fields
        elif isinstance(other, Mapping) or hasattr(other, "files"):
            config = _config_of(other)
            incoming = _check_state(other)
            fields = {"obj": "iou_ogl" in incoming, "group": "group" in incoming} if len(incoming["sample_id"]) else None
        else:
            raise InputError(
                f"merge: expected an Evaluator or a state mapping, got {type(other).__name__}.",
                hint="pass Evaluator.state() or np.load(path) of it",
            )
        if config != self.config:
            raise InputError(
                f"merge: expected the same settings on both sides, got {config.to_json()} and {self.config.to_json()}."
            )
        if incoming["sample_id"].shape[0] == 0:
            return self
        if self._fields is not None and fields is not None:
            check_batch_fields(self._fields, fields, source="merge")
        expected = set(self._batches[0]) if self._batches else None
        if expected is not None and set(incoming) != expected:
            raise InputError(
                f"merge: expected per-sample arrays {sorted(expected)}, got {sorted(incoming)}."
            )
        _refuse_duplicates(self._ids, incoming["sample_id"], source="merge")
        self._batches.append(incoming)
        self._ids = np.concatenate([self._ids, incoming["sample_id"]])
        self._fields = fields
        self._cache = None
        return self

    # ----- results ------------------------------------------------------------------------------
    def compute(self) -> dict[str, float]:
        """The metrics of docs/metrics.md for every sample seen (cached until the next change)."""
        if self._cache is None:
            self._cache = reduce_metrics(self._host_scalars(), self.config)
        return dict(self._cache)

    def sample_ids(self) -> np.ndarray:
        """Sample ids in ascending order (the order of every per-sample accessor)."""
        return np.sort(self._ids)

    def max_values(self) -> dict[str, np.ndarray]:
        """Per-sample maximum of each raw map, by condition (pos, silence, noise, offscreen)."""
        return self._per_condition("max")

    def min_values(self) -> dict[str, np.ndarray]:
        """Per-sample minimum of each raw map, by condition."""
        return self._per_condition("min")

    def per_sample(self) -> dict[str, np.ndarray]:
        """Every per-sample array (host, id order), e.g. `iou` (n, T) for `config.columns`."""
        return self._host_scalars()

    def _per_condition(self, stat: str) -> dict[str, np.ndarray]:
        s = self._host_scalars()
        if stat not in s:
            return {c: np.empty(0, dtype=np.float64) for c in CONDITIONS}
        return {c: s[stat][:, i].copy() for i, c in enumerate(CONDITIONS)}


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide thread pool per worker count.

    Reused across updates so that each worker keeps its work buffers (`_xp.scratch`) warm; fresh
    threads would allocate, and fault in, tens of megabytes again for every batch.
    """
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsslrt-eval")
        return pool


def _refuse_duplicates(seen: np.ndarray, ids: np.ndarray, *, source: str) -> None:
    shared = np.intersect1d(seen, ids)
    if shared.shape[0]:
        raise InputError(
            f"{source}: expected sample ids not seen before, got {shared.shape[0]} repeated id(s) "
            f"such as {shared[:5].tolist()}.",
            hint="each sample may be evaluated once; skip shards that are already merged",
        )


def _config_of(state: Mapping[str, Any]) -> EvalConfig:
    if "config" not in state:
        raise InputError("state: expected a 'config' entry, got none.", hint="save Evaluator.state() whole")
    return EvalConfig.from_json(str(np.asarray(state["config"])))


def _check_state(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    keys = [k for k in (state.files if hasattr(state, "files") else state.keys()) if k != "config"]
    arrays = {k: np.asarray(state[k]) for k in keys}
    if "sample_id" not in arrays:
        raise InputError("state: expected a 'sample_id' array, got none.", hint="save Evaluator.state() whole")
    n = arrays["sample_id"].shape[0]
    for k, v in arrays.items():
        if v.ndim == 0 or v.shape[0] != n:
            raise InputError(f"state: expected {k!r} to hold {n} per-sample rows, got shape {v.shape}.")
    ids = arrays["sample_id"].astype(np.int64)
    if np.unique(ids).shape[0] != n:
        raise InputError("state: expected unique sample ids, got duplicates.")
    arrays["sample_id"] = ids
    return arrays
