"""Audio decoding: soundfile formats, the PyAV fallback, s16 quantisation, resampling."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.data.conftest import write_wav
from vsslrt.data import audio_io
from vsslrt.data.audio_io import audio_header, mix_channels, read_audio, resample, to_s16_scale
from vsslrt.errors import DataError


def test_wav_flac_and_ogg_decode_to_float_channels_first(tmp_path):
    write_wav(tmp_path / "a.wav", 0.25, channels=2, seed=1)
    wav = read_audio(tmp_path / "a.wav")
    ints, _ = soundfile.read(str(tmp_path / "a.wav"), dtype="int16")
    soundfile.write(str(tmp_path / "a.flac"), ints, 16000, subtype="PCM_16")
    soundfile.write(str(tmp_path / "a.ogg"), wav.samples.T, 16000)
    assert wav.samples.shape == (2, 4000) and wav.sample_rate == 16000 and wav.duration == 0.25
    np.testing.assert_array_equal(read_audio(tmp_path / "a.flac").samples, wav.samples)  # lossless
    ogg = read_audio(tmp_path / "a.ogg")
    assert ogg.samples.shape[0] == 2 and abs(ogg.frames - 4000) < 100
    assert audio_header(tmp_path / "a.wav") == (4000, 16000, 2)


def test_s16_scale_recovers_the_stored_integers(tmp_path):
    ints = np.array([-32768, -1, 0, 1, 12345, 32767], dtype=np.int16)
    soundfile.write(str(tmp_path / "i.wav"), ints, 16000, subtype="PCM_16")
    audio = read_audio(tmp_path / "i.wav")
    np.testing.assert_array_equal(audio.samples[0], ints / 32768.0)  # libsndfile's scale
    # PyAV s16 path of the reference: int16 / 32767, then clipped to [-1, 1]
    np.testing.assert_array_equal(to_s16_scale(audio.samples[0]), np.clip(ints / 32767.0, -1, 1))
    # float input: rounded to the nearest int16 first
    np.testing.assert_array_equal(to_s16_scale(np.array([0.5 / 32768, 1.6 / 32768, 2.0])), [0.0, 2 / 32767, 1.0])


def test_channel_rules_and_resampling():
    stereo = np.array([[0.2, 0.4], [0.6, -0.4]])
    np.testing.assert_allclose(mix_channels(stereo, "mean"), [0.4, 0.0])
    np.testing.assert_array_equal(mix_channels(stereo, "first"), [0.2, 0.4])
    np.testing.assert_array_equal(mix_channels(stereo[:1], "mean"), [0.2, 0.4])
    tone = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    out = resample(tone, 22050, 16000)
    assert out.shape == (16000,)
    expected = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.max(np.abs(out[200:-200] - expected[200:-200])) < 1e-2
    assert resample(tone, 16000, 16000) is tone


def test_pyav_decodes_like_soundfile(tmp_path):
    pytest.importorskip("av")
    write_wav(tmp_path / "a.wav", 0.3, channels=2, seed=2)
    samples, rate = audio_io._read_pyav(tmp_path / "a.wav", "")
    assert rate == 16000
    np.testing.assert_allclose(samples, read_audio(tmp_path / "a.wav").samples, atol=1e-7)


def test_pyav_is_the_fallback_when_soundfile_fails(tmp_path, monkeypatch):
    pytest.importorskip("av")
    write_wav(tmp_path / "a.wav", 0.1, seed=3)
    expected = read_audio(tmp_path / "a.wav").samples
    monkeypatch.setattr(audio_io, "_read_soundfile", lambda path: (None, 0, "format not recognised"))
    np.testing.assert_allclose(read_audio(tmp_path / "a.wav").samples, expected, atol=1e-7)
    (tmp_path / "junk.m4a").write_bytes(b"\x00\x00\x00\x18ftypjunk")
    with pytest.raises(DataError, match=r"junk\.m4a: expected a readable audio file, got errors from soundfile .* and PyAV"):
        read_audio(tmp_path / "junk.m4a")


def test_without_pyav_an_unknown_format_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_io, "pyav_available", lambda: False)
    (tmp_path / "clip.m4a").write_bytes(b"\x00\x00\x00\x18ftypjunk")
    with pytest.raises(DataError, match=r"clip\.m4a: expected a readable audio file, got data in no audio format libsndfile reads.*vsslrt\[audio\]"):
        read_audio(tmp_path / "clip.m4a")


def test_non_finite_samples_are_rejected(tmp_path):
    soundfile.write(str(tmp_path / "f.wav"), np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"f\.wav: expected finite audio samples"):
        read_audio(tmp_path / "f.wav")
