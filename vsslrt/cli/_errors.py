"""Exception -> one-line message table and exit codes for the CLI."""

from __future__ import annotations

import os
import sys

from vsslrt.errors import (
    BackendUnavailableError,
    DataError,
    EngineBuildError,
    InputError,
    ManifestMismatchError,
    VsslrtError,
)

# Most specific first: the first matching class gives the prefix.
_PREFIXES: tuple[tuple[type[BaseException], str], ...] = (
    (DataError, "data error"),
    (InputError, "input error"),
    (BackendUnavailableError, "missing backend"),
    (EngineBuildError, "build failed"),
    (ManifestMismatchError, "mismatch"),
    (VsslrtError, "error"),
    (FileNotFoundError, "file not found"),
    (PermissionError, "permission denied"),
    (KeyboardInterrupt, "interrupted"),
)


def debug_enabled() -> bool:
    return os.environ.get("VSSLRT_DEBUG", "") not in ("", "0", "false", "False")


def format_error(exc: BaseException) -> str:
    """One line: '<prefix>: <message>' for user errors, a bug notice otherwise."""
    for cls, prefix in _PREFIXES:
        if isinstance(exc, cls):
            if isinstance(exc, VsslrtError):
                return f"{prefix}: {exc.one_line()}"
            if isinstance(exc, OSError) and exc.filename:
                return f"{prefix}: {exc.filename}: {exc.strerror or exc}"
            return f"{prefix}: {exc}" if str(exc) else prefix
    return (
        f"internal error: {type(exc).__name__}: {exc}. This is a bug in vsslrt; "
        "rerun with VSSLRT_DEBUG=1 for the traceback and report it."
    )


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1 if isinstance(exc, (VsslrtError, OSError)) else 2


def report_and_exit(exc: BaseException) -> None:
    if debug_enabled():
        raise exc
    print(format_error(exc), file=sys.stderr)
    raise SystemExit(exit_code(exc))
