"""Header probe: open every image and audio file of a dataset, cheaply, and report every bad one.

`probe_media(dataset)` reads only headers: for an image, Pillow's open (size and mode, no pixel
decoding) plus the end marker of JPEG and PNG files (a file without one is decoded to confirm it
is cut off); for audio, the container sniff, libsndfile's header and the frames a WAV or AIFF
header promises against the frames the file holds. Each file is probed once however many samples
use it, and every problem is collected: the result names each bad file, why, and the samples it
belongs to, so a run can stop with the full list or leave exactly those samples out (--skip-bad).

What it cannot see without decoding: damage inside a compressed stream (JPEG or FLAC data that
is corrupt but not cut short). Decoding still raises DataError for those, and the batch loader's
skip_bad handles them.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass, field
from pathlib import Path

from vsslrt.data.problems import Problem, ProblemList, format_problems
from vsslrt.data.records import Dataset
from vsslrt.errors import DataError
from vsslrt.data.images import image_header


@dataclass
class MediaProbe:
    """What `probe_media` found.

    Attributes:
        problems: One error per bad file, `where` the file, `samples` the dataset indices that use
            it (empty for an offscreen-only clip of the class dictionary).
        images: Distinct image files probed.
        audio: Distinct audio files probed.
        seconds: Wall time of the probe.
    """

    problems: list[Problem] = field(default_factory=list)
    images: int = 0
    audio: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def files(self) -> int:
        return self.images + self.audio

    @property
    def bad_samples(self) -> dict[int, str]:
        """Dataset index -> the first problem of its files, "<file>: <what is wrong>"."""
        out: dict[int, str] = {}
        for problem in self.problems:
            for index in problem.samples:
                out.setdefault(index, f"{problem.where}: {problem.message}")
        return dict(sorted(out.items()))

    def summary(self) -> str:
        per_file = 1000.0 * self.seconds / self.files if self.files else 0.0
        bad = f"{len(self.problems)} bad file{'s' if len(self.problems) != 1 else ''}" if self.problems else "all readable"
        return (
            f"probed {self.images} image and {self.audio} audio headers in {self.seconds:.2f} s "
            f"({per_file:.2f} ms per file): {bad}"
        )

    def format(self, limit: int | None = None) -> str:
        body = format_problems(self.problems, limit)
        return self.summary() + ("\n" + body if body else "")


def probe_media(dataset: Dataset, *, workers: int = 4, skip_missing: bool = False) -> MediaProbe:
    """Open the header of every image and audio file of a dataset and report every bad one.

    Probed: each sample's image and audio, and every clip the class dictionary lists (offscreen
    audio may be drawn from it). Each distinct file is probed once.

    Args:
        dataset: The dataset.
        workers: Threads probing in parallel (0: in the calling thread); the work is small reads
            and parsing, so a few threads hide file-system latency (network disks, cold caches).
        skip_missing: Leave out files that do not exist (`validate_dataset` reports those already).

    Returns:
        The problems found, with the counts and the time taken.
    """
    from vsslrt.data.audio_io import audio_header  # soundfile/Pillow load on first probe, not on import

    start = time.perf_counter()
    images: dict[Path, list[int]] = {}
    audio: dict[Path, list[int]] = {}
    for sample in dataset:
        images.setdefault(sample.image, []).append(sample.index)
        audio.setdefault(sample.audio, []).append(sample.index)
    for entries in (dataset.class_clips or {}).values():
        for clip in entries:
            audio.setdefault(clip.audio, [])
    jobs = [(image_header, path, users) for path, users in images.items()]
    jobs += [(audio_header, path, users) for path, users in audio.items()]
    if skip_missing:
        jobs = [job for job in jobs if job[1].is_file()]

    def check(job) -> str | None:
        fn, path, _ = job
        try:
            fn(path)
        except DataError as exc:  # the message names the file first; the problem's `where` does that
            text = " ".join(exc.message.split()).rstrip(".")
            prefix = f"{path}: "
            return text[len(prefix):] if text.startswith(prefix) else text
        return None

    if workers > 0 and len(jobs) > 1:
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsslrt-probe") as pool:
            outcomes = list(pool.map(check, jobs))
    else:
        outcomes = [check(job) for job in jobs]
    problems = ProblemList()
    for (_, path, users), outcome in zip(jobs, outcomes):
        if outcome is not None:
            problems.error(path, outcome, samples=users)
    n_images = sum(1 for fn, _, _ in jobs if fn is image_header)
    return MediaProbe(problems.items, n_images, len(jobs) - n_images, time.perf_counter() - start)
