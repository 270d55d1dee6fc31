"""One writer per run folder: an exclusive `fcntl.flock` on `RUN/.lock`, held for the whole run.

The lock belongs to the open file: the kernel releases it when the process exits, however it
exits (Ctrl-C, a crash, kill -9), so a stale lock file never blocks a later run; a run that ends
normally removes the file. The file holds
the writer's pid and start time, which the refusal quotes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from vsslrt.errors import InputError

LOCK_NAME = ".lock"


class RunLock:
    """Hold `run_dir/.lock` exclusively (a context manager); refuse at once when another holds it."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl  # lazy: POSIX only, needed only when a run starts

        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise InputError(
                    f"{self.run_dir} is being written by another vsslrt process (pid {holder.get('pid', '?')}, "
                    f"started {holder.get('started', '?')}); wait for it or choose another --out.") from None
            except BaseException:
                os.close(fd)
                raise
            # A finished writer removes the file while it still holds the lock: a lock taken on a file
            # that is no longer at the path is no lock; take it again on the new file.
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        # The lock is ours: record who holds it (in place; the lock is on this inode, not on a name).
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            # Remove the file first, lock still held, so a finished folder keeps no lock file; a process
            # that opened it meanwhile sees the inode change and locks the new file (acquire).
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
