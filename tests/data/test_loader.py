"""BatchLoader: batch contents, determinism across batch sizes / shards / workers, errors, skip_bad."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vsslrt.data import loader as loader_module
from vsslrt.data.audio_io import read_audio
from vsslrt.data.datasets import load_dataset
from vsslrt.data.frontends import audio_input, get_frontend, prepare_signal, silence_input, spectrogram_inputs
from vsslrt.data.images import load_images
from vsslrt.data.loader import BatchLoader
from vsslrt.data.negatives import noise_signal
from vsslrt.errors import DataError, InputError


@pytest.fixture(scope="module")
def is3_ds(is3_mini):
    return load_dataset("is3", is3_mini)


def _by_sample(loader):
    """Per-sample arrays keyed by dataset index, over a whole pass."""
    out = {}
    for batch in loader:
        for k, index in enumerate(batch.indices):
            out[int(index)] = (
                batch.positive[k],
                batch.offscreen[:, k] if batch.offscreen is not None else None,
                batch.noise[:, k],
                batch.offscreen_index[:, k],
            )
    return out


def test_batch_contents_equal_the_direct_computation(is3_ds):
    loader = BatchLoader(is3_ds, "ezvsl", mode="paper", batch_size=6, repeats=2, run_seed=5, indices=[0, 5, 9], workers=0)
    (batch,) = list(loader)
    spec = get_frontend("ezvsl")
    assert batch.indices.tolist() == [0, 5, 9] and batch.names == [is3_ds[i].name for i in (0, 5, 9)]
    np.testing.assert_array_equal(batch.images, load_images([is3_ds[i].image for i in (0, 5, 9)]))
    np.testing.assert_array_equal(batch.gt, is3_ds.gt_maps([0, 5, 9]))
    np.testing.assert_array_equal(batch.groups, is3_ds.groups[[0, 5, 9]])
    for k, index in enumerate((0, 5, 9)):
        np.testing.assert_allclose(batch.positive[k], audio_input(is3_ds[index].audio, spec, mode="paper"), rtol=1e-6, atol=1e-7)
        for r in range(2):
            clip = loader.plan[r][k]
            assert batch.offscreen_index[r, k] == clip.index == loader.offscreen_indices[r, k]
            off = prepare_signal(read_audio(clip.audio), spec, mode="paper", role="offscreen")[0]
            np.testing.assert_allclose(batch.offscreen[r, k], spectrogram_inputs([off], spec)[0], rtol=1e-6, atol=1e-7)
            noise = noise_signal(spec, run_seed=5, repetition=r, index=index)
            # Q5, paper mode: the noise PSD is not log-transformed.
            np.testing.assert_allclose(batch.noise[r, k], spectrogram_inputs([noise], spec, compress=False)[0], rtol=1e-6, atol=1e-12)
    assert batch.positive.shape == (3, 1, 257, 200) and batch.offscreen.shape == batch.noise.shape == (2, 3, 1, 257, 200)
    np.testing.assert_array_equal(loader.silence, silence_input("ezvsl", "paper"))


def test_negatives_are_identical_across_batch_sizes_shards_and_workers(is3_dir):
    ds = load_dataset("is3", is3_dir)
    common = dict(repeats=3, run_seed=11)
    reference = _by_sample(BatchLoader(ds, "ezvsl", batch_size=6, workers=0, **common))
    variants = [
        BatchLoader(ds, "ezvsl", batch_size=1, workers=2, executor="thread", **common),
        BatchLoader(ds, "ezvsl", batch_size=4, workers=2, executor="process", **common),
    ]
    shards = [BatchLoader(ds, "ezvsl", batch_size=2, indices=part, workers=1, **common) for part in ([5, 2], [0, 1, 3, 4])]
    results = [_by_sample(v) for v in variants]
    merged = {}
    for shard in shards:
        merged.update(_by_sample(shard))
    for result in results + [merged]:
        assert result.keys() == reference.keys()
        for index, (pos, off, noise, off_index) in reference.items():
            np.testing.assert_array_equal(result[index][0], pos)
            np.testing.assert_array_equal(result[index][1], off)
            np.testing.assert_array_equal(result[index][2], noise)
            np.testing.assert_array_equal(result[index][3], off_index)


def test_batches_come_in_order_with_bounded_prefetch(is3_ds, monkeypatch):
    started = []
    lock = threading.Lock()
    real = loader_module.build_batch

    def counting(job):
        with lock:
            started.append(job.samples[0].index)
        return real(job)

    monkeypatch.setattr(loader_module, "build_batch", counting)
    loader = BatchLoader(is3_ds, "lvs", batch_size=2, workers=1, prefetch=1, noise_inputs=False, offscreen_inputs=False)
    iterator = iter(loader)
    first = next(iterator)
    assert first.indices.tolist() == [0, 1]
    assert len(started) <= 2  # one per worker plus one prefetched, of 8 batches
    rest = list(iterator)
    assert [b.indices[0] for b in rest] == [2, 4, 6, 8, 10, 12, 14]
    assert first.offscreen is None and first.noise is None


def test_offscreen_inputs_can_be_skipped_only_when_reusable(is3_ds):
    loader = BatchLoader(is3_ds, "ezvsl", batch_size=16, offscreen_inputs=False, noise_inputs=False, workers=0)
    assert get_frontend("ezvsl").offscreen_matches_positive("fixed")
    batch = next(iter(loader))
    assert batch.offscreen is None and batch.offscreen_index.shape == (1, 16)
    # The offscreen input of a sample equals the positive input of the clip it reuses.
    k = 0
    clip_index = int(batch.offscreen_index[0, k])
    off = prepare_signal(read_audio(is3_ds[clip_index].audio), get_frontend("ezvsl"), role="offscreen")[0]
    np.testing.assert_array_equal(spectrogram_inputs([off], get_frontend("ezvsl"))[0], batch.positive[clip_index])
    with pytest.raises(InputError, match="Q8/Q9"):
        BatchLoader(is3_ds, "ezvsl", mode="paper", offscreen_inputs=False)


def test_corrupt_audio_raises_naming_the_file_or_is_skipped(is3_dir):
    bad = is3_dir / "audio_wav" / "cat_car_12_car.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    ds = load_dataset("is3", is3_dir)
    index = ds.names.index("cat_car_12_car")
    for executor in ("thread", "process"):
        loader = BatchLoader(ds, "lvs", batch_size=2, workers=2, executor=executor, noise_inputs=False, offscreen_inputs=False)
        with pytest.raises(DataError, match=r"cat_car_12_car\.wav: expected a readable audio file.*Hint: check that the file"):
            list(loader)
    loader = BatchLoader(ds, "lvs", batch_size=4, repeats=3, workers=2, skip_bad=True)
    batches = list(loader)
    seen = [int(i) for b in batches for i in b.indices]
    assert index not in seen
    skipped_own = [s for s in loader.skipped if s.index == index]
    assert len(skipped_own) == 1 and skipped_own[0].file == str(bad) and "readable audio" in skipped_own[0].reason
    # Samples whose offscreen draw hit the bad clip are skipped too, naming that clip.
    for s in loader.skipped:
        assert s.file == str(bad)
    plan_hits = {loader.indices[k] for rep in loader.plan for k, clip in enumerate(rep) if clip.index == index}
    assert {s.index for s in loader.skipped} == plan_hits | {index}
    assert plan_hits and sorted(seen + [s.index for s in loader.skipped]) == list(range(len(ds)))


def test_corrupt_image_is_skipped_and_counted(vggss_dir):
    (vggss_dir / "frames" / "clipC_000003.jpg").write_bytes(b"\xff\xd8\xffnope")
    ds = load_dataset("vggss", vggss_dir)
    with pytest.raises(DataError, match=r"clipC_000003\.jpg: expected a readable image"):
        list(BatchLoader(ds, "fnac", batch_size=2, workers=0))
    loader = BatchLoader(ds, "fnac", batch_size=2, workers=0, skip_bad=True)
    batches = list(loader)
    assert [b.indices.tolist() for b in batches] == [[0, 1], [3]]
    assert [(s.name, s.file.endswith("clipC_000003.jpg")) for s in loader.skipped] == [("clipC_000003", True)]


def test_bad_loader_arguments(is3_ds):
    with pytest.raises(InputError, match="batch size: expected an integer >= 1, got 0"):
        BatchLoader(is3_ds, "lvs", batch_size=0)
    with pytest.raises(InputError, match="executor"):
        BatchLoader(is3_ds, "lvs", executor="gpu")
    with pytest.raises(InputError, match=r"indices: expected values in \[0, 16\)"):
        BatchLoader(is3_ds, "lvs", indices=[3, 99])
    assert len(BatchLoader(is3_ds, "lvs", batch_size=5)) == 4
