"""Dynamic batching: requests queued and run together, up to a batch size or a delay.

The oldest queued item waits at most `max_delay_s` for company: a batch leaves when it holds
`max_batch` items or when its oldest item has waited `max_delay_s`, whichever comes first (while
the engine is busy, items accumulate and the next batch leaves as soon as it is free). With
`max_batch=1` every item runs alone without waiting. One worker runs the batches, one at a time,
in a single-thread executor: the engine session is used by one thread, in order.

Each item has its own future; results are handed back by position, so a request only ever sees
the result computed from its own input. An item whose future is already done (its request timed
out or went away) is dropped before the engine sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

from vsslrt.errors import InputError

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(Exception):
    """The batcher no longer accepts items (the service is shutting down)."""


@dataclass
class _Item(Generic[T]):
    value: T
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher(Generic[T, R]):
    """Collects items into batches for `run_batch`.

    Args:
        run_batch: Items -> results, one per item, in order; runs in `executor`.
        executor: Where batches run (a single-thread executor: one engine session).
        max_batch: Largest batch.
        max_delay_s: Longest wait of a batch's oldest item for more items.
        on_batch: Called on the event loop after each batch with (size, seconds, queue waits).
        on_depth: Called with the number of queued items whenever it changes.
    """

    def __init__(self, run_batch: Callable[[list[T]], Sequence[R]], executor: Executor, *, max_batch: int,
                 max_delay_s: float, on_batch: Callable[[int, float, list[float]], None] | None = None,
                 on_depth: Callable[[int], None] | None = None) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise InputError(f"serve: expected --max-batch to be a positive integer, got {max_batch!r}.")
        if not (max_delay_s >= 0):
            raise InputError(f"serve: expected --max-delay-ms to be >= 0, got {max_delay_s * 1e3!r}.")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_delay_s = float(max_delay_s)
        self.on_batch = on_batch
        self.on_depth = on_depth
        self._items: deque[_Item[T]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closing = False

    @property
    def depth(self) -> int:
        return len(self._items)

    def start(self) -> None:
        """Start the worker (on the running event loop)."""
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="vsslrt-batcher")

    async def submit(self, value: T) -> R:
        """Queue one item and wait for its result (or the exception its batch raised).

        Raises:
            BatcherClosed: The batcher is closing.
        """
        if self._closing or self._wakeup is None:
            raise BatcherClosed("the service is shutting down")
        future = asyncio.get_running_loop().create_future()
        self._items.append(_Item(value, future))
        self._depth_changed()
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Stop accepting items, run the ones queued, and stop the worker."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            await self._worker

    # ----- the worker -----------------------------------------------------------------------
    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._items:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._wait_for_company()
            batch = [self._items.popleft() for _ in range(min(self.max_batch, len(self._items)))]
            self._depth_changed()
            live = [item for item in batch if not item.future.done()]
            if not live:
                continue
            started = time.monotonic()
            waits = [started - item.enqueued for item in live]
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [i.value for i in live])
                if len(results) != len(live):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(live)} items")
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the batch's error
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(exc)
                if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                    raise
                continue
            for item, result in zip(live, results):
                if not item.future.done():
                    item.future.set_result(result)
            if self.on_batch is not None:
                self.on_batch(len(live), time.monotonic() - started, waits)

    async def _wait_for_company(self) -> None:
        """Wait until the batch is full or its oldest item has waited max_delay_s."""
        assert self._wakeup is not None
        while len(self._items) < self.max_batch and not self._closing:
            remaining = self._items[0].enqueued + self.max_delay_s - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _depth_changed(self) -> None:
        if self.on_depth is not None:
            self.on_depth(len(self._items))
