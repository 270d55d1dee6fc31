"""Negative audio: which offscreen clip each sample gets, and its noise, drawn per sample.

Every random choice for sample i in repetition r comes from generators seeded by
(run_seed, r, i) through `numpy.random.SeedSequence`, one stream per purpose:

* stream 0 (offscreen): a class uniform over the sorted candidate classes (the dictionary's classes
  minus the sample's on-screen classes), then a clip uniform within that class, as the reference's
  two `random.choice` calls (protocol 2.1); for a dataset without classes, a clip uniform over the
  samples of other images.
* stream 1 (noise): the standard-normal noise samples, N(0, 1), unclipped (protocol 2.2-2.5).

So a sample gets the same offscreen clip and the same noise whatever the batch size, worker count,
shard split, backend or model (the offscreen choice does not depend on the front-end; the noise
length does). This is the per-sample seeding the protocol recommends (Q4 fixed); the reference's own
draws depend on torch's DataLoader worker seeding and cannot be reproduced.

`repeats` R draws R independent negative sets (repetitions 0 .. R-1); positives and silence do not
depend on the repetition and are computed once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vsslrt.data.records import Dataset, OffscreenClip
from vsslrt.data.frontends import AudioFrontend, get_frontend
from vsslrt.errors import DataError, InputError

OFFSCREEN_STREAM = 0
NOISE_STREAM = 1


def _check_seed(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{name}: expected a non-negative integer, got {value!r}.", hint="e.g. --seed 0")
    return int(value)


def sample_generator(run_seed: int, repetition: int, index: int, stream: int) -> np.random.Generator:
    """The generator of one sample, repetition and purpose (stream)."""
    seed = [_check_seed("run seed", run_seed), _check_seed("repetition", repetition), _check_seed("sample index", index), stream]
    return np.random.default_rng(np.random.SeedSequence(seed))


def choose_offscreen(dataset: Dataset, index: int, *, run_seed: int, repetition: int, mode: str = "fixed") -> OffscreenClip:
    """The offscreen clip of sample `index` in one repetition ("paper" mode: among the candidate
    classes of the reference's on-screen rule, `Dataset.offscreen_classes`).

    Raises:
        DataError: The sample has no candidate (validation reports this before a run).
    """
    rng = sample_generator(run_seed, repetition, index, OFFSCREEN_STREAM)
    if dataset.class_clips is None:
        count = dataset.count_others(index)
        if count == 0:
            raise DataError(
                f"sample {dataset[index].name}: expected a clip of another image for offscreen audio, got none.",
                hint="a dataset needs at least two images",
            )
        sample = dataset[dataset.nth_other(index, int(rng.integers(count)))]
        return OffscreenClip(sample.name, sample.audio, sample.index)
    classes = dataset.offscreen_classes(index, mode)
    if not classes:
        raise DataError(
            f"sample {dataset[index].name}: expected an offscreen class besides {list(dataset[index].onscreen)}, got none.",
            hint="the class dictionary needs at least one class that is not in the image",
        )
    cls = classes[int(rng.integers(len(classes)))]
    clips = dataset.class_clips[cls]
    return clips[int(rng.integers(len(clips)))]


def offscreen_plan(
    dataset: Dataset, indices: Sequence[int] | None = None, *, run_seed: int, repeats: int, mode: str = "fixed"
) -> list[list[OffscreenClip]]:
    """plan[r][k]: the offscreen clip of sample indices[k] in repetition r (cheap: no audio is read)."""
    chosen = range(len(dataset)) if indices is None else indices
    return [[choose_offscreen(dataset, i, run_seed=run_seed, repetition=r, mode=mode) for i in chosen]
            for r in range(repeats)]


def noise_signal(
    spec: AudioFrontend | str, *, run_seed: int, repetition: int, index: int, rate: int | None = None
) -> np.ndarray:
    """The noise working signal of one sample: N(0, 1) float64 of the front-end's signal length.

    Lengths follow the reference: the positive's length (EZ-VSL 10 s, FNAC 3 s, SSL-TIE 10 s) or the
    LVS segment (3 s).
    """
    spec = get_frontend(spec)
    rng = sample_generator(run_seed, repetition, index, NOISE_STREAM)
    return rng.standard_normal(spec.signal_length(rate))
