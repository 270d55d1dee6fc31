"""Batched spectrograms against scipy's per-clip call and against straightforward implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal

from vsslrt.data import spectral


@pytest.mark.parametrize("n, nperseg, noverlap", [(160000, 512, 274), (48000, 512, 353), (5000, 512, 274), (3001, 255, 100)])
def test_psd_matches_scipy_spectrogram_per_clip(n, nperseg, noverlap):
    rng = np.random.default_rng(n)
    batch = rng.standard_normal((3, n)) * np.array([[1.0], [1e-3], [0.0]]) + np.array([[0.5], [0.0], [0.0]])
    ours = spectral.psd_spectrogram(batch, 16000, nperseg=nperseg, noverlap=noverlap)
    for row, clip in zip(ours, batch):
        _, _, expected = scipy.signal.spectrogram(clip, 16000, nperseg=nperseg, noverlap=noverlap)
        assert row.shape == expected.shape
        np.testing.assert_allclose(row, expected, rtol=1e-10, atol=1e-300)


def test_psd_frame_range_equals_the_slice_of_all_frames():
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((2, 160000))
    full = spectral.psd_spectrogram(batch, 16000)
    assert full.shape == (2, 257, 671)
    part = spectral.psd_spectrogram(batch, 16000, first_frame=236, n_frames=200)
    np.testing.assert_array_equal(part, full[:, :, 236:436])
    with pytest.raises(ValueError, match="outside"):
        spectral.psd_spectrogram(batch, 16000, first_frame=600, n_frames=200)


def test_psd_of_a_short_signal_has_no_frames():
    assert spectral.frame_count(511, 512, 274) == 0
    assert spectral.psd_spectrogram(np.zeros((2, 511)), 16000).shape == (2, 257, 0)


def _mel_filterbank_loop(n_freqs, rate, n_mels):
    """HTK triangles written out one filter and one bin at a time."""
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    top = hz_to_mel(rate // 2)
    edges = [mel_to_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    freqs = [(rate // 2) * k / (n_freqs - 1) for k in range(n_freqs)]
    bank = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            rising = (f - lo) / (mid - lo)
            falling = (hi - f) / (hi - mid)
            bank[k, m] = max(0.0, min(rising, falling))
    return bank


def _mel_db_loop(clip, rate, n_fft=512, hop=239, n_mels=257):
    """One frame at a time: reflect pad, periodic Hann, |rfft|^2 / sum(w^2), mel, dB."""
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * k / n_fft) for k in range(n_fft)])
    padded = np.pad(clip, n_fft // 2, mode="reflect")
    bank = _mel_filterbank_loop(n_fft // 2 + 1, rate, n_mels)
    frames = 1 + len(clip) // hop
    out = np.zeros((n_mels, frames))
    for t in range(frames):
        segment = padded[t * hop : t * hop + n_fft] * window
        power = np.abs(np.fft.rfft(segment)) ** 2 / np.sum(window**2)
        out[:, t] = 10.0 * np.log10(np.maximum(power @ bank, 1e-10))
    return out


def test_mel_filterbank_matches_the_written_out_triangles():
    np.testing.assert_allclose(spectral.mel_filterbank(257, 16000, 257), _mel_filterbank_loop(257, 16000, 257), atol=1e-12)


def test_mel_db_matches_a_frame_by_frame_implementation():
    rng = np.random.default_rng(2)
    batch = rng.standard_normal((2, 4000)) * 0.1
    batch[1, :1000] = 0.0  # a stretch of digital silence: exercises the 1e-10 floor
    ours = spectral.amplitude_to_db(spectral.mel_power_spectrogram(batch, 16000))
    assert ours.shape == (2, 257, 1 + 4000 // 239)
    for row, clip in zip(ours, batch):
        np.testing.assert_allclose(row, _mel_db_loop(clip, 16000), atol=1e-9)


def test_mel_matches_torch_stft_in_float32():
    """The same transform written with torch ops, as torchaudio 0.13 computes it (float32)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    clip = (0.2 * rng.standard_normal(16000)).astype(np.float32)
    wav = torch.from_numpy(clip)
    window = torch.hann_window(512)
    spec = torch.stft(wav, 512, 239, 512, window, center=True, pad_mode="reflect", return_complex=True)
    power = (spec / window.pow(2).sum().sqrt()).abs().pow(2)
    bank = torch.from_numpy(spectral.mel_filterbank(257, 16000, 257).astype(np.float32))
    expected = 10 * torch.log10(torch.clamp(bank.T @ power, min=1e-10))
    ours = spectral.amplitude_to_db(spectral.mel_power_spectrogram(clip[None].astype(np.float64), 16000))[0]
    np.testing.assert_allclose(ours, expected.numpy(), atol=2e-3)


def test_mel_matches_torchaudio_when_installed():
    torchaudio = pytest.importorskip("torchaudio")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    clip = (0.2 * rng.standard_normal(16000)).astype(np.float32)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=239, n_mels=257, normalized=True)
    expected = torchaudio.transforms.AmplitudeToDB()(mel(torch.from_numpy(clip)[None]))[0].numpy()
    ours = spectral.amplitude_to_db(spectral.mel_power_spectrogram(clip[None].astype(np.float64), 16000))[0]
    # torchaudio builds its filterbank in float32: edges carry ~3e-5 rounding, hence the dB tolerance.
    np.testing.assert_allclose(ours, expected, atol=1e-2)
