"""One exception hierarchy for the whole project.

The library raises; only the CLI formats and exits. Messages follow one template:
"<subject>: expected <name> to be <constraint>, got <value>." with an optional
"Hint: <how to fix>" that the CLI prints on the same line.
"""

from __future__ import annotations


class VsslrtError(Exception):
    """Base of every error caused by the user's input, files or environment."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" Hint: {' '.join(self.hint.split())}"
        return text

    def __str__(self) -> str:  # keeps `str(err)` a single readable line
        return self.one_line()


class InputError(VsslrtError, ValueError):
    """A file, field or value given by the user is wrong."""


class DataError(InputError):
    """A dataset file (image, audio, annotation) is missing, unreadable or inconsistent."""


class BackendUnavailableError(VsslrtError, ImportError):
    """An optional runtime (onnxruntime, tensorrt, cupy, torch, ray) is missing or unusable."""


class EngineBuildError(VsslrtError):
    """Export, engine build or parity check failed."""


class ManifestMismatchError(VsslrtError):
    """An engine, calibration or run folder does not match what it is used with."""


class VsslrtInternalError(Exception):
    """A bug in vsslrt itself (deliberately not a VsslrtError: it is never the user's fault)."""


def missing_extra(package: str, extra: str, purpose: str) -> BackendUnavailableError:
    """The standard error for an optional dependency that is not installed."""
    return BackendUnavailableError(
        f"{package} is not installed, but it is needed to {purpose}.",
        hint=f"pip install 'vsslrt[{extra}]'",
    )
