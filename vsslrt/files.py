"""The one place files are written and hashed: atomic writes (all or nothing) and sha256.

Every result, engine, manifest, report and prepared file goes through `atomic_write_bytes`: the data
goes to a temporary file in the destination folder, is flushed to disk, gets the permissions of an
ordinary output file (0644 less the umask; `mkstemp` alone would leave 0600), and is renamed over the
target with `os.replace`, atomic on POSIX and Windows. The folder entry is then flushed too, so a
power cut after the call cannot lose the rename. On any error or interruption the temporary file is
removed and the target keeps its previous content.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 1 << 20


def _file_mode() -> int:
    # os.umask both sets and returns the mask, so it is read once, at import, before any threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def atomic_write_bytes(path: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` (bytes or any buffer, e.g. TensorRT's IHostMemory) so readers see all or nothing."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        handle.write(memoryview(data))
    return Path(path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path in the destination folder for a writer that streams into a file (a video
    encoder, a JSON-lines log): renamed over `path` when the block ends without an error, removed
    otherwise, so `path` is never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, allow_nan: bool = True) -> Path:
    """Indented JSON; NumPy scalars and arrays, and paths, become plain JSON values."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default,
                                              allow_nan=allow_nan) + "\n")


def atomic_savez(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getbuffer())


def sha256_file(path: str | os.PathLike[str], chunk: int = _CHUNK) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes | memoryview | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy: NumPy scalars/arrays to Python values, non-finite floats to None, paths to str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders (Windows); the rename itself is atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
