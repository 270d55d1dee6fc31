"""`vsslrt serve`: an HTTP localisation service over one warm engine, with dynamic batching.

    POST /v1/localize   an image and an audio clip (multipart/form-data, or JSON with base64) ->
                        the result of `vsslrt localize` (decision, score, thresholds, boxes, raw map),
                        optionally the mask (run-length encoded) and the overlay PNG
    GET  /v1/health     200 once the engine is loaded and warmed, 503 while starting or draining
    GET  /v1/model      the engine's manifest, the calibration's provenance, the backend, the limits
    GET  /metrics       Prometheus text format (prometheus_client)
    WS   /v1/stream     a live source: timestamped frames and audio chunks in, a result per frame out
    POST /v1/video      a recorded video file -> NDJSON, a result per sampled frame, then a summary

Modules, one job each: `limits` (what a request may be, and the ASGI gate that enforces it before
any parsing: token, size, upload deadline, admission, draining), `inputs` (request body -> decoded
image and audio, naming the field at fault), `batcher` (requests queued and run together up to a
batch size or a delay), `stream` (the live and recorded video endpoints, a `StreamSession` per
connection), `metrics` (the Prometheus collectors), `app` (the service, the FastAPI
routes and the uvicorn server).

FastAPI, uvicorn, prometheus_client, python-multipart, threadpoolctl and websockets (uvicorn's WebSocket
implementation) are the optional `serve` extra:
`require_serve_extra()` turns a missing one into the one-line error.
"""

from __future__ import annotations

import importlib.util

from vsslrt.errors import missing_extra

# (import name, distribution name) of the `serve` extra.
SERVE_EXTRA = (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("prometheus_client", "prometheus-client"),
               ("multipart", "python-multipart"), ("threadpoolctl", "threadpoolctl"),
               ("websockets", "websockets"))


def require_serve_extra() -> None:
    """Raise the one-line missing-extra error when a package of the `serve` extra is absent.

    Raises:
        BackendUnavailableError: Naming the first missing package and `pip install 'vsslrt[serve]'`.
    """
    for module, package in SERVE_EXTRA:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules (tests) reads as absent
            found = False
        if not found:
            raise missing_extra(package, "serve", "run the localisation service (`vsslrt serve`)")
