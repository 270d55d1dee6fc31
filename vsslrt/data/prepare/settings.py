"""The choices of dataset preparation that move numbers, with the protocol's defaults.

This module holds constants only (no NumPy, PyAV or Pillow), so the CLI builds its options from it
without loading the decoding stack. Every value here is recorded in the output folder's
`prepare.json` (`vsslrt.data.prepare.record`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from vsslrt.errors import InputError

#: Audio sample rate of every reference dataset (VGG-SS, IS3, Flickr: 16 kHz mono).
SAMPLE_RATE = 16_000
#: VGG-SS clips are VGGSound's 10 s clips; the audio is the whole clip.
VGGSS_CLIP_SECONDS = 10.0
#: The frame of a VGG-SS clip: its middle, 5 s after the clip's start (the boxes were drawn on a
#: frame at the clip's centre; see docs/data.md for the one-frame ambiguity of "the 125th frame").
VGGSS_FRAME_TIME = 5.0
#: Resamplers: "swr" is FFmpeg's libswresample (what `ffmpeg -ar 16000` applies, as the reference
#: datasets were made), "scipy" is `scipy.signal.resample_poly` (the front-ends' resampler).
RESAMPLERS = ("swr", "scipy")
#: Channel rules of `vsslrt.data.audio_io.mix_channels`: "mean" of all channels, or the "first".
CHANNEL_RULES = ("mean", "first")
#: How a VGG-SS video relates to its clip: "auto" (below), "clips" (every file is the clip itself,
#: as VGGSound distributes them), "full" (every file is the whole YouTube video; the clip starts at
#: the start time of its id).
SOURCE_MODES = ("auto", "clips", "full")
#: "auto" takes a file as the clip itself when its name carries the start time and it is at most
#: this much longer than the clip; otherwise as the whole video.
AUTO_CLIP_SLACK = 1.0
#: Audio missing by more than this (seconds) at either end of a window is listed as a note.
SHORT_TOLERANCE = 0.1
JPEG_QUALITY = 95
#: The manifest preparer's default audio window (seconds), centred on each frame (the VGG-SS clip:
#: 10 s with the frame in the middle).
MANIFEST_WINDOW = 10.0
#: Source fingerprints: size, mtime and the sha256 of the first MiB (cheap for thousands of videos;
#: a changed file changes its size or mtime, and any re-encode its first MiB).
HASH_PREFIX_BYTES = 1 << 20
HASH_RULE = "size, mtime and sha256 of the first 1 MiB of each source file"
#: Video file suffixes looked for in --videos (any container FFmpeg reads; the suffix only picks files).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".m4v", ".avi", ".flv", ".mpg", ".mpeg", ".ts", ".m2ts",
                  ".mts", ".3gp", ".ogv", ".wmv", ".vob")


@dataclass(frozen=True)
class MediaSettings:
    """How frames and audio are written (shared by every preparer).

    Attributes:
        sample_rate: Output audio rate in Hz.
        channels: Channel rule (`CHANNEL_RULES`).
        resampler: `RESAMPLERS`.
        jpeg_quality: Pillow JPEG quality of the frames.
    """

    sample_rate: int = SAMPLE_RATE
    channels: str = "mean"
    resampler: str = "swr"
    jpeg_quality: int = JPEG_QUALITY

    def check(self) -> None:

        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate < 1000:
            raise InputError(f"--sample-rate: expected an integer rate of at least 1000 Hz, got {self.sample_rate!r}.")
        if self.channels not in CHANNEL_RULES:
            raise InputError(f"--channels: expected one of {', '.join(CHANNEL_RULES)}, got {self.channels!r}.")
        if self.resampler not in RESAMPLERS:
            raise InputError(f"--resampler: expected one of {', '.join(RESAMPLERS)}, got {self.resampler!r}.")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise InputError(f"--jpeg-quality: expected 1 to 100, got {self.jpeg_quality!r}.")

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["audio_format"] = "WAV, PCM 16-bit, mono"
        doc["resampler_detail"] = {"swr": "FFmpeg libswresample (PyAV AudioResampler), defaults",
                                   "scipy": "scipy.signal.resample_poly, default Kaiser window"}[self.resampler]
        return doc
