"""Audio front-ends against per-clip transcriptions of the reference loaders (protocol section 2)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal
import soundfile

from tests.data.conftest import write_wav
from vsslrt.data import spectral
from vsslrt.data.audio_io import read_audio
from vsslrt.data.frontends import (
    FRONTENDS,
    audio_input,
    get_frontend,
    prepare_signal,
    silence_input,
    spectrogram_inputs,
)
from vsslrt.errors import DataError, InputError
from vsslrt.models import REGISTRY

LOG_1E7_OVER_12 = np.log(1e-7) / 12.0


# ---------------------------------------------------------------------------------------------
# Reference transcriptions: one clip at a time, scipy.signal.spectrogram, written from the protocol.


def _pyav_s16(path, dur):
    """load_audio_av(start 0, duration dur): int16 samples / 32767, clipped, averaged over channels."""
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    full = len(data) / rate
    audio = data[: int(dur * rate)].T / np.iinfo(np.int16).max
    return np.clip(audio, -1.0, 1.0).mean(0), rate, full


def _center_crop_200(spec):
    frames = spec.shape[1]
    if frames < 200:
        left = (200 - frames) // 2
        return np.pad(spec, ((0, 0), (left, 200 - frames - left)))
    start = int(round((frames - 200) / 2.0))
    return spec[:, start : start + 200]


def reference_ezvsl(path, path_off, dur=10.0):
    """datasets.py load_spectrogram (paper): returns positive, offscreen (1 x 257 x 200 each)."""
    audio, rate, full = _pyav_s16(path, dur)
    off, rate_off, _ = _pyav_s16(path_off, dur)
    if audio.shape[0] < rate * dur:
        audio = np.tile(audio, int(rate * dur / audio.shape[0]) + 1)
    audio = audio[: int(rate * dur)]
    if off.shape[0] < rate_off * dur:
        off = np.tile(off, int(rate_off * dur / audio.shape[0]) + 1)  # Q8: the positive's length
    off = off[: int(rate_off * dur)]
    audio = np.roll(audio, int(rate * dur / 2) - int(float(full) / 2 * rate))
    _, _, spec = scipy.signal.spectrogram(audio, rate, nperseg=512, noverlap=274)
    _, _, spec_off = scipy.signal.spectrogram(off, rate_off, nperseg=512, noverlap=274)
    return _center_crop_200(np.log(spec + 1e-7)) / 12.0, _center_crop_200(np.log(spec_off + 1e-7)) / 12.0


def reference_fnac_intended(path, dur=3.0):
    """[SA] load_spectrogram_fnac: the centred 3 s, tiled, log, / 12."""
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    start = max(len(data) / rate / 2 - dur / 2, 0)
    audio = np.clip(data[int(start * rate) : int(start * rate) + int(dur * rate)].T / 32767.0, -1, 1).mean(0)
    if audio.shape[0] < rate * dur:
        audio = np.tile(audio, int(rate * dur / audio.shape[0]) + 1)
    _, _, spec = scipy.signal.spectrogram(audio[: int(rate * dur)], rate, nperseg=512, noverlap=274)
    return np.log(spec + 1e-7) / 12.0


def reference_lvs(path):
    """datasets_lvs.py: soundfile float, channel 0 of stereo, tile to 10 s, [3.5 s, 6.5 s), clip, log, / 12."""
    samples, rate = soundfile.read(str(path))
    if samples.ndim > 1 and samples.shape[1] == 2:
        samples = samples[:, 0]
    if samples.shape[0] < rate * 10:
        samples = np.tile(samples, int(rate * 10 / samples.shape[0]) + 1)
    segment = np.clip(samples[: rate * 10][int(16000 * 3.5) : int(16000 * 6.5)], -1.0, 1.0)
    _, _, spec = scipy.signal.spectrogram(segment, rate, nperseg=512, noverlap=353)
    return np.log(spec + 1e-7) / 12.0


# ---------------------------------------------------------------------------------------------


def test_named_frontends_give_the_registry_audio_shapes():
    for model in REGISTRY.values():
        assert FRONTENDS[model.frontend].output_shape() == model.audio_shape, model.name


@pytest.mark.parametrize("name", sorted(FRONTENDS))
def test_is3_mini_inputs_have_the_model_shape_in_both_modes(is3_mini, name):
    spec = FRONTENDS[name]
    paths = sorted((is3_mini / "audio_wav").glob("*.wav"))[:6]
    audios = [read_audio(p) for p in paths]
    for mode in ("fixed", "paper"):
        signals = [prepare_signal(a, spec, mode=mode, dataset_kind="is3")[0] for a in audios]
        inputs = spectrogram_inputs(signals, spec)
        assert inputs.shape == (len(paths),) + spec.output_shape()
        assert inputs.dtype == np.float32 and np.all(np.isfinite(inputs))


def test_ezvsl_positive_and_offscreen_match_the_reference_on_is3_mini(is3_mini):
    spec = get_frontend("ezvsl")
    audio_dir = is3_mini / "audio_wav"
    # A 10 s clip, a 7.7 s one (tiled and rolled), and the 1.19 s one (as offscreen it stays short: Q8).
    pairs = [
        ("cello_bird_3804_cello", "lion_cat_872_cat"),
        ("airplane_bus_1064_bus", "lion_electronicorgan_803_lion"),
        ("lion_cat_872_cat", "ocean_turkey_5209_turkey"),
    ]
    results = []
    for pos_name, off_name in pairs:
        pos_path, off_path = audio_dir / f"{pos_name}.wav", audio_dir / f"{off_name}.wav"
        want_pos, want_off = reference_ezvsl(pos_path, off_path)
        pos, rate = prepare_signal(read_audio(pos_path), spec, mode="paper")
        off, _ = prepare_signal(read_audio(off_path), spec, mode="paper", role="offscreen")
        got = spectrogram_inputs([pos, off], spec, rates=rate)
        np.testing.assert_allclose(got[0, 0], want_pos, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got[1, 0], want_off, rtol=1e-6, atol=1e-6)
        results.append(got)
    # The 1.19 s offscreen clip (19072 samples), repeated twice only, gives 159 frames: the crop pads
    # (200 - 159) // 2 = 20 zero frames on the left and 21 on the right.
    short = results[0][1, 0]
    assert np.all(short[:, :20] == 0) and np.all(short[:, 179:] == 0) and np.all(short[:, 20:179] != 0)


def test_fnac_paper_is_the_overwritten_first_3s_and_fixed_is_the_centred_3s(is3_mini):
    spec = get_frontend("fnac")
    path = is3_mini / "audio_wav" / "cello_female_3919_cello.wav"
    audio = read_audio(path)
    paper = spectrogram_inputs([prepare_signal(audio, spec, mode="paper")[0]], spec)[0, 0]
    fixed = spectrogram_inputs([prepare_signal(audio, spec, mode="fixed")[0]], spec)[0, 0]
    want_paper, _ = reference_ezvsl(path, path, dur=3.0)  # Q6: load_spectrogram with dur = 3
    np.testing.assert_allclose(paper, want_paper, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fixed, reference_fnac_intended(path), rtol=1e-6, atol=1e-6)
    assert not np.allclose(paper, fixed)


def test_lvs_matches_the_reference_including_stereo_and_short_clips(tmp_path, is3_mini):
    spec = get_frontend("lvs")
    paths = [is3_mini / "audio_wav" / "lion_cat_872_cat.wav", is3_mini / "audio_wav" / "stream_bus_5395_bus.wav"]
    stereo = tmp_path / "stereo.wav"
    write_wav(stereo, 2.5, channels=2, seed=3)
    paths.append(stereo)
    signals = [prepare_signal(read_audio(p), spec)[0] for p in paths]
    got = spectrogram_inputs(signals, spec)
    for row, path in zip(got, paths):
        np.testing.assert_allclose(row[0], reference_lvs(path), rtol=1e-6, atol=1e-6)


def test_ssltie_tiles_to_10s_and_matches_a_per_clip_mel(is3_mini):
    spec = get_frontend("ssltie")
    path = is3_mini / "audio_wav" / "lion_electronicorgan_803_lion.wav"
    samples, rate = soundfile.read(str(path), dtype="float32")  # torchaudio.load's scale
    tiled = np.tile(samples, int(rate * 10 / len(samples)) + 1)[: rate * 10].astype(np.float64)
    want = spectral.amplitude_to_db(spectral.mel_power_spectrogram(tiled[None], rate))[0]
    got = audio_input(path, spec)
    assert got.shape == (1, 257, 670)
    np.testing.assert_allclose(got[0], want, rtol=1e-6, atol=1e-4)


def test_silence_inputs_per_mode():
    for name in ("ezvsl", "fnac"):
        np.testing.assert_array_equal(silence_input(name, "paper"), 0.0)  # Q5: raw PSD of zeros
        np.testing.assert_allclose(silence_input(name, "fixed"), LOG_1E7_OVER_12, rtol=1e-6)
    for mode in ("paper", "fixed"):
        np.testing.assert_allclose(silence_input("lvs", mode), LOG_1E7_OVER_12, rtol=1e-6)
    np.testing.assert_array_equal(silence_input("ssltie", "paper"), 0.0)
    np.testing.assert_array_equal(silence_input("ssltie", "fixed"), -100.0)
    value = silence_input("ezvsl", "fixed")
    assert value.shape == (1, 257, 200) and not value.flags.writeable
    assert silence_input("ezvsl", "fixed") is value  # one constant per front-end and mode


def test_paper_noise_skips_the_log_for_q5_families():
    rng = np.random.default_rng(0)
    spec = get_frontend("ezvsl")
    noise = rng.standard_normal(spec.signal_length())
    raw, logged = spectrogram_inputs([noise, noise], spec, compress=[False, True])[:, 0]
    _, _, psd = scipy.signal.spectrogram(noise, 16000, nperseg=512, noverlap=274)
    np.testing.assert_allclose(raw, _center_crop_200(psd) / 12.0, rtol=1e-6)
    np.testing.assert_allclose(logged, _center_crop_200(np.log(psd + 1e-7)) / 12.0, rtol=1e-6)
    assert get_frontend("ezvsl").compresses_negatives("fixed") and not get_frontend("ezvsl").compresses_negatives("paper")
    assert get_frontend("lvs").compresses_negatives("paper")


def test_fixed_mode_offscreen_equals_positive_and_paper_mode_differs(is3_mini):
    path = is3_mini / "audio_wav" / "airplane_bus_1064_bus.wav"  # 7.7 s: rolled as a positive
    audio = read_audio(path)
    for name, spec in FRONTENDS.items():
        pos = prepare_signal(audio, spec, mode="fixed")[0]
        off = prepare_signal(audio, spec, mode="fixed", role="offscreen")[0]
        np.testing.assert_array_equal(pos, off)
        assert spec.offscreen_matches_positive("fixed")
        paper_same = np.array_equal(prepare_signal(audio, spec, mode="paper")[0], prepare_signal(audio, spec, mode="paper", role="offscreen")[0])
        assert paper_same == spec.offscreen_matches_positive("paper"), name


def test_other_sample_rates_are_resampled_to_16k(tmp_path):
    path = tmp_path / "a22k.wav"
    write_wav(path, 1.0, rate=22050, seed=1)
    for name in FRONTENDS:
        assert audio_input(path, name).shape == FRONTENDS[name].output_shape()
    native = dataclasses.replace(get_frontend("lvs"), sample_rate=None)
    signal, rate = prepare_signal(read_audio(path), native)
    assert rate == 22050 and len(signal) == int(22050 * 6.5) - int(22050 * 3.5)


def test_native_rate_spec_refuses_mixed_shapes():
    native = dataclasses.replace(get_frontend("lvs"), sample_rate=None)
    with pytest.raises(DataError, match="expected every clip to give"):
        spectrogram_inputs([np.zeros(48000), np.zeros(66150)], native, rates=[16000, 22050])


def test_s16_scale_and_channel_rules(tmp_path):
    path = tmp_path / "st.wav"
    data = np.array([[-1.0, 0.5], [0.25, -0.25], [32767 / 32768, 32767 / 32768]])
    soundfile.write(str(path), data, 16000, subtype="PCM_16")
    audio = read_audio(path)
    assert audio.channels == 2 and audio.frames == 3
    mean_s16 = dataclasses.replace(get_frontend("ezvsl"), duration=3 / 16000)
    signal, _ = prepare_signal(audio, mean_s16)
    # int16 mean of the channels / 32767, clipped: (-32768 + 16384) / 2 / 32767, 0, 32767 / 32767
    np.testing.assert_allclose(np.sort(signal), np.sort([(-32768 + 16384) / 2 / 32767, 0.0, 1.0]))
    first = dataclasses.replace(get_frontend("lvs"), segment=None, duration=3 / 16000)
    np.testing.assert_array_equal(prepare_signal(audio, first)[0], data[:, 0])


def test_ssltie_paper_mode_rejects_multichannel_is3_audio(tmp_path):
    path = tmp_path / "st.wav"
    write_wav(path, 0.5, channels=2)
    audio = read_audio(path)
    with pytest.raises(DataError, match=r"st\.wav.*Q25.*2 channels"):
        prepare_signal(audio, get_frontend("ssltie"), mode="paper", dataset_kind="is3")
    prepare_signal(audio, get_frontend("ssltie"), mode="paper", dataset_kind="vggss")
    prepare_signal(audio, get_frontend("ssltie"), mode="fixed", dataset_kind="is3")


def test_bad_names_and_modes_are_input_errors():
    with pytest.raises(InputError, match="audio front-end: expected one of"):
        get_frontend("nope")
    with pytest.raises(InputError, match="protocol: expected one of fixed, paper, got 'exact'"):
        silence_input("ezvsl", "exact")
    with pytest.raises(InputError, match="placement"):
        dataclasses.replace(get_frontend("ezvsl"), placement="middle")
