"""The common driver of the preparers: run clip tasks in parallel, resumable, with progress.

* Parallel: `workers` processes (spawned: FFmpeg and its threads are never forked); at most two
  tasks per worker are in flight and a task's result is a small dict, so memory stays bounded
  whatever the number of clips. `workers=1` runs in this process.
* Resumable: every output file is written atomically (`vsslrt.files`), so a file under its final
  name is complete; after each clip one JSON line goes to the journal `.prepare/journal.jsonl`
  (appended and flushed: a line torn by a crash is ignored and its clip redone). A later call skips
  a clip whose last journal entry is a success with the same settings and the same source (size and
  mtime) and whose outputs all exist; everything else, failures included, is redone. Temporary
  files a killed run left behind are removed first.
* A worker that dies (a decoder crash) breaks the pool: the clips then in flight are rerun one by
  one in a fresh process, and a clip that crashes it alone fails with that reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

from vsslrt.data.prepare.extract import prepare_clip
from vsslrt.errors import InputError
from vsslrt.files import sha256_bytes

JOURNAL = Path(".prepare") / "journal.jsonl"
#: Called as progress(done, total) after each clip (skipped ones included).
Progress = Callable[[int, int], None]


def settings_key(task) -> str:
    """A hash of everything in a task that shapes its outputs (not the source's path)."""
    doc = asdict(task)
    doc.pop("source")
    return sha256_bytes(json.dumps(doc, sort_keys=True, default=str))[:16]


def read_journal(out: Path) -> dict[str, dict]:
    """key -> the last complete journal entry of that clip."""
    path = out / JOURNAL
    entries: dict[str, dict] = {}
    if not path.is_file():
        return entries
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn by a crash: that clip is redone
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                entries[entry["key"]] = entry
    return entries


def _stats(task) -> dict[str, list[int]] | None:
    """(size, mtime) of every input file of a task (its `inputs`, or its `source`)."""
    stats = {}
    for path in getattr(task, "inputs", None) or (task.source,):
        try:
            stat = os.stat(path)
        except OSError:
            return None
        stats[str(path)] = [stat.st_size, stat.st_mtime_ns]
    return stats


def _finished(entry: dict | None, task, out: Path) -> bool:
    if not entry or entry.get("status") != "ok" or entry.get("settings") != settings_key(task):
        return False
    stats = _stats(task)
    if stats is None or entry.get("stats") != stats:
        return False
    names = [o.get(k) for o in entry.get("outputs", []) for k in ("image", "audio") if o.get(k)]
    return bool(names) and all((out / n).is_file() for n in names)


def _remove_stale_temporaries(out: Path, folders: Iterable[str]) -> None:
    for folder in folders:
        for tmp in (out / folder).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def run_tasks(tasks: list, out: Path, *, worker: Callable[[object, str], dict] = prepare_clip, workers: int = 1,
              progress: Progress | None = None,
              folders: Iterable[str] = ("frames", "audio")) -> tuple[dict[str, dict], int]:
    """Prepare every task (skipping finished ones) and return (key -> result, number skipped).

    Args:
        tasks: Frozen dataclasses with a unique `key` and a `source` path (or `inputs` paths).
        out: The output folder.
        worker: A module-level function (task, out folder) -> result dict with "status" ("ok" or
            "failed"), "reason" and "outputs" (dicts whose "image" / "audio" name the files written).
        workers: Processes; 1 runs in this process.
        progress: Called as (done, total).
        folders: Output sub-folders to clear of a killed run's temporary files.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers: expected a positive number of processes, got {workers!r}.")
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise InputError("prepare: expected one task per clip id, got duplicates.")  # the preparers dedupe first
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out, folders)
    journal = read_journal(out)
    results: dict[str, dict] = {}
    todo = []
    for task in tasks:
        if _finished(journal.get(task.key), task, out):
            results[task.key] = {**journal[task.key], "skipped": True}
        else:
            todo.append(task)
    skipped, total = len(results), len(tasks)
    if progress:
        progress(skipped, total)
    (out / JOURNAL).parent.mkdir(parents=True, exist_ok=True)
    with open(out / JOURNAL, "a", encoding="utf-8") as log:

        def record(task, result: dict) -> None:
            result["settings"] = settings_key(task)
            result["stats"] = _stats(task)
            log.write(json.dumps(result, default=str) + "\n")
            log.flush()
            results[task.key] = result
            if progress:
                progress(len(results), total)

        if workers == 1 or len(todo) <= 1:
            for task in todo:
                record(task, worker(task, str(out)))
        else:
            _run_parallel(todo, out, workers, worker, record)
        os.fsync(log.fileno())
    return results, skipped


def _run_parallel(todo: list, out: Path, workers: int, worker: Callable, record: Callable[[object, dict], None]) -> None:
    queue = list(reversed(todo))
    while queue:
        crashed: list = []
        with _pool(workers) as pool:
            flight = {}
            while queue or flight:
                while queue and len(flight) < 2 * workers:
                    task = queue.pop()
                    flight[pool.submit(worker, task, str(out))] = task
                done, _ = wait(flight, return_when=FIRST_COMPLETED)
                for future in done:
                    task = flight.pop(future)
                    try:
                        record(task, future.result())
                    except BrokenProcessPool:
                        crashed.append(task)
                if crashed:
                    crashed.extend(flight.values())  # the pool is gone: every clip in flight is redone
                    break
        for task in crashed:  # alone, so that a crash names its file
            try:
                with _pool(1) as single:
                    record(task, single.submit(worker, task, str(out)).result())
            except BrokenProcessPool:
                record(task, {"key": task.key, "source": task.source, "status": "failed", "notes": [],
                              "reason": "the decoding process crashed on this file (a corrupt or unsupported stream)"})
