"""Batched spectrograms that reproduce the reference's per-clip calls.

Two transforms are needed by the model families:

* `psd_spectrogram`: what `scipy.signal.spectrogram(x, fs, nperseg, noverlap)` returns with its
  defaults (periodic Tukey(0.25) window, nfft = nperseg, constant detrend, one-sided,
  scaling='density', mode='psd'), for a whole batch in one framing + one real FFT. It can compute
  only a range of frames, because EZ-VSL keeps 200 of its 671 frames.
* `mel_power_spectrogram`: what `torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, hop_length,
  n_mels, normalized=True)` returns (periodic Hann window, centre reflect padding, power 2, HTK mel
  scale without filter normalisation), written with NumPy.

`normalized=True` in torchaudio means "window" normalisation: the complex STFT is divided by the
window's L2 norm, sqrt(sum(w**2)), so the power spectrogram is |X|**2 / sum(w**2). (The other
option, "frame_length", divides by sqrt(n_fft) inside torch.stft and is not used by any model here.)

Both functions work in float64 (as the reference does for the scipy families). One call handles a
whole batch, but internally walks it in chunks of about 2 MiB of frames: every stage (detrend,
window, FFT, power) is memory-bound, and keeping a chunk in cache measured 3-5x faster per clip than
framing a 64-clip batch at once (which was no faster than scipy's per-clip loop).
"""

from __future__ import annotations

import functools

import numpy as np

# Bytes of float64 frames handled per FFT call (a few clips): small enough to stay in cache.
CHUNK_BYTES = 2 * 1024 * 1024


def frame_count(n_samples: int, nperseg: int, noverlap: int) -> int:
    """Number of frames `scipy.signal.spectrogram` produces for a signal of `n_samples`."""
    step = nperseg - noverlap
    if n_samples < nperseg:
        return 0
    return (n_samples - nperseg) // step + 1


@functools.lru_cache(maxsize=16)
def tukey_window(n: int, alpha: float = 0.25) -> np.ndarray:
    """The periodic ("DFT-even") Tukey window that `scipy.signal.get_window(('tukey', a), n)` gives."""
    from scipy.signal import get_window

    win = np.asarray(get_window(("tukey", alpha), n), dtype=np.float64)
    win.setflags(write=False)
    return win


@functools.lru_cache(maxsize=16)
def hann_window(n: int) -> np.ndarray:
    """The periodic Hann window of `torch.hann_window(n)`: 0.5 - 0.5 cos(2 pi k / n)."""
    k = np.arange(n, dtype=np.float64)
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)
    win.setflags(write=False)
    return win


def _frames(signals: np.ndarray, nperseg: int, step: int, first: int, count: int) -> np.ndarray:
    """A strided (B, count, nperseg) view of frames first .. first+count-1 (no copy)."""
    view = np.lib.stride_tricks.sliding_window_view(signals, nperseg, axis=-1)
    return view[:, first * step : first * step + (count - 1) * step + 1 : step, :]


def _row_chunks(n_rows: int, bytes_per_row: int) -> list[slice]:
    rows = max(1, CHUNK_BYTES // max(bytes_per_row, 1))
    return [slice(start, min(start + rows, n_rows)) for start in range(0, n_rows, rows)]


def psd_spectrogram(
    signals: np.ndarray,
    fs: float,
    *,
    nperseg: int = 512,
    noverlap: int = 274,
    first_frame: int = 0,
    n_frames: int | None = None,
) -> np.ndarray:
    """Power spectral density frames of a batch, as `scipy.signal.spectrogram` computes them per clip.

    Args:
        signals: (B, N) real signals of equal length.
        fs: Sample rate in Hz (the density scaling depends on it).
        nperseg: Frame length (also the FFT length).
        noverlap: Overlap between frames.
        first_frame: Index of the first frame to compute.
        n_frames: How many frames to compute; defaults to all frames from `first_frame` on.

    Returns:
        (B, nperseg // 2 + 1, n_frames) float64, equal to
        `scipy.signal.spectrogram(x, fs, nperseg=nperseg, noverlap=noverlap)[2][:, first:first+n]`.
    """
    from scipy import fft

    x = np.asarray(signals, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"signals must be (B, N), got shape {x.shape}")
    step = nperseg - noverlap
    total = frame_count(x.shape[1], nperseg, noverlap)
    if n_frames is None:
        n_frames = total - first_frame
    if first_frame < 0 or n_frames < 0 or first_frame + n_frames > total:
        raise ValueError(f"frames {first_frame}..{first_frame + n_frames} outside 0..{total} of the signal")
    n_bins = nperseg // 2 + 1
    out = np.empty((x.shape[0], n_bins, n_frames), dtype=np.float64)
    if n_frames == 0 or x.shape[0] == 0:
        return out
    win = tukey_window(nperseg)
    scale = _density_scale(nperseg, float(fs))
    for rows in _row_chunks(x.shape[0], n_frames * nperseg * 8):
        frames = _frames(x[rows], nperseg, step, first_frame, n_frames)
        # detrend='constant' removes each frame's mean before windowing, as scipy does.
        centred = frames - frames.mean(axis=-1, keepdims=True)
        centred *= win
        spec = fft.rfft(centred, n=nperseg, axis=-1)
        power = spec.real * spec.real
        power += spec.imag * spec.imag
        power *= scale
        out[rows] = np.swapaxes(power, 1, 2)
    return out


@functools.lru_cache(maxsize=16)
def _density_scale(nperseg: int, fs: float) -> np.ndarray:
    """Per-bin factor of scaling='density', one-sided: 1 / (fs * sum(w^2)), doubled for every bin but
    DC (and Nyquist for an even FFT), which carry the power of their negative-frequency twins."""
    win = tukey_window(nperseg)
    factor = np.full(nperseg // 2 + 1, 1.0 / (fs * float(np.sum(win * win))))
    if nperseg % 2 == 0:
        factor[1:-1] *= 2.0
    else:
        factor[1:] *= 2.0
    factor.setflags(write=False)
    return factor


def _hz_to_mel_htk(freq: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def _mel_to_hz_htk(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(n_freqs: int, sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Triangular HTK mel filters without area normalisation, as `torchaudio.functional.melscale_fbanks`.

    The STFT bin frequencies are linspace(0, sample_rate // 2, n_freqs) (torchaudio uses the integer
    half rate), the filter edges are n_mels + 2 points equally spaced on the HTK mel scale between
    f_min and f_max (default sample_rate // 2), and each filter is max(0, min(rising, falling)) slope.

    Returns:
        (n_freqs, n_mels) float64 weights; mel = power @ weights. Filters narrower than the bin
        spacing can be all zero (torchaudio warns about them; they are kept, as there).
    """
    if f_max is None:
        f_max = float(sample_rate // 2)
    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(_hz_to_mel_htk(f_min), _hz_to_mel_htk(f_max), n_mels + 2)
    f_pts = _mel_to_hz_htk(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    bank = np.maximum(0.0, np.minimum(down, up))
    bank.setflags(write=False)
    return bank


@functools.lru_cache(maxsize=16)
def _sparse_mel_bank(n_freqs: int, sample_rate: int, n_mels: int):
    """The filterbank transposed, (n_mels, n_freqs), as a CSR matrix: each triangle covers a few bins
    (509 non-zeros of 257 x 257 at 16 kHz), so the product is ~20x cheaper than a dense one."""
    from scipy import sparse

    return sparse.csr_matrix(mel_filterbank(n_freqs, sample_rate, n_mels).T)


def mel_power_spectrogram(
    signals: np.ndarray,
    sample_rate: int,
    *,
    n_fft: int = 512,
    hop_length: int = 239,
    n_mels: int = 257,
) -> np.ndarray:
    """Mel power spectrogram of a batch, as torchaudio's MelSpectrogram(normalized=True) computes it.

    Args:
        signals: (B, N) real signals of equal length.
        sample_rate: Sample rate in Hz.
        n_fft: FFT and window length.
        hop_length: Hop between frames.
        n_mels: Number of mel bands.

    Returns:
        (B, n_mels, 1 + N // hop_length) float64 linear mel power.
    """
    from scipy import fft

    x = np.asarray(signals, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"signals must be (B, N), got shape {x.shape}")
    pad = n_fft // 2
    if x.shape[1] <= pad:
        raise ValueError(f"signals of {x.shape[1]} samples are too short for reflect padding of {pad}")
    n_frames = 1 + x.shape[1] // hop_length
    win = hann_window(n_fft)
    norm = 1.0 / float(np.sum(win * win))  # |X / ||w|| |^2: torchaudio's window normalisation
    bank_t = _sparse_mel_bank(n_fft // 2 + 1, int(sample_rate), n_mels)
    out = np.empty((x.shape[0], n_mels, n_frames), dtype=np.float64)
    for rows in _row_chunks(x.shape[0], n_frames * n_fft * 8):
        padded = np.pad(x[rows], ((0, 0), (pad, pad)), mode="reflect")
        frames = _frames(padded, n_fft, hop_length, 0, n_frames)
        spec = fft.rfft(frames * win, n=n_fft, axis=-1)
        power = spec.real * spec.real + spec.imag * spec.imag
        power *= norm
        for i, clip_power in enumerate(power):  # (frames, bins) -> (mels, frames)
            out[rows.start + i] = bank_t @ clip_power.T
    return out


def amplitude_to_db(power: np.ndarray, amin: float = 1e-10, *, inplace: bool = False) -> np.ndarray:
    """torchaudio's AmplitudeToDB(stype='power', top_db=None): 10 * log10(max(x, amin)).

    With `inplace`, `power` (a float array) is overwritten with the result (saves two temporaries).
    """
    out = np.maximum(power, amin, out=power if inplace else None)
    np.log10(out, out=out)
    out *= 10.0
    return out
