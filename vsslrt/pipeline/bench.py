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

This module is the run itself (checks, sessions, the batch loop); the rest lives beside it:
`results` (settings and result types), `plan` (thresholds, evaluators, result of one engine),
`audiocache` (clip embeddings, silence, noise bank), `states` (checkpoint layout), `latency`
(per-batch summary) and `runfolder` (metrics.json, plots, report.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import DataError, InputError
from vsslrt.files import atomic_write_json
from vsslrt.pipeline import audiocache
from vsslrt.pipeline import multisource
from vsslrt.pipeline.baselines import baseline_maps
from vsslrt.pipeline.plan import plan_engine
from vsslrt.pipeline.results import BatchHook, BenchSettings, EngineResult, Progress, ShardResult
from vsslrt.pipeline.runfolder import write_run_folder
from vsslrt.pipeline.runlock import RunLock
from vsslrt.pipeline.runstore import COMPLETE_NAME, PartLog, read_complete_marker, unfinished_hint
from vsslrt.pipeline.states import add_time, concat_timings, join_states, split_states
from vsslrt.data import BatchLoader, get_frontend, load_dataset
from vsslrt.data.flickr import CONSENSUS, GT_RULE
from vsslrt.data.probe import probe_media
from vsslrt.data.problems import DatasetProblemsError
from vsslrt.data.validation import validate_dataset
from vsslrt.eval.keys import CONDITIONS
from vsslrt.head import similarity_maps_multi
from vsslrt.data.manifest import NO_BOXES
from vsslrt.pipeline import encoders as encoder_stage  # looked up at call time (tests replace open_encoders)
from vsslrt.pipeline.fingerprint import (
    FINGERPRINT_NAME,
    check_same_data,
    dataset_fingerprint,
    read_fingerprint,
    warning_lines,
)
from vsslrt.data.flickr import gt_weights
from vsslrt.eval.validate import empty_gt_error
from vsslrt.pipeline.examples import write_failure_views


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
    notice: Callable[[str], None] | None = None,
) -> list[EngineResult]:
    """Run the benchmark for each engine folder and write the run folder.

    Args:
        engines: Engine folders (`vsslrt export` / `vsslrt build` output).
        settings: What to run.
        out: The run folder.
        resume: Continue an interrupted run in `out` (its settings must match).
        progress: Called after every batch.
        stop_after_batches: Stop (as if interrupted) after this many batches per engine; for tests.
        notice: Called with one line for each thing the user should see before the run (dataset
            warnings, samples left out); the CLI prints them.

    Returns:
        One result per engine (also written to `out`).
    """
    out = Path(out)
    with RunLock(out):  # one writer per run folder, for the whole run
        run = start_run(engines, settings, out, resume=resume)
        for line in run.notices:
            if notice is not None:
                notice(line)
        results = []
        try:
            for engine in engines:
                result = _run_engine(Path(engine), run.dataset, run.indices, settings, out, run.resume, progress,
                                     stop_after_batches, run.skipped)
                if result is None:  # stopped early (tests)
                    return results
                results.append(_without_positive(result) if run.info.get("no_boxes") else result)
        except DataError as exc:
            # A file the probe could not see is bad (damage inside a compressed stream): record it, so
            # the same command continues from the finished batches once the file is fixed.
            atomic_write_json(out / INTERRUPTED_NAME, {"reason": "data", "error": exc.one_line()})
            raise DataError(exc.message, hint=(f"{exc.hint}; " if exc.hint else "") + "fix the file, then run the "
                            f"same command again: it continues from the finished batches in {out}") from None
        write_run_folder(out, results, settings, run.dataset, run.info)
        (out / INTERRUPTED_NAME).unlink(missing_ok=True)
    return results


INTERRUPTED_NAME = "interrupted.json"  # a run stopped by a bad media file: the plain command continues it


@dataclass
class RunStart:
    """A checked run: its dataset and samples, what the CLI shows first, what the report records."""

    dataset: Any
    indices: list[int]
    resume: bool
    info: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def start_run(engines: Sequence[str | Path], settings: BenchSettings, out: Path, *, resume: bool) -> RunStart:
    """Everything before the first batch: the run folder's state, the dataset, its fingerprint and probe.

    * a finished folder (its completion marker) is refused; one without the marker is unfinished
      and needs --resume (or, after a bad media file stopped it, the same command);
    * the dataset is validated; with --skip-bad, samples whose files are missing are left out;
    * every image and audio header is probed before any batch: all problems at once
      (`problems.txt` in the run folder), or with --skip-bad those samples are left out;
    * the dataset fingerprint is stored at the start and checked on --resume.
    """

    if not engines:
        raise InputError("bench: expected at least one --engine folder, got none.")
    after_data_error = (out / INTERRUPTED_NAME).is_file()
    if read_complete_marker(out, verify=False) is not None:
        raise InputError(f"{out}: expected an empty or new run folder, got a finished run ({COMPLETE_NAME}).",
                         hint="choose another --out folder, or delete this one")
    started = (out / "shards").exists()
    if started and not resume and not after_data_error:
        raise InputError(f"{out}: holds an interrupted run (no completion marker).",
                         hint=unfinished_hint(out) + ", or choose another --out folder")
    resume = resume or (started and after_data_error)
    settings.check()
    dataset = load_dataset(settings.dataset, settings.data_dir, validate=False, **settings.metadata)
    dataset = multisource.prepare_duets(dataset, settings.skip_bad)  # duet lists: --skip-bad drops unknown clips' rows
    report = validate_dataset(dataset, raise_on_error=False)
    problems_file = out / "problems.txt"
    leave_out: dict[int, str] = {}
    found_bad: dict[int, str] = {}
    if report.errors:
        if not (settings.skip_bad and report.only_bad_files):
            report.raise_for_errors(problems_file=problems_file)
        leave_out.update(report.bad_samples)
    indices = list(range(len(dataset)))
    if settings.limit is not None:
        indices = indices[: settings.limit]
    if not indices:
        raise InputError(f"{settings.data_dir}: expected at least one sample, got an empty dataset.")
    names = [Path(e).name or str(e) for e in engines]
    if len(set(names)) != len(names):
        raise InputError(f"engines: expected folders with distinct names, got {names}.",
                         hint="each engine's results are stored under its folder name")

    fingerprint = dataset_fingerprint(dataset, indices)
    if resume and (out / FINGERPRINT_NAME).is_file():
        check_same_data(read_fingerprint(out / FINGERPRINT_NAME), fingerprint, out, media_may_change=after_data_error)

    probe = probe_media(dataset, workers=4, skip_missing=True)
    if probe.problems:
        if not settings.skip_bad:
            raise DatasetProblemsError(f"{dataset.kind} dataset at {dataset.root}", probe.problems,
                                       root=dataset.root, problems_file=problems_file)
        # --skip-bad: listed now; the batch loader skips them where they are read (as a sample or as
        # another's offscreen clip), so that a single, a resumed and a distributed run skip alike.
        for i, reason in probe.bad_samples.items():
            found_bad.setdefault(i, reason)
    run_set = set(indices)
    skipped = [{"index": i, "name": dataset[i].name, "file": reason.split(": ", 1)[0], "reason": reason}
               for i, reason in sorted(leave_out.items()) if i in run_set]
    unreadable = [{"index": i, "name": dataset[i].name, "file": reason.split(": ", 1)[0], "reason": reason}
                  for i, reason in sorted(found_bad.items()) if i in run_set and i not in leave_out]
    kept = [i for i in indices if i not in leave_out]
    if not kept:
        raise DataError(f"{settings.data_dir}: no sample is readable ({len(skipped)} left out).",
                        hint=f"see {problems_file}" if problems_file.exists() else "check the data folder")
    atomic_write_json(out / FINGERPRINT_NAME, fingerprint)  # checked by every later --resume

    # Mask datasets (AVSBench) carry their ground truth as mask files, not boxes.
    no_boxes = all(len(dataset[i].boxes) == 0 and getattr(dataset[i], "mask", None) is None for i in kept)
    if no_boxes:
        if not declares_no_boxes(dataset):

            raise empty_gt_error(str(settings.data_dir), len(kept))
        if settings.protocol == "paper":
            raise InputError(f"{settings.data_dir}: the paper protocol needs boxes, got a dataset without boxes.",
                             hint="use --protocol fixed: it skips the positive metrics and runs the negative ones")
    warnings = warning_lines(report.warnings)
    notices = []
    if no_boxes:
        notices.append(f"{settings.data_dir}: the dataset has no boxes by design: the positive metrics are skipped "
                       "and the negative ones still run")
    if report.warnings:
        notices.append(report.warnings_summary(limit=5))
    if skipped or unreadable:
        n = len(skipped) + len(unreadable)
        notices.append(f"{n} sample{'s' if n != 1 else ''} with unreadable or missing media found before the run "
                       f"are skipped (--skip-bad); listed in {out}/report.md")
    info = {"fingerprint": {k: v for k, v in fingerprint.items() if k != "media_files"}, "warnings": warnings,
            "probe_skipped": skipped + unreadable, "probe": probe.summary(), "no_boxes": no_boxes}
    return RunStart(dataset, kept, resume, info, notices, skipped)


# Metrics that need ground-truth boxes (the positive localisation and the F-scores built on it).
POSITIVE_PREFIXES = ("pos/", "pos_", "f/", "f_auc_aoc/")


def declares_no_boxes(dataset) -> bool:
    """Whether a dataset has no boxes by design (its adapter says so: a manifest none of whose records has
    a "boxes" field, or a CSV manifest without a boxes column); an explicit empty list is an empty ground truth."""
    return dataset.sources.get("boxes") == NO_BOXES


def _without_positive(result: EngineResult) -> EngineResult:
    drop = lambda metrics: {k: v for k, v in metrics.items() if not k.startswith(POSITIVE_PREFIXES)}  # noqa: E731
    result.metrics = drop(result.metrics)
    result.baselines = {name: drop(m) for name, m in result.baselines.items()}
    return result


def prepare_run(engines: Sequence[str | Path], settings: BenchSettings, out: Path, *, resume: bool) -> tuple[Any, list[int]]:
    """`start_run` for callers that need only the dataset and the run's sample indices."""
    run = start_run(engines, settings, out, resume=resume)
    return run.dataset, run.indices


# ------------------------------------------------------------------------------------------------
# One engine: a session (open encoders, its plan) and shards of sample indices


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

        self.folder = Path(folder)
        self.dataset = dataset
        self.settings = settings
        self.encoders = encoder_stage.open_encoders(self.folder, backend=settings.backend, precision=settings.precision,
                                      threads=settings.threads, with_object=settings.ogl,
                                      allow_host_code=settings.trust_engine_code)
        try:
            self.spec = get_frontend(self.encoders.manifest.frontend)
            self.plan = plan_engine(self.folder, settings, self.encoders.manifest, backend=self.encoders.backend,
                                    precision=self.encoders.precision, use_ogl=self.encoders.objectness is not None,
                                    dataset=dataset)
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

        settings, dataset, encoders, spec, plan = self.settings, self.dataset, self.encoders, self.spec, self.plan
        mode = settings.protocol
        repeats = settings.effective_repeats
        evaluators = plan.new_evaluators(settings) if evaluators is None else evaluators
        todo = [int(i) for i in indices]
        done: set[int] = set()
        skipped: list[dict[str, Any]] = []
        timings: dict[str, list[float]] = {}
        extras = _protocol_inputs(dataset, plan.protocols)

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
        silence_emb = encoders.embed_audio(audiocache.silence(spec, mode)[None])
        audio_cache: dict[int, Any] = {}
        failed_clips: dict[int, str] = {}
        duets = extras.get("duets")  # the multi-source protocol: its queries are clip embeddings too
        query_clips = duets.query_clips(todo) if duets is not None else set()
        if reuse:
            needed = sorted(set(todo) | {int(i) for i in np.unique(loader.offscreen_indices)} | query_clips)
            audio_cache, failed_clips = audiocache.encode_clips(dataset, needed, spec, mode, encoders, settings)
        if duets is not None:
            # Each mixture query is its clip's embedding: the clip pass's when there is one, else one pass here.
            extras["query_audio"] = audio_cache if reuse else audiocache.encode_clips(
                dataset, sorted(query_clips), spec, mode, encoders, settings)[0]
            extras["head"] = encoders.manifest.head
        bank = audiocache.noise_bank(spec, mode, settings, encoders) if settings.noise_bank else None
        add_time(timings, "setup_s", time.perf_counter() - t0)

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
                                       len(dataset), similarity_maps_multi, extras)
                stage["frontend_wait"] = t_ready - t_wait
                stage["batch_size"] = float(len(keep))
                for k, v in stage.items():
                    add_time(batch_timings, k, v)
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


def _run_engine(folder, dataset, indices, settings, out, resume, progress, stop_after_batches,
                left_out=()) -> EngineResult | None:
    """One engine over the whole run in this process, each finished batch appended to the part log."""
    with EngineSession(folder, dataset, settings) as session:
        plan = session.plan
        evaluators = plan.new_evaluators(settings)
        # The run's sample count includes the samples left out before the run (they are done: skipped).
        identity = plan.identity(settings, len(indices) + len(left_out))
        log = PartLog(out / "shards" / folder.name, identity)
        prior_done: set[int] = set()
        prior_skipped: list[dict[str, Any]] = []
        prior_timings: list[dict[str, list[float]]] = []
        if log.exists():
            if not resume:
                raise InputError(f"{out}: holds an interrupted run (no completion marker).", hint=unfinished_hint(out))
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
        if settings.examples:

            # While the session is open: the worst samples' maps are recomputed with its encoders.
            write_failure_views(out, session, dataset, evaluators["model"], settings.examples)
        return plan.result(evaluators, list(left_out) + prior_skipped + shard.skipped, concat_timings([*prior_timings, shard.timings]),
                           settings, identity=identity)


def _protocol_inputs(dataset, protocols: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Per-dataset arrays the protocol evaluators read, computed once per shard (not per batch)."""

    names = {name for name, _ in protocols}
    out: dict[str, Any] = {"dataset": dataset, "consensus": dataset.sources.get(GT_RULE) == CONSENSUS}
    positive = getattr(dataset, "positive", None)
    out["positive"] = None if positive is None else np.asarray(positive, dtype=bool)
    if "slavc-extended" in names:
        out["n_boxes"] = np.asarray(dataset.n_boxes, dtype=np.int64)
    if multisource.NAME in names:
        out["duets"] = multisource.ShardDuets(dataset)
    if names & {"avsbench", "avsbench-robust"}:
        videos = np.asarray(dataset.videos, dtype=np.int64)
        out["videos"], out["n_videos"] = videos, int(videos.max()) + 1 if videos.size else 0
    return out


def _process_batch(batch, keep, encoders, spec, mode, repeats, settings, reuse, audio_cache, silence_emb, bank,
                   evaluators, baseline_names, value_range, n_dataset, contract, extras=None) -> dict[str, float]:
    """Encoders + maps + evaluator update for one batch; returns stage times in seconds."""
    times: dict[str, float] = {}
    clock = time.perf_counter
    idx = batch.indices[keep]
    images = np.ascontiguousarray(batch.images[keep])
    gt = batch.gt[keep]
    groups = batch.groups[keep]
    if gt.dtype == np.bool_:
        # Masks read from mode-'1' PNGs can hold True as the byte 255; the evaluators' byte-level
        # counting expects canonical 0/1 booleans.
        gt = gt.view(np.uint8) != 0
    if extras is not None and extras["consensus"]:

        # Flickr's consensus ground truth (0 / 0.5 / 1); the loader yields the boolean union of the boxes.
        gt = gt_weights(extras["dataset"], idx)

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
            noise_emb = bank[audiocache.bank_choice(settings.seed, r, idx, len(bank))]
        times["audio_encoder"] = times.get("audio_encoder", 0.0) + clock() - t

        t = clock()
        maps = contract(visual, [pos_emb, silence_emb, noise_emb, off_emb], encoders.manifest.head)
        times["head"] = times.get("head", 0.0) + clock() - t

        t = clock()
        sample_ids = r * n_dataset + idx
        evaluators["model"].update(maps[0], maps[1], maps[2], maps[3], gt, obj=obj, group=groups,
                                   sample_ids=sample_ids)
        times["evaluator"] = times.get("evaluator", 0.0) + clock() - t

        if extras is not None:
            t = clock()
            _update_protocols(evaluators, extras, r, idx, maps, gt, groups, visual, pos_emb, n_dataset)
            times["protocols"] = times.get("protocols", 0.0) + clock() - t

        t = clock()
        h = int(maps.shape[-1])
        for name in baseline_names:
            base = baseline_maps(name, sample_ids=idx, size=h, value_range=value_range,
                                 obj_maps=None if obj is None else np.asarray(obj), seed=settings.seed)
            evaluators[f"baseline:{name}"].update(base, base, base, base, gt, obj=obj, group=groups,
                                                  sample_ids=sample_ids)
        times["baselines"] = times.get("baselines", 0.0) + clock() - t
    return times


def _update_protocols(evaluators, extras, r, idx, maps, gt, groups, visual, pos_emb, n_dataset) -> None:
    """The protocol presets' evaluators on one repetition of a batch.

    The extended, interactive and retrieval protocols read only the positive map (or the positive
    embeddings), the same at every repetition: they are fed once per sample, at repetition 0, with
    the dataset index as sample id. The mask protocols score every repetition's conditions.
    """

    ev = evaluators.get("protocol:slavc-extended")
    if ev is not None and r == 0:
        ev.update(maps[0], gt, extras["positive"][idx], n_boxes=extras["n_boxes"][idx], sample_ids=idx)
    ev = evaluators.get("protocol:sslalign-is3")
    if ev is not None and r == 0:
        ev.update(maps[0], gt, np.asarray(groups, dtype=np.int64), sample_ids=idx)
    ev = evaluators.get("protocol:retrieval")
    if ev is not None and r == 0:
        # Sounding pairs only; the embeddings are the ones the maps were made from (no extra encoder work).
        rows = np.arange(len(idx)) if extras["positive"] is None else np.flatnonzero(extras["positive"][idx])
        if rows.size:
            ev.update(visual[rows], pos_emb[rows], group=np.asarray(groups, dtype=np.int64)[rows], sample_ids=idx[rows])
    ev = evaluators.get(f"protocol:{multisource.NAME}")
    if ev is not None and r == 0:  # the panels of the batch's clips, from the same embeddings (no encoder pass)
        extras["duets"].update(ev, idx, visual, gt, extras["query_audio"], extras["head"])
    for name in ("avsbench", "avsbench-robust"):
        ev = evaluators.get(f"protocol:{name}")
        if ev is not None:
            by_condition = dict(zip(CONDITIONS, maps))
            ev.update({c: by_condition[c] for c in ev.config.conditions}, gt,
                      video=r * extras["n_videos"] + extras["videos"][idx], sample_ids=r * n_dataset + idx)


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
