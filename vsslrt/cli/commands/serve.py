"""`vsslrt serve`: an HTTP localisation service with dynamic batching (the optional `serve` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from vsslrt.cli._options import BackendOpt, CalibrationOpt, EngineOpt, PrecisionOpt, ThreadsOpt, examples, value

SERVE_EXAMPLES = [
    "vsslrt serve --engine engines/ezvsl --calibration runs/ezvsl-is3/calibration.json",
    "vsslrt serve --engine engines/ezvsl --calibration cal.json --max-batch 16 --max-delay-ms 10 --port 8080",
    "VSSLRT_SERVE_TOKEN=secret vsslrt serve --engine engines/ezvsl --calibration cal.json --host 0.0.0.0",
    "curl -F image=@frame.jpg -F audio=@clip.wav -F mask=true http://127.0.0.1:8000/v1/localize",
]


def serve(
    engine: EngineOpt,
    calibration: CalibrationOpt,
    host: Annotated[str, typer.Option("--host", help="Address to bind (0.0.0.0 exposes the service to the network).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port, printed at start).")] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Largest engine batch (1: no batching).")] = 8,
    max_delay_ms: Annotated[float, typer.Option(
        "--max-delay-ms", help="Longest wait of a queued request for its batch to fill.")] = 5.0,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="Localisations admitted at a time; beyond, 503 with Retry-After.")] = 64,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Per-request deadline in seconds: upload (else 408) and answer (else 504).")] = 30.0,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body, in MiB.")] = 32.0,
    max_audio_seconds: Annotated[float, typer.Option("--max-audio-seconds", help="Longest audio clip.")] = 60.0,
    max_streams: Annotated[int, typer.Option(
        "--max-streams", help="Streams open at a time (WebSocket /v1/stream and POST /v1/video); beyond, "
        "1013 / 503.")] = 4,
    stream_idle_seconds: Annotated[float, typer.Option(
        "--stream-idle-seconds", help="A WebSocket stream with no message for this long is closed.")] = 30.0,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="VSSLRT_SERVE_TOKEN", show_envvar=True,
        help="Bearer token required on every endpoint but /v1/health.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Threads that decode and run the front-ends.")] = 2,
    drain_seconds: Annotated[float, typer.Option(
        "--drain-seconds", help="On SIGINT/SIGTERM: seconds of answering 503 to new requests before stopping "
        "(in-flight requests always finish).")] = 1.0,
    backend: BackendOpt = None,
    precision: PrecisionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Serve `vsslrt localize` over HTTP: POST /v1/localize, /v1/video, WebSocket /v1/stream, GET /v1/health,
    /v1/model, /metrics."""
    # lazy: the `serve` extra (FastAPI, uvicorn, prometheus_client) and the engine load only when serving
    from vsslrt.pipeline.serve import require_serve_extra

    require_serve_extra()
    from vsslrt.pipeline.localize import Localizer
    from vsslrt.pipeline.serve.app import ServeSettings, serve as run
    from vsslrt.pipeline.serve.limits import ServeLimits

    limits = ServeLimits(max_body_bytes=max(1, int(max_body_mb * 2**20)), max_audio_seconds=max_audio_seconds,
                         timeout_s=timeout, max_queue=max_queue, max_streams=max_streams,
                         stream_idle_s=stream_idle_seconds)
    settings = ServeSettings(host=host, port=port, max_batch=max_batch, max_delay_ms=max_delay_ms, limits=limits,
                             token=token, workers=workers, drain_s=drain_seconds)
    with Localizer(engine, calibration, backend=value(backend), precision=value(precision), threads=threads) as loc:
        enc = loc.encoders

        def listening(url: str) -> None:
            typer.echo(f"vsslrt serve: {enc.manifest.model} ({enc.backend}, {enc.precision}) on {url}; "
                       f"max batch {max_batch}, max delay {max_delay_ms:g} ms"
                       + ("; bearer token required" if token else ""))

        def ready(seconds: float) -> None:
            typer.echo(f"vsslrt serve: ready (warm-up {seconds * 1e3:.0f} ms); GET /v1/health answers 200")

        run(loc, settings, on_listening=listening, on_ready=ready)
    typer.echo("vsslrt serve: stopped (in-flight requests answered)")


def register(app: typer.Typer) -> None:
    app.command("serve", epilog=examples(SERVE_EXAMPLES))(serve)
