"""`WebSocket /v1/stream` and `POST /v1/video` against a real uvicorn server on a free 127.0.0.1 port:
results equal a local `StreamSession` (and `localize_video`) frame for frame, streams do not mix,
every refusal is the documented error line and close code, and the server stays up.

Every client call has a timeout; every server is stopped by `running_server`.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
for _module in ("fastapi", "uvicorn", "prometheus_client", "multipart", "httpx", "websockets", "av"):
    pytest.importorskip(_module)

import httpx  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_helpers import manifest_calibration, running_server  # noqa: E402

from vsslrt.pipeline.demo import demo_engine_dirs  # noqa: E402
from vsslrt.pipeline.localize import Localizer  # noqa: E402
from vsslrt.pipeline.serve.app import ServeSettings  # noqa: E402
from vsslrt.pipeline.serve.limits import ServeLimits  # noqa: E402
from vsslrt.pipeline.stream import Hysteresis, Smoothing, StreamSession  # noqa: E402

TOKEN = "stream-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 4 * 2**20
LIMITS = ServeLimits(max_body_bytes=MAX_BODY, timeout_s=10.0, max_streams=2, stream_idle_s=1.5)
RATE = 16_000
FPS = 8  # the clip's frame rate; the streams localise 4 per second
WAIT = 20.0  # seconds any one client call may take


@pytest.fixture(scope="module")
def localizer():
    engine = demo_engine_dirs()[1]  # demo-san
    with Localizer(engine, manifest_calibration(engine), threads=1) as loc:
        yield loc


def settings(**kw) -> ServeSettings:
    base = dict(port=0, max_batch=4, max_delay_ms=2.0, limits=LIMITS, token=TOKEN, drain_s=0.0)
    base.update(kw)
    return ServeSettings(**base)


@pytest.fixture(scope="module")
def server(localizer):
    with running_server(localizer, settings()) as srv:
        yield srv


def clip(seed: int, seconds: float = 2.0) -> tuple[list[np.ndarray], np.ndarray]:
    """224 x 224 frames of a bright square moving over noise, and a noisy tone of the same length."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(int(seconds * FPS)):
        rgb = rng.integers(0, 80, (224, 224, 3), dtype=np.uint8)
        x = (20 * k + 40 * seed) % 160
        rgb[60:120, x:x + 60] = (250, 200, 40)
        frames.append(rgb)
    t = np.arange(int(seconds * RATE)) / RATE
    audio = (0.3 * np.sin(2 * np.pi * (300 + 200 * seed) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t))
             + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return frames, audio


def png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def steps(frames, audio):
    """The clip as the client sends it, in order: each frame after the audio that leads up to it."""
    per_frame = RATE // FPS
    for k, rgb in enumerate(frames):
        yield "A", k / FPS, audio[k * per_frame:(k + 1) * per_frame]
        yield "F", k / FPS, rgb


def message(kind: str, time: float, payload: bytes) -> bytes:
    return struct.pack("<cd", kind.encode(), time) + payload


def ws_url(server) -> str:
    return server.base_url.replace("http://", "ws://") + "/v1/stream"


def open_ws(server, headers=AUTH):
    return connect(ws_url(server), additional_headers=headers, open_timeout=WAIT, close_timeout=5,
                   max_size=2**24)


def read_all(ws) -> tuple[list[dict], int, str]:
    """Every message until the server closes: (messages, close code, close reason)."""
    docs = []
    try:
        while True:
            docs.append(json.loads(ws.recv(timeout=WAIT)))
    except ConnectionClosed as closed:
        return docs, closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else ""


def stream_clip(server, frames, audio, config: dict) -> tuple[list[dict], int]:
    with open_ws(server) as ws:
        ws.send(json.dumps(config))
        for kind, t, data in steps(frames, audio):
            ws.send(message(kind, t, png(data) if kind == "F" else data.astype("<f4").tobytes()))
        ws.send(json.dumps({"end": True}))
        docs, code, _ = read_all(ws)
    return docs, code


def local_results(localizer, frames, audio, **kw) -> list:
    session = StreamSession(localizer, fps=4, device=False, **kw)
    out = []
    for kind, t, data in steps(frames, audio):
        if kind == "F":
            session.push_frame(data, t)
        else:
            session.push_audio(data, RATE, time=t)
        out.extend(session.poll())
    return out + session.finish()


def assert_same(docs: list[dict], expected: list) -> None:
    assert len(docs) == len(expected) > 0
    for doc, want in zip(docs, expected):
        ref = want.to_json()
        assert doc["time"] == ref["time"] and doc["window"] == ref["window"]
        assert doc["score"] == pytest.approx(ref["score"], abs=1e-6)
        assert doc["smoothed_score"] == pytest.approx(ref["smoothed_score"], abs=1e-6)
        assert (doc["sounding"], doc["decision"], doc["threshold"]) == (ref["sounding"], ref["decision"],
                                                                          pytest.approx(ref["threshold"]))
        assert doc["boxes"] == ref["boxes"]


def health_ok(server) -> None:
    assert httpx.get(f"{server.base_url}/v1/health", timeout=WAIT).status_code == 200


def test_stream_equals_a_local_session_frame_for_frame(server, localizer):
    from prometheus_client.parser import text_string_to_metric_families

    from vsslrt.pipeline.serve.metrics import sample_value

    frames, audio = clip(0)
    config = {"fps": 4, "alignment": "trailing", "audio_rate": RATE, "mask": True, "hysteresis": 0.05,
              "smoothing_tau": 0.5}
    docs, code = stream_clip(server, frames, audio, config)
    expected = local_results(localizer, frames, audio, alignment="trailing", smoothing=Smoothing(0.5),
                             hysteresis=Hysteresis.from_calibration(localizer.calibration, 0.05))
    assert code == 1000
    *results, final = docs
    assert final["ended"] == "end" and final["summary"]["frames"] == len(expected) == 8
    assert len({round(r["score"], 5) for r in results}) > 1  # distinct frames: a mix-up would show
    assert_same(results, expected)
    for doc, want in zip(results, expected):
        rle = doc["mask_rle"]
        assert rle["size"] == list(np.asarray(want.mask).shape) and sum(rle["counts"]) == np.asarray(want.mask).size
    families = list(text_string_to_metric_families(
        httpx.get(f"{server.base_url}/metrics", headers=AUTH, timeout=WAIT).text))
    assert sample_value(families, "vsslrt_stream_frames_total", {"endpoint": "stream"}) >= 8
    assert sample_value(families, "vsslrt_streams_total", {"endpoint": "stream", "outcome": "end"}) >= 1


def test_two_concurrent_streams_each_get_their_own_results(server, localizer):
    clips = [clip(1), clip(2)]
    answers: list = [None, None]

    def run(i: int) -> None:
        answers[i] = stream_clip(server, *clips[i], {"fps": 4, "alignment": "centre"})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    for (docs, code), (frames, audio) in zip(answers, clips):
        assert code == 1000 and docs[-1]["ended"] == "end"
        assert_same(docs[:-1], local_results(localizer, frames, audio, alignment="centre"))
    assert [d["score"] for d in answers[0][0][:-1]] != [d["score"] for d in answers[1][0][:-1]]


def _send_after_config(*messages):
    def send(ws):
        ws.send(json.dumps({"fps": 4}))
        for m in messages:
            ws.send(m)
    return send


@pytest.mark.parametrize("send, field, code", [
    (lambda ws: ws.send(json.dumps({"fps": -1})), "fps", 1008),
    (lambda ws: ws.send(json.dumps({"alignment": "middle"})), "alignment", 1008),
    (lambda ws: ws.send(json.dumps({"audio_rate": 16000.5})), "audio_rate", 1008),
    (lambda ws: ws.send(json.dumps({"fsp": 4})), "fsp", 1008),
    (lambda ws: ws.send("not json"), "config", 1008),
    (lambda ws: ws.send(b"F" + b"\0" * 8), "config", 1003),
    (_send_after_config(b"F\0\0"), "header", 1008),
    (_send_after_config(message("X", 0.0, b"")), "kind", 1008),
    (_send_after_config(message("A", float("nan"), b"\0" * 4)), "time", 1008),
    (_send_after_config(message("A", 0.0, b"\0" * 6)), "audio", 1008),
    (_send_after_config(message("F", 0.0, b"not an image")), "image", 1008),
    (_send_after_config(json.dumps({"fps": 4})), "message", 1003),
], ids=["fps", "alignment", "audio_rate", "unknown", "json", "binary-first", "short-header", "kind", "time",
        "audio-bytes", "image", "text"])
def test_bad_messages_get_the_error_line_and_close_code(server, send, field, code):
    with open_ws(server) as ws:
        send(ws)
        docs, got, reason = read_all(ws)
    assert got == code, (docs, reason)
    assert len(docs) == 1 and set(docs[0]) == {"error", "field", "code"} and docs[0]["field"] == field, docs
    assert docs[0]["code"] == code  # the document names the close code that follows it
    message_text = docs[0]["error"]
    assert "expected" in message_text and "\n" not in message_text and reason
    health_ok(server)


def test_wrong_token_too_many_streams_and_an_oversized_message(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with open_ws(server, headers) as ws:
            docs, code, _ = read_all(ws)
        assert code == 1008 and docs[0]["field"] == "authorization" and docs[0]["code"] == 1008
    with open_ws(server) as a, open_ws(server) as b:
        a.send(json.dumps({}))
        b.send(json.dumps({}))
        with open_ws(server) as c:
            docs, code, _ = read_all(c)
        assert code == 1013 and "streams" in docs[0]["error"]
    with open_ws(server) as ws:
        ws.send(json.dumps({}))
        ws.send(message("F", 0.0, b"\0" * (MAX_BODY + 1)))
        _, code, reason = read_all(ws)
    assert code == 1009 and "exceeds" in reason
    health_ok(server)


def test_an_idle_stream_is_closed_with_a_reason(server):
    with open_ws(server) as ws:
        ws.send(json.dumps({}))
        docs, code, _ = read_all(ws)
    assert code == 1008 and "every 1.5 s" in docs[0]["error"]
    health_ok(server)


def test_shutdown_finishes_open_streams_with_a_summary(localizer):
    frames, audio = clip(3, seconds=1.0)
    with running_server(localizer, settings()) as srv:
        with open_ws(srv) as ws:
            ws.send(json.dumps({"fps": 4}))
            for kind, t, data in steps(frames, audio):
                ws.send(message(kind, t, png(data) if kind == "F" else data.astype("<f4").tobytes()))
            srv.service.begin_drain()
            srv.should_exit = True
            docs, code, reason = read_all(ws)
    assert code == 1001 and "shutting down" in reason
    assert docs[-1]["ended"] == "draining" and docs[-1]["summary"]["frames"] == len(docs) - 1 == 4


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    from scenes import write_video

    frames, audio = clip(4, seconds=3.0)
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames, audio, fps=FPS, rate=RATE)


def test_video_upload_streams_the_results_of_localize_video(server, localizer, video_file, tmp_path):
    from vsslrt.pipeline.video import localize_video

    report = localize_video(localizer, video_file, tmp_path, fps=4)
    expected = [json.loads(line) for line in report.timeline.read_text().splitlines()]
    with httpx.Client(timeout=WAIT, headers=AUTH) as client:
        with client.stream("POST", f"{server.base_url}/v1/video", data={"fps": "4", "mask": "true"},
                           files={"video": ("clip.mp4", video_file.read_bytes(), "video/mp4")}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-ndjson"
            lines = [json.loads(line) for line in response.iter_lines() if line]
        bad = client.post(f"{server.base_url}/v1/video", files={"video": ("x.mp4", b"not a video at all")})
        no_file = client.post(f"{server.base_url}/v1/video", data={"fps": "4"}, files={"other": ("a", b"x")})
        bad_fps = client.post(f"{server.base_url}/v1/video", data={"fps": "fast"},
                              files={"video": ("clip.mp4", video_file.read_bytes())})
    *results, final = lines
    assert final["ended"] == "end" and final["summary"]["frames"] == len(expected) == len(results) == 12
    assert [r["time"] for r in results] == [e["time"] for e in expected]
    assert [r["score"] for r in results] == pytest.approx([e["score"] for e in expected], abs=1e-6)
    assert [r["boxes"] for r in results] == [e["boxes"] for e in expected]
    assert all("mask_rle" in r for r in results)
    for response, status, field in ((bad, 422, "video"), (no_file, 400, "video"), (bad_fps, 400, "fps")):
        assert response.status_code == status, response.text
        body = response.json()
        assert body["field"] == field and "\n" not in body["error"] and "/tmp" not in body["error"], body
    health_ok(server)
