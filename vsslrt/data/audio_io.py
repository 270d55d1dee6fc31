"""Audio decoding: soundfile for the formats libsndfile reads (wav, flac, ogg, mp3, ...), PyAV when
it is installed (`pip install 'vsslrt[audio]'`) for the rest, and the channel and quantisation rules
the reference loaders apply.

Decoded samples are float64 in [-1, 1] with shape (channels, frames): libsndfile scales integer PCM
by 1 / 2**(bits - 1), so a PCM-16 file gives int16 / 32768, exactly what `soundfile.read` (LVS) and
`torchaudio.load` (SSL-TIE) return.

The EZ-VSL family (EZ-VSL, SLAVC, FNAC) reads through PyAV with an `s16p` mono resampler and divides
by 32767 (`np.iinfo(int16).max`), then clips to [-1, 1]. `to_s16_scale` reproduces that from the
float samples: round to int16 (exact for PCM-16 input, where it recovers the stored integers), then
divide by 32767 and clip. The mono downmix of libswresample for stereo is (L + R) / 2, so the
"mean" channel rule averages the channels before the quantisation.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from vsslrt.errors import DataError

_REENCODE_HINT = (
    "check that the file is a complete audio file (e.g. play it or run `ffprobe` on it); re-encode it as "
    "16-bit PCM wav, or install PyAV (pip install 'vsslrt[audio]') for formats libsndfile cannot read"
)


@dataclass(frozen=True)
class DecodedAudio:
    """One decoded audio file.

    Attributes:
        samples: (channels, frames) float64 in [-1, 1].
        sample_rate: The file's native sample rate in Hz.
        path: The file it came from (for error messages).
    """

    samples: np.ndarray
    sample_rate: int
    path: Path

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Duration in seconds as the container metadata gives it (frames / rate)."""
        return self.frames / self.sample_rate


def pyav_available() -> bool:
    """Whether PyAV can be imported (checked without importing it)."""
    return importlib.util.find_spec("av") is not None


def read_audio(path: str | Path) -> DecodedAudio:
    """Decode a whole audio file.

    Args:
        path: The audio file.

    Returns:
        The decoded samples at the native sample rate, all channels.

    Raises:
        DataError: The file is missing, unreadable, empty or holds non-finite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: expected an audio file, got no such file.",
            hint="check the dataset folder (--data-dir) and the annotation's file names",
        )
    samples, rate, soundfile_error = _read_soundfile(path)
    if samples is None:
        if not pyav_available():
            raise DataError(
                f"{path}: expected a readable audio file, got a soundfile error: {soundfile_error}.",
                hint=_REENCODE_HINT,
            )
        samples, rate = _read_pyav(path, soundfile_error)
    if samples.shape[1] == 0:
        raise DataError(f"{path}: expected audio with at least one sample, got an empty file.", hint=_REENCODE_HINT)
    if not np.all(np.isfinite(samples)):
        raise DataError(f"{path}: expected finite audio samples, got NaN or infinity.", hint=_REENCODE_HINT)
    return DecodedAudio(samples=samples, sample_rate=int(rate), path=path)


def _read_soundfile(path: Path) -> tuple[np.ndarray | None, int, str]:
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        return None, 0, " ".join(str(exc).split())
    return np.ascontiguousarray(data.T), int(rate), ""


def _read_pyav(path: Path, soundfile_error: str) -> tuple[np.ndarray, int]:
    """Decode with PyAV to planar float32 at the native rate and layout."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DataError(f"{path}: expected a file with an audio stream, got none.", hint=_REENCODE_HINT)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
            rate = int(stream.rate)
    except DataError:
        raise
    except Exception as exc:  # PyAV raises its own FFmpegError hierarchy and ValueError
        raise DataError(
            f"{path}: expected a readable audio file, got errors from soundfile ({soundfile_error}) "
            f"and PyAV ({' '.join(str(exc).split())}).",
            hint=_REENCODE_HINT,
        ) from None
    if not chunks:
        raise DataError(f"{path}: expected audio with at least one sample, got no decoded frames.", hint=_REENCODE_HINT)
    return np.concatenate(chunks, axis=1).astype(np.float64), rate


def audio_header(path: str | Path) -> tuple[int, int, int]:
    """(frames, sample_rate, channels) from the file header, without decoding the samples.

    Raises:
        DataError: The file is missing or its header cannot be read.
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: expected an audio file, got no such file.", hint="check the dataset folder")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        if pyav_available():
            audio = read_audio(path)  # formats only PyAV reads: decode to learn the length
            return audio.frames, audio.sample_rate, audio.channels
        raise DataError(
            f"{path}: expected a readable audio file, got a soundfile error: {' '.join(str(exc).split())}.",
            hint=_REENCODE_HINT,
        ) from None
    if info.frames <= 0:
        raise DataError(f"{path}: expected audio with at least one sample, got an empty file.", hint=_REENCODE_HINT)
    return int(info.frames), int(info.samplerate), int(info.channels)


def mix_channels(samples: np.ndarray, rule: str) -> np.ndarray:
    """Reduce (channels, frames) to one channel.

    Args:
        samples: (channels, frames).
        rule: "mean" averages the channels (PyAV's mono downmix, EZ-VSL family); "first" keeps
            channel 0 (LVS and SSL-TIE keep channel 0 of stereo files).

    Returns:
        (frames,) float64.
    """
    if samples.shape[0] == 1:
        return samples[0]
    if rule == "mean":
        return samples.mean(axis=0)
    if rule == "first":
        return samples[0]
    raise ValueError(f"unknown channel rule {rule!r}")


def resample(signal: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling with `scipy.signal.resample_poly` (identity when the rates agree)."""
    if rate == target_rate:
        return signal
    from scipy.signal import resample_poly

    factor = gcd(int(rate), int(target_rate))
    return resample_poly(signal, target_rate // factor, rate // factor, axis=-1)


def to_s16_scale(signal: np.ndarray) -> np.ndarray:
    """PyAV s16 semantics: quantise to int16, divide by 32767, clip to [-1, 1].

    For PCM-16 input (libsndfile's int16 / 32768) the rounding recovers the stored integers exactly,
    so the result equals the reference's `s16 / 32767` followed by `np.clip(-1, 1)`.
    """
    quantised = np.clip(np.rint(signal * 32768.0), -32768.0, 32767.0)
    return np.clip(quantised / 32767.0, -1.0, 1.0)
