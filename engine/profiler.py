"""Latency profiling the way trtexec reports it.

A profile runs a step function repeatedly: first a warm-up that is excluded from the results
(it lasts until both a minimum count and a minimum time are reached, like trtexec's --warmUp),
then the measured iterations (at least `min_iterations` and at least `min_seconds`, like
--iterations and --duration). Each iteration's end-to-end latency is the host time around the
step, which must synchronise the device before returning; stages inside a step are timed with a
`StageTimer` (host `perf_counter` after a synchronising call, or a device time recorded from CUDA
events). Statistics follow trtexec: min, mean, median, percentiles 90/95/99, max; throughput is
iterations per total host wall time.

Example::

    def step(timer):
        with timer.stage("compute"):
            runner.infer(feeds)          # infer returns after synchronising
    report = profile(step, batch_size=16, settings=ProfileSettings(min_seconds=3))
    print(report.to_json()["latency_ms"]["median"])
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.engine.probe import cpu_info

PERCENTILES = (90, 95, 99)

Clock = Callable[[], float]


@dataclass(frozen=True)
class ProfileSettings:
    """How long to warm up and to measure.

    Args:
        warmup_seconds: Minimum warm-up time. Defaults to 0.2 s (trtexec's 200 ms).
        warmup_iterations: Minimum warm-up iterations. Defaults to 1.
        min_iterations: Minimum measured iterations. Defaults to 10 (trtexec's default).
        min_seconds: Minimum measured time. Defaults to 3 s (trtexec's default).
        max_iterations: Stop after this many measured iterations even if `min_seconds` is not
            reached. Defaults to no limit.
    """

    warmup_seconds: float = 0.2
    warmup_iterations: int = 1
    min_iterations: int = 10
    min_seconds: float = 3.0
    max_iterations: int | None = None

    def __post_init__(self) -> None:
        if self.warmup_seconds < 0 or self.warmup_iterations < 0:
            raise InputError(
                f"profile: expected warm-up time and count to be >= 0, got {self.warmup_seconds} s and {self.warmup_iterations}."
            )
        if self.min_iterations < 1 or self.min_seconds < 0:
            raise InputError(
                f"profile: expected min_iterations >= 1 and min_seconds >= 0, got {self.min_iterations} and {self.min_seconds}."
            )
        if self.max_iterations is not None and self.max_iterations < self.min_iterations:
            raise InputError(
                f"profile: expected max_iterations >= min_iterations ({self.min_iterations}), got {self.max_iterations}."
            )


@dataclass(frozen=True)
class LatencyStats:
    """Distribution of per-iteration times, in seconds."""

    count: int
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float

    @classmethod
    def from_samples(cls, samples: Iterable[float]) -> LatencyStats:
        """Statistics of a sample (percentiles by linear interpolation between order statistics)."""
        values = np.asarray(list(samples), dtype=np.float64)
        if values.size == 0:
            raise InputError("latency stats: expected at least one sample, got none.")
        p50, p90, p95, p99 = np.percentile(values, [50, *PERCENTILES])
        return cls(
            count=int(values.size),
            min=float(values.min()),
            mean=float(values.mean()),
            median=float(p50),
            p90=float(p90),
            p95=float(p95),
            p99=float(p99),
            max=float(values.max()),
            std=float(values.std()),
        )

    def to_json_ms(self) -> dict[str, float]:
        """trtexec's summary names, in milliseconds."""
        ms = 1e3
        return {
            "min": self.min * ms,
            "max": self.max * ms,
            "mean": self.mean * ms,
            "median": self.median * ms,
            "percentile(90%)": self.p90 * ms,
            "percentile(95%)": self.p95 * ms,
            "percentile(99%)": self.p99 * ms,
            "std": self.std * ms,
            "count": self.count,
        }


class StageTimer:
    """Per-stage times of one iteration, handed to the step function.

    Args:
        clock: Seconds clock. Defaults to time.perf_counter.
    """

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self.times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, sync: Callable[[], Any] | None = None) -> Iterator[None]:
        """Time a block on the host; `sync` (e.g. `stream.synchronize`) runs before the clock stops.

        Times of a stage entered twice in one iteration add up.
        """
        start = self._clock()
        yield
        if sync is not None:
            sync()
        self.record(name, self._clock() - start)

    def record(self, name: str, seconds: float) -> None:
        """Add a time measured elsewhere, e.g. device time from CUDA events."""
        self.times[name] = self.times.get(name, 0.0) + float(seconds)


@contextmanager
def cuda_event_stage(timer: StageTimer, name: str, stream: Any) -> Iterator[None]:
    """Time a block on the device with CUDA events recorded on `stream` (a CuPy stream).

    Device time excludes host launch overhead; the block's work must be enqueued on `stream`.
    Waits for the end event, so the block is complete when this returns.
    """
    import cupy

    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record(stream)
    yield
    end.record(stream)
    end.synchronize()
    timer.record(name, cupy.cuda.get_elapsed_time(start, end) / 1e3)


@dataclass
class LatencyReport:
    """Result of one profile at one batch size."""

    batch_size: int
    iterations: int
    warmup_iterations: int
    warmup_seconds: float
    total_host_walltime: float
    latency: LatencyStats
    stages: dict[str, LatencyStats]
    environment: dict[str, Any] = field(default_factory=dict)
    gflops_per_sample: float | None = None
    peak_gflops: float | None = None
    process_cpu_time: float | None = None

    @property
    def cpu_utilisation(self) -> float | None:
        """Process CPU seconds per wall second while measuring (about the number of busy cores)."""
        if self.process_cpu_time is None or self.total_host_walltime <= 0:
            return None
        return self.process_cpu_time / self.total_host_walltime

    @property
    def throughput_qps(self) -> float:
        """Iterations (queries) per second of total host wall time, trtexec's definition."""
        return self.iterations / self.total_host_walltime if self.total_host_walltime > 0 else float("inf")

    @property
    def samples_per_second(self) -> float:
        return self.throughput_qps * self.batch_size

    @property
    def achieved_gflops(self) -> float | None:
        """Model GFLOP per sample x samples per second, when the model's GFLOPs are known."""
        return None if self.gflops_per_sample is None else self.gflops_per_sample * self.samples_per_second

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with trtexec-like names (times in ms unless the key says otherwise)."""
        achieved = self.achieved_gflops
        return {
            "batch_size": self.batch_size,
            "iterations": self.iterations,
            "warmup": {"iterations": self.warmup_iterations, "duration_ms": self.warmup_seconds * 1e3},
            "total_host_walltime_s": self.total_host_walltime,
            "process_cpu_time_s": self.process_cpu_time,
            "cpu_utilisation": self.cpu_utilisation,
            "throughput_qps": self.throughput_qps,
            "throughput_samples_per_s": self.samples_per_second,
            "latency_ms": self.latency.to_json_ms(),
            "stages_ms": {name: stats.to_json_ms() for name, stats in self.stages.items()},
            "gflops_per_sample": self.gflops_per_sample,
            "achieved_gflops_per_s": achieved,
            "peak_gflops_per_s": self.peak_gflops,
            "fraction_of_peak": (achieved / self.peak_gflops) if achieved is not None and self.peak_gflops else None,
            "environment": self.environment,
        }


def profile(
    step: Callable[[StageTimer], Any],
    *,
    batch_size: int,
    settings: ProfileSettings | None = None,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
    environment: dict[str, Any] | None = None,
    gflops_per_sample: float | None = None,
    peak_gflops: float | None = None,
) -> LatencyReport:
    """Warm up, then measure `step` until both the iteration and the time minimums are met.

    Args:
        step: Runs one iteration and returns after the device is synchronised. It receives a
            StageTimer for its stages.
        batch_size: Samples per iteration (for throughput).
        settings: Warm-up and measurement limits. Defaults to ProfileSettings().
        clock: Seconds clock. Defaults to time.perf_counter.
        cpu_clock: Process CPU-time clock (all threads), read around the measured phase; on a
            shared machine CPU time per iteration is steadier than wall time. Defaults to
            time.process_time.
        environment: The environment block to attach (see `environment_block`). Defaults to none.
        gflops_per_sample: Model GFLOPs per sample, for the achieved GFLOP/s. Defaults to unknown.
        peak_gflops: The machine's measured peak, for the fraction of peak. Defaults to unknown.
    """
    if batch_size < 1:
        raise InputError(f"profile: expected batch_size >= 1, got {batch_size}.")
    settings = settings or ProfileSettings()

    warm_start = clock()
    warm_count = 0
    while warm_count < settings.warmup_iterations or clock() - warm_start < settings.warmup_seconds:
        step(StageTimer(clock))
        warm_count += 1
    warm_seconds = clock() - warm_start

    latencies: list[float] = []
    stage_samples: dict[str, list[float]] = {}
    start, cpu_start = clock(), cpu_clock()
    while True:
        timer = StageTimer(clock)
        t0 = clock()
        step(timer)
        latencies.append(clock() - t0)
        for name, seconds in timer.times.items():
            stage_samples.setdefault(name, []).append(seconds)
        done = len(latencies) >= settings.min_iterations and clock() - start >= settings.min_seconds
        capped = settings.max_iterations is not None and len(latencies) >= settings.max_iterations
        if done or capped:
            break
    total = clock() - start
    cpu_total = cpu_clock() - cpu_start
    return LatencyReport(
        batch_size=batch_size,
        iterations=len(latencies),
        warmup_iterations=warm_count,
        warmup_seconds=warm_seconds,
        total_host_walltime=total,
        latency=LatencyStats.from_samples(latencies),
        stages={name: LatencyStats.from_samples(v) for name, v in stage_samples.items()},
        environment=dict(environment or {}),
        gflops_per_sample=gflops_per_sample,
        peak_gflops=peak_gflops,
        process_cpu_time=cpu_total,
    )


def batch_sizes_up_to(max_batch: int) -> list[int]:
    """1, 2, 4, ... up to `max_batch` (which is included even when it is not a power of two)."""
    if max_batch < 1:
        raise InputError(f"batch sweep: expected a maximum batch >= 1, got {max_batch}.")
    sizes = [1 << i for i in range(max_batch.bit_length()) if 1 << i <= max_batch]
    return sizes if sizes[-1] == max_batch else [*sizes, max_batch]


def sweep(
    make_step: Callable[[int], Callable[[StageTimer], Any]],
    batch_sizes: Iterable[int],
    **profile_kwargs: Any,
) -> list[LatencyReport]:
    """Profile one step per batch size; `make_step(b)` prepares inputs of batch b and returns the step."""
    return [profile(make_step(b), batch_size=b, **profile_kwargs) for b in batch_sizes]


def environment_block(
    *,
    backend: str,
    precision: str,
    cuda_graphs: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a latency number depends on: CPU, versions, precision, CUDA graphs, GPU when in use.

    Library versions come from package metadata, so nothing is imported; the GPU is described
    only when CuPy is already loaded (that is, when the run uses the GPU).
    """

    cpu = cpu_info()
    block: dict[str, Any] = {
        "backend": backend,
        "precision": precision,
        "cuda_graphs": bool(cuda_graphs),
        "cpu_model": cpu.model,
        "cpu_logical_cores": cpu.logical_cores,
        "cpu_usable_cores": cpu.usable_cores,
        # Other processes share the cores on CI machines; the load says how much.
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in _VERSIONED},
    }
    if "cupy" in sys.modules:
        block["gpu"] = _gpu_description(sys.modules["cupy"])
    block.update(extra or {})
    return block


_VERSIONED = ("vsslrt", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "cupy-cuda13x", "cupy-cuda12x", "torch")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpu_description(cupy: Any) -> dict[str, Any]:
    try:
        device = cupy.cuda.runtime.getDevice()
        props = cupy.cuda.runtime.getDeviceProperties(device)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return {
            "name": name,
            "compute_capability": f"{props['major']}.{props['minor']}",
            "driver": cupy.cuda.runtime.driverGetVersion(),
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        }
    except Exception as exc:  # noqa: BLE001 - the block describes, it never fails a benchmark
        return {"error": f"{type(exc).__name__}: {exc}"}
