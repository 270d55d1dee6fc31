"""Dataset problems collected all at once, and the error that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from vsslrt.errors import DataError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        where: The file (and record, e.g. "manifest.jsonl:12") the problem is in.
        message: What is wrong and what was expected.
        severity: "error" stops a run; "warning" is reported and the run goes on.
    """

    where: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class ProblemList:
    """An ordered collection of problems, filled while a dataset is read and checked."""

    items: list[Problem] = field(default_factory=list)

    def error(self, where: object, message: str) -> None:
        self.items.append(Problem(str(where), message, "error"))

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


class DatasetProblemsError(DataError):
    """A dataset failed validation; `problems` lists every problem found (errors and warnings)."""

    def __init__(self, subject: str, problems: list[Problem], *, hint: str | None = None) -> None:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0] if errors else (problems[0] if problems else None)
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        message = f"{subject}: expected a complete, consistent dataset, got {count}"
        if first is not None:
            message += f" (first: {first.where}: {first.message})"
        message += "."
        super().__init__(
            message,
            hint=hint or "fix the files and records of the validation report (all problems are in the error's "
            "`problems`, one line each with `format_problems`)",
        )
        self.problems = list(problems)


def format_problems(problems: Iterable[Problem], limit: int | None = None) -> str:
    """A plain-text listing, one problem per line (errors first)."""
    ordered = sorted(problems, key=lambda p: p.severity != "error")
    lines = [str(p) for p in ordered]
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return "\n".join(lines)
