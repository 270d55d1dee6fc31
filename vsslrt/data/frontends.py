"""Audio front-ends: one declarative spec per model family, and the code that applies a spec to a batch.

A front-end is data (`AudioFrontend`), selected by `ModelSpec.frontend` in `vsslrt.models`. Applying
it has two stages:

1. `prepare_signal`: decoded audio -> the 1-D working signal the reference feeds its spectrogram
   (channel rule, resampling, PyAV s16 quantisation, placement in the window, segment, clipping).
2. `spectrogram_inputs`: a batch of working signals -> (B, 1, F, T) float32 model inputs with ONE
   batched STFT (`vsslrt.data.spectral`), then log/dB, centre crop and scaling.

The named specs reproduce the reference loaders (protocol section 2):

* "ezvsl" (EZ-VSL, SLAVC): first 10 s, tiled, rolled so the file's centre sits at 5 s; PSD with
  nperseg 512, noverlap 274; log(S + 1e-7); centre crop of 200 frames; / 12 -> 1 x 257 x 200.
* "fnac" (FNAC): 3 s. `fixed` mode reads the centred 3 s (the intended [SA] loader); `paper` mode
  reads what the reference actually computes (Q6): the first 3 s, tiled, rolled by
  int(1.5 sr) - int(dur/2 sr). Same PSD/log/÷12 -> 1 x 257 x 200.
* "lvs" (LVS, SSL-Align): tiled to 10 s, samples [3.5 s, 6.5 s), clipped to [-1, 1]; PSD with noverlap
  353; log; / 12 -> 1 x 257 x 299.
* "ssltie" (SSL-TIE): tiled to 10 s; mel power (n_fft 512, hop 239, 257 mels, window-normalised);
  10 log10(max(x, 1e-10)) -> 1 x 257 x 670.

Protocol modes: `fixed` (default) gives every audio condition the same log and scaling, tiles and
centres the offscreen clip with its own length (same as a positive), and reads FNAC's centred 3 s.
`paper` reproduces the reference quirks: Q5 (no log/dB for noise and silence in EZ-VSL, SLAVC, FNAC,
SSL-TIE), Q6 (FNAC's overwritten crop), Q8/Q9 (EZ-VSL family offscreen: tile count from the positive,
not rolled) and Q25 (SSL-TIE keeps every channel of IS3 audio: a multi-channel file is an error there,
since the model takes one channel). Decoding rules are per family and the same in both modes:
EZ-VSL/SLAVC/FNAC average the channels and go through PyAV's s16 scale (int16 / 32767, clipped);
LVS and SSL-TIE keep channel 0 of multi-channel files at libsndfile's float scale (int16 / 32768).

Sample rate: the reference reads native rates and every reference dataset is 16 kHz. The named specs
fix 16 kHz (their engines have fixed input shapes) and resample other rates with
`scipy.signal.resample_poly`; `dataclasses.replace(spec, sample_rate=None)` keeps native rates.

Deviation: where the reference would produce fewer than 200 frames (a paper-mode offscreen clip shorter
than half the window), EZ-VSL's CenterCrop pads with zeros; FNAC has no crop there and its batch
would fail to collate, so the same zero padding is applied to FNAC.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vsslrt.data import spectral
from vsslrt.data.audio_io import DecodedAudio, mix_channels, read_audio, resample, to_s16_scale
from vsslrt.errors import DataError, InputError

FIXED = "fixed"
PAPER = "paper"
MODES = (FIXED, PAPER)
ROLES = ("positive", "offscreen")
PLACEMENTS = ("roll", "centre", "tile")


@dataclass(frozen=True)
class AudioFrontend:
    """A declarative audio front-end.

    Attributes:
        name: Registry name (`ModelSpec.frontend`).
        transform: "psd" (scipy.signal.spectrogram density) or "mel" (torchaudio MelSpectrogram).
        sample_rate: Working rate in Hz (files at other rates are resampled); None keeps native rates.
        duration: Seconds the reference reads and tiles to.
        placement: How the file fills the `duration` window in fixed mode: "roll" (first `duration` s,
            tiled, rolled so the file's centre lands at the window's centre), "centre" (the centred
            `duration` s, tiled when short), "tile" (from the start, tiled when short).
        paper_placement: The placement in paper mode when it differs (FNAC, Q6).
        segment: (start, stop) seconds kept from the window after placement (LVS: 3.5-6.5 s).
        clip: Clip the working signal to [-1, 1] (LVS).
        nperseg: PSD frame length (= FFT length).
        noverlap: PSD frame overlap.
        n_fft: Mel FFT / window length.
        hop_length: Mel hop.
        n_mels: Mel bands.
        compression: "ln" -> log(S + log_eps); "db" -> 10 log10(max(S, 1e-10)).
        log_eps: The epsilon of "ln".
        centre_crop_frames: Frames kept by a centre crop (zero padded when fewer), None for no crop.
        divisor: Final scale, input = compressed / divisor (12 for the scipy families).
        channels: "mean" (PyAV mono downmix) or "first" (channel 0 of multi-channel files).
        s16: Quantise like PyAV's s16 resampler and divide by 32767 (EZ-VSL family).
        paper_raw_negatives: Q5: paper mode skips the log/dB for noise and silence.
        paper_offscreen_from_positive: Q8 + Q9: paper-mode offscreen is tiled with the positive's count
            (2) and not rolled.
        paper_all_channels_on: Q25: datasets on which paper mode keeps every channel.
    """

    name: str
    transform: str
    sample_rate: int | None = 16000
    duration: float = 10.0
    placement: str = "roll"
    paper_placement: str | None = None
    segment: tuple[float, float] | None = None
    clip: bool = False
    nperseg: int = 512
    noverlap: int = 274
    n_fft: int = 512
    hop_length: int = 239
    n_mels: int = 257
    compression: str = "ln"
    log_eps: float = 1e-7
    centre_crop_frames: int | None = None
    divisor: float = 1.0
    channels: str = "mean"
    s16: bool = False
    paper_raw_negatives: bool = False
    paper_offscreen_from_positive: bool = False
    paper_all_channels_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.transform not in ("psd", "mel"):
            raise InputError(f"front-end {self.name}: expected transform 'psd' or 'mel', got {self.transform!r}.")
        for placement in (self.placement, self.paper_placement or self.placement):
            if placement not in PLACEMENTS:
                raise InputError(f"front-end {self.name}: expected placement in {PLACEMENTS}, got {placement!r}.")
        if self.compression not in ("ln", "db"):
            raise InputError(f"front-end {self.name}: expected compression 'ln' or 'db', got {self.compression!r}.")
        if self.channels not in ("mean", "first"):
            raise InputError(f"front-end {self.name}: expected channels 'mean' or 'first', got {self.channels!r}.")

    def placement_for(self, mode: str) -> str:
        """The placement rule in a protocol mode."""
        return self.paper_placement if (mode == PAPER and self.paper_placement) else self.placement

    def window_length(self, rate: int) -> int:
        """Samples of the `duration` window at `rate`."""
        return int(rate * self.duration)

    def signal_length(self, rate: int | None = None) -> int:
        """Samples of the working signal (after the segment) at `rate` (default: the spec's rate)."""
        rate = _rate_or_error(self, rate)
        if self.segment is None:
            return self.window_length(rate)
        return int(rate * self.segment[1]) - int(rate * self.segment[0])

    def frames_for(self, n_samples: int) -> int:
        """Frames the transform gives for a signal of `n_samples` (before any crop)."""
        if self.transform == "psd":
            return spectral.frame_count(n_samples, self.nperseg, self.noverlap)
        return 1 + n_samples // self.hop_length

    def output_shape(self, rate: int | None = None) -> tuple[int, int, int]:
        """(channels, frequency bins, frames) of one model input."""
        bins = self.nperseg // 2 + 1 if self.transform == "psd" else self.n_mels
        frames = self.centre_crop_frames or self.frames_for(self.signal_length(rate))
        return (1, bins, frames)

    def compresses_negatives(self, mode: str) -> bool:
        """Whether noise and silence get the log/dB (False only in paper mode for Q5 families)."""
        return not (mode == PAPER and self.paper_raw_negatives)

    def offscreen_matches_positive(self, mode: str) -> bool:
        """Whether a clip's offscreen input equals its positive input (so its embedding can be reused)."""
        return not (mode == PAPER and self.paper_offscreen_from_positive)


def _rate_or_error(spec: AudioFrontend, rate: int | None) -> int:
    rate = rate if rate is not None else spec.sample_rate
    if rate is None:
        raise InputError(f"front-end {spec.name}: expected a sample rate (the spec keeps native rates), got none.")
    return int(rate)


FRONTENDS: dict[str, AudioFrontend] = {
    "ezvsl": AudioFrontend(
        name="ezvsl", transform="psd", duration=10.0, placement="roll", nperseg=512, noverlap=274,
        compression="ln", centre_crop_frames=200, divisor=12.0, channels="mean", s16=True,
        paper_raw_negatives=True, paper_offscreen_from_positive=True,
    ),
    "fnac": AudioFrontend(
        name="fnac", transform="psd", duration=3.0, placement="centre", paper_placement="roll",
        nperseg=512, noverlap=274, compression="ln", centre_crop_frames=200, divisor=12.0,
        channels="mean", s16=True, paper_raw_negatives=True, paper_offscreen_from_positive=True,
    ),
    "lvs": AudioFrontend(
        name="lvs", transform="psd", duration=10.0, placement="tile", segment=(3.5, 6.5), clip=True,
        nperseg=512, noverlap=353, compression="ln", divisor=12.0, channels="first",
    ),
    "ssltie": AudioFrontend(
        name="ssltie", transform="mel", duration=10.0, placement="tile", n_fft=512, hop_length=239,
        n_mels=257, compression="db", divisor=1.0, channels="first", paper_raw_negatives=True,
        paper_all_channels_on=("is3",),
    ),
    # The built-in demo models (vsslrt/assets/demo), trained on the 1 s, 16 kHz clips of
    # `vsslrt.data.synth` (whose DEMO_FRONTEND is this entry): 16 kHz, the centred 1 s (tiled when
    # shorter), scipy PSD with nperseg 512 and noverlap 352 (hop 160), log(S + 1e-7) / 12 for every
    # audio condition -> (1, 257, 97).
    "demo": AudioFrontend(
        name="demo", transform="psd", sample_rate=16_000, duration=1.0, placement="centre", nperseg=512,
        noverlap=352, compression="ln", log_eps=1e-7, divisor=12.0, channels="first",
    ),
}


def get_frontend(name: str | AudioFrontend) -> AudioFrontend:
    """A named front-end spec (or the spec itself)."""
    if isinstance(name, AudioFrontend):
        return name
    if name not in FRONTENDS:
        raise InputError(
            f"audio front-end: expected one of {', '.join(sorted(FRONTENDS))}, got {name!r}.",
            hint="the model registry (vsslrt.models) names the front-end of each model",
        )
    return FRONTENDS[name]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"protocol: expected one of {', '.join(MODES)}, got {mode!r}.", hint="use --protocol fixed or paper")
    return mode


# --------------------------------------------------------------------------------------------
# Stage 1: working signals


def tile_to(signal: np.ndarray, length: int) -> np.ndarray:
    """Repeat a short signal int(length / len) + 1 times and cut to `length` (the reference's tiling)."""
    if len(signal) < length:
        signal = np.tile(signal, int(length / len(signal)) + 1)
    return signal[:length]


def _mono(audio: DecodedAudio, spec: AudioFrontend, mode: str, dataset_kind: str | None) -> np.ndarray:
    if audio.channels > 1 and mode == PAPER and dataset_kind in spec.paper_all_channels_on:
        raise DataError(
            f"{audio.path}: expected mono audio for {spec.name} in paper mode on {dataset_kind} (the reference keeps "
            f"every channel there, protocol Q25, and the model takes one), got {audio.channels} channels.",
            hint="use --protocol fixed (channel 0 is used) or convert the file to mono",
        )
    return mix_channels(audio.samples, spec.channels)


def prepare_signal(
    audio: DecodedAudio,
    spec: AudioFrontend,
    *,
    mode: str = FIXED,
    role: str = "positive",
    dataset_kind: str | None = None,
) -> tuple[np.ndarray, int]:
    """Decoded audio -> the working signal of one condition.

    Args:
        audio: The decoded file.
        spec: The front-end.
        mode: "fixed" or "paper".
        role: "positive" or "offscreen" (they differ only in paper mode, Q8/Q9).
        dataset_kind: The dataset kind, for per-dataset rules (Q25).

    Returns:
        (signal float64 1-D, sample rate). The length is `spec.signal_length(rate)`, except for a
        paper-mode offscreen clip shorter than half the window (Q8), which stays shorter.
    """
    check_mode(mode)
    if role not in ROLES:
        raise InputError(f"audio role: expected one of {', '.join(ROLES)}, got {role!r}.")
    rate = spec.sample_rate or audio.sample_rate
    x = resample(_mono(audio, spec, mode, dataset_kind), audio.sample_rate, rate)
    if spec.s16:
        x = to_s16_scale(x)
    window = spec.window_length(rate)
    if role == "offscreen" and not spec.offscreen_matches_positive(mode):
        # Q8: the count is int(window / len(positive)) + 1, and the positive is already `window` long,
        # so a short offscreen clip is repeated twice only. Q9: no roll.
        head = x[:window]
        if len(head) < window:
            head = np.tile(head, 2)[:window]
        return _finish(head, spec, rate), rate
    placement = spec.placement_for(mode)
    if placement == "roll":
        y = tile_to(x[:window], window)
        # The reference centres with the container's duration: int(sr * dur / 2) - int(duration / 2 * sr).
        shift = int(rate * spec.duration / 2) - int(float(audio.duration) / 2 * rate)
        y = np.roll(y, shift)
    elif placement == "centre":
        start = int(max(float(audio.duration) / 2 - spec.duration / 2, 0.0) * rate)
        y = tile_to(x[start : start + window], window)
    else:
        y = tile_to(x, window)
    return _finish(y, spec, rate), rate


def _finish(y: np.ndarray, spec: AudioFrontend, rate: int) -> np.ndarray:
    if spec.segment is not None:
        y = y[int(rate * spec.segment[0]) : int(rate * spec.segment[1])]
    if spec.clip:
        y = np.clip(y, -1.0, 1.0)
    return np.ascontiguousarray(y, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Stage 2: batched spectrograms


def _compress_inplace(power: np.ndarray, spec: AudioFrontend) -> np.ndarray:
    """log(S + eps) or dB, overwriting `power` (a temporary of ours)."""
    if spec.compression == "ln":
        power += spec.log_eps
        return np.log(power, out=power)
    return spectral.amplitude_to_db(power, inplace=True)


def spectrogram_inputs(
    signals: Sequence[np.ndarray],
    spec: AudioFrontend,
    *,
    rates: Sequence[int] | int | None = None,
    compress: Sequence[bool] | bool = True,
) -> np.ndarray:
    """Working signals -> (B, 1, F, T) float32 model inputs.

    Signals of equal length and rate go through one batched transform; only the frames kept by the
    centre crop are computed.

    Args:
        signals: 1-D working signals (from `prepare_signal`, or noise / silence of the same length).
        spec: The front-end.
        rates: Sample rate per signal (or one for all); default: the spec's rate.
        compress: Whether each signal gets the log/dB (False: paper-mode noise and silence, Q5).

    Returns:
        (B, 1, F, T) float32.

    Raises:
        DataError: With a native-rate spec, when signals give different input shapes.
    """
    n = len(signals)
    rate_list = [rates] * n if rates is None or isinstance(rates, (int, np.integer)) else list(rates)
    rate_list = [_rate_or_error(spec, r) for r in rate_list]
    flags = [compress] * n if isinstance(compress, (bool, np.bool_)) else list(compress)
    if len(rate_list) != n or len(flags) != n:
        raise ValueError("rates and compress must have one entry per signal")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, sig in enumerate(signals):
        groups.setdefault((len(sig), rate_list[i]), []).append(i)
    out: np.ndarray | None = None
    for (length, rate), members in groups.items():
        layout = _frame_layout(spec, length)
        shape = (spec.nperseg // 2 + 1 if spec.transform == "psd" else spec.n_mels, layout[3])
        if out is None:
            out = np.zeros((n, 1) + shape, dtype=np.float32)
        elif shape != out.shape[2:]:
            raise DataError(
                f"front-end {spec.name}: expected every clip to give a {out.shape[2:]} input, got {shape} "
                f"for a {length}-sample signal at {rate} Hz.",
                hint="give the front-end a fixed sample_rate so that every file is resampled to it",
            )
        _transform_group(signals, members, rate, spec, flags, layout, out)
    if out is None:
        return np.zeros((0,) + spec.output_shape(), dtype=np.float32)
    return out


def _frame_layout(spec: AudioFrontend, length: int) -> tuple[int, int, int, int]:
    """(first frame, frames computed, zero frames padded on the left, output frames) for a signal length."""
    total = spec.frames_for(length)
    crop = spec.centre_crop_frames
    if crop is None:
        return 0, total, 0, total
    if total >= crop:
        # torchvision CenterCrop: offset int(round((T - crop) / 2.0)), Python's round half to even.
        return int(round((total - crop) / 2.0)), crop, 0, crop
    # CenterCrop of a shorter input pads (crop - T) // 2 zero frames on the left.
    return 0, total, (crop - total) // 2, crop


def _transform_group(
    signals: Sequence[np.ndarray],
    members: list[int],
    rate: int,
    spec: AudioFrontend,
    flags: Sequence[bool],
    layout: tuple[int, int, int, int],
    out: np.ndarray,
) -> None:
    """Equal-length signals -> out[members, 0], a few clips at a time.

    Each chunk goes through transform, log/dB and scaling while it is in cache; materialising
    float64 arrays for the whole batch (hundreds of MiB for SSL-TIE) made the batch slower than a
    per-clip loop.
    """
    first, count, pad_left, _ = layout
    frames_bytes = max(count, 1) * (spec.nperseg if spec.transform == "psd" else spec.n_fft) * 8
    step = max(1, spectral.CHUNK_BYTES // frames_bytes)
    for start in range(0, len(members), step):
        rows = members[start : start + step]
        x = np.stack([signals[i] for i in rows])
        if spec.transform == "psd":
            power = spectral.psd_spectrogram(x, rate, nperseg=spec.nperseg, noverlap=spec.noverlap, first_frame=first, n_frames=count)
        else:
            power = spectral.mel_power_spectrogram(x, rate, n_fft=spec.n_fft, hop_length=spec.hop_length, n_mels=spec.n_mels)
        chosen = np.array([flags[i] for i in rows], dtype=bool)
        if chosen.all():
            _compress_inplace(power, spec)
        elif chosen.any():
            power[chosen] = _compress_inplace(power[chosen], spec)
        if spec.divisor != 1.0:
            power /= spec.divisor
        out[rows, 0, :, pad_left : pad_left + count] = power


# --------------------------------------------------------------------------------------------
# Conveniences


@functools.lru_cache(maxsize=32)
def _silence(spec: AudioFrontend, mode: str, rate: int) -> np.ndarray:
    zeros = np.zeros(spec.signal_length(rate))
    value = spectrogram_inputs([zeros], spec, rates=rate, compress=spec.compresses_negatives(mode))[0]
    value.setflags(write=False)
    return value


def silence_input(spec: AudioFrontend | str, mode: str = FIXED, rate: int | None = None) -> np.ndarray:
    """The one constant silence input of a front-end and mode, (1, F, T) float32, read-only.

    Paper mode (Q5): zeros for EZ-VSL/SLAVC/FNAC and SSL-TIE (no log of the all-zero PSD),
    log(1e-7) / 12 for LVS. Fixed mode: log(1e-7) / 12 for the scipy families, -100 dB for SSL-TIE.
    """
    spec = get_frontend(spec)
    return _silence(spec, check_mode(mode), _rate_or_error(spec, rate))


def audio_input(
    path: str | Path,
    spec: AudioFrontend | str,
    *,
    mode: str = FIXED,
    dataset_kind: str | None = None,
) -> np.ndarray:
    """One audio file -> its (1, F, T) float32 positive input."""
    spec = get_frontend(spec)
    signal, rate = prepare_signal(read_audio(path), spec, mode=mode, dataset_kind=dataset_kind)
    return spectrogram_inputs([signal], spec, rates=rate)[0]
