"""The service's batch step against the per-pair path of `vsslrt localize`: the batched spectrogram
and the stacked upsampling give the same arrays, and split results equal whole ones."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_helpers import manifest_calibration, write_pairs  # noqa: E402

from vsslrt.data.audio_io import read_audio  # noqa: E402
from vsslrt.errors import DataError  # noqa: E402
from vsslrt.data.images import decode_image  # noqa: E402
from vsslrt.pipeline.demo import demo_engine_dirs  # noqa: E402
from vsslrt.pipeline.localize import Localizer, Pair, upsample_map  # noqa: E402
from vsslrt.pipeline.serve.batch import audio_rows, decode_pair, prepared_pairs, run_batch  # noqa: E402


@pytest.fixture(scope="module")
def localizer(tmp_path_factory):
    engine = demo_engine_dirs()[1]  # demo-san
    path = tmp_path_factory.mktemp("cal") / "calibration.json"
    path.write_text(json.dumps(manifest_calibration(engine)))
    with Localizer(engine, path, threads=1) as loc:
        yield loc


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    files = write_pairs(tmp_path_factory.mktemp("pairs"), 6)
    return [(Pair(i.stem, i, a), decode_image(i), read_audio(a)) for i, a in files]


def test_batched_spectrograms_equal_one_clip_at_a_time(localizer, decoded):
    items = [decode_pair(localizer, *d) for d in decoded]
    for item, (pair, rgb, audio), row in zip(items, decoded, audio_rows(localizer, items)):
        alone = localizer.prepare_decoded(pair, rgb, audio)
        assert np.array_equal(row, alone.audio_row)
        assert np.array_equal(item.image_row, alone.image_row)
        assert row.shape == alone.audio_row.shape and row.dtype == np.float32


def test_clips_of_different_shapes_fall_back_to_one_transform_each(localizer, decoded):
    items = [decode_pair(localizer, *d) for d in decoded[:3]]
    # A shorter working signal gives another input shape (as clips at different native rates do).
    items[1] = replace(items[1], signal=items[1].signal[: len(items[1].signal) // 2])
    from vsslrt.data.frontends import spectrogram_inputs

    with pytest.raises(DataError):  # one batched call cannot hold them
        spectrogram_inputs([i.signal for i in items], localizer.spec, rates=[i.rate for i in items])
    rows = audio_rows(localizer, items)
    for item, row in zip(items, rows):
        assert np.array_equal(row, spectrogram_inputs([item.signal], localizer.spec, rates=item.rate)[0])
    assert rows[1].shape != rows[0].shape


@pytest.mark.parametrize("map_size", ["224", "image"])
def test_stacked_upsampling_equals_upsample_map_per_pair(localizer, decoded, map_size):
    loc = Localizer.__new__(Localizer)
    loc.__dict__.update(localizer.__dict__, map_size=map_size)
    prepared = prepared_pairs(loc, [decode_pair(loc, *d) for d in decoded])
    for result in loc.run_prepared(prepared):
        frame = (224, 224) if map_size == "224" else result.rgb.shape[:2]
        assert np.array_equal(result.map, upsample_map(result.raw_map, frame, loc.calibration.interp))
        assert np.array_equal(result.mask, result.map > loc.calibration.localization_threshold) or not result.sounding


def test_split_results_equal_run_prepared(localizer, decoded):
    items = [decode_pair(localizer, *d) for d in decoded]
    whole = localizer.run_prepared(prepared_pairs(localizer, items))
    split = [localizer.finish_embedded(e) for e in run_batch(localizer, items)]
    alone = [localizer.run_prepared([localizer.prepare_decoded(*d)])[0] for d in decoded]
    assert len({round(r.score, 6) for r in whole}) > 1  # distinct answers: a mix-up would show
    for a, b, c in zip(whole, split, alone):
        assert a.name == b.name == c.name
        assert np.array_equal(a.raw_map, b.raw_map) and np.array_equal(a.map, b.map) and np.array_equal(a.mask, b.mask)
        assert a.boxes == b.boxes and a.score == b.score and a.sounding == b.sounding
        # Against one pair per engine call: the encoders' batch may move the last digits only.
        np.testing.assert_allclose(a.raw_map, c.raw_map, atol=2e-6)
        assert a.sounding == c.sounding
        assert [(x.x0, x.y0, x.x1, x.y1) for x in a.boxes] == [(x.x0, x.y0, x.x1, x.y1) for x in c.boxes]
        assert set(b.timing_ms) >= {"image_input", "audio_input", "visual_encoder", "audio_encoder", "head",
                                    "postprocess", "total", "batch_size"} and b.timing_ms["batch_size"] == len(items)
