"""Latency of the benchmark: the per-batch summary of a run, and `vsslrt bench --latency-only`.

`latency_summary` turns the stage times a run measured per batch into milliseconds and
throughput (`latency.json` of a run folder).

`profile_engines` (`--latency-only`) measures encoder latency of engine folders the way trtexec
reports it. One iteration processes a batch of B samples as the benchmark does: the visual
encoder on B images, the audio encoder on B clips, and the head forming the maps. Warm-up is
excluded; each batch size is measured for at least `min_iterations` and `min_seconds`; stage and
end-to-end statistics follow trtexec's names. The achieved GFLOP/s (counted from the ONNX graphs) is put
next to a measured machine peak (a large fp32 matrix product through NumPy), so the report says
how close the run is to the hardware limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.files import atomic_write_json
from vsslrt.engine import flops  # looked up at call time (tests replace the matmul timing)
from vsslrt.engine.profiler import LatencyStats, ProfileSettings, environment_block, profile
from vsslrt.head import similarity_maps_multi
from vsslrt.pipeline import encoders as encoder_stage  # looked up at call time (tests replace open_encoders)


def realistic_inputs(batch: int, audio_shape: Sequence[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ImageNet-normalised smooth images and log-spectrogram-like audio of one batch."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, size=(batch, 3, 14, 14)).astype(np.float32)
    images = np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)
    mean = np.array([0.485, 0.456, 0.406], np.float32)[None, :, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[None, :, None, None]
    images = (images - mean) / std
    audio = (np.log(rng.exponential(1e-3, size=(batch, *audio_shape)) + 1e-7) / 12.0).astype(np.float32)
    return np.ascontiguousarray(images), np.ascontiguousarray(audio)


def profile_engines(
    engines: Sequence[str | Path],
    out: str | Path,
    *,
    batch_sizes: Sequence[int] = (1, 4, 16),
    backend: str | None = None,
    precision: str | None = None,
    min_seconds: float = 2.0,
    min_iterations: int = 5,
) -> dict[str, Any]:
    """Profile each engine folder over a batch-size sweep and write `out/latency.json`."""

    settings = ProfileSettings(min_seconds=min_seconds, min_iterations=min_iterations)
    peak = flops.measure_peak_gflops()
    report: dict[str, Any] = {"peak_gflops_per_s": peak, "peak_method": "4096x4096 fp32 matmul through NumPy",
                              "engines": {}}
    for folder in engines:
        folder = Path(folder)
        with encoder_stage.open_encoders(folder, backend=backend, precision=precision, with_object=False) as enc:
            manifest = enc.manifest
            audio_shape = manifest.inputs["audio"].shape[1:]
            gflops = sum(flops.count_flops(folder / manifest.graph(role, enc.precision).file).total
                         for role in ("visual", "audio")) / 1e9
            rows = []
            for b in batch_sizes:
                images, audio = realistic_inputs(b, audio_shape)

                def step(timer, images=images, audio=audio) -> None:
                    with timer.stage("visual_encoder"):
                        visual = enc.embed_images(images)
                    with timer.stage("audio_encoder"):
                        emb = enc.embed_audio(audio)
                    with timer.stage("head"):
                        similarity_maps_multi(visual, [emb], manifest.head)

                result = profile(step, batch_size=b, settings=settings, gflops_per_sample=gflops, peak_gflops=peak,
                                 environment=environment_block(backend=enc.backend, precision=enc.precision))
                rows.append(result.to_json())
            report["engines"][folder.name] = {"model": manifest.model, "backend": enc.backend,
                                              "precision": enc.precision, "gflops_per_sample": gflops, "sweep": rows}
    out = Path(out)
    atomic_write_json(out / "latency.json", report)
    return report


def latency_summary(timings: dict[str, list[float]], repeats: int, backend: str, precision: str,
                    mode: str) -> dict[str, Any]:
    """Per-batch stage statistics of the run (milliseconds) and its throughput."""

    sizes = timings.get("batch_size", [])
    stages = {k: LatencyStats.from_samples(v).to_json_ms() for k, v in timings.items()
              if k not in ("batch_size", "setup_s") and v}
    compute = [sum(timings[k][i] for k in timings if k not in ("batch_size", "setup_s") and i < len(timings[k]))
               for i in range(len(sizes))]
    samples = float(sum(sizes))
    wall = float(sum(compute)) + float(sum(timings.get("setup_s", [])))
    per_sample = [c / s for c, s in zip(compute, sizes) if s]
    return {
        "what": "per-batch times of the benchmark run, all four audio conditions per sample",
        "samples": samples,
        "repeats": repeats,
        "setup_s": float(sum(timings.get("setup_s", []))),
        "total_s": wall,
        "samples_per_s": samples / wall if wall > 0 else None,
        "maps_per_s": 4 * repeats * samples / wall if wall > 0 else None,
        "per_sample_ms": LatencyStats.from_samples(per_sample).to_json_ms() if per_sample else None,
        "stages_ms_per_batch": stages,
        "environment": environment_block(backend=backend, precision=precision, extra={"protocol": mode}),
    }
