"""Bad input against a real server: each refusal is a 4xx/5xx with a one-line JSON error naming the
field, the service stays up, and nothing is read past the limits.

Raw sockets drive the cases an HTTP client library smooths over (a 200 MB declared body, a
chunked upload that never ends, a client that stops sending); every socket has a timeout.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
for _module in ("fastapi", "uvicorn", "prometheus_client", "multipart", "httpx"):
    pytest.importorskip(_module)

import httpx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_helpers import manifest_calibration, running_server, write_pairs  # noqa: E402

from vsslrt.pipeline.demo import demo_engine_dirs  # noqa: E402
from vsslrt.pipeline.localize import Localizer  # noqa: E402
from vsslrt.pipeline.serve.app import ServeSettings  # noqa: E402
from vsslrt.pipeline.serve.limits import ServeLimits  # noqa: E402

TOKEN = "s3cret-token"
MAX_BODY = 2 * 2**20
LIMITS = ServeLimits(max_body_bytes=MAX_BODY, max_audio_seconds=20.0, timeout_s=2.0, max_queue=8)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs"), 2)


@pytest.fixture(scope="module")
def localizer():
    engine = demo_engine_dirs()[1]
    with Localizer(engine, manifest_calibration(engine), threads=1) as loc:
        yield loc


@pytest.fixture(scope="module")
def server(localizer):
    settings = ServeSettings(port=0, max_batch=4, max_delay_ms=2.0, limits=LIMITS, token=TOKEN, drain_s=0.0)
    with running_server(localizer, settings) as srv:
        yield srv


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=httpx.Timeout(20.0)) as c:
        yield c
    # After every bad request, the service is still up and answers a good one.
    with httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(20.0)) as c:
        assert c.get("/v1/health").status_code == 200


def files(pair, image: bytes | None = None, audio: bytes | None = None) -> dict:
    return {"image": ("a.png", pair[0].read_bytes() if image is None else image),
            "audio": ("a.wav", pair[1].read_bytes() if audio is None else audio)}


def assert_error(response: httpx.Response, status: int, field: str | None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field", "status"} and body["status"] == status
    assert body["field"] == field, body
    assert body["error"] and "\n" not in body["error"]
    return body


def wav_bytes(seconds: float, rate: int = 16_000, fmt: str = "WAV") -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * rate), np.int16), rate, format=fmt)
    return buffer.getvalue()


def raw_request(server, head: str, body_parts=(), *, read_timeout: float = 10.0) -> tuple[int, dict, float]:
    """Send a request by hand; returns (status, JSON body, seconds until the answer)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as sock:
        start = time.monotonic()
        sock.sendall(head.encode())
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        elapsed = time.monotonic() - start
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1]), elapsed


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_non_image_bytes_name_the_image(client, pairs):
    assert_error(client.post("/v1/localize", files=files(pairs[0], image=b"not an image at all")), 422, "image")


def test_non_audio_bytes_name_the_audio(client, pairs):
    assert_error(client.post("/v1/localize", files=files(pairs[0], audio=b"RIFF????WAVEnot audio")), 422, "audio")


def test_empty_body_and_empty_files_and_missing_fields(client, pairs):
    assert_error(client.post("/v1/localize", content=b"", headers={"content-type": "application/json"}), 400, "body")
    assert_error(client.post("/v1/localize", content=b"", headers={"content-type": "multipart/form-data; boundary=x"}),
                 400, "image")
    assert_error(client.post("/v1/localize", files=files(pairs[0], image=b"")), 400, "image")
    assert_error(client.post("/v1/localize", files={"image": ("a.png", pairs[0][0].read_bytes())}), 400, "audio")
    assert_error(client.post("/v1/localize", content=b"--x\r\ngarbage", headers={
        "content-type": "multipart/form-data; boundary=x"}), 400, "image")
    assert_error(client.post("/v1/localize", content=b"hello", headers={"content-type": "text/plain"}), 415,
                 "content-type")


def test_malformed_json_requests(client, pairs):
    good = base64.b64encode(pairs[0][0].read_bytes()).decode()
    assert_error(client.post("/v1/localize", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "body")
    assert_error(client.post("/v1/localize", json=[1, 2]), 400, "body")
    assert_error(client.post("/v1/localize", json={"image": good}), 400, "audio")
    assert_error(client.post("/v1/localize", json={"image": "***", "audio": good}), 400, "image")
    assert_error(client.post("/v1/localize", json={"image": good, "audio": good, "mask": "maybe"}), 400, "mask")
    assert_error(client.post("/v1/localize", json={"image": good, "audio": good, "colour": 1}), 400, "colour")


def test_unknown_paths_and_methods_are_json(client):
    assert_error(client.get("/v2/nothing"), 404, "path")
    assert_error(client.get("/v1/localize"), 405, "method")


def test_wrong_or_missing_token(server, pairs):
    with httpx.Client(base_url=server.base_url, timeout=20.0) as anonymous:
        assert_error(anonymous.post("/v1/localize", files=files(pairs[0])), 401, "authorization")
        wrong = anonymous.post("/v1/localize", files=files(pairs[0]), headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "authorization")
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert_error(anonymous.get("/v1/model"), 401, "authorization")
        assert_error(anonymous.get("/metrics", headers={"Authorization": TOKEN}), 401, "authorization")
        assert anonymous.get("/v1/health").status_code == 200  # probes need no token
        assert anonymous.get("/metrics", headers=AUTH).status_code == 200


def test_a_200_mb_upload_is_refused_by_content_length_without_reading_it(server):
    head = (f"POST /v1/localize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {200 * 2**20}\r\n\r\n")
    status, body, _ = raw_request(server, head, [b"x" * 65536])
    assert status == 413 and body["field"] == "body" and str(200 * 2**20) in body["error"]


def test_a_200_mb_chunked_upload_is_refused_while_streaming(server):
    head = (f"POST /v1/localize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 2**20
    sent = {"bytes": 0}

    def parts():
        for _ in range(200):  # 200 MiB if the server read it all
            sent["bytes"] += len(chunk)
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"

    status, body, _ = raw_request(server, head, parts())
    assert status == 413 and body["field"] == "body" and "while reading" in body["error"]
    assert sent["bytes"] < 100 * 2**20  # the server stopped reading near its 2 MiB limit


def test_a_one_hour_clip_is_refused_by_its_header(client, pairs):
    hour = wav_bytes(3600, rate=1000, fmt="FLAC")  # silence compresses: a small upload of a long clip
    assert len(hour) < MAX_BODY
    start = time.monotonic()
    body = assert_error(client.post("/v1/localize", files=files(pairs[0], audio=hour)), 413, "audio")
    assert "3600.0 s" in body["error"] and time.monotonic() - start < 5.0


def test_a_huge_image_is_refused_by_its_header(client, pairs):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buffer, format="PNG")  # 48 Mpixel, a few kB compressed
    assert_error(client.post("/v1/localize", files=files(pairs[0], image=buffer.getvalue())), 413, "image")


def test_a_client_that_never_finishes_its_upload_times_out(server):
    head = (f"POST /v1/localize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n")
    status, body, elapsed = raw_request(server, head, [b"x" * 1000])
    assert status == 408 and body["field"] == "body"
    assert LIMITS.timeout_s - 0.5 < elapsed < LIMITS.timeout_s + 5.0


def test_a_request_during_shutdown_is_refused_while_in_flight_ones_finish(localizer, pairs):
    image, audio = pairs[0]
    boundary = "vsslrtboundary"
    body = b"".join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'.encode(),
        image.read_bytes(),
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'.encode(),
        audio.read_bytes(), f"\r\n--{boundary}--\r\n".encode()])
    expected = localizer.localize(image, audio)
    settings = ServeSettings(port=0, max_batch=4, max_delay_ms=2.0, drain_s=2.0,
                             limits=ServeLimits(timeout_s=20.0))
    with running_server(localizer, settings) as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=20) as in_flight:
            in_flight.sendall((f"POST /v1/localize HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                               f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())
            in_flight.sendall(body[:1000])  # half-way through its upload when the shutdown begins
            time.sleep(0.2)
            server.handle_exit(signal.SIGTERM, None)
            with httpx.Client(base_url=server.base_url, timeout=20.0) as late:
                refused = late.post("/v1/localize", files=files(pairs[0]))
                health = late.get("/v1/health")
            in_flight.sendall(body[1000:])
            answer = b""
            while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
                chunk = in_flight.recv(65536)
                if not chunk:
                    break
                answer += chunk
    assert_error(refused, 503, None)
    assert refused.headers["retry-after"] and "shutting down" in refused.json()["error"]
    assert health.status_code == 503 and health.json()["status"] == "draining"
    assert answer.startswith(b"HTTP/1.1 200")
    result = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert result["score"] == pytest.approx(expected.score, abs=1e-6)
    assert [b["box"] for b in result["boxes"]] == [b.to_json()["box"] for b in expected.boxes]
