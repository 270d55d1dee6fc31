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
import os
import struct
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from vsslrt.errors import DataError

_REENCODE_HINT = (
    "check that the file is a complete audio file (e.g. play it or run `ffprobe` on it); re-encode it as "
    "16-bit PCM wav, or install PyAV (pip install 'vsslrt[audio]') for formats libsndfile cannot read"
)
_REDOWNLOAD_HINT = "re-export or re-download the file, or run with --skip-bad to leave its samples out"
_NOT_AUDIO_HINT = (
    "re-export or re-download the file (an error page or a partial download saved under an audio name "
    "looks like this), or run with --skip-bad to leave its samples out; install PyAV "
    "(pip install 'vsslrt[audio]') for formats libsndfile cannot read"
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
        DataError: The file is missing, not audio, truncated (fewer frames than its header
            promises), empty or holds non-finite samples.
    """
    path = Path(path)
    head = _sniff(path)
    if head.route == "soundfile":
        samples, rate, soundfile_error = _read_soundfile(path)
    else:
        samples, rate, soundfile_error = None, 0, _NOT_AUDIO
    if samples is None:
        if not pyav_available():
            raise _unreadable(path, soundfile_error, head)
        samples, rate = _read_pyav(path, soundfile_error)
    if samples.shape[1] == 0:
        raise _no_frames(path)
    if head.declared_frames is not None and samples.shape[1] < head.declared_frames:
        raise _truncated(path, head.declared_frames, samples.shape[1], rate)
    if not np.all(np.isfinite(samples)):
        raise DataError(f"{path}: expected finite audio samples, got NaN or infinity.", hint=_REENCODE_HINT)
    return DecodedAudio(samples=samples, sample_rate=int(rate), path=path)


def audio_header(path: str | Path) -> tuple[int, int, int]:
    """(frames, sample_rate, channels) from the file header, without decoding the samples.

    Includes the truncation check of WAV (RIFF, RIFX, RF64, BW64) and AIFF files: the frames the
    header promises against the frames the file holds (a few small reads). Other formats are
    checked for truncation when they are decoded.

    Raises:
        DataError: The file is missing, not audio, truncated or empty, or its header cannot be read.
    """
    import soundfile

    path = Path(path)
    head = _sniff(path)
    if head.route == "soundfile":
        try:
            with soundfile.SoundFile(str(path)) as f:
                frames, rate, channels = int(f.frames), int(f.samplerate), int(f.channels)
        except _soundfile_errors() as exc:
            head = _Head(head.route, head.declared_frames, head.preview, _clean_soundfile_error(exc, path))
        else:
            if head.declared_frames is not None and frames < head.declared_frames:
                raise _truncated(path, head.declared_frames, frames, rate)
            if frames <= 0:
                raise _no_frames(path)
            return frames, rate, channels
    if pyav_available():
        audio = read_audio(path)  # formats only PyAV reads: decode to learn the length
        return audio.frames, audio.sample_rate, audio.channels
    raise _unreadable(path, head.error or _NOT_AUDIO, head)


# ------------------------------------------------------------------------------------------------
# Sniffing the container before libsndfile sees the file.
#
# libsndfile hands any file that starts like an MPEG audio frame header to libmpg123, which prints
# its own diagnostics straight to the process's stderr when the rest is not MPEG audio (about 1 in 5,000
# random files, e.g. a corrupt download saved as .wav). So such a file goes to libsndfile only when a
# second frame header follows the first where the first one's length says, as in every real stream.
# The same first reads give the frames a WAV or AIFF header promises: libsndfile silently shortens a
# truncated file to what it holds, so the promise is read here and compared.

_NOT_AUDIO = "not an audio format it reads (RIFF/WAVE, FLAC, OGG, AIFF, MP3, ...)"
_SNIFF_BYTES = 512  # the first read: the RIFF header, fmt and the data chunk header of a usual WAV
_MAX_CHUNKS = 256
# Streaming writers that cannot seek back leave the data size at 0 or near 2**31 / 2**32.
_PLACEHOLDER_SIZE = 0x7FFF_F000
_WAV_FORMATS = {1, 3, 6, 7}  # PCM, IEEE float, A-law, mu-law: a block is one frame
_AIFC_FRAMED = {b"NONE", b"none", b"sowt", b"twos", b"raw ", b"fl32", b"FL32", b"fl64", b"FL64", b"in24", b"in32", b"23ni", b"42ni"}


@dataclass(frozen=True)
class _Head:
    route: str  # "soundfile" or "not-audio"
    declared_frames: int | None  # frames a WAV/AIFF header promises (None: no header or no promise)
    preview: str  # the first bytes, for messages
    error: str = ""


def _sniff(path: Path) -> _Head:
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
            if not head:
                raise DataError(f"{path}: expected an audio file, got an empty (0-byte) file.", hint=_REDOWNLOAD_HINT)
            size = os.fstat(f.fileno()).st_size
            reader = _Reader(f, head)
            preview = _preview(head[:16])
            if _mpeg_header(head) is not None and not _plausible_mpeg(reader, head, size):
                return _Head("not-audio", None, preview)
            declared = None
            if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
                declared = _wav_declared_frames(reader, head, size)
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                declared = _aiff_declared_frames(reader, head, size)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise DataError(
            f"{path}: expected an audio file, got no such file.",
            hint="check the dataset folder (--data-dir) and the annotation's file names",
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: expected a readable audio file, got: {exc.strerror or exc}.", hint=_REENCODE_HINT) from None
    return _Head("soundfile", declared, preview)


class _Reader:
    """Reads at an offset from the first bytes already read (one read covers a usual WAV header),
    from the file beyond them."""

    def __init__(self, f, head: bytes) -> None:
        self.f, self.head = f, head

    def read(self, pos: int, n: int) -> bytes:
        if pos + n <= len(self.head):
            return self.head[pos : pos + n]
        self.f.seek(pos)
        return self.f.read(n)


def _preview(head: bytes) -> str:
    """The first bytes as text when they are printable (an HTML error page), else as hex."""
    text = head.decode("ascii", errors="replace")
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return repr(" ".join(text.split()))
    return " ".join(f"{b:02x}" for b in head[:8])


def _chunks(reader: _Reader, start: int, size: int, endian: str):
    """(id, body offset, declared body size) of each RIFF/IFF chunk from `start`."""
    pos = start
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > size:
            return
        header = reader.read(pos, 8)
        if len(header) < 8:
            return
        (length,) = struct.unpack(endian + "I", header[4:])
        yield header[:4], pos + 8, length
        pos += 8 + length + (length & 1)


def _wav_declared_frames(reader: _Reader, head: bytes, size: int) -> int | None:
    endian = ">" if head[:4] == b"RIFX" else "<"
    ds64_data = block_align = fmt_tag = None
    for cid, body, length in _chunks(reader, 12, size, endian):
        if cid == b"ds64":  # RF64/BW64: the real sizes, 64-bit
            data = reader.read(body, 16)
            if len(data) == 16:
                ds64_data = struct.unpack("<Q", data[8:16])[0]
        elif cid == b"fmt ":
            data = reader.read(body, min(length, 26))
            if len(data) >= 14:
                fmt_tag, _, _, _, block_align = struct.unpack(endian + "HHIIH", data[:14])
                if fmt_tag == 0xFFFE and len(data) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                    (fmt_tag,) = struct.unpack(endian + "H", data[24:26])
        elif cid == b"data":
            if head[:4] in (b"RF64", b"BW64") and length == 0xFFFF_FFFF:
                if ds64_data is None:
                    return None
                length = ds64_data
            elif length == 0 or length >= _PLACEHOLDER_SIZE:
                return None
            if fmt_tag not in _WAV_FORMATS or not block_align:
                return None
            return length // block_align
    return None


def _aiff_declared_frames(reader: _Reader, head: bytes, size: int) -> int | None:
    for cid, body, length in _chunks(reader, 12, size, ">"):
        if cid == b"COMM":
            data = reader.read(body, min(length, 22))
            if len(data) < 6:
                return None
            frames = struct.unpack(">I", data[2:6])[0]
            if head[8:12] == b"AIFC" and (len(data) < 22 or data[18:22] not in _AIFC_FRAMED):
                return None
            return frames if 0 < frames < _PLACEHOLDER_SIZE else None
    return None


_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer); index 0 = free format, 15 = invalid
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(version, layer, sample rate index, frame length in bytes or 0 for free format) of an MPEG
    audio frame header, or None: the test libsndfile applies before handing a file to libmpg123
    (sync, version not reserved, layer not reserved, bitrate index not 15, rate index not 3)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (data[1] >> 3) & 3, (data[1] >> 1) & 3
    bitrate_index, rate_index, padding = data[2] >> 4, (data[2] >> 2) & 3, (data[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index == 15 or rate_index == 3:
        return None
    layer = 4 - layer_bits
    kbps = _MPEG_BITRATES[(version == 3, layer)][bitrate_index]
    rate = _MPEG_RATES[version][rate_index]
    if kbps == 0:
        length = 0
    elif layer == 1:
        length = (12 * kbps * 1000 // rate + padding) * 4
    else:
        per_frame = 72 if (layer == 3 and version != 3) else 144
        length = per_frame * kbps * 1000 // rate + padding
    return version, layer, rate_index, length


def _plausible_mpeg(reader: _Reader, head: bytes, size: int) -> bool:
    """Whether the frame header at the start is followed by another of the same stream."""
    version, layer, rate_index, length = _mpeg_header(head)
    if length < 4:
        return False  # free format (no length to follow) or nonsense: not worth libmpg123's noise
    if length == size:
        return True  # a single-frame file
    following = _mpeg_header(reader.read(length, 4))
    return following is not None and following[:3] == (version, layer, rate_index)


# ------------------------------------------------------------------------------------------------
# Decoding and its errors


def _soundfile_errors() -> tuple[type[BaseException], ...]:
    import soundfile

    return (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError)


def _clean_soundfile_error(exc: BaseException, path: Path) -> str:
    """libsndfile's message without the repeated path; its "format not recognised" and the
    misleading "file does not exist" (what an MPEG probe failure reports) become one phrase."""
    text = " ".join(str(exc).split())
    for prefix in (f"Error opening {str(path)!r}: ", "Error : ", "Error: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    lowered = text.lower()
    if "format not recognised" in lowered or "does not exist" in lowered:
        return _NOT_AUDIO
    return text.rstrip(".") or type(exc).__name__


def _read_soundfile(path: Path) -> tuple[np.ndarray | None, int, str]:
    """Decode with libsndfile: (samples, rate, "") or (None, 0, why) when it cannot read the file.

    Raises:
        DataError: The file opens but decodes to fewer frames than its header promises.
    """
    import soundfile

    try:
        f = soundfile.SoundFile(str(path))
    except _soundfile_errors() as exc:
        return None, 0, _clean_soundfile_error(exc, path)
    with f:
        declared, rate = int(f.frames), int(f.samplerate)
        try:
            data = f.read(dtype="float64", always_2d=True)
        except _soundfile_errors() as exc:
            # Opened from a sound header, then the stream broke off (a cut FLAC file): count what decodes.
            held = _frames_before_failure(path)
            raise DataError(
                f"{path}: expected a complete audio file, got a stream that breaks off "
                f"({_clean_soundfile_error(exc, path)}): the header promises {declared} frames "
                f"({declared / rate:.2f} s), decoding stops after {held} ({held / rate:.2f} s).",
                hint=_REDOWNLOAD_HINT,
            ) from None
    if declared > 0 and data.shape[0] < declared:
        raise _truncated(path, declared, data.shape[0], rate)
    return np.ascontiguousarray(data.T), rate, ""


def _frames_before_failure(path: Path, block: int = 4096) -> int:
    import soundfile

    held = 0
    try:
        with soundfile.SoundFile(str(path)) as f:
            while True:
                n = len(f.read(block, dtype="float32"))
                if n == 0:
                    return held
                held += n
    except _soundfile_errors():
        return held


def _read_pyav(path: Path, soundfile_error: str) -> tuple[np.ndarray, int]:
    """Decode with PyAV to planar float32 at the native rate and layout (FFmpeg's own logging is
    off by default in PyAV, so nothing reaches stderr)."""
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
        if soundfile_error == _NOT_AUDIO and isinstance(exc, getattr(av.error, "InvalidDataError", ())):
            raise _unreadable(path, soundfile_error, _sniff(path), pyav=True) from None
        raise DataError(
            f"{path}: expected a readable audio file, got errors from soundfile ({soundfile_error}) "
            f"and PyAV ({' '.join(str(exc).split())}).",
            hint=_REENCODE_HINT,
        ) from None
    if not chunks:
        raise DataError(f"{path}: expected audio with at least one sample, got no decoded frames.", hint=_REENCODE_HINT)
    return np.concatenate(chunks, axis=1).astype(np.float64), rate


def _unreadable(path: Path, soundfile_error: str, head: _Head, *, pyav: bool = False) -> DataError:
    if soundfile_error == _NOT_AUDIO:
        readers = "libsndfile or FFmpeg (PyAV) reads" if pyav else "libsndfile reads"
        return DataError(
            f"{path}: expected a readable audio file, got data in no audio format {readers} "
            f"(RIFF/WAVE, FLAC, OGG, AIFF, MP3, ...); it starts with {head.preview}.",
            hint=_NOT_AUDIO_HINT if not pyav else _NOT_AUDIO_HINT.split("; install PyAV")[0],
        )
    return DataError(f"{path}: expected a readable audio file, got a soundfile error: {soundfile_error}.", hint=_REENCODE_HINT)


def _truncated(path: Path, declared: int, held: int, rate: int) -> DataError:
    return DataError(
        f"{path}: expected a complete audio file, got a truncated one: the header promises {declared} frames "
        f"({declared / rate:.2f} s), the file holds {held} ({held / rate:.2f} s; {declared - held} missing).",
        hint=_REDOWNLOAD_HINT,
    )


def _no_frames(path: Path) -> DataError:
    size = path.stat().st_size
    if size > 4096:  # far more than any header: the stream is there but cut or damaged (e.g. Ogg)
        return DataError(
            f"{path}: expected audio with at least one sample, got no decodable frames in a {size}-byte file "
            "(truncated or corrupt).",
            hint=_REDOWNLOAD_HINT,
        )
    return DataError(f"{path}: expected audio with at least one sample, got an empty file.", hint=_REENCODE_HINT)


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
