"""Exception -> one-line message table and exit codes for the CLI."""

from __future__ import annotations

import errno
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
    (OSError, "system error"),
)


_OS_PREFIXES = {errno.ENOENT: "file not found", errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def debug_enabled() -> bool:
    return os.environ.get("VSSLRT_DEBUG", "") not in ("", "0", "false", "False")


# Ordinary faults of the system (not of vsslrt, not of the input): what happened and what to do.
_OS_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space or write to another disk (--out), then rerun; "
                   "an interrupted bench continues with --resume"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere (--out), then rerun"),
    errno.EROFS: ("read-only file system", "write to a writable folder (--out, or VSSLRT_CACHE for the cache)"),
    errno.EACCES: ("permission denied", "check the permissions of this path or choose another one"),
    errno.EPERM: ("operation not permitted", "check the permissions of this path or choose another one"),
    errno.ENOTDIR: ("a part of this path is a file, not a folder", "remove or rename that file, or choose another path"),
    errno.EEXIST: ("the path already exists", "remove it or choose another path"),
    errno.EISDIR: ("expected a file, got a folder", "give the path of a file"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENAMETOOLONG: ("the file name is too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or use fewer --workers"),
    errno.EIO: ("input/output error of the device", "check the disk or network file system, then rerun"),
}


def _os_fault(exc: OSError) -> str | None:
    fault = _OS_FAULTS.get(exc.errno) if exc.errno is not None else None
    if fault is None:
        return None
    what, todo = fault
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and exc.filename and os.path.isfile(exc.filename):
        # mkdir(parents=True) reports a file in the way as "exists"; say what is really wrong.
        what, todo = _OS_FAULTS[errno.ENOTDIR][0].replace("a part of this path", "this"), _OS_FAULTS[errno.ENOTDIR][1]
    where = ", ".join(str(p) for p in (exc.filename, exc.filename2) if p) or "(path not reported by the system)"
    return f"{where}: {what}. Hint: {todo}."


def format_error(exc: BaseException) -> str:
    """One line: '<prefix>: <message>' for user errors and system faults, a bug notice otherwise."""
    if isinstance(exc, OSError) and not isinstance(exc, VsslrtError) and (line := _os_fault(exc)):
        return f"{_OS_PREFIXES.get(exc.errno, 'system error')}: {line}"
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
