"""`vsslrt serve` under load: throughput, p50/p99 latency and CPU per request, dynamic batching on and off.

For each model (the shipped demo-san, and an EZ-VSL-sized engine exported with random weights), two
services are started as `vsslrt serve` subprocesses on 127.0.0.1 and warmed:

* batch-1 serving: `--max-batch 1` (each request runs the engine alone);
* dynamic batching: `--max-batch B --max-delay-ms D`.

They are then loaded in interleaved rounds (batch-1, batching, batch-1, ...), so that a shared,
busy machine's load drifts over both alike; an idle service costs next to nothing while the other
is measured. Each round sends a fixed number of multipart requests (distinct synthetic pairs,
cycled) from a bounded load generator at a fixed concurrency: an asyncio httpx client with HTTP
keep-alive, each request starting only when a slot is free, and request bodies encoded once before
the rounds, so that the generator, which shares the machine's cores with the service as a client on
the same host would, spends little CPU per request (reported: client CPU ms per request).

Reported per configuration: throughput (requests over the round's wall time; median over rounds,
and the pooled latencies' p50/p99), the service's CPU milliseconds per request (from
/proc/<pid>/stat, Linux) and the load generator's, and, from the service's own `/metrics`, the mean
engine batch (vsslrt_batch_size) and the share of the round the engine thread was busy
(vsslrt_batch_duration_seconds). The figure of merit is the ratio of the throughputs, per round
pair and as the median of those ratios.

Calibration: demo-san's from its manifest's universal threshold; the EZ-VSL-sized engine (random
weights) with a fixed threshold of 0.5 (the work per request does not depend on its value).

Usage: python benchmarks/bench_serve.py [--models demo-san,ezvsl] [--requests 200] [--rounds 3]
                                        [--concurrency 16] [--max-batch 16] [--max-delay-ms 10]
                                        [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "pipeline"))
from serve_helpers import free_port, manifest_calibration, write_pairs  # noqa: E402


def engine_for(model: str, cache: Path) -> tuple[Path, dict]:
    """(engine folder, calibration document) of a benchmark model."""
    if model == "demo-san":
        from vsslrt.pipeline.demo import demo_engine_dirs

        engine = demo_engine_dirs()[1]
        return engine, manifest_calibration(engine)
    folder = cache / model
    if not (folder / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "vsslrt", "export", "--model", model, "--random-init", "--out",
                        str(folder)], check=True)
    return folder, manifest_calibration(folder, threshold=0.5)


def start_server(engine: Path, calibration: Path, port: int, max_batch: int, max_delay_ms: float, threads: int,
                 max_queue: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "vsslrt", "serve", "--engine", str(engine), "--calibration", str(calibration),
               "--port", str(port), "--max-batch", str(max_batch), "--max-delay-ms", str(max_delay_ms),
               "--threads", str(threads), "--max-queue", str(max_queue), "--drain-seconds", "0"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server was not ready in time")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc (NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def encoded_bodies(pairs: list[tuple[Path, Path]]) -> list[tuple[bytes, str]]:
    """Each pair's multipart body, encoded once by httpx: (bytes, content-type with its boundary)."""
    import httpx

    bodies = []
    for image, audio in pairs:
        request = httpx.Request("POST", "http://127.0.0.1/v1/localize", files={
            "image": (image.name, image.read_bytes(), "image/png"),
            "audio": (audio.name, audio.read_bytes(), "audio/wav")})
        bodies.append((request.read(), request.headers["content-type"]))
    return bodies


async def load(url: str, bodies: list[tuple[bytes, str]], requests: int, concurrency: int
               ) -> tuple[list[float], float, list[int]]:
    """`requests` posts, at most `concurrency` at a time; (latencies in s, wall seconds, status codes)."""
    import httpx

    latencies: list[float] = []
    codes: list[int] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits) as client:
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < requests:
                index = next_index
                next_index += 1
                body, kind = bodies[index % len(bodies)]
                started = time.perf_counter()
                response = await client.post(f"{url}/v1/localize", content=body, headers={"content-type": kind})
                latencies.append(time.perf_counter() - started)
                codes.append(response.status_code)

        # Open the keep-alive connections before the clock starts.
        await asyncio.gather(*(client.get(f"{url}/v1/health") for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, codes


def batch_counters(url: str) -> tuple[float, float, float]:
    """(pairs, engine calls, engine seconds) so far, from the service's vsslrt_batch_size and
    vsslrt_batch_duration_seconds histograms."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from vsslrt.pipeline.serve.metrics import sample_value

    families = list(text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text))
    return tuple(sample_value(families, name) or 0.0 for name in (
        "vsslrt_batch_size_sum", "vsslrt_batch_size_count", "vsslrt_batch_duration_seconds_sum"))


def one_round(url: str, pid: int, bodies: list[tuple[bytes, str]], args) -> dict:
    batch_before = batch_counters(url)
    server_cpu, client_cpu = process_cpu_seconds(pid), time.process_time()
    latencies, wall, codes = asyncio.run(load(url, bodies, args.requests, args.concurrency))
    server_cpu, client_cpu = process_cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
    batch_after = batch_counters(url)
    count = batch_after[1] - batch_before[1]
    return {"latencies": latencies, "wall": wall, "ok": codes.count(200),
            "server_cpu_ms": 1e3 * server_cpu / args.requests, "client_cpu_ms": 1e3 * client_cpu / args.requests,
            "mean_engine_batch": (batch_after[0] - batch_before[0]) / count if count else float("nan"),
            "engine_busy": (batch_after[2] - batch_before[2]) / wall}


def summary(rounds: list[dict], args, **config) -> dict:
    ms = np.concatenate([r["latencies"] for r in rounds]) * 1e3
    rps = [args.requests / r["wall"] for r in rounds]
    return {**config, "requests": args.requests, "rounds": len(rounds), "concurrency": args.concurrency,
            "ok": sum(r["ok"] for r in rounds), "throughput_rps": float(np.median(rps)),
            "throughput_rps_rounds": rps, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "server_cpu_ms_per_request": float(np.median([r["server_cpu_ms"] for r in rounds])),
            "client_cpu_ms_per_request": float(np.median([r["client_cpu_ms"] for r in rounds])),
            "mean_engine_batch": float(np.mean([r["mean_engine_batch"] for r in rounds])),
            "engine_busy": float(np.median([r["engine_busy"] for r in rounds]))}


def measure(engine: Path, calibration: Path, bodies: list[tuple[bytes, str]], args) -> tuple[dict, dict, list[float]]:
    """(batch-1 summary, batching summary, per-round throughput ratios), rounds interleaved."""
    configs = {"batch-1": (1, 0.0), "batching": (args.max_batch, args.max_delay_ms)}
    servers = {}
    try:
        for name, (max_batch, delay) in configs.items():
            port = free_port()
            servers[name] = (f"http://127.0.0.1:{port}", start_server(
                engine, calibration, port, max_batch, delay, args.threads, max_queue=max(64, 2 * args.concurrency)))
        for name, (url, process) in servers.items():
            wait_ready(url, process)
            asyncio.run(load(url, bodies, 2 * args.concurrency, args.concurrency))  # warm the whole path
        rounds: dict[str, list[dict]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, (url, process) in servers.items():
                rounds[name].append(one_round(url, process.pid, bodies, args))
    finally:
        for _, process in servers.values():
            stop_server(process)
    base = summary(rounds["batch-1"], args, max_batch=1, max_delay_ms=0.0)
    batched = summary(rounds["batching"], args, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms)
    ratios = [b["wall"] / a["wall"] for a, b in zip(rounds["batching"], rounds["batch-1"])]
    return base, batched, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo-san,ezvsl")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-delay-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("VSSLRT_CACHE", Path.home() / ".cache" / "vsslrt"))
                        / "bench-serve")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bodies = encoded_bodies(write_pairs(Path(tmp) / "pairs", args.pairs))
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            engine, document = engine_for(model, args.cache)
            calibration = Path(tmp) / f"{model}-calibration.json"
            calibration.write_text(json.dumps(document))
            base, batched, ratios = measure(engine, calibration, bodies, args)
            for row in (base, batched):
                row["model"] = model
                rows.append(row)
            batched["ratio_rounds"] = ratios
            batched["ratio"] = float(np.median(ratios))
            print(f"{model}: {args.rounds} x {args.requests} requests at concurrency {args.concurrency}, "
                  f"{args.threads} ORT threads, load average {os.getloadavg()[0]:.1f}")
            for name, row in (("batch-1 serving", base), (f"batching (max {args.max_batch}, {args.max_delay_ms:g} ms)",
                                                          batched)):
                per_round = ", ".join(f"{r:.1f}" for r in row["throughput_rps_rounds"])
                print(f"  {name:32s} {row['throughput_rps']:7.1f} req/s ({per_round})  p50 {row['p50_ms']:6.1f} ms  "
                      f"p99 {row['p99_ms']:6.1f} ms  CPU/request: service {row['server_cpu_ms_per_request']:.1f} ms, "
                      f"client {row['client_cpu_ms_per_request']:.1f} ms  mean engine batch "
                      f"{row['mean_engine_batch']:.1f} (engine busy {100 * row['engine_busy']:.0f} %)  "
                      f"ok {row['ok']}/{row['requests'] * row['rounds']}")
            print(f"  throughput ratio batching / batch-1: {batched['ratio']:.2f}x (rounds: "
                  f"{', '.join(f'{r:.2f}' for r in ratios)})")
    if args.json is not None:
        from vsslrt.files import atomic_write_json

        atomic_write_json(args.json, rows)


if __name__ == "__main__":
    main()
