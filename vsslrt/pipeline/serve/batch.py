"""The service's batch step: the audio front-end's spectrogram for the whole batch, then the engine.

Per request, in the decode pool (in parallel, off the event loop): decoding, the image front-end
(one resize per image: images differ in size) and the working signal of the clip
(`vsslrt.data.frontends.prepare_signal`). Per batch, on the engine thread: one batched transform
for every clip of the batch (`spectrogram_inputs` on the list: equal-length clips go through one
STFT), then `Localizer.embed_prepared` (encoders, head, one stacked upsampling). The rest of a
pair's result (thresholds, mask, boxes: `Localizer.finish_embedded`) needs no engine and runs with
its answer in the decode pool, so the engine's one thread, which every request passes through,
does only the batch's work.

The arithmetic per pair is that of `Localizer.prepare_decoded` (the same functions on the same
rows), so the answers equal those of `vsslrt localize`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from vsslrt.errors import DataError
from vsslrt.data.frontends import spectrogram_inputs
from vsslrt.pipeline.localize import PreparedPair, frontend_signals


@dataclass
class DecodedPair:
    """A pair after decoding, the image front-end and the working signal; its spectrogram is made
    with the batch's.

    Attributes:
        pair: The pair (`vsslrt.pipeline.localize.Pair`).
        rgb: The decoded image (H, W, 3) uint8.
        image_row: (3, 224, 224) float32 visual input.
        signal: The clip's 1-D float64 working signal.
        rate: Its sample rate.
        seconds: Seconds spent on "image_input" and "audio_input" so far.
    """

    pair: Any
    rgb: np.ndarray = field(repr=False)
    image_row: np.ndarray = field(repr=False)
    signal: np.ndarray = field(repr=False)
    rate: int
    seconds: dict[str, float] = field(default_factory=dict)


def decode_pair(localizer: Any, pair: Any, rgb: np.ndarray, audio: Any) -> DecodedPair:
    """The per-request part of `Localizer.prepare_decoded` (all but the spectrogram).

    Raises:
        DataError: The audio does not suit the front-end (see `vsslrt.data.prepare_signal`).
    """

    image_row, signal, rate, seconds = frontend_signals(rgb, audio, localizer.spec, localizer.calibration.protocol)
    return DecodedPair(pair, rgb, image_row, signal, rate, seconds)


def audio_rows(localizer: Any, items: Sequence[DecodedPair]) -> list[np.ndarray]:
    """(1, F, T) audio rows of the items' signals: one batched call, or one per clip when the clips
    give different input shapes (a native-rate front-end with clips at different rates)."""

    spec = localizer.spec
    try:
        batch = spectrogram_inputs([i.signal for i in items], spec, rates=[i.rate for i in items])
        return list(batch)
    except DataError:
        return [spectrogram_inputs([i.signal], spec, rates=i.rate)[0] for i in items]


def run_batch(localizer: Any, items: Sequence[DecodedPair]) -> list[Any]:
    """Decoded pairs -> `EmbeddedPair`s, in order (the batcher's `run_batch`); each pair's
    `Localizer.finish_embedded` gives its `LocalizationResult`."""
    return localizer.embed_prepared(prepared_pairs(localizer, items))


def prepared_pairs(localizer: Any, items: Sequence[DecodedPair]) -> list[Any]:
    """Decoded pairs -> `PreparedPair`s, their spectrograms made in one batched call."""

    if not items:
        return []
    t = time.perf_counter()
    rows = audio_rows(localizer, items)
    share = (time.perf_counter() - t) / len(items)  # the batch's transform, split over its clips
    prepared = [PreparedPair(i.pair, i.rgb, i.image_row, row,
                             {"image_input": i.seconds["image_input"], "audio_input": i.seconds["audio_input"] + share})
                for i, row in zip(items, rows)]
    return prepared
