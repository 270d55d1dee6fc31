"""Dataset problems collected all at once, and the error that carries them.

`DatasetProblemsError`'s one-line message lists the first `MESSAGE_LIMIT` errors itself; when there
are more, every problem (errors, then warnings) is written, atomically, to a text file whose path
the message gives: `problems_file` when the caller names one (e.g. in a run folder), otherwise
`<temp dir>/vsslrt-problems/problems-<digest of the list>.txt`, so the same problems always go to
the same file instead of piling up.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from vsslrt.errors import DataError
from vsslrt.files import atomic_write_text

MESSAGE_LIMIT = 20  # errors listed in the one-line message
WARNING_LIMIT = 5  # warnings listed in a warnings summary


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        where: The file (and record, e.g. "manifest.jsonl:12") the problem is in.
        message: What is wrong and what was expected.
        severity: "error" stops a run; "warning" is reported and the run goes on.
        samples: Dataset indices of the samples a bad media file belongs to (empty for problems of
            the metadata): leaving these samples out (--skip-bad) removes the problem.
    """

    where: str
    message: str
    severity: str = "error"
    samples: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class ProblemList:
    """An ordered collection of problems, filled while a dataset is read and checked."""

    items: list[Problem] = field(default_factory=list)

    def error(self, where: object, message: str, *, samples: Sequence[int] = ()) -> None:
        self.items.append(Problem(str(where), message, "error", tuple(samples)))

    def warning(self, where: object, message: str) -> None:
        self.items.append(Problem(str(where), message, "warning"))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _short(where: str, root: Path | None) -> str:
    """`where` relative to the dataset folder when it lies inside it (the subject names the folder)."""
    if root is not None:
        prefix = str(root).rstrip("/") + "/"
        if where.startswith(prefix):
            return where[len(prefix):]
    return where


def _listing(problems: Sequence[Problem], limit: int, root: Path | None) -> str:
    return "; ".join(f"{_short(p.where, root)}: {_clean(p.message)}" for p in problems[:limit])


def _clean(message: str) -> str:
    return " ".join(message.split()).rstrip(".")


def summarize_warnings(problems: Iterable[Problem], limit: int = WARNING_LIMIT, *, root: str | Path | None = None) -> str:
    """One line for the warnings among `problems`: "N warnings; first 5: a; b; ..." ("" when none).

    Args:
        problems: Problems of any severity (only warnings are counted).
        limit: How many warnings to quote.
        root: Paths inside this folder are shown relative to it.
    """
    warnings = [p for p in problems if p.severity == "warning"]
    if not warnings:
        return ""
    base = Path(root) if root is not None else None
    lead = _plural(len(warnings), "warning")
    lead += f"; first {limit}: " if len(warnings) > limit else ": "
    return lead + _listing(warnings, limit, base) + "."


def default_problems_file(problems: Sequence[Problem]) -> Path:
    """Where the full list goes when the caller names no file: the temp folder, named by content."""
    digest = hashlib.sha256("\n".join(map(str, problems)).encode("utf-8")).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "vsslrt-problems" / f"problems-{digest}.txt"


def write_problems_file(problems: Sequence[Problem], path: str | Path | None = None, *, subject: str = "") -> Path:
    """Write every problem, one a line (errors first), atomically; returns the file's path."""
    target = Path(path) if path is not None else default_problems_file(problems)
    head = f"# {subject}: {_plural(sum(p.severity == 'error' for p in problems), 'error')}, " if subject else "# "
    head += f"{_plural(sum(p.severity == 'warning' for p in problems), 'warning')}\n"
    return atomic_write_text(target, head + format_problems(problems) + "\n")


class DatasetProblemsError(DataError):
    """A dataset failed validation; `problems` lists every problem found (errors and warnings).

    Attributes:
        problems: Every problem, errors and warnings.
        problems_file: The file listing them all, when the message could not (more than
            MESSAGE_LIMIT errors); None otherwise.
    """

    def __init__(
        self,
        subject: str,
        problems: list[Problem],
        *,
        hint: str | None = None,
        root: str | Path | None = None,
        problems_file: str | Path | None = None,
    ) -> None:
        errors = [p for p in problems if p.severity == "error"] or list(problems)
        base = Path(root) if root is not None else None
        message = f"{subject}: expected a complete, consistent dataset, got {_plural(len(errors), 'error')}"
        if errors:
            message += ": " + _listing(errors, MESSAGE_LIMIT, base)
        self.problems_file: Path | None = None
        if len(errors) > MESSAGE_LIMIT:
            try:
                self.problems_file = write_problems_file(problems, problems_file, subject=subject)
                message += f"; ... ({len(errors) - MESSAGE_LIMIT} more; all problems are listed in {self.problems_file})"
            except OSError as exc:  # the report must not hide the dataset's problems behind its own
                message += f"; ... ({len(errors) - MESSAGE_LIMIT} more, not listed: writing the list failed: {exc})"
        message = message.rstrip(".") + "."
        if hint is None:
            if all(p.samples for p in errors):
                hint = "re-download or re-export the listed files, or run with --skip-bad to leave their samples out"
            else:
                hint = "fix the listed files and metadata records and run again"
        super().__init__(message, hint=hint)
        self.problems = list(problems)


def format_problems(problems: Iterable[Problem], limit: int | None = None) -> str:
    """A plain-text listing, one problem per line (errors first)."""
    ordered = sorted(problems, key=lambda p: p.severity != "error")
    lines = [str(p) for p in ordered]
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return "\n".join(lines)
