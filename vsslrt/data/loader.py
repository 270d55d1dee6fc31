"""Batches of ready model inputs, prepared by background workers.

`BatchLoader` cuts the sample list into consecutive batches (deterministic order), and for each batch
decodes the images and the positive and offscreen audio, draws the noise, and computes every
spectrogram of the batch (positive, R offscreen, R noise) with one batched transform. Batches are
built by a thread or process pool with a bounded number in flight and are yielded in order.

Errors: an unreadable file raises DataError naming it. With `skip_bad=True` the sample is dropped
from its batch instead (also when one of its offscreen clips is unreadable), and recorded in
`BatchLoader.skipped`; a batch whose samples were all dropped is not yielded.

Offscreen clips are other test clips. `offscreen_indices` (R, N) gives the dataset index each
sample's offscreen audio comes from (-1 when the clip is not a sample). When the front-end gives a
clip the same input as offscreen audio and as a positive (`AudioFrontend.offscreen_matches_positive`:
every fixed-mode front-end), the pipeline can reuse that clip's positive embedding instead, and
`offscreen_inputs=False` skips computing offscreen spectrograms altogether.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vsslrt.data.audio_io import DecodedAudio, read_audio
from vsslrt.data.masks import sample_gt_maps
from vsslrt.data.records import Dataset, OffscreenClip, Sample
from vsslrt.data.frontends import (
    FIXED,
    AudioFrontend,
    check_mode,
    get_frontend,
    prepare_signal,
    silence_input,
    spectrogram_inputs,
)
from vsslrt.data.images import IMAGE_SIZE, decode_image, preprocess_image
from vsslrt.data.negatives import noise_signal, offscreen_plan
from vsslrt.errors import DataError, InputError

EXECUTORS = ("thread", "process", "none")


@dataclass(frozen=True)
class SkippedSample:
    """A sample dropped under skip_bad: which file failed and why."""

    index: int
    name: str
    file: str
    reason: str


@dataclass
class Batch:
    """Ready inputs for one batch of B samples and R repetitions of negatives.

    Attributes:
        indices: (B,) dataset indices.
        names: Sample names.
        groups: (B,) group ids.
        images: (B, 3, 224, 224) float32 normalised images.
        positive: (B, 1, F, T) float32 positive audio inputs.
        offscreen: (R, B, 1, F, T) float32 offscreen inputs, or None with offscreen_inputs=False.
        offscreen_index: (R, B) dataset index of each offscreen clip (-1: not a sample).
        noise: (R, B, 1, F, T) float32 noise inputs, or None with noise_inputs=False.
        gt: (B, 224, 224) bool ground-truth maps.
        skipped: Samples of this batch that were dropped (skip_bad).
    """

    indices: np.ndarray
    names: list[str]
    groups: np.ndarray
    images: np.ndarray
    positive: np.ndarray
    offscreen: np.ndarray | None
    offscreen_index: np.ndarray
    noise: np.ndarray | None
    gt: np.ndarray
    skipped: list[SkippedSample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs for one batch (small and picklable)."""

    samples: tuple[Sample, ...]
    offscreen: tuple[tuple[OffscreenClip, ...], ...]  # [r][k]
    spec: AudioFrontend
    mode: str
    dataset_kind: str
    run_seed: int
    skip_bad: bool
    offscreen_inputs: bool
    noise_inputs: bool
    image_size: int


@dataclass(frozen=True)
class _Failure:
    """A DataError raised in a worker, carried back as plain data (exceptions lose `hint` when pickled)."""

    message: str
    hint: str | None


class _SampleFailed(Exception):
    def __init__(self, file: Path, error: DataError) -> None:
        super().__init__(str(error))
        self.file = file
        self.error = error


def build_batch(job: _Job) -> Batch:
    """Decode and compute the inputs of one batch (runs in a worker)."""
    spec, mode, repeats = job.spec, job.mode, len(job.offscreen)
    cache: dict[Path, DecodedAudio] = {}
    kept: list[int] = []
    images, positives, rates, skipped = [], [], [], []
    offscreen: list[list[tuple[np.ndarray, int]]] = [[] for _ in range(repeats)]
    for k, sample in enumerate(job.samples):
        try:
            try:
                # Preprocessed at once: a batch never holds its full-size decoded images.
                image = preprocess_image(decode_image(sample.image), job.image_size)
            except DataError as exc:
                raise _SampleFailed(sample.image, exc) from None
            signal, rate = _signal(sample.audio, cache, job, "positive")
            offs = [_signal(job.offscreen[r][k].audio, cache, job, "offscreen") for r in range(repeats)] if job.offscreen_inputs else []
        except _SampleFailed as failure:
            if not job.skip_bad:
                raise failure.error from None
            skipped.append(SkippedSample(sample.index, sample.name, str(failure.file), failure.error.one_line()))
            continue
        kept.append(k)
        images.append(image)
        positives.append(signal)
        rates.append(rate)
        for r, off in enumerate(offs):
            offscreen[r].append(off)

    samples = [job.samples[k] for k in kept]
    n = len(samples)
    if n == 0:
        return _empty_batch(job, skipped)
    signals, signal_rates, flags = list(positives), list(rates), [True] * n
    for rep in offscreen:
        signals += [sig for sig, _ in rep]
        signal_rates += [rate for _, rate in rep]
        flags += [True] * len(rep)
    if job.noise_inputs:
        negative_compress = spec.compresses_negatives(mode)
        for r in range(repeats):
            for i, s in enumerate(samples):
                # The reference draws noise as long as the positive, at the positive's rate.
                signals.append(noise_signal(spec, run_seed=job.run_seed, repetition=r, index=s.index, rate=rates[i]))
                signal_rates.append(rates[i])
                flags.append(negative_compress)
    inputs = spectrogram_inputs(signals, spec, rates=signal_rates, compress=flags)
    per_set = (repeats, n) + inputs.shape[1:]
    n_off = repeats * n if job.offscreen_inputs else 0
    return Batch(
        indices=np.array([s.index for s in samples], dtype=np.int64),
        names=[s.name for s in samples],
        groups=np.array([s.group for s in samples], dtype=np.int64),
        images=np.stack(images),
        positive=inputs[:n],
        offscreen=inputs[n : n + n_off].reshape(per_set) if job.offscreen_inputs else None,
        offscreen_index=np.array([[job.offscreen[r][k].index for k in kept] for r in range(repeats)], dtype=np.int64).reshape(repeats, n),
        noise=inputs[n + n_off :].reshape(per_set) if job.noise_inputs else None,
        gt=sample_gt_maps(samples),  # masks where the samples have them (vsslrt.data.masks), else boxes
        skipped=skipped,
    )


def _signal(path: Path, cache: dict[Path, DecodedAudio], job: _Job, role: str) -> tuple[np.ndarray, int]:
    """Decode (once per batch) and prepare one working signal; failures name the file."""
    if path not in cache:
        try:
            cache[path] = read_audio(path)
        except DataError as exc:
            raise _SampleFailed(path, exc) from None
    try:
        return prepare_signal(cache[path], job.spec, mode=job.mode, role=role, dataset_kind=job.dataset_kind)
    except DataError as exc:  # a front-end rule rejected the file (e.g. Q25 channels)
        raise _SampleFailed(path, exc) from None


def _empty_batch(job: _Job, skipped: list[SkippedSample]) -> Batch:
    repeats, shape = len(job.offscreen), job.spec.output_shape() if job.spec.sample_rate else (1, 0, 0)
    empty = np.zeros((0,) + shape, dtype=np.float32)
    return Batch(
        indices=np.zeros(0, dtype=np.int64),
        names=[],
        groups=np.zeros(0, dtype=np.int64),
        images=np.zeros((0, 3, job.image_size, job.image_size), dtype=np.float32),
        positive=empty,
        offscreen=np.zeros((repeats,) + empty.shape, np.float32) if job.offscreen_inputs else None,
        offscreen_index=np.zeros((repeats, 0), dtype=np.int64),
        noise=np.zeros((repeats,) + empty.shape, np.float32) if job.noise_inputs else None,
        gt=np.zeros((0, 224, 224), dtype=bool),
        skipped=skipped,
    )


def _run_job(job: _Job) -> Batch | _Failure:
    """Worker entry point: a DataError comes back as data so that its hint survives a process pool."""
    try:
        return build_batch(job)
    except DataError as exc:
        return _Failure(exc.message, exc.hint)


def _process_context():
    """forkserver where available: forking the caller directly could copy the locks of live runtime
    threads (ONNX Runtime, BLAS pools) into the workers; the fork server starts from a clean process."""
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


class BatchLoader:
    """Iterate over ready input batches of a dataset for one audio front-end.

    Args:
        dataset: The (validated) dataset.
        frontend: An AudioFrontend or its registry name.
        mode: "fixed" (default) or "paper".
        batch_size: Samples per batch.
        repeats: Negative sets per sample (the paper uses 10).
        run_seed: Seed of the run; negatives of sample i in repetition r depend on (run_seed, r, i) only.
        indices: The dataset indices to load (a shard), in order; default all.
        workers: Background workers (0: build batches in the calling thread).
        executor: "thread" (default), "process", or "none" (same as workers=0).
        prefetch: Batches in flight beyond one per worker (default 2).
        skip_bad: Drop samples with unreadable files instead of raising (see `skipped`).
        offscreen_inputs: Compute offscreen spectrograms (False requires reusable positive inputs).
        noise_inputs: Compute noise spectrograms.
        image_size: Output image size.
    """

    def __init__(
        self,
        dataset: Dataset,
        frontend: AudioFrontend | str,
        *,
        mode: str = FIXED,
        batch_size: int = 64,
        repeats: int = 1,
        run_seed: int = 0,
        indices: Sequence[int] | None = None,
        workers: int = 2,
        executor: str = "thread",
        prefetch: int = 2,
        skip_bad: bool = False,
        offscreen_inputs: bool = True,
        noise_inputs: bool = True,
        image_size: int = IMAGE_SIZE,
    ) -> None:
        self.dataset = dataset
        self.spec = get_frontend(frontend)
        self.mode = check_mode(mode)
        for name, value, low in (("batch size", batch_size, 1), ("repeats", repeats, 1), ("workers", workers, 0), ("prefetch", prefetch, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{name}: expected an integer >= {low}, got {value!r}.")
        if executor not in EXECUTORS:
            raise InputError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}.")
        self.batch_size, self.repeats, self.run_seed = batch_size, repeats, run_seed
        self.workers = 0 if executor == "none" else workers
        self.executor, self.prefetch = executor, prefetch
        self.skip_bad, self.image_size = skip_bad, image_size
        self.offscreen_inputs, self.noise_inputs = offscreen_inputs, noise_inputs
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        bad = [i for i in self.indices if not 0 <= i < len(dataset)]
        if bad:
            raise InputError(f"indices: expected values in [0, {len(dataset)}), got {bad[:5]}.")
        self.plan = offscreen_plan(dataset, self.indices, run_seed=run_seed, repeats=repeats, mode=self.mode)
        self.offscreen_indices = np.array([[clip.index for clip in rep] for rep in self.plan], dtype=np.int64).reshape(
            repeats, len(self.indices)
        )
        if not offscreen_inputs:
            self._check_reuse()
        self.skipped: list[SkippedSample] = []

    def _check_reuse(self) -> None:
        if not self.spec.offscreen_matches_positive(self.mode):
            raise InputError(
                f"offscreen inputs: expected a front-end whose offscreen input equals the clip's positive input, got "
                f"{self.spec.name} in {self.mode} mode (Q8/Q9 make them differ).",
                hint="keep offscreen_inputs=True in paper mode",
            )
        if np.any(self.offscreen_indices < 0):
            raise InputError(
                "offscreen inputs: expected every offscreen clip to be a dataset sample (so its positive embedding "
                "exists), got clips outside the sample list.",
                hint="keep offscreen_inputs=True for this dataset",
            )

    @property
    def silence(self) -> np.ndarray:
        """The constant silence input of this front-end and mode, (1, F, T)."""
        return silence_input(self.spec, self.mode)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def _jobs(self) -> Iterator[_Job]:
        for start in range(0, len(self.indices), self.batch_size):
            stop = min(start + self.batch_size, len(self.indices))
            yield _Job(
                samples=tuple(self.dataset[i] for i in self.indices[start:stop]),
                offscreen=tuple(tuple(rep[start:stop]) for rep in self.plan),
                spec=self.spec,
                mode=self.mode,
                dataset_kind=self.dataset.kind,
                run_seed=self.run_seed,
                skip_bad=self.skip_bad,
                offscreen_inputs=self.offscreen_inputs,
                noise_inputs=self.noise_inputs,
                image_size=self.image_size,
            )

    def _accept(self, result: Batch | _Failure) -> Batch:
        if isinstance(result, _Failure):
            raise DataError(result.message, hint=result.hint)
        self.skipped.extend(result.skipped)
        return result

    def __iter__(self) -> Iterator[Batch]:
        self.skipped = []
        if self.workers == 0:
            for job in self._jobs():
                batch = self._accept(_run_job(job))
                if len(batch):
                    yield batch
            return
        if self.executor == "process":
            pool: cf.Executor = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=_process_context())
        else:
            pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vsslrt-data")
        pending: deque[cf.Future] = deque()
        in_flight = self.workers + self.prefetch
        try:
            for job in self._jobs():
                pending.append(pool.submit(_run_job, job))
                if len(pending) >= in_flight:
                    batch = self._accept(pending.popleft().result())
                    if len(batch):
                        yield batch
            while pending:
                batch = self._accept(pending.popleft().result())
                if len(batch):
                    yield batch
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
