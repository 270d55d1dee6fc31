"""Audio embeddings a benchmark run computes once: one per clip, silence once, a noise bank.

* In fixed mode an offscreen clip is another test clip whose input equals its positive input, so
  `encode_clips` embeds every needed clip once, in fixed chunks, so that a resumed run computes
  bit-identical embeddings whatever its batch layout.
* Silence is one constant input per front-end and mode (`silence_input`).
* With `noise_bank=K`, K noise inputs drawn once from (seed, bank entry) are encoded once and each
  sample picks one by a per-sample draw (`bank_choice`): a documented deviation.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

import numpy as np

from vsslrt.errors import DataError
from vsslrt.data import noise_signal, prepare_signal, read_audio, silence_input, spectrogram_inputs

NOISE_BANK_INDEX = 1 << 40  # noise bank entries use sample indices no dataset reaches


def encode_clips(dataset, indices, spec, mode, encoders, settings) -> tuple[dict[int, Any], dict[int, str]]:
    """Positive embeddings of the given clips, computed in fixed chunks (batch-size independent results).

    Decoding and front-ends run in a thread pool while the encoder runs; unreadable clips raise
    DataError, or with skip_bad are returned in the failure map.
    """
    chunks = [indices[i : i + settings.batch] for i in range(0, len(indices), settings.batch)]

    def prepare(chunk: list[int]) -> tuple[list[int], np.ndarray | None, dict[int, str]]:

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


def silence(spec, mode) -> np.ndarray:
    """The one silence input of a front-end and mode."""

    return np.ascontiguousarray(silence_input(spec, mode))


def noise_bank(spec, mode, settings, encoders) -> Any:
    """K noise inputs drawn once from (seed, bank entry) and encoded once: (K, K_maps, C)."""

    signals = [noise_signal(spec, run_seed=settings.seed, repetition=0, index=NOISE_BANK_INDEX + k)
               for k in range(settings.noise_bank)]
    inputs = spectrogram_inputs(signals, spec, compress=spec.compresses_negatives(mode))
    return encoders.embed_audio(inputs)


def bank_choice(seed: int, repetition: int, indices: np.ndarray, size: int) -> np.ndarray:
    """Which bank entry each sample uses: a per-sample draw, independent of batching."""
    return np.array([np.random.default_rng([seed, repetition, int(i), 2]).integers(size) for i in indices])
