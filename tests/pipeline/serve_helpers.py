"""Shared by the service tests and benchmarks: a calibration from a manifest threshold, test pairs, a
server on a free localhost port that is always stopped."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def manifest_calibration(engine: Path, threshold: float | None = None) -> dict[str, Any]:
    """A calibration document for `engine` from its manifest's universal threshold (or `threshold`)."""
    from vsslrt.files import sha256_file
    from vsslrt.manifest import Manifest

    manifest = Manifest.read(engine)
    if threshold is None:
        threshold = float(manifest.thresholds["maxf"].value)
    provenance = "the manifest's universal threshold, for detection and localisation alike"
    return {
        "format": "vsslrt-calibration", "format_version": 1, "model": manifest.model, "engine": engine.name,
        "manifest_sha256": sha256_file(engine / "manifest.json"), "interp": "bilinear",
        "localization": {"threshold": threshold, "rule": "manifest", "params": {}, "provenance": provenance},
        "detection": {"threshold": threshold, "rule": "manifest", "params": {}, "provenance": provenance},
        "source": {"protocol": "fixed", "dataset": "manifest threshold"},
    }


def write_pairs(folder: Path, n: int, *, seed: int = 0) -> list[tuple[Path, Path]]:
    """n image/audio pairs of the synthetic test split: PNG + 16-bit WAV, distinct scenes and sounds."""
    import soundfile as sf
    from PIL import Image

    from vsslrt.data import synth

    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        scene = synth.generate_scene(seed=seed, split="test", index=i // 2)
        image, audio = folder / f"pair{i}.png", folder / f"pair{i}.wav"
        Image.fromarray(scene.image).save(image)
        sf.write(audio, scene.objects[i % 2].audio, synth.SAMPLE_RATE, subtype="PCM_16")
        pairs.append((image, audio))
    return pairs


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(localizer: Any, settings: Any, *, ready_timeout: float = 60.0) -> Iterator[Any]:
    """A real uvicorn server in a thread on 127.0.0.1 (port 0: a free one, no race); yields it once /v1/health says ready; always stopped."""
    import httpx

    from vsslrt.pipeline.serve.app import make_server

    server = make_server(localizer, settings)
    thread = threading.Thread(target=server.run, name="vsslrt-test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        server.base_url = server.url
        while httpx.get(f"{server.base_url}/v1/health", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.02)
        yield server
    finally:
        server.drain_s = 0.0
        server.should_exit = True
        server.service.begin_drain()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"
