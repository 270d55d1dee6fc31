"""Live and recorded video over the service: `WebSocket /v1/stream` and `POST /v1/video`.

Both drive one `vsslrt.pipeline.stream.StreamSession` per connection (no stream sees another's
state), on the service's one localizer: a session's engine calls (`embed_prepared`) run on the
service's engine thread, the one the HTTP batcher uses, so the engine session is used by one thread
at a time; everything else of a session (decoding, front-ends, thresholds, masks) runs in a worker
thread, never on the event loop.

This module holds what both endpoints share: the settings (`StreamConfig`), the open streams
(`StreamHub`), the engine-thread localizer and the result documents. The endpoints are
`vsslrt.pipeline.serve.live` (the WebSocket) and `vsslrt.pipeline.serve.recording` (the upload).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

from vsslrt.errors import InputError
from vsslrt.pipeline.serve.inputs import mask_rle
from vsslrt.pipeline.serve.limits import WS_POLICY, WS_TRY_LATER
from vsslrt.pipeline.stream import ALIGNMENTS, Hysteresis, Smoothing, StreamSession, Summary

CONFIG_FIELDS = ("fps", "alignment", "audio_rate", "audio_channels", "smoothing_tau", "hysteresis", "mask")
MAX_FPS = 240.0
AUDIO_RATES = (1_000, 384_000)
MAX_CHANNELS = 32
#: Seconds between two checks of the open streams while the server waits for them to close.
_DRAIN_POLL_S = 0.02


class StreamError(Exception):
    """A stream's refusal: the field at fault, a one-line message and the close code."""

    def __init__(self, field: str | None, message: str, code: int = WS_POLICY, outcome: str = "error") -> None:
        super().__init__(message)
        self.field, self.message, self.code, self.outcome = field, " ".join(message.split()), code, outcome


# ------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class StreamConfig:
    """A stream's settings (the first WebSocket message, or the form fields of `POST /v1/video`).

    Attributes:
        fps: Frames localised per second (None: every frame).
        alignment: "trailing" (default of a live stream: no added delay) or "centre".
        audio_rate, audio_channels: The PCM of the `A` messages.
        smoothing_tau: Seconds of the score's moving average, or None.
        hysteresis: Half-width of the decision band as a fraction of the detection threshold, or None.
        mask: Also send each result's mask, run-length encoded (`mask_rle`).
    """

    fps: float | None = 4.0
    alignment: str = "trailing"
    audio_rate: int = 16_000
    audio_channels: int = 1
    smoothing_tau: float | None = None
    hysteresis: float | None = None
    mask: bool = False

    def session(self, service: Any) -> StreamSession:
        """A new session on the service's localizer (host arrays: results are sent as JSON)."""
        localizer = EngineThreadLocalizer(service)
        try:
            return StreamSession(
                localizer, fps=self.fps, alignment=self.alignment, device=False,
                smoothing=Smoothing(self.smoothing_tau) if self.smoothing_tau is not None else None,
                hysteresis=(Hysteresis.from_calibration(localizer.calibration, self.hysteresis)
                            if self.hysteresis is not None else None))
        except InputError as exc:
            raise StreamError("config", exc.one_line()) from None


def _number(value: Any, field: str, lo: float, hi: float, *, integer: bool = False, optional: bool = False,
            above: bool = True) -> Any:
    """`value` as a number in [lo, hi] (`above`: in (lo, hi]; integers: [lo, hi]), or None when `optional`
    allows it."""
    if value is None and optional:
        return None
    above = above and not integer
    ok = not isinstance(value, bool) and isinstance(value, (int if integer else (int, float)))
    ok = ok and math.isfinite(value) and (lo < value if above else lo <= value) and value <= hi
    if not ok:
        kind = "an integer" if integer else "a number"
        kind += f" in {'(' if above else '['}{lo:g}, {hi:g}]"
        raise StreamError(field, f"{field}: expected {kind}{' or null' if optional else ''}, got {value!r:.40}.")
    return value


def parse_config(text: str) -> StreamConfig:
    """The first WebSocket message -> `StreamConfig`; raises `StreamError` naming the bad field."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StreamError("config", f"config: expected a JSON object as the first message, got invalid JSON "
                          f"({exc}).") from None
    if not isinstance(doc, dict):
        raise StreamError("config", f"config: expected a JSON object as the first message, got {type(doc).__name__}.")
    unknown = sorted(set(doc) - set(CONFIG_FIELDS))
    if unknown:
        raise StreamError(unknown[0], f"{unknown[0]}: expected only {', '.join(CONFIG_FIELDS)}, got {unknown[0]!r}.")
    defaults = StreamConfig()
    alignment = doc.get("alignment", defaults.alignment)
    if alignment not in ALIGNMENTS:
        raise StreamError("alignment", f"alignment: expected one of {', '.join(ALIGNMENTS)}, got {alignment!r:.40}.")
    mask = doc.get("mask", False)
    if not isinstance(mask, bool):
        raise StreamError("mask", f"mask: expected true or false, got {mask!r:.40}.")
    return StreamConfig(
        fps=_number(doc.get("fps", defaults.fps), "fps", 0, MAX_FPS, optional=True),
        alignment=alignment,
        audio_rate=_number(doc.get("audio_rate", defaults.audio_rate), "audio_rate", *AUDIO_RATES, integer=True),
        audio_channels=_number(doc.get("audio_channels", 1), "audio_channels", 1, MAX_CHANNELS, integer=True),
        smoothing_tau=_number(doc.get("smoothing_tau"), "smoothing_tau", 0, 3600, optional=True),
        hysteresis=_number(doc.get("hysteresis"), "hysteresis", 0, 10, optional=True, above=False),
        mask=mask)


# ------------------------------------------------------------------------------------------------
# The engine and the open streams


class EngineThreadLocalizer:
    """The service's localizer as a session sees it: `run_prepared` sends the engine part to the
    service's engine thread (where the batcher runs its batches) and makes the results in the
    calling thread, as `Localizer.run_prepared` does in one."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._inner = service.localizer

    def __getattr__(self, name: str) -> Any:  # calibration, spec, encoders, gate, map_size
        return getattr(self._inner, name)

    def run_prepared(self, prepared: Any) -> list[Any]:
        embedded = self._service.run_on_engine(self._inner.embed_prepared, prepared)
        return [self._inner.finish_embedded(item) for item in embedded]


class StreamHub:
    """The open streams: at most `capacity` at a time, and their end on shutdown.

    `enter`/`leave` may be called from any thread (a video response ends in a worker thread).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.open = 0
        self._lock = threading.Lock()
        self.draining = False
        self.drained = asyncio.Event()  # set on the event loop by `drain`; the WebSocket loops wait on it

    def refusal(self, service: Any) -> str | None:
        """Why a new stream cannot start now (None: it can)."""
        if service.status in ("starting", "failed"):
            return f"service: expected a warm engine, got a service that is {service.status}; retry later."
        if self.draining or service.draining:
            return "service: expected a running service, got one that is shutting down; retry on another instance."
        if self.open >= self.capacity:
            return (f"streams: expected a free stream, got all {self.capacity} taken (the server's --max-streams); "
                    "retry later.")
        return None

    def enter(self, service: Any) -> None:
        """Take a place; raises `StreamError` (1013) when `refusal` says no."""
        with self._lock:
            why = self.refusal(service)
            if why is not None:
                raise StreamError(None, why, WS_TRY_LATER, outcome="refused")
            self.open += 1
            service.metrics.streams_open.set(self.open)

    def leave(self, service: Any) -> None:
        with self._lock:
            self.open -= 1
            service.metrics.streams_open.set(self.open)

    async def drain(self, timeout: float) -> None:
        """(Event loop, on shutdown.) Tell every open stream to finish, and wait up to `timeout` s for them."""
        self.draining = True
        self.drained.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open and loop.time() < deadline:
            await asyncio.sleep(_DRAIN_POLL_S)


class ResultDocs:
    """A session's results as the JSON documents sent, with the running summary."""

    def __init__(self, service: Any, endpoint: str, session: StreamSession, mask: bool) -> None:
        self.service, self.endpoint, self.session, self.mask = service, endpoint, session, mask
        self.summary = Summary()

    def docs(self, results: list[Any]) -> list[dict[str, Any]]:
        out = []
        for result in results:
            self.summary.add(result)
            doc = result.to_json()
            if self.mask:
                doc["mask_rle"] = mask_rle(result.mask)
            out.append(doc)
        if out:
            self.service.metrics.stream_frames.labels(endpoint=self.endpoint).inc(len(out))
        return out

    def final(self, ended: str, **extra: Any) -> dict[str, Any]:
        s = self.session
        return {"summary": {**self.summary.to_json(), "dropped": s.dropped, "alignment": s.alignment,
                            "window_seconds": s.window_seconds, **extra}, "ended": ended}
