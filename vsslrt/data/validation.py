"""Check a dataset before any heavy work, and report every problem at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vsslrt.data.probe import probe_media
from vsslrt.data.problems import WARNING_LIMIT, DatasetProblemsError, Problem, ProblemList, format_problems, summarize_warnings
from vsslrt.data.records import Dataset, Sample


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

    def warnings_summary(self, limit: int = WARNING_LIMIT) -> str:
        """One line: "N warnings; first 5: <file>: <what>; ..." ("" when there are none)."""
        return summarize_warnings(self.problems, limit, root=self.root)

    @property
    def bad_samples(self) -> dict[int, str]:
        """Dataset index -> the first error of its files (missing or unreadable), "<file>: <what>"."""
        out: dict[int, str] = {}
        for problem in self.errors:
            for index in problem.samples:
                out.setdefault(index, f"{problem.where}: {problem.message}")
        return dict(sorted(out.items()))

    @property
    def only_bad_files(self) -> bool:
        """Whether every error is a bad file of known samples, so leaving those samples out
        (`bad_samples`, --skip-bad) leaves a runnable dataset (metadata errors are not)."""
        return bool(self.errors) and all(p.samples for p in self.errors)

    def raise_for_errors(self, problems_file: str | Path | None = None) -> None:
        """Raise DatasetProblemsError (a DataError) listing every problem when there is any error.

        Args:
            problems_file: Where to write the full list when the message cannot hold it.
        """
        if self.errors:
            raise DatasetProblemsError(
                f"{self.kind} dataset at {self.root}", self.problems, root=self.root, problems_file=problems_file
            )


def validate_dataset(
    dataset: Dataset,
    *,
    check_headers: bool = False,
    raise_on_error: bool = False,
    problems_file: str | Path | None = None,
) -> ValidationReport:
    """Check that a dataset can be run: files exist, classes cover offscreen sampling, boxes are sane.

    Checks (all problems are collected, none stops the others):
      * the dataset has samples;
      * every sample's image and audio file exists;
      * with classes: every sample has at least one candidate offscreen class (its on-screen classes
        removed), and every clip the class dictionary lists has its audio file;
      * without classes: every sample has a clip of another image to draw;
      * with `check_headers`: every image and audio file opens, and no WAV/AIFF file holds fewer
        frames than its header promises (`vsslrt.data.probe.probe_media`: headers only).
    Box problems and records without a class were found while reading the metadata and are included.

    Args:
        dataset: The dataset to check.
        check_headers: Also probe each image and audio header.
        raise_on_error: Raise instead of returning when there is an error.
        problems_file: Where the error writes the full list when it has more errors than its
            message shows (default: a file in the temp folder, named in the message).

    Returns:
        The report.

    Raises:
        DatasetProblemsError: With `raise_on_error`, when the report has errors.
    """
    problems = ProblemList()
    problems.extend(dataset.problems)
    if len(dataset) == 0:
        problems.error(dataset.root, "expected at least one usable sample, got none")

    _check_files_exist(dataset, problems)

    if dataset.class_clips is not None:
        _check_classes(dataset, problems)
    elif len(dataset) > 0:
        sizes = Counter(s.group for s in dataset)
        for sample in dataset:
            if sizes[sample.group] == len(dataset):
                problems.error(sample.name, "expected at least one clip of another image to use as offscreen audio, got none")

    if check_headers:
        problems.extend(probe_media(dataset, skip_missing=True).problems)

    report = ValidationReport(dataset.kind, dataset.root, len(dataset), problems.items)
    if raise_on_error:
        report.raise_for_errors(problems_file=problems_file)
    return report


def _check_files_exist(dataset: Dataset, problems: ProblemList) -> None:
    """One error per missing file, naming the samples that use it."""
    users: dict[Path, list[Sample]] = {}
    for sample in dataset:
        for path in (sample.image, sample.audio):
            users.setdefault(path, []).append(sample)
    for path, samples in users.items():
        if not path.is_file():
            names = ", ".join(s.name for s in samples[:3]) + (f" and {len(samples) - 3} more" if len(samples) > 3 else "")
            label = "sample" if len(samples) == 1 else "samples"
            problems.error(path, f"expected this file ({label} {names}), got no such file", samples=[s.index for s in samples])


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
