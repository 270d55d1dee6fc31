"""Latency profiler on a fake clock: warm-up excluded, stopping rules, statistics, stages, JSON."""

from __future__ import annotations

import json

import pytest

from vsslrt.engine.profiler import (
    LatencyStats,
    ProfileSettings,
    StageTimer,
    batch_sizes_up_to,
    environment_block,
    profile,
    sweep,
)
from vsslrt.errors import InputError


class FakeClock:
    """Time only moves when a step says how long it took."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def stepper(clock: FakeClock, durations: list[float], stages: bool = False):
    """A step whose i-th call takes durations[i] seconds (split 1:3 into h2d/compute when `stages`)."""
    calls = iter(durations)

    def step(timer: StageTimer) -> None:
        seconds = next(calls)
        if stages:
            with timer.stage("h2d"):
                clock.advance(seconds / 4)
            with timer.stage("compute"):
                clock.advance(seconds * 3 / 4)
        else:
            clock.advance(seconds)

    return step


def test_stats_hand_computed():
    stats = LatencyStats.from_samples([0.001 * v for v in range(1, 11)])  # 1..10 ms
    assert stats.count == 10
    assert stats.min == pytest.approx(0.001) and stats.max == pytest.approx(0.010)
    assert stats.mean == pytest.approx(0.0055) and stats.median == pytest.approx(0.0055)
    # linear interpolation between order statistics: rank (n - 1) * q
    assert stats.p90 == pytest.approx(0.0091) and stats.p95 == pytest.approx(0.00955) and stats.p99 == pytest.approx(0.00991)
    with pytest.raises(InputError, match="at least one sample"):
        LatencyStats.from_samples([])


def test_warmup_is_excluded_and_needs_both_count_and_time():
    clock = FakeClock()
    # Warm-up: 3 slow calls of 0.1 s (count 2 reached after 2, time 0.25 s only after 3); then 1 ms calls.
    durations = [0.1, 0.1, 0.1] + [0.001] * 100
    settings = ProfileSettings(warmup_seconds=0.25, warmup_iterations=2, min_iterations=10, min_seconds=0.0)
    report = profile(stepper(clock, durations), batch_size=4, settings=settings, clock=clock)
    assert report.warmup_iterations == 3
    assert report.warmup_seconds == pytest.approx(0.3)
    assert report.iterations == 10
    assert report.latency.max == pytest.approx(0.001)  # no warm-up call leaked into the statistics


def test_measurement_runs_until_min_iterations_and_min_seconds():
    clock = FakeClock()
    settings = ProfileSettings(warmup_seconds=0, warmup_iterations=0, min_iterations=5, min_seconds=0.05)
    report = profile(stepper(clock, [0.01] * 100), batch_size=8, settings=settings, clock=clock)
    assert report.iterations == 5  # 5 x 10 ms reaches both limits at once
    clock = FakeClock()
    report = profile(stepper(clock, [0.001] * 100), batch_size=8, settings=settings, clock=clock)
    assert report.iterations == 50  # time-bound: 50 x 1 ms
    assert report.total_host_walltime == pytest.approx(0.05)
    assert report.throughput_qps == pytest.approx(1000.0)
    assert report.samples_per_second == pytest.approx(8000.0)


def test_max_iterations_caps_a_slow_run():
    clock = FakeClock()
    settings = ProfileSettings(warmup_iterations=0, warmup_seconds=0, min_iterations=3, min_seconds=100, max_iterations=4)
    assert profile(stepper(clock, [1.0] * 10), batch_size=1, settings=settings, clock=clock).iterations == 4


def test_stages_and_json_fields():
    clock = FakeClock()
    settings = ProfileSettings(warmup_iterations=1, warmup_seconds=0, min_iterations=4, min_seconds=0)
    durations = [9.0, 0.004, 0.008, 0.004, 0.008]
    cpu = iter([10.0, 10.048])  # two busy threads: twice the 24 ms measured wall time
    report = profile(
        stepper(clock, durations, stages=True), batch_size=2, settings=settings, clock=clock,
        cpu_clock=lambda: next(cpu), environment={"backend": "ort"}, gflops_per_sample=1.5, peak_gflops=100.0,
    )
    assert set(report.stages) == {"h2d", "compute"}
    assert report.stages["h2d"].mean == pytest.approx(0.0015)
    assert report.stages["compute"].max == pytest.approx(0.006)
    data = json.loads(json.dumps(report.to_json()))
    assert data["latency_ms"]["median"] == pytest.approx(6.0)
    assert data["latency_ms"]["percentile(99%)"] == pytest.approx(8.0)  # sorted 4, 4, 8, 8: rank 2.97
    assert set(data["latency_ms"]) >= {"min", "max", "mean", "median", "percentile(90%)", "percentile(95%)", "percentile(99%)"}
    assert data["stages_ms"]["h2d"]["min"] == pytest.approx(1.0)
    assert data["throughput_qps"] == pytest.approx(4 / 0.024)
    assert data["achieved_gflops_per_s"] == pytest.approx(1.5 * 2 * 4 / 0.024)
    assert data["fraction_of_peak"] == pytest.approx(1.5 * 2 * 4 / 0.024 / 100.0)
    assert data["warmup"] == {"iterations": 1, "duration_ms": pytest.approx(9000.0)}
    assert data["process_cpu_time_s"] == pytest.approx(0.048) and data["cpu_utilisation"] == pytest.approx(2.0)
    assert data["environment"] == {"backend": "ort"}


def test_stage_timer_sync_runs_before_the_clock_stops():
    clock = FakeClock()
    timer = StageTimer(clock)
    with timer.stage("compute", sync=lambda: clock.advance(0.5)):  # e.g. stream.synchronize waiting for the device
        clock.advance(0.1)
    timer.record("compute", 0.25)
    assert timer.times == {"compute": pytest.approx(0.85)}


def test_batch_sweep():
    assert batch_sizes_up_to(1) == [1]
    assert batch_sizes_up_to(16) == [1, 2, 4, 8, 16]
    assert batch_sizes_up_to(24) == [1, 2, 4, 8, 16, 24]
    with pytest.raises(InputError):
        batch_sizes_up_to(0)
    clock = FakeClock()
    settings = ProfileSettings(warmup_iterations=0, warmup_seconds=0, min_iterations=2, min_seconds=0)
    reports = sweep(lambda b: stepper(clock, [0.001 * b] * 2), [1, 4], settings=settings, clock=clock)
    assert [r.batch_size for r in reports] == [1, 4]
    assert [r.latency.mean for r in reports] == [pytest.approx(0.001), pytest.approx(0.004)]
    assert reports[0].samples_per_second == pytest.approx(reports[1].samples_per_second)


def test_settings_validate():
    with pytest.raises(InputError, match="max_iterations >= min_iterations"):
        ProfileSettings(min_iterations=10, max_iterations=5)
    with pytest.raises(InputError, match="min_iterations >= 1"):
        ProfileSettings(min_iterations=0)
    with pytest.raises(InputError, match="batch_size >= 1"):
        profile(lambda t: None, batch_size=0)


def test_environment_block():
    import sys

    cupy_loaded = "cupy" in sys.modules  # e.g. after a CuPy test in the same process
    block = environment_block(backend="ort", precision="fp32", cuda_graphs=False, extra={"threads": 2})
    assert block["backend"] == "ort" and block["precision"] == "fp32" and block["cuda_graphs"] is False
    assert block["cpu_usable_cores"] >= 1 and block["cpu_model"]
    assert block["versions"]["numpy"] and block["versions"]["onnxruntime"]
    assert block["threads"] == 2
    # The GPU is described only when CuPy is already loaded: a report never imports it.
    assert ("gpu" in block) == cupy_loaded and ("cupy" in sys.modules) == cupy_loaded
