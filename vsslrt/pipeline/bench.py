"""The positive/negative benchmark: data -> encoders -> maps -> evaluator, resumable.

One run, per engine folder (DESIGN.md, Pipeline):

* the visual encoder runs once per image;
* the audio encoder runs once per distinct clip: in fixed mode an offscreen clip is another test
  clip whose input equals its positive input, so its embedding is computed once and serves both
  roles (an audio pass over every needed clip comes first, in fixed chunks, so that a resumed run
  computes bit-identical embeddings); in paper mode the offscreen input differs (Q8/Q9) and is
  encoded per sample;
* silence is one constant input per front-end and mode: its embedding is computed once per run;
* noise is drawn per sample and repetition from a seeded generator, or, with `noise_bank=K`, from
  a fixed bank of K noise inputs encoded once (a documented deviation that makes a sample cost one
  visual and one audio pass);
* the four maps of a batch come from one batched contraction (`vsslrt.head`), and the evaluator
  consumes them where they live (NumPy here, CuPy on a GPU);
* audio-agnostic baselines (centre prior, whole image, random map, object saliency alone) are
  scored with the same evaluator settings, so the report can state the model's margin over them.

After every batch, that batch's evaluator states and finished sample ids are appended to the
engine's part log as one small file written atomically (`vsslrt.pipeline.runstore.PartLog`: constant cost per
batch); `resume=True` merges the parts and continues, ending with the numbers an uninterrupted run
gives. A finished run keeps one consolidated state per engine (`shards/<engine>/checkpoint.npz`).

The per-engine work on a shard of sample indices (`EngineSession.run_shard`) writes nothing and
returns mergeable evaluator states: the single-process run above is one shard per engine, and
`vsslrt.pipeline.distributed` runs many shards on Ray actors and merges their states on the driver.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt import __version__
from vsslrt.pipeline.baselines import baseline_maps
from vsslrt.errors import DataError, InputError
from vsslrt.files import atomic_savez, atomic_write_json, atomic_write_text, sha256_file
from vsslrt.pipeline.runstore import PartLog, ShardCheckpoint

CONDITIONS = ("pos", "silence", "noise", "offscreen")
NEGATIVES = ("silence", "noise", "offscreen")
BASELINE_NAMES = ("centre", "whole", "random", "objectness")
NOISE_BANK_INDEX = 1 << 40  # noise bank entries use sample indices no dataset reaches


@dataclass
class BenchSettings:
    """What to run; the CLI fills this from its options.

    Attributes:
        dataset: "vggss", "is3", "flickr" or "manifest".
        data_dir: The dataset folder.
        protocol: "fixed" (default) or "paper".
        repeats: Negative sets per sample (None: 1 in fixed mode, 10 in paper mode, like the paper).
        seed: The run seed (negatives of sample i, repetition r depend on (seed, r, i) only).
        thresholds: Universal thresholds by name; None takes the engine's (manifest) thresholds.
        fixed: The fixed threshold.
        interp: Upsampling of the maps; None: bilinear (paper mode: the model's reference choice per dataset).
        batch: Samples per batch.
        limit: Evaluate only the first `limit` samples.
        noise_bank: 0 for per-sample noise; K > 0 for a fixed bank of K noise inputs (deviation).
        workers: Background data workers.
        skip_bad: Skip samples with unreadable files (counted in the report) instead of failing.
        ogl: Compute object-guided (OGL) metrics when the engine folder has an object graph.
        baselines: Score the audio-agnostic baselines too.
        sweep_points: Candidate thresholds for the calibration sweep and its plot.
        backend, precision, threads: Passed to `vsslrt.pipeline.encoders.open_encoders`.
        metadata: Extra `load_dataset` arguments (metadata_dir, annotation_file, ...).
    """

    dataset: str
    data_dir: Path
    protocol: str = "fixed"
    repeats: int | None = None
    seed: int = 0
    thresholds: dict[str, float] | None = None
    fixed: float = 0.5
    interp: str | None = None
    batch: int = 32
    limit: int | None = None
    noise_bank: int = 0
    workers: int = 2
    skip_bad: bool = False
    ogl: bool = True
    baselines: bool = True
    sweep_points: int = 101
    backend: str | None = None
    precision: str | None = None
    threads: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_repeats(self) -> int:
        return self.repeats if self.repeats is not None else (10 if self.protocol == "paper" else 1)


@dataclass
class EngineResult:
    """Everything one engine produced in a run."""

    name: str
    model: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    thresholds: dict[str, dict[str, Any]]
    calibration: dict[str, dict[str, Any]]
    max_values: dict[str, np.ndarray]
    sweep: dict[str, np.ndarray] | None
    latency: dict[str, Any]
    n_samples: int
    skipped: list[dict[str, Any]]
    manifest: dict[str, Any]
    state: dict[str, np.ndarray] | None = None  # every evaluator's state, "<evaluator>/<array>"
    identity: dict[str, Any] | None = None  # the run identity the state belongs to


Progress = Callable[[str, int, int], None]  # (engine name, samples done, samples total)


# ------------------------------------------------------------------------------------------------
# Entry point


def run_bench(
    engines: Sequence[str | Path],
    settings: BenchSettings,
    out: str | Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    stop_after_batches: int | None = None,
) -> list[EngineResult]:
    """Run the benchmark for each engine folder and write the run folder.

    Args:
        engines: Engine folders (`vsslrt export` / `vsslrt build` output).
        settings: What to run.
        out: The run folder.
        resume: Continue an interrupted run in `out` (its settings must match).
        progress: Called after every batch.
        stop_after_batches: Stop (as if interrupted) after this many batches per engine; for tests.

    Returns:
        One result per engine (also written to `out`).
    """
    out = Path(out)
    dataset, indices = prepare_run(engines, settings, out, resume=resume)
    results = []
    for engine in engines:
        result = _run_engine(Path(engine), dataset, indices, settings, out, resume, progress, stop_after_batches)
        if result is None:  # stopped early (tests)
            return results
        results.append(result)
    write_run_folder(out, results, settings, dataset)
    return results


def prepare_run(engines: Sequence[str | Path], settings: BenchSettings, out: Path, *, resume: bool) -> tuple[Any, list[int]]:
    """Check the engines, the settings and the run folder; load the dataset.

    Returns:
        The dataset and the sample indices of the run (the first `settings.limit` of the dataset).
    """
    from vsslrt.data import load_dataset

    if not engines:
        raise InputError("bench: expected at least one --engine folder, got none.")
    if out.exists() and any(out.iterdir()) and not resume and (out / "metrics.json").exists():
        raise InputError(
            f"{out}: expected an empty or new run folder, got a finished run.",
            hint="choose another --out folder, or delete this one",
        )
    if out.exists() and not resume and (out / "shards").exists():
        raise InputError(
            f"{out}: holds an interrupted run.",
            hint="add --resume to continue it, or choose another --out folder",
        )
    _check_settings(settings)
    dataset = load_dataset(settings.dataset, settings.data_dir, **settings.metadata)
    indices = list(range(len(dataset)))
    if settings.limit is not None:
        indices = indices[: settings.limit]
    if not indices:
        raise InputError(f"{settings.data_dir}: expected at least one sample, got an empty dataset.")
    names = [Path(e).name or str(e) for e in engines]
    if len(set(names)) != len(names):
        raise InputError(f"engines: expected folders with distinct names, got {names}.",
                         hint="each engine's results are stored under its folder name")
    return dataset, indices


def _check_settings(s: BenchSettings) -> None:
    if s.protocol not in ("fixed", "paper"):
        raise InputError(f"protocol: expected 'fixed' or 'paper', got {s.protocol!r}.")
    for name, value, low in (("batch", s.batch, 1), ("repeats", s.effective_repeats, 1), ("noise bank", s.noise_bank, 0),
                             ("seed", s.seed, 0), ("workers", s.workers, 0), ("sweep points", s.sweep_points, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"{name}: expected an integer >= {low}, got {value!r}.")
    if s.limit is not None and s.limit < 1:
        raise InputError(f"limit: expected an integer >= 1, got {s.limit!r}.")


# ------------------------------------------------------------------------------------------------
# One engine: its plan (host only), a session (open encoders) and shards of sample indices


@dataclass
class EnginePlan:
    """How one engine is evaluated, from its manifest and the settings alone (no encoders needed).

    A single-process run and a distributed driver build the same plan, so both create evaluators
    with the same configuration and turn the merged evaluator state into the same `EngineResult`.
    """

    folder: Path
    manifest: Any
    backend: str
    precision: str
    use_ogl: bool
    thresholds: dict[str, dict[str, Any]]
    interp: str
    value_range: tuple[float, float]
    sweep: np.ndarray
    baseline_names: list[str]
    manifest_sha256: str

    @property
    def name(self) -> str:
        return self.folder.name

    def new_evaluators(self, settings: BenchSettings) -> dict[str, Any]:
        """Empty evaluators: "model", and "baseline:<name>" for each scored baseline."""
        from vsslrt.eval import Evaluator

        def new(sweep: Any) -> Any:
            return Evaluator(protocol=settings.protocol, thresholds={k: v["value"] for k, v in self.thresholds.items()},
                             fixed=settings.fixed, interp=self.interp, sweep=sweep)

        # Only the model's evaluator keeps the calibration sweep (per-sample values at every candidate
        # threshold); the baselines are scored at the run's thresholds, which keeps their state small.
        return {"model": new(self.sweep), **{f"baseline:{b}": new(None) for b in self.baseline_names}}

    def identity(self, settings: BenchSettings, n_samples: int) -> dict[str, Any]:
        """What a resume checkpoint must match: every setting that changes the numbers."""
        return {
            "vsslrt": __version__, "engine": self.name, "manifest_sha256": self.manifest_sha256,
            "dataset": settings.dataset, "data_dir": str(Path(settings.data_dir).resolve()), "samples": n_samples,
            "protocol": settings.protocol, "repeats": settings.effective_repeats, "seed": settings.seed,
            "thresholds": self.thresholds, "fixed": settings.fixed, "interp": self.interp, "batch": settings.batch,
            "noise_bank": settings.noise_bank, "ogl": self.use_ogl, "baselines": self.baseline_names,
            "backend": self.backend, "precision": self.precision, "sweep_points": settings.sweep_points,
        }

    def result(self, evaluators: dict[str, Any], skipped: list[dict[str, Any]], timings: dict[str, list[float]],
               settings: BenchSettings, latency: dict[str, Any] | None = None,
               identity: dict[str, Any] | None = None) -> EngineResult:
        """Metrics, baselines, calibration and latency from the (merged) evaluators of the whole run.

        Args:
            latency: The latency block; defaults to the per-batch summary of `timings`.
            identity: The run identity (`identity()`), stored with the final state in the run folder.
        """
        model_ev = evaluators["model"]
        if len(model_ev) == 0:
            raise DataError(f"{settings.data_dir}: no sample could be evaluated ({len(skipped)} skipped).",
                            hint="run without --skip-bad to see the first error")
        repeats = settings.effective_repeats
        metrics = model_ev.compute()
        base_metrics = {k.split(":", 1)[1]: ev.compute() for k, ev in evaluators.items() if k != "model"}
        calibration, sweep_curves = _calibrate(model_ev)
        if latency is None:
            latency = latency_summary(timings, repeats, self.backend, self.precision, settings.protocol)
        manifest = self.manifest
        return EngineResult(
            name=self.name, model=manifest.model, metrics=metrics, baselines=base_metrics,
            thresholds=self.thresholds, calibration=calibration, max_values=model_ev.max_values(), sweep=sweep_curves,
            latency=latency, n_samples=len(model_ev) // repeats, skipped=skipped,
            manifest={"model": manifest.model, "frontend": manifest.frontend, "backend": self.backend,
                      "precision": self.precision, "checkpoint": manifest.checkpoint.label,
                      "sha256": self.manifest_sha256, "ogl": self.use_ogl, "interp": self.interp},
            state=join_states({k: ev.state() for k, ev in evaluators.items()}),
            identity=identity,
        )


def plan_engine(folder: Path, settings: BenchSettings, manifest, *, backend: str, precision: str,
                use_ogl: bool) -> EnginePlan:
    """The plan of one engine folder for these settings.

    Args:
        folder: The engine folder.
        settings: What to run.
        manifest: The folder's (verified) manifest.
        backend, precision: What the encoders run with (as resolved by `open_encoders`).
        use_ogl: Whether the object-saliency graph is opened (OGL metrics and the objectness baseline).
    """
    from vsslrt.eval.calibration import candidate_grid

    value_range = (manifest.head.offset - manifest.head.scale, manifest.head.offset + manifest.head.scale)
    return EnginePlan(
        folder=Path(folder), manifest=manifest, backend=backend, precision=precision, use_ogl=use_ogl,
        thresholds=_thresholds(settings, manifest), interp=settings.interp or _default_interp(settings, manifest),
        value_range=value_range, sweep=candidate_grid(value_range, settings.sweep_points),
        baseline_names=[b for b in BASELINE_NAMES if settings.baselines and (b != "objectness" or use_ogl)],
        manifest_sha256=_manifest_hash(Path(folder)),
    )


@dataclass
class ShardResult:
    """What one engine produced on a shard of sample indices: host data only, nothing written.

    Attributes:
        states: `Evaluator.state()` by evaluator ("model", "baseline:<name>"); mergeable, because
            sample ids are global (repetition * len(dataset) + index).
        done: Sample indices finished (evaluated or skipped), ascending.
        skipped: Skipped samples (index, name, file, reason), in batch order.
        timings: Per-batch stage times in seconds by stage, and "setup_s".
        backend, precision, use_ogl: What the encoders ran with.
        stopped: True when `on_batch` asked to stop before the shard's end.
    """

    states: dict[str, dict[str, np.ndarray]]
    done: list[int]
    skipped: list[dict[str, Any]]
    timings: dict[str, list[float]]
    backend: str
    precision: str
    use_ogl: bool
    stopped: bool = False


# on_batch(batch_evaluators, batch_done, batch_skipped, batch_timings) after every batch of a shard,
# with what THAT batch added (its own evaluators hold only its samples); True stops the shard.
BatchHook = Callable[[dict[str, Any], set[int], list[dict[str, Any]], dict[str, list[float]]], bool]


class EngineSession:
    """One engine folder opened for a benchmark, reusable for any number of shards.

    Opening verifies the folder and activates the encoders once; a Ray actor holds one session for
    its lifetime, a single-process run one per engine.

    Args:
        folder: The engine folder.
        dataset: The loaded dataset.
        settings: What to run.
    """

    def __init__(self, folder: str | Path, dataset, settings: BenchSettings) -> None:
        from vsslrt.data import get_frontend
        from vsslrt.pipeline.encoders import open_encoders

        self.folder = Path(folder)
        self.dataset = dataset
        self.settings = settings
        self.encoders = open_encoders(self.folder, backend=settings.backend, precision=settings.precision,
                                      threads=settings.threads, with_object=settings.ogl)
        try:
            self.spec = get_frontend(self.encoders.manifest.frontend)
            self.plan = plan_engine(self.folder, settings, self.encoders.manifest, backend=self.encoders.backend,
                                    precision=self.encoders.precision, use_ogl=self.encoders.objectness is not None)
        except BaseException:
            self.encoders.close()
            raise

    def close(self) -> None:
        self.encoders.close()

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_shard(self, indices: Sequence[int], *, evaluators: dict[str, Any] | None = None,
                  on_batch: BatchHook | None = None) -> ShardResult:
        """Front-ends, encoders, maps and evaluator updates for a shard of sample indices.

        The shard is cut into batches of `settings.batch` from its first index; a shard that starts
        at a batch boundary of the run therefore feeds the encoders the same batches as a single
        pass over the run.

        Args:
            indices: Dataset indices, in order.
            evaluators: Evaluators to update (a resumed run's); new ones by default.
            on_batch: Called after every batch with that batch's own evaluators (only its samples;
                they are merged into the running ones afterwards), finished ids, skipped samples and
                timings; returning True stops the shard there.

        Returns:
            The shard's evaluator states, finished and skipped samples, and timings.
        """
        from vsslrt.data import BatchLoader
        from vsslrt.head import similarity_maps_multi

        settings, dataset, encoders, spec, plan = self.settings, self.dataset, self.encoders, self.spec, self.plan
        mode = settings.protocol
        repeats = settings.effective_repeats
        evaluators = plan.new_evaluators(settings) if evaluators is None else evaluators
        todo = [int(i) for i in indices]
        done: set[int] = set()
        skipped: list[dict[str, Any]] = []
        timings: dict[str, list[float]] = {}

        def finish(stopped: bool) -> ShardResult:
            return ShardResult(states={k: ev.state() for k, ev in evaluators.items()}, done=sorted(done),
                               skipped=skipped, timings=timings, backend=plan.backend, precision=plan.precision,
                               use_ogl=plan.use_ogl, stopped=stopped)

        loader_reuse = mode == "fixed" and spec.offscreen_matches_positive(mode)
        loader = BatchLoader(
            dataset, spec, mode=mode, batch_size=settings.batch, repeats=repeats, run_seed=settings.seed,
            indices=todo, workers=settings.workers, skip_bad=settings.skip_bad,
            offscreen_inputs=True, noise_inputs=settings.noise_bank == 0,
        ) if todo else None
        reuse = loader is not None and loader_reuse and bool(np.all(loader.offscreen_indices >= 0))
        if loader is not None and reuse:
            loader.offscreen_inputs = False  # the audio pass below provides offscreen embeddings

        t0 = time.perf_counter()
        silence_emb = encoders.embed_audio(_silence(spec, mode)[None])
        audio_cache: dict[int, Any] = {}
        failed_clips: dict[int, str] = {}
        if reuse:
            needed = sorted(set(todo) | {int(i) for i in np.unique(loader.offscreen_indices)})
            audio_cache, failed_clips = _encode_clips(dataset, needed, spec, mode, encoders, settings)
        bank = _noise_bank(spec, mode, settings, encoders) if settings.noise_bank else None
        _add_time(timings, "setup_s", time.perf_counter() - t0)

        if loader is None:
            return finish(False)
        iterator = iter(loader)
        while True:
            t_wait = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            t_ready = time.perf_counter()
            batch_skipped: list[dict[str, Any]] = []
            batch_timings: dict[str, list[float]] = {}
            keep = _usable(batch, reuse, failed_clips, settings.skip_bad, batch_skipped, dataset)
            # Each batch is measured into fresh evaluators, then merged: the hook can persist exactly
            # this batch's state (constant cost per checkpoint), and merging is exact.
            batch_evaluators = plan.new_evaluators(settings)
            if keep is not None and len(keep):
                stage = _process_batch(batch, keep, encoders, spec, mode, repeats, settings, reuse, audio_cache,
                                       silence_emb, bank, batch_evaluators, plan.baseline_names, plan.value_range,
                                       len(dataset), similarity_maps_multi)
                stage["frontend_wait"] = t_ready - t_wait
                stage["batch_size"] = float(len(keep))
                for k, v in stage.items():
                    _add_time(batch_timings, k, v)
            batch_skipped.extend(asdict(s) for s in batch.skipped)
            batch_done = {int(i) for i in batch.indices} | {s.index for s in batch.skipped}
            for key, ev in batch_evaluators.items():
                evaluators[key].merge(ev)
            skipped.extend(batch_skipped)
            done |= batch_done
            for k, v in batch_timings.items():
                timings.setdefault(k, []).extend(v)
            if on_batch is not None and on_batch(batch_evaluators, batch_done, batch_skipped, batch_timings):
                return finish(True)
        # Samples dropped at whole-batch level (every sample unreadable) are in loader.skipped too.
        known = {s["index"] for s in skipped}
        skipped.extend(asdict(s) for s in loader.skipped if s.index not in known)
        done |= {s.index for s in loader.skipped}
        return finish(False)


def _run_engine(folder, dataset, indices, settings, out, resume, progress, stop_after_batches) -> EngineResult | None:
    """One engine over the whole run in this process, each finished batch appended to the part log."""
    with EngineSession(folder, dataset, settings) as session:
        plan = session.plan
        evaluators = plan.new_evaluators(settings)
        identity = plan.identity(settings, len(indices))
        log = PartLog(out / "shards" / folder.name, identity)
        prior_done: set[int] = set()
        prior_skipped: list[dict[str, Any]] = []
        prior_timings: list[dict[str, list[float]]] = []
        if log.exists():
            if not resume:
                raise InputError(f"{out}: holds an interrupted run.", hint="add --resume to continue it")
            for state, done, extra in log.load():
                for key, part in split_states(state).items():
                    if key in evaluators:
                        evaluators[key].merge(part)
                prior_done |= done
                prior_skipped += extra.get("skipped", [])
                prior_timings.append(extra.get("timings", {}))
        else:
            log.start()

        # Batch layout of the whole run; a resumed run continues at a batch boundary.
        batches = [indices[i : i + settings.batch] for i in range(0, len(indices), settings.batch)]
        todo = [i for b in batches if not set(b) <= prior_done for i in b]
        batches_run = 0
        finished = set(prior_done)

        def on_batch(batch_evaluators, batch_done, batch_skipped, batch_timings) -> bool:
            nonlocal batches_run
            log.append(join_states({k: ev.state() for k, ev in batch_evaluators.items()}), batch_done,
                       {"skipped": batch_skipped, "timings": batch_timings})
            finished.update(batch_done)
            batches_run += 1
            if progress is not None:
                progress(folder.name, len(finished), len(indices))
            return stop_after_batches is not None and batches_run >= stop_after_batches

        shard = session.run_shard(todo, evaluators=evaluators, on_batch=on_batch)
        if shard.stopped:
            return None
        return plan.result(evaluators, prior_skipped + shard.skipped, concat_timings([*prior_timings, shard.timings]),
                           settings, identity=identity)


def join_states(states: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{evaluator: state} -> one flat mapping "<evaluator>/<array>" (the checkpoint layout)."""
    return {f"{key}/{name}": value for key, state in states.items() for name, value in state.items()}


def split_states(flat: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of `join_states`."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, value in flat.items():
        key, _, array = name.partition("/")
        out.setdefault(key, {})[array] = value
    return out


def concat_timings(parts: Sequence[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per-stage time lists of several shards (or of a resumed run), in the given order."""
    out: dict[str, list[float]] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).extend(float(v) for v in values)
    return out


def _process_batch(batch, keep, encoders, spec, mode, repeats, settings, reuse, audio_cache, silence_emb, bank,
                   evaluators, baseline_names, value_range, n_dataset, contract) -> dict[str, float]:
    """Encoders + maps + evaluator update for one batch; returns stage times in seconds."""
    times: dict[str, float] = {}
    clock = time.perf_counter
    idx = batch.indices[keep]
    images = np.ascontiguousarray(batch.images[keep])
    gt = batch.gt[keep]
    groups = batch.groups[keep]

    t = clock()
    visual = encoders.embed_images(images)
    times["visual_encoder"] = clock() - t
    obj = None
    if encoders.objectness is not None:
        t = clock()
        obj = encoders.object_maps(images)
        times["object_encoder"] = clock() - t

    t = clock()
    if reuse:
        pos_emb = np.stack([audio_cache[int(i)] for i in idx])
    else:
        pos_emb = encoders.embed_audio(np.ascontiguousarray(batch.positive[keep]))
    times["audio_encoder"] = clock() - t

    for r in range(repeats):
        t = clock()
        if reuse:
            off_emb = np.stack([audio_cache[int(j)] for j in batch.offscreen_index[r][keep]])
        else:
            off_emb = encoders.embed_audio(np.ascontiguousarray(batch.offscreen[r][keep]))
        if bank is None:
            noise_emb = encoders.embed_audio(np.ascontiguousarray(batch.noise[r][keep]))
        else:
            noise_emb = bank[_bank_choice(settings.seed, r, idx, len(bank))]
        times["audio_encoder"] = times.get("audio_encoder", 0.0) + clock() - t

        t = clock()
        maps = contract(visual, [pos_emb, silence_emb, noise_emb, off_emb], encoders.manifest.head)
        times["head"] = times.get("head", 0.0) + clock() - t

        t = clock()
        sample_ids = r * n_dataset + idx
        evaluators["model"].update(maps[0], maps[1], maps[2], maps[3], gt, obj=obj, group=groups,
                                   sample_ids=sample_ids)
        times["evaluator"] = times.get("evaluator", 0.0) + clock() - t

        t = clock()
        h = int(maps.shape[-1])
        for name in baseline_names:
            base = baseline_maps(name, sample_ids=idx, size=h, value_range=value_range,
                                 obj_maps=None if obj is None else np.asarray(obj), seed=settings.seed)
            evaluators[f"baseline:{name}"].update(base, base, base, base, gt, obj=obj, group=groups,
                                                  sample_ids=sample_ids)
        times["baselines"] = times.get("baselines", 0.0) + clock() - t
    return times


def _usable(batch, reuse, failed_clips, skip_bad, skipped, dataset) -> np.ndarray | None:
    """Rows of the batch whose offscreen clips could be encoded (only matters with reuse + skip_bad)."""
    if not reuse or not failed_clips:
        return np.arange(len(batch))
    bad = np.zeros(len(batch), dtype=bool)
    for r in range(batch.offscreen_index.shape[0]):
        bad |= np.isin(batch.offscreen_index[r], list(failed_clips))
    bad |= np.isin(batch.indices, list(failed_clips))
    for row in np.flatnonzero(bad):
        i = int(batch.indices[row])
        clip = i if i in failed_clips else next(int(j) for j in batch.offscreen_index[:, row] if int(j) in failed_clips)
        skipped.append({"index": i, "name": batch.names[row], "file": str(dataset[clip].audio),
                        "reason": failed_clips[clip]})
    return np.flatnonzero(~bad)


# ------------------------------------------------------------------------------------------------
# Audio: one embedding per clip, silence once, noise bank


def _encode_clips(dataset, indices, spec, mode, encoders, settings) -> tuple[dict[int, Any], dict[int, str]]:
    """Positive embeddings of the given clips, computed in fixed chunks (batch-size independent results).

    Decoding and front-ends run in a thread pool while the encoder runs; unreadable clips raise
    DataError, or with skip_bad are returned in the failure map.
    """
    chunks = [indices[i : i + settings.batch] for i in range(0, len(indices), settings.batch)]

    def prepare(chunk: list[int]) -> tuple[list[int], np.ndarray | None, dict[int, str]]:
        from vsslrt.data import prepare_signal, read_audio, spectrogram_inputs

        ok, signals, rates, failed = [], [], [], {}
        for i in chunk:
            try:
                sig, rate = prepare_signal(read_audio(dataset[i].audio), spec, mode=mode, role="positive",
                                           dataset_kind=dataset.kind)
            except DataError as exc:
                if not settings.skip_bad:
                    raise
                failed[i] = exc.one_line()
                continue
            ok.append(i)
            signals.append(sig)
            rates.append(rate)
        inputs = spectrogram_inputs(signals, spec, rates=rates) if signals else None
        return ok, inputs, failed

    cache: dict[int, Any] = {}
    failures: dict[int, str] = {}
    workers = max(1, settings.workers)
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsslrt-audio") as pool:
        pending = [pool.submit(prepare, c) for c in chunks[: workers + 1]]
        next_chunk = len(pending)
        while pending:
            ok, inputs, failed = pending.pop(0).result()
            if next_chunk < len(chunks):
                pending.append(pool.submit(prepare, chunks[next_chunk]))
                next_chunk += 1
            failures.update(failed)
            if inputs is not None:
                emb = encoders.embed_audio(inputs)
                for row, i in enumerate(ok):
                    cache[i] = emb[row]
    return cache, failures


def _silence(spec, mode) -> np.ndarray:
    from vsslrt.data import silence_input

    return np.ascontiguousarray(silence_input(spec, mode))


def _noise_bank(spec, mode, settings, encoders) -> Any:
    """K noise inputs drawn once from (seed, bank entry) and encoded once: (K, K_maps, C)."""
    from vsslrt.data import noise_signal, spectrogram_inputs

    signals = [noise_signal(spec, run_seed=settings.seed, repetition=0, index=NOISE_BANK_INDEX + k)
               for k in range(settings.noise_bank)]
    inputs = spectrogram_inputs(signals, spec, compress=spec.compresses_negatives(mode))
    return encoders.embed_audio(inputs)


def _bank_choice(seed: int, repetition: int, indices: np.ndarray, size: int) -> np.ndarray:
    """Which bank entry each sample uses: a per-sample draw, independent of batching."""
    return np.array([np.random.default_rng([seed, repetition, int(i), 2]).integers(size) for i in indices])


# ------------------------------------------------------------------------------------------------
# Thresholds, calibration, latency


def _thresholds(settings: BenchSettings, manifest) -> dict[str, dict[str, Any]]:
    if settings.thresholds is not None:
        chosen = {k: {"value": float(v), "provenance": "given on the command line"} for k, v in settings.thresholds.items()}
    else:
        chosen = {k: {"value": float(t.value), "provenance": t.provenance} for k, t in manifest.thresholds.items()}
    if settings.protocol == "paper":
        missing = [k for k in ("max", "max10", "maxq3") if k not in chosen]
        if missing:
            raise InputError(
                f"paper protocol: expected universal thresholds max, max10 and maxq3, got none for {', '.join(missing)}.",
                hint="pass --thresholds max=...,max10=...,maxq3=... (the engine's manifest has none)",
            )
    return chosen


def _default_interp(settings: BenchSettings, manifest) -> str:
    if settings.protocol == "paper":
        from vsslrt.models import REGISTRY

        spec = REGISTRY.get(manifest.model)
        if spec is not None:
            return spec.interp_paper.get(settings.dataset, "bilinear")
    return "bilinear"


def _calibrate(evaluator) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray] | None]:
    """Threshold candidates by the three rules of `vsslrt.eval.calibration`, with provenance."""
    from vsslrt.eval.calibration import (sweep_curves, threshold_balanced_accuracy, threshold_from_quantile,
                                         threshold_max_f)

    out: dict[str, dict[str, Any]] = {}
    rules = {
        "max_f": lambda: threshold_max_f(evaluator),
        "balanced_accuracy": lambda: threshold_balanced_accuracy(evaluator),
        "pos_q3": lambda: threshold_from_quantile(evaluator, "pos", 0.75, 1.0),
        "pos_median_x1.1": lambda: threshold_from_quantile(evaluator, "pos", 0.5, 1.1),
    }
    for name, rule in rules.items():
        try:
            t = rule()
        except InputError as exc:
            out[name] = {"value": None, "provenance": f"undefined: {exc.one_line()}"}
            continue
        out[name] = {"value": float(t.value), "provenance": t.provenance}
    try:
        curves = sweep_curves(evaluator)
    except InputError:
        curves = None
    return out, curves


def _add_time(timings: dict[str, list[float]], name: str, seconds: float) -> None:
    timings.setdefault(name, []).append(float(seconds))


def latency_summary(timings: dict[str, list[float]], repeats: int, backend: str, precision: str,
                    mode: str) -> dict[str, Any]:
    """Per-batch stage statistics of the run (milliseconds) and its throughput."""
    from vsslrt.engine.profiler import LatencyStats, environment_block

    sizes = timings.get("batch_size", [])
    stages = {k: LatencyStats.from_samples(v).to_json_ms() for k, v in timings.items()
              if k not in ("batch_size", "setup_s") and v}
    compute = [sum(timings[k][i] for k in timings if k not in ("batch_size", "setup_s") and i < len(timings[k]))
               for i in range(len(sizes))]
    samples = float(sum(sizes))
    wall = float(sum(compute)) + float(sum(timings.get("setup_s", [])))
    per_sample = [c / s for c, s in zip(compute, sizes) if s]
    return {
        "what": "per-batch times of the benchmark run, all four audio conditions per sample",
        "samples": samples,
        "repeats": repeats,
        "setup_s": float(sum(timings.get("setup_s", []))),
        "total_s": wall,
        "samples_per_s": samples / wall if wall > 0 else None,
        "maps_per_s": 4 * repeats * samples / wall if wall > 0 else None,
        "per_sample_ms": LatencyStats.from_samples(per_sample).to_json_ms() if per_sample else None,
        "stages_ms_per_batch": stages,
        "environment": environment_block(backend=backend, precision=precision, extra={"protocol": mode}),
    }


def _manifest_hash(folder: Path) -> str:
    return sha256_file(folder / "manifest.json")


# ------------------------------------------------------------------------------------------------
# Run folder


def headline_threshold(metrics: dict[str, float]) -> str:
    """The universal threshold the summary leads with: maxq3 when present, else the first universal one."""
    names = sorted({k.split("@", 1)[1] for k in metrics if k.startswith("pos/miou@")})
    for preferred in ("maxq3",):
        if preferred in names:
            return preferred
    universal = [n for n in names if n not in ("median", "adaptive", "fixed")]
    return universal[0] if universal else "fixed"


def summary_rows(result: EngineResult) -> list[tuple[str, str, str]]:
    """(metric, model value, margin over the best baseline) rows of the one-screen summary.

    Works for both protocols: paper-mode keys are mapped to the same quantities.
    """
    m = result.metrics
    paper = "CIoU" in m
    thr = "maxq3" if paper else headline_threshold(m)
    rows: list[tuple[str, str | None, bool]] = []  # (label, key, higher is better)
    if paper:
        rows += [("pos cIoU (pooled, Q1)", "CIoU", True), ("pos AUC (pooled, Q1)", "AUC", True),
                 ("pos mIoU@maxq3", "CIoU_maxq3", True)]
        rows += [(f"{n} pIA@maxq3", f"pIA_{c}_MaxQ3", False) for n, c in
                 (("silence", "Silence"), ("noise", "Noise"), ("offscreen", "OffScreen"))]
        rows += [("F pos/neg@maxq3", "F_Pos_Neg", True), ("F AUC/AOC@maxq3", "F_AUC_AOC_Pos_Neg", True)]
    else:
        rows += [("pos cIoU@median", "pos/ciou@median", True), ("pos AUC@median", "pos/auc@median", True),
                 (f"pos mIoU@{thr}", f"pos/miou@{thr}", True)]
        rows += [(f"{n} pIA@{thr}", f"{n}/pia@{thr}", False) for n in NEGATIVES]
        rows += [(f"F pos/neg@{thr}", f"f/pos_neg@{thr}", True), (f"F AUC/AOC@{thr}", f"f_auc_aoc/pos_neg@{thr}", True)]
        rows += [(f"max AUROC pos vs {n}", f"max/auroc/pos_vs_{n}", True) for n in NEGATIVES]
    out = []
    for label, key, higher in rows:
        if key not in m:
            continue
        value = m[key]
        bases = [b[key] for b in result.baselines.values() if key in b and np.isfinite(b[key])]
        margin = ""
        if bases and np.isfinite(value) and not key.startswith("max/"):
            # Positive margin = the model does better than every baseline (higher, or lower for pIA).
            best = max(bases) if higher else min(bases)
            margin = f"{(value - best) if higher else (best - value):+.2f}"
        out.append((label, _fmt(value), margin))
    return out


def _fmt_threshold(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _fmt(value: float) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.2f}"


def write_run_folder(out: Path, results: list[EngineResult], settings: BenchSettings, dataset) -> None:
    """metrics.json, report.md, max_values.npz, latency.json and the plots, each written atomically."""
    from vsslrt.eval.report import to_jsonable
    from vsslrt.pipeline.plots import plot_comparison, plot_max_values, plot_threshold_sweep

    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "vsslrt": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {**asdict(settings), "data_dir": str(settings.data_dir), "repeats": settings.effective_repeats},
        "dataset": {"kind": dataset.kind, "samples_in_dataset": len(dataset)},
        "engines": {
            r.name: {
                "model": r.model, "manifest": r.manifest, "n_samples": r.n_samples, "skipped": r.skipped,
                "thresholds": r.thresholds, "calibration": r.calibration, "metrics": r.metrics,
                "baselines": r.baselines,
            }
            for r in results
        },
    }
    atomic_write_json(out / "metrics.json", to_jsonable(doc))
    atomic_write_json(out / "latency.json", to_jsonable({r.name: r.latency for r in results}))
    for r in results:
        if r.state is not None:
            # The finished run's full evaluator state (calibrate reads it), then the per-batch parts go.
            n = int((r.identity or {}).get("samples", r.n_samples))
            ShardCheckpoint(out / "shards" / r.name, r.identity or {}).save(r.state, set(range(n)))
            for part in PartLog(out / "shards" / r.name, r.identity or {}).parts():
                part.unlink()
    arrays = {f"{r.name}/{cond}": np.asarray(v) for r in results for cond, v in r.max_values.items()}
    atomic_savez(out / "max_values.npz", arrays)
    for r in results:
        thresholds = {k: v["value"] for k, v in r.thresholds.items()}
        thresholds.update({f"cal:{k}": v["value"] for k, v in r.calibration.items() if v["value"] is not None})
        suffix = "" if len(results) == 1 else f"_{r.name}"
        plot_max_values(r.max_values, thresholds, out / f"max_values{suffix}.png", title=r.name)
        if r.sweep is not None:
            plot_threshold_sweep(r.sweep, thresholds, out / f"threshold_sweep{suffix}.png", title=r.name)
    if len(results) > 1:
        plot_comparison(results, out)
    atomic_write_text(out / "report.md", format_report(results, settings, dataset))


def format_report(results: list[EngineResult], settings: BenchSettings, dataset) -> str:
    lines = [
        "# vsslrt benchmark report",
        "",
        f"- dataset: {dataset.kind} ({settings.data_dir}), {results[0].n_samples} samples evaluated",
        f"- protocol: {settings.protocol}; repeats: {settings.effective_repeats}; seed: {settings.seed}; "
        f"fixed threshold: {settings.fixed}",
        f"- noise: {'per-sample draws' if not settings.noise_bank else f'a bank of {settings.noise_bank} inputs (deviation)'}",
        "",
        "## Summary",
        "",
    ]
    labels = [row[0] for row in summary_rows(results[0])]
    header = "| metric | " + " | ".join(f"{r.name} | margin" for r in results) + " |"
    lines += [header, "|" + "---|" * (1 + 2 * len(results))]
    per_engine = [dict((row[0], row[1:]) for row in summary_rows(r)) for r in results]
    for label in labels:
        cells = []
        for rows in per_engine:
            value, margin = rows.get(label, ("", ""))
            cells += [value, margin]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Margin: how much better the model does than the best audio-agnostic baseline (centre prior, "
              "whole image, random map, object saliency); positive means the model wins. For pIA lower is better, "
              "so the margin is the lowest baseline pIA minus the model's.", ""]
    for r in results:
        lines += [f"## {r.name} ({r.model})", "", "### Thresholds", "", "| name | value | provenance |", "|---|---|---|"]
        lines += [f"| {k} | {v['value']:.4f} | {v['provenance']} |" for k, v in r.thresholds.items()]
        lines += ["", "### Calibration candidates (fitted on this run)", "", "| rule | value | provenance |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt_threshold(v['value'])} | {v['provenance']} |" for k, v in r.calibration.items()]
        lat = r.latency
        if lat.get("samples_per_s"):
            p = lat.get("per_sample_ms") or {}
            lines += ["", "### Speed", "", f"- {lat['samples_per_s']:.1f} samples/s "
                      f"({lat['maps_per_s']:.1f} maps/s over the four conditions), backend {r.manifest['backend']} "
                      f"{r.manifest['precision']}",
                      f"- per sample: median {p.get('median', float('nan')):.2f} ms, p99 {p.get('percentile(99%)', float('nan')):.2f} ms"]
        if r.skipped:
            lines += ["", f"### Skipped samples ({len(r.skipped)})", ""]
            lines += [f"- {s['name']}: {s['reason']}" for s in r.skipped[:50]]
        lines += ["", "### All metrics", "", "| key | value | " + " | ".join(r.baselines) + " |",
                  "|---|---|" + "---|" * len(r.baselines)]
        for key, value in r.metrics.items():
            lines.append(f"| {key} | {_fmt(value)} | " + " | ".join(_fmt(b.get(key, float("nan"))) for b in r.baselines.values()) + " |")
        lines.append("")
    return "\n".join(lines)
