"""The localisation service: one warm `Localizer`, the FastAPI routes, and the uvicorn server.

Work per request, and where it runs:

1. the gate (`limits.RequestGate`, on the event loop): token, draining, admission, body;
2. parsing the body (multipart or JSON), on the event loop (no decoding there);
3. decoding the image and the audio, the image front-end and the clip's working signal
   (`batch.decode_pair`), in a thread pool sized to the cores, off the event loop;
4. the engine: the batcher groups decoded pairs and runs `batch.run_batch` on one engine thread, one
   batch at a time: one spectrogram transform for the batch's clips, then
   `Localizer.embed_prepared` (encoders, head, one stacked upsampling);
5. the answer, in the thread pool: the pair's thresholds, mask and boxes (`Localizer.finish_embedded`),
   `LocalizationResult.to_json`, plus the run-length encoded mask and the overlay PNG when asked.

Streams (`WebSocket /v1/stream`, `POST /v1/video`: `stream`) run one `StreamSession` each; their engine
calls go to the engine thread (`run_on_engine`), beside the batcher's batches.

Shutdown (SIGINT/SIGTERM): the service first drains for `drain_s` seconds (health answers 503,
new requests get 503 with Retry-After, in-flight ones continue), then the open streams are finished
(their last results, a summary, a close with 1001), then uvicorn stops accepting connections and waits for the requests in flight; the batcher runs what is queued; the engine
closes last. A second signal skips the drain.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vsslrt.errors import DataError, InputError
from vsslrt.pipeline.serve.batch import decode_pair, prepared_pairs, run_batch
from vsslrt.pipeline.serve.batcher import BatcherClosed, DynamicBatcher
from vsslrt.pipeline.serve.inputs import Payload, decode_audio_bytes, decode_image_bytes, mask_rle, parse_json, parse_multipart
from vsslrt.pipeline.serve.limits import Admission, RequestError, RequestGate, ServeLimits, error_doc
from vsslrt.pipeline.serve.metrics import ServeMetrics
from vsslrt.pipeline.serve.live import HEADER, add_live_route
from vsslrt.pipeline.serve.recording import add_recording_route
from vsslrt.pipeline.serve.stream import StreamHub
from vsslrt.data.audio_io import DecodedAudio
from vsslrt.pipeline.localize import Pair

API_VERSION = "v1"


@dataclass(frozen=True)
class ServeSettings:
    """How the service runs.

    Attributes:
        host: Address to bind; 127.0.0.1 unless told otherwise.
        port: TCP port (0: any free port).
        max_batch: Largest engine batch (1: no batching).
        max_delay_ms: Longest wait of a queued pair for a batch to fill.
        limits: Request limits.
        token: Bearer token required on every endpoint but /v1/health, or None.
        workers: Threads that decode and run the front-ends.
        drain_s: Seconds of draining (503 to new requests) before the server stops on a signal.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 8
    max_delay_ms: float = 5.0
    limits: ServeLimits = field(default_factory=ServeLimits)
    token: str | None = None
    workers: int = 2
    drain_s: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InputError(f"serve: expected --port to be an integer in [0, 65535], got {self.port!r}.")
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise InputError(f"serve: expected --max-batch to be a positive integer, got {self.max_batch!r}.")
        if not (isinstance(self.max_delay_ms, (int, float)) and 0 <= self.max_delay_ms <= 60_000):
            raise InputError(f"serve: expected --max-delay-ms to be in [0, 60000], got {self.max_delay_ms!r}.")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InputError(f"serve: expected --workers to be a positive integer, got {self.workers!r}.")
        if not (isinstance(self.drain_s, (int, float)) and self.drain_s >= 0):
            raise InputError(f"serve: expected --drain-seconds to be >= 0, got {self.drain_s!r}.")
        if self.token is not None and not self.token.strip():
            raise InputError("serve: expected --token to be a non-empty string, got an empty one.",
                             hint="omit --token for a service without authentication")


class LocalizationService:
    """The state behind the routes: the localizer, the batcher, the executors, the metrics.

    Args:
        localizer: An open `vsslrt.pipeline.localize.Localizer` (the caller closes it).
        settings: The settings.
        on_ready: Called (from the event loop) once the engine is warm, with the warm-up seconds.
    """

    def __init__(self, localizer: Any, settings: ServeSettings, *,
                 on_ready: Callable[[float], None] | None = None) -> None:
        self.localizer = localizer
        self.settings = settings
        self.limits = settings.limits
        self.metrics = ServeMetrics()
        self.admission = Admission(settings.limits.max_queue)
        self.status = "starting"
        self.on_ready = on_ready
        self.warmup_error: str | None = None
        self._decode_pool: ThreadPoolExecutor | None = None
        self._engine_pool: ThreadPoolExecutor | None = None
        self.batcher: DynamicBatcher | None = None
        self.streams = StreamHub(settings.limits.max_streams)
        self._warmup: asyncio.Task | None = None
        self._blas_limits: Any = None

    # ----- state ----------------------------------------------------------------------------
    @property
    def draining(self) -> bool:
        return self.status in ("draining", "stopped")

    def begin_drain(self) -> None:
        """Refuse new work from now on (thread-safe: a bool-like status change)."""
        self.status = "draining" if self.status != "stopped" else self.status

    def on_reject(self, reason: str) -> None:
        self.metrics.rejected.labels(reason=reason).inc()

    async def start(self) -> None:
        from threadpoolctl import threadpool_limits  # lazy: the `serve` extra

        # One BLAS thread per call: the service runs requests in parallel, and on a busy machine a
        # BLAS pool woken for each small product (the map's upsampling) costs 20x the product itself.
        self._blas_limits = threadpool_limits(limits=1, user_api="blas")
        self._decode_pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="vsslrt-decode")
        self._engine_pool = ThreadPoolExecutor(1, thread_name_prefix="vsslrt-engine")
        self.batcher = DynamicBatcher(self._run_batch, self._engine_pool,
                                      max_batch=self.settings.max_batch,
                                      max_delay_s=self.settings.max_delay_ms / 1e3,
                                      on_batch=self._on_batch, on_depth=self.metrics.queue_depth.set)
        self.batcher.start()
        # Warm-up in the background: the port opens at once and /v1/health says when it is ready.
        self._warmup = asyncio.get_running_loop().create_task(self._warm_up(), name="vsslrt-warmup")

    async def stop(self) -> None:
        self.begin_drain()
        if self._warmup is not None:
            await asyncio.gather(self._warmup, return_exceptions=True)
        if self.batcher is not None:
            await self.batcher.close()
        for pool in (self._decode_pool, self._engine_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
        self.status = "stopped"

    async def _warm_up(self) -> None:
        """Run one pair and one full batch, so the first requests do not pay for allocations."""

        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        rate = self.localizer.spec.sample_rate or 16_000
        rng = np.random.default_rng(0)
        audio = DecodedAudio(0.1 * rng.standard_normal((1, rate)), int(rate), Path("warmup"))
        rgb = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        try:
            decoded = await loop.run_in_executor(
                self._decode_pool, decode_pair, self.localizer, Pair("warmup", Path("warmup"), Path("warmup")),
                rgb, audio)
            for size in sorted({1, self.settings.max_batch}):  # the whole path: front-end batch, engine, results
                await loop.run_in_executor(self._engine_pool, self._warm_batch, [decoded] * size)
        except Exception as exc:  # noqa: BLE001 - reported by /v1/health; the service stays up to say so
            self.warmup_error = " ".join(str(exc).split())
            self.status = "failed" if not self.draining else self.status
            return
        if self.status == "starting":
            self.status = "ready"
        if self.on_ready is not None:
            self.on_ready(time.perf_counter() - started)

    def run_on_engine(self, fn: Callable[..., Any], *args: Any) -> Any:
        """(A worker thread, never the event loop.) `fn(*args)` on the engine thread, waited for: the
        streams' engine calls and the batcher's batches use the one engine session one at a time."""
        if self._engine_pool is None:
            raise RuntimeError("the engine thread is not running")
        return self._engine_pool.submit(fn, *args).result()

    def _run_batch(self, items: list[Any]) -> list[Any]:
        return run_batch(self.localizer, items)

    def _warm_batch(self, items: list[Any]) -> list[Any]:
        return self.localizer.run_prepared(prepared_pairs(self.localizer, items))

    def _on_batch(self, size: int, seconds: float, waits: list[float]) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.batch_seconds.observe(seconds)
        for wait in waits:
            self.metrics.stage_seconds.labels(stage="queue_wait").observe(wait)

    # ----- one localisation -----------------------------------------------------------------
    async def localize(self, payload: Payload, deadline: float) -> dict[str, Any]:
        """Decode, queue for the engine, and answer; raises `RequestError` for every refusal."""
        # Draining: the gate refuses new requests; those admitted before are answered.
        if self.status in ("starting", "failed"):
            raise RequestError(503, f"service: expected a warm engine, got a service that is {self.status}"
                               + (f" ({self.warmup_error})" if self.warmup_error else "") + ".",
                               headers={"Retry-After": str(self.limits.retry_after_s)})
        assert self.batcher is not None
        loop = asyncio.get_running_loop()

        def remaining() -> float:
            left = deadline - loop.time()
            if left <= 0:
                raise RequestError(504, f"service: expected an answer within {self.limits.timeout_s:g} s, got none "
                                   "in time.", headers={"Retry-After": str(self.limits.retry_after_s)})
            return left

        self.metrics.in_flight.inc()
        try:
            prepared = await asyncio.wait_for(loop.run_in_executor(self._decode_pool, self._prepare, payload),
                                              remaining())
            try:
                embedded = await asyncio.wait_for(self.batcher.submit(prepared), remaining())
            except BatcherClosed:
                raise RequestError(503, "service: expected a running service, got one that is shutting down.",
                                   headers={"Retry-After": str(self.limits.retry_after_s)}) from None
            return await asyncio.wait_for(loop.run_in_executor(self._decode_pool, self._answer, payload, embedded),
                                          remaining())
        except asyncio.TimeoutError:
            raise RequestError(504, f"service: expected an answer within {self.limits.timeout_s:g} s, got none in "
                               "time.", headers={"Retry-After": str(self.limits.retry_after_s)}) from None
        finally:
            self.metrics.in_flight.dec()

    def _prepare(self, payload: Payload) -> Any:

        t = time.perf_counter()
        rgb = decode_image_bytes(payload.image, self.limits)
        audio = decode_audio_bytes(payload.audio, self.limits)
        decoded = time.perf_counter() - t
        try:
            prepared = decode_pair(self.localizer, Pair(payload.name, Path(payload.image_name),
                                                        Path(payload.audio_name)), rgb, audio)
        except DataError as exc:  # the front-end's rules (the image front-end takes any RGB image)
            raise RequestError(422, exc.one_line(), "audio") from None
        # The audio front-end ends in the batch (its spectrogram): observed with the answer.
        self.metrics.observe_stages({"decode": decoded, "image_input": prepared.seconds["image_input"]})
        return prepared

    def _answer(self, payload: Payload, embedded: Any) -> dict[str, Any]:
        result = self.localizer.finish_embedded(embedded)
        t = time.perf_counter()
        self.metrics.observe_stages({stage: ms / 1e3 for stage, ms in result.timing_ms.items()
                                     if stage in ("audio_input", "visual_encoder", "audio_encoder", "head",
                                                  "postprocess")})
        doc = result.to_json()
        doc["id"] = uuid.uuid4().hex
        if payload.mask:
            doc["mask_rle"] = mask_rle(result.mask)
        if payload.overlay:
            from vsslrt.pipeline.overlay import overlay_png_bytes  # lazy: the overlay loads Pillow's drawing only when drawn

            doc["overlay_png"] = base64.b64encode(overlay_png_bytes(result)).decode("ascii")
        self.metrics.observe_stages({"encode_answer": time.perf_counter() - t})
        return doc

    # ----- descriptions ---------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        enc = self.localizer.encoders
        body = {"status": self.status, "engine": str(enc.folder), "model": enc.manifest.model,
                "backend": enc.backend, "max_batch": self.settings.max_batch,
                "queue_depth": self.batcher.depth if self.batcher is not None else 0}
        if self.warmup_error:
            body["error"] = self.warmup_error
        return (200 if self.status == "ready" else 503), body

    def model(self) -> dict[str, Any]:
        enc = self.localizer.encoders
        cal = self.localizer.calibration
        doc = cal.document
        return {
            "engine": str(enc.folder),
            "manifest": enc.manifest.to_dict(),
            "backend": {"backend": enc.backend, "precision": enc.precision, "map_size": self.localizer.map_size,
                        "gate": self.localizer.gate},
            "calibration": {
                "origin": cal.origin, "model": cal.model, "manifest_sha256": cal.manifest_sha256,
                "protocol": cal.protocol, "interp": cal.interp,
                "localization": doc.get("localization"), "detection": doc.get("detection"),
                "source": doc.get("source"), "fit": doc.get("fit"), "holdout": doc.get("holdout"),
                "created": doc.get("created"),
            },
            "serving": {"max_batch": self.settings.max_batch, "max_delay_ms": self.settings.max_delay_ms,
                        "workers": self.settings.workers, "limits": asdict(self.limits),
                        "token": self.settings.token is not None},
        }


# ------------------------------------------------------------------------------------------------
# The routes


def _error_response(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def create_app(service: LocalizationService) -> Any:
    """The ASGI application: the FastAPI routes behind the request gate."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    api = FastAPI(title="vsslrt", version=API_VERSION, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)

    def count(endpoint: str, status: int, started: float) -> None:
        service.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
        service.metrics.request_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)

    @api.post("/v1/localize")
    async def localize(request: Request) -> Response:
        started = time.perf_counter()
        deadline = request.scope.get("state", {}).get("deadline") or (asyncio.get_running_loop().time()
                                                                     + service.limits.timeout_s)
        try:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "multipart/form-data":
                payload = await parse_multipart(request, service.limits)
            elif kind == "application/json":
                payload = parse_json(await request.body())
            else:
                raise RequestError(415, f"Content-Type: expected multipart/form-data or application/json, got "
                                   f"{kind or 'none'!r}.", "content-type")
            answer = await service.localize(payload, deadline)
        except RequestError as exc:
            if exc.status in (413, 422):
                service.on_reject("too_large" if exc.status == 413 else "undecodable")
            count("localize", exc.status, started)
            return _error_response(exc)
        count("localize", 200, started)
        return JSONResponse(answer)

    add_live_route(api, service)
    add_recording_route(api, service, count)

    @api.get("/v1/health")
    async def health() -> Response:
        status, body = service.health()
        return JSONResponse(body, status_code=status,
                            headers={} if status == 200 else {"Retry-After": str(service.limits.retry_after_s)})

    @api.get("/v1/model")
    async def model() -> Response:
        return JSONResponse(service.model())

    @api.get("/metrics")
    async def metrics() -> Response:
        body, kind = service.metrics.render()
        return Response(body, media_type=kind)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        what = {404: f"path: expected one of /v1/localize, /v1/video, /v1/stream (WebSocket), /v1/health, "
                     f"/v1/model, /metrics, got {request.url.path!r}.",
                405: f"method: expected another method for {request.url.path}, got {request.method}."}
        message = what.get(exc.status_code, f"request: {exc.detail}")
        return JSONResponse(error_doc(message, "path" if exc.status_code == 404 else "method", status=exc.status_code),
                            status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = (exc.errors() or [{}])[0]
        field_name = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(error_doc(f"{field_name or 'request'}: {first.get('msg', 'invalid')}.", field_name,
                                      status=422), status_code=422)

    @api.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # A bug must cost one request, not the service: one line, and the service carries on.
        message = " ".join(f"internal error: {type(exc).__name__}: {exc}".split())[:300]
        service.metrics.requests.labels(endpoint=request.url.path, status="500").inc()
        return JSONResponse(error_doc(message, None, status=500), status_code=500)

    return RequestGate(api, service.limits, service.settings.token, service)


# ------------------------------------------------------------------------------------------------
# The server


def make_server(localizer: Any, settings: ServeSettings, *, on_listening: Callable[[str], None] | None = None,
                on_ready: Callable[[float], None] | None = None, log_level: str = "warning") -> Any:
    """A uvicorn server for the service (call `.run()`; in a thread, stop it with `.handle_exit`)."""
    service = LocalizationService(localizer, settings, on_ready=on_ready)
    config = uvicorn.Config(
        create_app(service), host=settings.host, port=settings.port, lifespan="on", log_level=log_level,
        access_log=False, server_header=False, proxy_headers=False,
        # In-flight requests get their whole deadline, plus the time to send the answer.
        timeout_graceful_shutdown=int(settings.limits.timeout_s) + 5,
        # A stream's message may be as large as a request body (plus its header); the WebSocket layer
        # closes a larger one with 1009 from its length, before reading it.
        ws_max_size=settings.limits.max_body_bytes + HEADER.size,
    )
    return _DrainingServer(config, service, settings.drain_s, on_listening)


def serve(localizer: Any, settings: ServeSettings, **kwargs: Any) -> None:
    """Run the service until SIGINT/SIGTERM (see the module docstring for the shutdown)."""
    make_server(localizer, settings, **kwargs).run()


class _DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain before its graceful shutdown, and the bound address reported."""

    def __init__(self, config: Any, service: LocalizationService, drain_s: float,
                 on_listening: Callable[[str], None] | None) -> None:
        super().__init__(config)
        self.service = service
        self.drain_s = drain_s
        self.on_listening = on_listening
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_listening is not None:
            self.on_listening(self.url)

    async def shutdown(self, sockets: Any = None) -> None:
        # uvicorn's shutdown cuts open WebSockets (1012): the streams are finished first, with their
        # last results and a summary.
        self.service.begin_drain()
        await self.service.streams.drain(self.config.timeout_graceful_shutdown or 30)
        await super().shutdown(sockets=sockets)
        # The signal has been handled in full (drained, in-flight answered, engine idle): exit normally
        # rather than have uvicorn raise it again.
        self._captured_signals.clear()

    def handle_exit(self, sig: int, frame: Any) -> None:
        first = not self.service.draining
        self.service.begin_drain()
        if first and self.drain_s > 0:
            self._timer = threading.Timer(self.drain_s, super().handle_exit, (sig, frame))
            self._timer.daemon = True
            self._timer.start()
            return
        if self._timer is not None:
            self._timer.cancel()
        super().handle_exit(sig, frame)
