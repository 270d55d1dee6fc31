"""Check a dataset before any heavy work, and report every problem at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vsslrt.data.records import Dataset
from vsslrt.data.problems import DatasetProblemsError, Problem, ProblemList, format_problems
from vsslrt.errors import DataError


@dataclass
class ValidationReport:
    """What `validate_dataset` found.

    Attributes:
        kind: The dataset kind.
        root: The data folder.
        n_samples: Number of samples.
        problems: Every problem, from reading the metadata and from the file checks.
    """

    kind: str
    root: Path
    n_samples: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return f"{self.kind} dataset at {self.root}: {self.n_samples} samples, {len(self.errors)} errors, {len(self.warnings)} warnings"

    def format(self, limit: int | None = None) -> str:
        """The summary line and one line per problem."""
        body = format_problems(self.problems, limit)
        return self.summary() + ("\n" + body if body else "")

    def raise_for_errors(self) -> None:
        """Raise DatasetProblemsError (a DataError) listing every problem when there is any error."""
        if self.errors:
            raise DatasetProblemsError(f"{self.kind} dataset at {self.root}", self.problems)


def validate_dataset(dataset: Dataset, *, check_headers: bool = False, raise_on_error: bool = False) -> ValidationReport:
    """Check that a dataset can be run: files exist, classes cover offscreen sampling, boxes are sane.

    Checks (all problems are collected, none stops the others):
      * the dataset has samples;
      * every sample's image and audio file exists;
      * with classes: every sample has at least one candidate offscreen class (its on-screen classes
        removed), and every clip the class dictionary lists has its audio file;
      * without classes: every sample has a clip of another image to draw;
      * with `check_headers`: every image and audio file opens (header read only).
    Box problems and records without a class were found while reading the metadata and are included.

    Args:
        dataset: The dataset to check.
        check_headers: Also open each image and audio header.
        raise_on_error: Raise instead of returning when there is an error.

    Returns:
        The report.

    Raises:
        DatasetProblemsError: With `raise_on_error`, when the report has errors.
    """
    problems = ProblemList()
    problems.extend(dataset.problems)
    if len(dataset) == 0:
        problems.error(dataset.root, "expected at least one usable sample, got none")

    for sample in dataset:
        for path in (sample.image, sample.audio):
            if not path.is_file():
                problems.error(path, f"expected this file (sample {sample.name}), got no such file")

    if dataset.class_clips is not None:
        _check_classes(dataset, problems)
    elif len(dataset) > 0:
        sizes = Counter(s.group for s in dataset)
        for sample in dataset:
            if sizes[sample.group] == len(dataset):
                problems.error(sample.name, "expected at least one clip of another image to use as offscreen audio, got none")

    if check_headers:
        _check_headers(dataset, problems)

    report = ValidationReport(dataset.kind, dataset.root, len(dataset), problems.items)
    if raise_on_error:
        report.raise_for_errors()
    return report


def _check_classes(dataset: Dataset, problems: ProblemList) -> None:
    clips = dataset.class_clips or {}
    checked: set[Path] = set()
    for cls, entries in clips.items():
        for clip in entries:
            if clip.audio in checked:
                continue
            checked.add(clip.audio)
            if clip.index < 0 and not clip.audio.is_file():
                problems.error(
                    clip.audio,
                    f"expected the audio of clip {clip.name} (class {cls!r} of the class dictionary; it may be drawn "
                    "as offscreen audio), got no such file",
                )
    drawable = {c for c, entries in clips.items() if entries}
    for sample in dataset:
        if not drawable - set(sample.onscreen):
            problems.error(
                sample.name,
                f"expected at least one offscreen class besides the on-screen {list(sample.onscreen)}, got none",
            )


def _check_headers(dataset: Dataset, problems: ProblemList) -> None:
    from PIL import Image, UnidentifiedImageError

    from vsslrt.data.audio_io import audio_header

    for sample in dataset:
        if sample.image.is_file():
            try:
                with Image.open(sample.image) as img:
                    img.verify()
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
                problems.error(sample.image, f"expected a readable image, got: {' '.join(str(exc).split())}")
        if sample.audio.is_file():
            try:
                audio_header(sample.audio)
            except DataError as exc:
                problems.error(sample.audio, exc.message.split(": ", 1)[-1])
