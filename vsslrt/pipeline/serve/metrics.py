"""The service's Prometheus collectors (prometheus_client), in a registry of their own.

A registry per service (not the library's global one) keeps two services in one process, as the
tests run them, from sharing counts.
"""

from __future__ import annotations

from typing import Any

# Seconds: from a fraction of a millisecond (a stage of a small model) to the longest timeouts.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
STAGES = ("decode", "image_input", "audio_input", "queue_wait", "visual_encoder", "audio_encoder", "head",
          "postprocess", "encode_answer")


class ServeMetrics:
    """Request, batch, queue and per-stage metrics.

    Metric names: `vsslrt_requests_total{endpoint,status}`, `vsslrt_request_duration_seconds{endpoint}`,
    `vsslrt_batch_size`, `vsslrt_batch_duration_seconds`, `vsslrt_queue_depth`,
    `vsslrt_requests_in_flight`, `vsslrt_stage_duration_seconds{stage}` (per pair: an engine
    stage's batch time is split over the batch's pairs), `vsslrt_rejected_requests_total{reason}`, and
    for the streams `vsslrt_streams_open`, `vsslrt_streams_total{endpoint,outcome}`,
    `vsslrt_stream_frames_total{endpoint}` and `vsslrt_stream_errors_total{endpoint,field}`.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # lazy: the `serve` extra

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("vsslrt_requests", "HTTP requests answered, by endpoint and status.",
                                ["endpoint", "status"], registry=r)
        self.request_seconds = Histogram("vsslrt_request_duration_seconds",
                                         "Seconds from the request's headers to its answer.", ["endpoint"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("vsslrt_batch_size", "Pairs per engine call.", buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("vsslrt_batch_duration_seconds", "Seconds per engine call (encoders, head, "
                                       "postprocess of the whole batch).", buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("vsslrt_queue_depth", "Pairs waiting for the engine.", registry=r)
        self.in_flight = Gauge("vsslrt_requests_in_flight", "Localisations admitted and not yet answered.",
                               registry=r)
        self.stage_seconds = Histogram("vsslrt_stage_duration_seconds", "Seconds per pair and stage.", ["stage"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("vsslrt_rejected_requests", "Requests refused before the engine, by reason.",
                                ["reason"], registry=r)
        # The streams (WebSocket /v1/stream, POST /v1/video): endpoint "stream" or "video".
        self.streams_open = Gauge("vsslrt_streams_open", "Streams open now (WebSocket and video).", registry=r)
        self.streams = Counter("vsslrt_streams", "Streams ended, by endpoint and how they ended (end, draining, "
                               "idle, error, disconnect, refused).", ["endpoint", "outcome"], registry=r)
        self.stream_frames = Counter("vsslrt_stream_frames", "Frame results sent by the streams.", ["endpoint"],
                                     registry=r)
        self.stream_errors = Counter("vsslrt_stream_errors", "Errors sent to streams, by endpoint and field.",
                                     ["endpoint", "field"], registry=r)
        # Every stage appears from the start, at zero; its child is kept (labels() costs a lock and a
        # lookup, several times per request).
        self._stage = {stage: self.stage_seconds.labels(stage=stage) for stage in STAGES}

    def observe_stages(self, seconds: dict[str, float]) -> None:
        for stage, value in seconds.items():
            child = self._stage.get(stage)
            if child is not None:
                child.observe(max(0.0, float(value)))

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text exposition format."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def sample_value(families: Any, name: str, labels: dict[str, str] | None = None) -> float | None:
    """A sample's value from parsed families (`prometheus_client.parser.text_string_to_metric_families`)."""
    for family in families:
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return None
