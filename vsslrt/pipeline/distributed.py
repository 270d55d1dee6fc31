"""The benchmark on Ray Data: blocks of samples on an actor pool, evaluator states merged on the driver.

`run_bench_ray` gives the numbers and the run folder of `vsslrt.pipeline.bench.run_bench`, with the work
spread over a Ray cluster (or a local Ray instance):

* the driver cuts the run's sample indices into blocks of whole batches and makes them a
  `ray.data` dataset, one row per block;
* `map_batches` runs `ShardWorker` on a fixed actor pool (`ActorPoolStrategy`): each actor opens
  ONE engine session in `__init__` (encoders activated once; `num_gpus=1` per actor when the
  backend runs on a GPU, CPU actors otherwise) and, per block, runs the front-ends, the encoders
  and the evaluator updates (`vsslrt.pipeline.bench.EngineSession.run_shard`);
* an actor returns the evaluator STATE of its block (per-sample scalars, a few hundred bytes per
  sample, never maps), serialised as one `.npz` byte string per row, with its skipped samples
  and timings;
* the driver merges the states (`Evaluator.merge`) and writes the run folder with
  `vsslrt.pipeline.runfolder.write_run_folder`.

Why the result does not depend on the split: sample ids are global (repetition * len(dataset) +
index), so block states never collide and `Evaluator.compute` sorts by id before reducing;
negatives are drawn per sample from (seed, repetition, index); and blocks start at batch
boundaries of the run, so the encoders see the same batches as in a single process.

Resume: the driver appends every finished block's state to the engine's part log
(`vsslrt.pipeline.runstore.PartLog`, `shards/<engine>/part-*.npz`, with a Ray identity). `--resume` loads
those parts, sends only the samples no part holds (cut again into blocks that start at the old
block boundaries, so at batch boundaries too), and merges old and new states: the numbers equal an
uninterrupted run's.

Ray is optional (`pip install 'vsslrt[dist]'`) and imported inside functions only.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt import __version__, errors
from vsslrt.engine import backends
from vsslrt.errors import BackendUnavailableError, InputError, VsslrtError, missing_extra
from vsslrt.pipeline.bench import start_run
from vsslrt.pipeline.runlock import RunLock
from vsslrt.pipeline.latency import latency_summary
from vsslrt.pipeline.plan import plan_engine
from vsslrt.pipeline.results import BenchSettings, EngineResult, Progress, ShardResult
from vsslrt.pipeline.runfolder import write_run_folder
from vsslrt.pipeline.states import concat_timings, join_states, split_states
from vsslrt.data import load_dataset
from vsslrt.files import sha256_file
from vsslrt.manifest import Manifest
from vsslrt.pipeline.bench import EngineSession
from vsslrt.pipeline.multisource import prepare_duets
from vsslrt.pipeline.runstore import PartLog
from vsslrt.pipeline.examples import write_failure_views

#: `--ray` without an address: start a local Ray instance (or use the one this process already runs).
LOCAL = "local"
#: Blocks per actor when the block size is not given: enough to balance uneven blocks.
BLOCKS_PER_ACTOR = 4


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate extra of ray
    except ImportError as exc:
        raise missing_extra("ray", "dist", "run the benchmark on a Ray cluster (--ray)") from exc
    return ray


# ------------------------------------------------------------------------------------------------
# Entry point


def run_bench_ray(
    engines: Sequence[str | Path],
    settings: BenchSettings,
    out: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> list[EngineResult]:
    """Run the benchmark of each engine on Ray and write the run folder of a single-process run.

    Every node must see the engine folders and the dataset at the same paths (a shared file
    system) and have vsslrt installed.

    Args:
        engines: Engine folders.
        settings: What to run (as for `vsslrt.pipeline.bench.run_bench`).
        out: The run folder (written by the driver only).
        address: A Ray cluster address ("auto", "HOST:6379", "ray://HOST:10001"); None or "local"
            starts a local instance, or uses the one this process is already connected to.
        num_cpus: CPUs of a local instance started here. Defaults to the machine's.
        actors: Actors per engine. Defaults to the cluster's GPUs (GPU backends) or its CPUs
            divided by `cpus_per_actor`.
        cpus_per_actor: CPUs reserved per actor (its data-loading threads, and ONNX Runtime
            threads on CPU backends). Defaults to 1 for CPU actors, and the CPUs per GPU less
            one for GPU actors.
        block_size: Samples per block, a multiple of `settings.batch`. Defaults to about
            4 blocks per actor.
        progress: Called with (engine name, samples done, samples total) as blocks finish.
        resume: Continue an interrupted Ray run in `out` (its settings must match).

    Returns:
        One result per engine; the metrics equal those of `run_bench` on the same settings.

    Raises:
        BackendUnavailableError: Ray is not installed, or the cluster lacks the GPUs the backend needs.
        InputError: Bad settings or block size.
    """
    ray = _import_ray()
    out = Path(out)
    for name, value in (("num_cpus", num_cpus), ("actors", actors), ("cpus_per_actor", cpus_per_actor),
                        ("block_size", block_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"ray: expected {name} to be an integer >= 1, got {value!r}.")
    if block_size is not None and block_size % settings.batch:
        raise InputError(
            f"ray: expected the block size to be a multiple of the batch size {settings.batch}, got {block_size}.",
            hint="blocks of whole batches feed the encoders the batches of a single-process run",
        )
    with RunLock(out):  # one writer per run folder, as for a single-process run
        run = start_run(engines, settings, out, resume=resume)
        started = connect(address, num_cpus=num_cpus)
        try:
            results = [
                _run_engine(ray, Path(engine), run.dataset, run.indices, settings, out=out, resume=resume,
                            actors=actors, cpus_per_actor=cpus_per_actor, block_size=block_size, progress=progress,
                            left_out=run.skipped)
                for engine in engines
            ]
        finally:
            if started:
                ray.shutdown()
        write_run_folder(out, results, settings, run.dataset, run.info)
    return results


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray.

    Args:
        address: None or "local": use the instance this process is connected to, else the one in
            RAY_ADDRESS, else start a local one. Anything else is a cluster address for `ray.init`.
        num_cpus: CPUs of a local instance started here (None: the machine's).

    Returns:
        True when this call connected (the caller shuts Ray down when done), False when this
        process was already connected.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    # Worker output is not forwarded: the driver's stdout may carry JSON; worker logs stay in
    # Ray's session folder, and errors come back as exceptions.
    if address in (None, LOCAL) and not os.environ.get("RAY_ADDRESS"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=None if address in (None, LOCAL) else address, log_to_driver=False)
    return True


# ------------------------------------------------------------------------------------------------
# Driver side of one engine


def ray_identity(folder: Path, settings: BenchSettings, n_samples: int) -> dict[str, Any]:
    """What resuming a Ray run must match: the engine's manifest and every setting that changes the
    numbers (not the data workers or threads, which do not)."""

    chosen = {k: v for k, v in asdict(settings).items() if k not in ("workers", "threads")}
    chosen["data_dir"] = str(Path(settings.data_dir).resolve())
    return {
        "runner": "ray", "vsslrt": __version__, "engine": folder.name,
        "manifest_sha256": sha256_file(folder / "manifest.json"),
        "samples": n_samples, **json.loads(json.dumps(chosen, default=str)),
    }


def save_block(log: Any, shard: ShardResult) -> None:
    """Append one finished block to the engine's part log (`vsslrt.pipeline.runstore.PartLog`)."""
    log.append(join_states(shard.states), shard.done,
               {"skipped": shard.skipped, "timings": shard.timings, "backend": shard.backend,
                "precision": shard.precision, "use_ogl": shard.use_ogl})


def block_ranges(indices: Sequence[int], finished: set[int], block_size: int) -> list[tuple[int, int]]:
    """(start, stop) ranges of at most `block_size` samples covering the indices not yet finished.

    Each unfinished contiguous run is cut from its own start: after an interruption the runs begin
    at old block boundaries, so the new blocks still start at batch boundaries of the run.
    """
    ranges: list[tuple[int, int]] = []
    run: list[int] = []
    for i in list(indices) + [None]:  # a sentinel closes the last run
        if i is not None and i not in finished and (not run or i == run[-1] + 1):
            run.append(i)
            continue
        for k in range(0, len(run), block_size):
            piece = run[k : k + block_size]
            ranges.append((piece[0], piece[-1] + 1))
        run = [i] if i is not None and i not in finished else []
    return ranges


def _run_engine(ray, folder: Path, dataset, indices: list[int], settings: BenchSettings, *, out: Path, resume: bool,
                actors: int | None, cpus_per_actor: int | None, block_size: int | None,
                progress: Progress | None, left_out: Sequence[dict[str, Any]] = ()) -> EngineResult:

    # Verify on the driver first: a wrong folder fails here with one line, before any actor starts.
    manifest = Manifest.read(folder)
    manifest.verify_files(folder)
    log = PartLog(out / "shards" / folder.name, ray_identity(folder, settings, len(indices)))
    prior: list[ShardResult] = []
    if log.exists():
        if not resume:
            raise InputError(f"{out}: holds an interrupted run.", hint="add --resume to continue it")
        prior = [_shard_from_part(state, done, extra) for state, done, extra in log.load()]
    else:
        log.start()
    finished = {i for shard in prior for i in shard.done}

    backend = settings.backend or (manifest.backend or {}).get("backend", "ort")
    remaining = [i for i in indices if i not in finished]
    layout = plan_layout(max(len(remaining), 1), settings.batch, backend=backend, resources=ray.cluster_resources(),
                         actors=actors, cpus_per_actor=cpus_per_actor, block_size=block_size)
    blocks = list(enumerate(block_ranges(indices, finished, layout["block_size"])))
    t0 = time.perf_counter()
    received: dict[int, ShardResult] = {}
    if blocks:
        # Actors run the ONNX Runtime CPU graphs on their own CPUs only (results do not depend on it).
        worker_settings = replace(settings, workers=layout["cpus_per_actor"],
                                  threads=settings.threads or (None if layout["num_gpus"] else layout["cpus_per_actor"]))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own
        if hasattr(context, "print_on_execution_start"):
            context.print_on_execution_start = False
        rows = ray.data.from_items(
            [{"block": k, "start": start, "stop": stop} for k, (start, stop) in blocks],
            override_num_blocks=len(blocks),
        )
        shards = rows.map_batches(
            ShardWorker,
            fn_constructor_kwargs={"folder": str(folder), "settings": worker_settings},
            batch_size=1,  # one block per call: a block is already many batches of work
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=layout["actors"], max_tasks_in_flight_per_actor=1),
            num_cpus=layout["cpus_per_actor"],
            num_gpus=layout["num_gpus"],
        )
        for row in shards.iter_rows():
            shard = unpack_shard(row["state"], row["info"])  # raises an actor's vsslrt error
            # Saved as soon as it arrives: an interrupted run resumes from the blocks it received.
            save_block(log, shard)
            received[int(row["block"])] = shard
            if progress is not None:
                progress(folder.name, len(finished) + sum(len(s.done) for s in received.values()), len(indices))
    wall = time.perf_counter() - t0
    result = merge_shards(folder, manifest, settings, prior + [received[k] for k, _ in blocks],
                          distributed={**layout, "blocks": len(blocks), "resumed_blocks": len(prior), "wall_s": wall,
                                       "address": _cluster_address(ray)}, dataset=dataset, left_out=left_out)
    if settings.examples:

        # The actors' sessions are gone: the driver reopens the engine folder for the worst samples only.
        write_failure_views(out, folder, dataset, result.state, settings.examples, settings=settings)
    return result


def _shard_from_part(state: dict[str, np.ndarray], done: set[int], extra: dict[str, Any]) -> ShardResult:
    """A block saved in the part log, as the ShardResult it was."""
    return ShardResult(states=split_states(state), done=sorted(done), skipped=extra.get("skipped", []),
                       timings=extra.get("timings", {}), backend=extra["backend"], precision=extra["precision"],
                       use_ogl=bool(extra["use_ogl"]))


def plan_layout(n_samples: int, batch: int, *, backend: str, resources: dict[str, float], actors: int | None = None,
                cpus_per_actor: int | None = None, block_size: int | None = None) -> dict[str, Any]:
    """Actors, their resources and the block size of one engine's run on a cluster.

    Args:
        n_samples: Samples in the run.
        batch: The run's batch size (blocks are whole batches).
        backend: The engine's backend; GPU backends get one GPU per actor.
        resources: `ray.cluster_resources()`.
        actors, cpus_per_actor, block_size: Explicit choices (see `run_bench_ray`).

    Returns:
        {"actors", "cpus_per_actor", "num_gpus" (per actor), "block_size"}.

    Raises:
        BackendUnavailableError: A GPU backend on a cluster without GPUs.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    needs_gpu = backends.get(backend).needs_gpu  # its actors ask Ray for one GPU each
    if needs_gpu and gpus < 1:
        raise BackendUnavailableError(
            f"ray: expected at least one GPU in the cluster for backend {backend}, got none.",
            hint="start the Ray nodes on GPU machines, or pass --backend ort to run the ONNX graphs on CPU actors",
        )
    if cpus_per_actor is None:
        cpus_per_actor = max(1, cpus // gpus - 1) if needs_gpu else 1
    if actors is None:
        actors = gpus if needs_gpu else max(1, cpus // cpus_per_actor)
    n_batches = math.ceil(n_samples / batch)
    if block_size is None:
        block_size = batch * max(1, math.ceil(n_batches / (BLOCKS_PER_ACTOR * actors)))
    n_blocks = math.ceil(n_samples / block_size)
    return {"actors": max(1, min(actors, n_blocks)), "cpus_per_actor": cpus_per_actor,
            "num_gpus": 1 if needs_gpu else 0, "block_size": block_size}


def merge_shards(folder: Path, manifest, settings: BenchSettings, shards: Sequence[ShardResult], *,
                 distributed: dict[str, Any] | None = None, dataset: Any = None,
                 left_out: Sequence[dict[str, Any]] = ()) -> EngineResult:
    """Merge the shards of one engine (in block order) into the result of the whole run.

    Args:
        folder: The engine folder.
        manifest: Its manifest.
        settings: The run's settings.
        shards: Every block's result.
        distributed: Facts about the execution (actors, blocks, wall time) for latency.json.
        dataset: The run's dataset (loaded from the settings by default, as the actors load it):
            the protocol presets are resolved against it as the actors resolved them.
        left_out: The samples the driver left out before the first block (--skip-bad), listed
            first among the skipped ones, as a single-process run lists them.
    """
    if not shards:
        raise InputError(f"{folder.name}: expected at least one block of samples, got none.")
    ran_with = {(s.backend, s.precision, s.use_ogl) for s in shards}
    if len(ran_with) != 1:
        raise InputError(f"{folder.name}: expected every actor to run one configuration, got {sorted(ran_with)}.",
                         hint="give every node the same vsslrt install and engine folder")
    backend, precision, use_ogl = ran_with.pop()
    if dataset is None:
        dataset = run_dataset(settings)
    plan = plan_engine(folder, settings, manifest, backend=backend, precision=precision, use_ogl=use_ogl,
                       dataset=dataset)
    evaluators = plan.new_evaluators(settings)
    for shard in shards:
        for key, state in shard.states.items():
            evaluators[key].merge(state)
    skipped = list(left_out) + [s for shard in shards for s in shard.skipped]
    timings = concat_timings([s.timings for s in shards])
    latency = latency_summary(timings, settings.effective_repeats, backend, precision, settings.protocol)
    if distributed is not None:
        wall = float(distributed["wall_s"])
        samples = latency["samples"]
        # On a cluster the per-batch times add up over actors that ran in parallel: the rate the
        # user gets is the driver's wall-clock rate.
        latency["what"] = ("per-batch times summed over the actors; samples_per_s and maps_per_s are wall-clock "
                           "rates of the distributed run")
        latency["busy_s"] = latency["total_s"]
        latency["total_s"] = wall
        latency["samples_per_s"] = samples / wall if wall > 0 else None
        latency["maps_per_s"] = 4 * settings.effective_repeats * samples / wall if wall > 0 else None
        latency["distributed"] = {"engine": "ray", **distributed}
    n_samples = len({i for shard in shards for i in shard.done})
    return plan.result(evaluators, skipped, timings, settings, latency=latency,
                       identity=plan.identity(settings, n_samples))


def run_dataset(settings: BenchSettings) -> Any:
    """The dataset as the driver's `start_run` read it, for an actor or the merge.

    Not validated again: the driver validated it and, with --skip-bad, gave the actors only the
    samples it kept (a bad file elsewhere in the set must not stop them); duet rows naming unknown
    clips are left out exactly as the driver left them out.
    """
    dataset = load_dataset(settings.dataset, settings.data_dir, validate=False, **settings.metadata)
    return prepare_duets(dataset, settings.skip_bad)


def _cluster_address(ray) -> str | None:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - informational only
        return None


# ------------------------------------------------------------------------------------------------
# Actor side


class ShardWorker:
    """A Ray Data actor: one engine session, opened once, evaluating blocks of sample indices.

    Args:
        folder: The engine folder (the same path on every node).
        settings: The run's settings (the dataset is loaded from them on the actor).
    """

    def __init__(self, folder: str, settings: BenchSettings) -> None:

        # A user error (unreadable file, missing backend on this node) travels back in the output
        # rows, so that the driver raises it as it is rather than as Ray's wrapper around it.
        self.session = None
        self.error: VsslrtError | None = None
        try:
            self.session = EngineSession(folder, run_dataset(settings), settings)
        except VsslrtError as exc:
            self.error = exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{"block", "start", "stop"} rows -> {"block", "state", "info"} rows, one per block."""
        blocks, states, infos = [], [], []
        for block, start, stop in zip(batch["block"], batch["start"], batch["stop"]):
            try:
                if self.error is not None:
                    raise self.error
                state, info = pack_shard(self.session.run_shard(range(int(start), int(stop))))
            except VsslrtError as exc:
                state, info = b"", json.dumps({"error": {"type": type(exc).__name__, "message": exc.message,
                                                         "hint": exc.hint}})
            blocks.append(int(block))
            states.append(state)
            infos.append(info)
        return {"block": np.array(blocks, dtype=np.int64), "state": np.array(states, dtype=object),
                "info": np.array(infos, dtype=object)}


def pack_shard(shard: ShardResult) -> tuple[bytes, str]:
    """A shard as (npz bytes of its evaluator states, JSON of everything else)."""
    buffer = io.BytesIO()
    np.savez(buffer, **join_states(shard.states))
    info = {"done": shard.done, "skipped": shard.skipped, "timings": shard.timings, "backend": shard.backend,
            "precision": shard.precision, "use_ogl": shard.use_ogl}
    return buffer.getvalue(), json.dumps(info, default=_plain)


def unpack_shard(state: bytes, info: str) -> ShardResult:
    """The inverse of `pack_shard`.

    Raises:
        VsslrtError: The error the actor met on this block (same class, message and hint).
    """
    meta = json.loads(str(info))
    if "error" in meta:
        error = meta["error"]
        cls = getattr(errors, error["type"], VsslrtError)
        cls = cls if isinstance(cls, type) and issubclass(cls, VsslrtError) else VsslrtError
        raise cls(error["message"], hint=error["hint"])
    with np.load(io.BytesIO(bytes(state)), allow_pickle=False) as npz:
        flat = {k: npz[k] for k in npz.files}
    return ShardResult(states=split_states(flat), done=[int(i) for i in meta["done"]], skipped=meta["skipped"],
                       timings=meta["timings"], backend=meta["backend"], precision=meta["precision"],
                       use_ogl=bool(meta["use_ogl"]))


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
