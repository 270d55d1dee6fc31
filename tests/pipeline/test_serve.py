"""`vsslrt serve` against a real uvicorn server on a free 127.0.0.1 port: parity with `vsslrt localize`,
dynamic batching, overload, readiness and the descriptive endpoints.

Every server is started by `running_server` and stopped in its `finally`; every request loop is a
fixed number of requests with client timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
for _module in ("fastapi", "uvicorn", "prometheus_client", "multipart", "httpx"):
    pytest.importorskip(_module)

import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_helpers import manifest_calibration, running_server, write_pairs  # noqa: E402

from vsslrt.pipeline.demo import demo_engine_dirs  # noqa: E402
from vsslrt.pipeline.localize import Localizer  # noqa: E402
from vsslrt.pipeline.serve.app import ServeSettings  # noqa: E402
from vsslrt.pipeline.serve.limits import ServeLimits  # noqa: E402
from vsslrt.pipeline.serve.metrics import sample_value  # noqa: E402

TIMEOUT = httpx.Timeout(30.0)


@pytest.fixture(scope="module")
def engine() -> Path:
    return demo_engine_dirs()[1]  # demo-san


@pytest.fixture(scope="module")
def calibration(engine, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cal") / "calibration.json"
    path.write_text(json.dumps(manifest_calibration(engine)))
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[tuple[Path, Path]]:
    return write_pairs(tmp_path_factory.mktemp("pairs"), 8)


@pytest.fixture(scope="module")
def localizer(engine, calibration):
    with Localizer(engine, calibration, threads=1) as loc:
        yield loc


def settings(**kw) -> ServeSettings:
    base = dict(port=0, max_batch=8, max_delay_ms=5.0, drain_s=0.0)
    base.update(kw)
    return ServeSettings(**base)


def post_files(client: httpx.Client, url: str, pair, **fields) -> httpx.Response:
    image, audio = pair
    files = {"image": (image.name, image.read_bytes(), "image/png"), "audio": (audio.name, audio.read_bytes(), "audio/wav")}
    return client.post(f"{url}/v1/localize", files=files, data={k: str(v) for k, v in fields.items()})


def rle_decode(rle: dict) -> np.ndarray:
    """Independent decoder of COCO's uncompressed RLE (column-major runs, False first)."""
    height, width = rle["size"]
    values = np.concatenate([np.full(n, i % 2 == 1) for i, n in enumerate(rle["counts"])])
    assert values.size == height * width
    return values.reshape((height, width), order="F")


def assert_same_result(answer: dict, expected: dict) -> None:
    for key in ("sounding", "detection_threshold", "localization_threshold", "image_size", "map_size"):
        assert answer[key] == expected[key], key
    assert answer["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert answer["mask_fraction"] == pytest.approx(expected["mask_fraction"], abs=1e-4)
    np.testing.assert_allclose(np.asarray(answer["raw_map"]), np.asarray(expected["raw_map"]), atol=2e-6)
    assert [b["box"] for b in answer["boxes"]] == [b["box"] for b in expected["boxes"]]
    assert [b["area"] for b in answer["boxes"]] == pytest.approx([b["area"] for b in expected["boxes"]], abs=2)


def test_results_equal_vsslrt_localize(localizer, engine, calibration, pairs, tmp_path):
    from typer.testing import CliRunner
    from PIL import Image

    from vsslrt.cli.app import create_app
    from vsslrt.pipeline.overlay import overlay_png_bytes

    image, audio = pairs[0]
    run = CliRunner().invoke(create_app(), ["localize", "--engine", str(engine), "--calibration", str(calibration),
                                            str(image), str(audio), "--out", str(tmp_path / "cli"), "--threads", "1"])
    assert run.exit_code == 0, run.output
    expected = json.loads((tmp_path / "cli" / f"{image.stem}.json").read_text())
    assert expected["sounding"] and expected["boxes"]  # a pair where there is something to compare
    local = localizer.localize(image, audio)

    with running_server(localizer, settings(max_batch=1)) as server, httpx.Client(timeout=TIMEOUT) as client:
        multipart = post_files(client, server.base_url, pairs[0], mask="true", overlay="true")
        as_json = client.post(f"{server.base_url}/v1/localize", json={
            "image": base64.b64encode(image.read_bytes()).decode(), "audio": base64.b64encode(audio.read_bytes()).decode(),
            "name": "frame"})
    assert multipart.status_code == 200, multipart.text
    assert as_json.status_code == 200, as_json.text
    answer = multipart.json()
    assert_same_result(answer, expected)
    assert_same_result(as_json.json(), expected)
    assert answer["name"] == image.stem and answer["image"] == image.name and answer["audio"] == audio.name
    assert as_json.json()["name"] == "frame" and "mask_rle" not in as_json.json()
    # The mask and the overlay are those of `vsslrt localize` on the same pair.
    assert np.array_equal(rle_decode(answer["mask_rle"]), local.mask)
    served = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["overlay_png"]))))
    assert np.array_equal(served, np.asarray(Image.open(io.BytesIO(overlay_png_bytes(local)))))
    assert np.array_equal(served, np.asarray(Image.open(tmp_path / "cli" / f"{image.stem}.png")))


def test_rle_round_trip_matches_an_independent_decoder():
    from vsslrt.pipeline.serve.inputs import mask_rle

    rng = np.random.default_rng(0)
    for mask in (rng.random((7, 5)) > 0.5, np.ones((3, 4), bool), np.zeros((4, 3), bool)):
        rle = mask_rle(mask)
        assert np.array_equal(rle_decode(rle), mask)
        assert sum(rle["counts"]) == mask.size


def _concurrent_posts(url: str, items: list[tuple[Path, Path]]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            async def one(pair):
                image, audio = pair
                files = {"image": (image.name, image.read_bytes()), "audio": (audio.name, audio.read_bytes())}
                return await client.post(f"{url}/v1/localize", files=files)
            return await asyncio.gather(*(one(p) for p in items))
    return asyncio.run(main())


def metric_families(client: httpx.Client, url: str) -> list:
    response = client.get(f"{url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return list(text_string_to_metric_families(response.text))


def test_concurrent_requests_are_batched_and_each_gets_its_own_result(localizer, pairs):
    expected = [localizer.localize(*p).to_json() for p in pairs]
    assert len({round(e["score"], 6) for e in expected}) == len(pairs)  # distinct answers: a mix-up would show
    with running_server(localizer, settings(max_batch=8, max_delay_ms=500)) as server:
        responses = _concurrent_posts(server.base_url, pairs)
        with httpx.Client(timeout=TIMEOUT) as client:
            families = metric_families(client, server.base_url)
    assert [r.status_code for r in responses] == [200] * len(pairs)
    for response, want in zip(responses, expected):
        assert response.json()["name"] == want["name"]
        assert_same_result(response.json(), want)
    batches = sample_value(families, "vsslrt_batch_size_count")
    assert sample_value(families, "vsslrt_batch_size_sum") == len(pairs)
    assert batches is not None and batches < len(pairs)  # really batched
    assert max(r.json()["timing_ms"]["batch_size"] for r in responses) > 1
    assert sample_value(families, "vsslrt_requests_total", {"endpoint": "localize", "status": "200"}) == len(pairs)
    assert sample_value(families, "vsslrt_queue_depth") == 0
    for stage in ("decode", "queue_wait", "visual_encoder", "postprocess"):
        assert sample_value(families, "vsslrt_stage_duration_seconds_count", {"stage": stage}) == len(pairs), stage


def test_batching_off_runs_every_request_alone(localizer, pairs):
    with running_server(localizer, settings(max_batch=1, max_delay_ms=500)) as server:
        responses = _concurrent_posts(server.base_url, pairs[:4])
        with httpx.Client(timeout=TIMEOUT) as client:
            families = metric_families(client, server.base_url)
    assert [r.status_code for r in responses] == [200] * 4
    assert sample_value(families, "vsslrt_batch_size_count") == 4
    assert sample_value(families, "vsslrt_batch_size_bucket", {"le": "1.0"}) == 4


def test_overload_gives_503_with_retry_after_not_a_crash(localizer, pairs):
    # Two places; the admitted requests wait up to a second for their batch to fill, so the others,
    # sent at the same time, find the queue full.
    with running_server(localizer, settings(max_batch=64, max_delay_ms=1000, limits=ServeLimits(max_queue=2))) as server:
        responses = _concurrent_posts(server.base_url, pairs)
        with httpx.Client(timeout=TIMEOUT) as client:
            after = post_files(client, server.base_url, pairs[0])
            health = client.get(f"{server.base_url}/v1/health")
            families = metric_families(client, server.base_url)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 1, codes
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            body = response.json()
            assert body["status"] == 503 and "queue" in body["error"] and "\n" not in body["error"]
    assert after.status_code == 200 and health.status_code == 200
    assert sample_value(families, "vsslrt_rejected_requests_total", {"reason": "queue_full"}) == codes.count(503)


class _SlowWarmLocalizer:
    """The real localizer, whose first engine call (the warm-up) waits for a signal."""

    def __init__(self, localizer) -> None:
        self._inner = localizer
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def run_prepared(self, prepared):
        assert self.release.wait(timeout=30)
        return self._inner.run_prepared(prepared)


def test_health_is_ready_only_once_the_engine_is_warm(localizer, pairs):
    from vsslrt.pipeline.serve.app import make_server
    import time

    slow = _SlowWarmLocalizer(localizer)
    server = make_server(slow, settings())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        with httpx.Client(timeout=TIMEOUT) as client:
            starting = client.get(f"{server.url}/v1/health")
            early = post_files(client, server.url, pairs[0])
            slow.release.set()
            while client.get(f"{server.url}/v1/health").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            late = post_files(client, server.url, pairs[0])
    finally:
        slow.release.set()
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert starting.status_code == 503 and starting.json()["status"] == "starting"
    assert early.status_code == 503 and early.headers["retry-after"] and "warm" in early.json()["error"]
    assert late.status_code == 200


def test_model_and_metrics_describe_the_service(localizer, engine):
    with running_server(localizer, settings(max_batch=4)) as server, httpx.Client(timeout=TIMEOUT) as client:
        model = client.get(f"{server.base_url}/v1/model").json()
        families = {f.name for f in metric_families(client, server.base_url)}
    assert model["manifest"]["model"] == "demo-san" and model["engine"] == str(engine)
    cal = model["calibration"]
    assert cal["detection"]["threshold"] == pytest.approx(localizer.calibration.detection_threshold)
    assert cal["localization"]["provenance"] and cal["manifest_sha256"] == localizer.calibration.manifest_sha256
    assert model["backend"]["backend"] == "ort" and model["serving"]["max_batch"] == 4
    assert {"vsslrt_requests", "vsslrt_request_duration_seconds", "vsslrt_batch_size", "vsslrt_queue_depth",
            "vsslrt_stage_duration_seconds", "vsslrt_rejected_requests"} <= families


def test_settings_refuse_bad_values():
    from vsslrt.errors import InputError

    with pytest.raises(InputError, match="max-batch"):
        ServeSettings(max_batch=0)
    with pytest.raises(InputError, match="port"):
        ServeSettings(port=70000)
    with pytest.raises(InputError, match="max_queue"):
        ServeLimits(max_queue=0)
    with pytest.raises(InputError, match="timeout_s"):
        ServeLimits(timeout_s=float("nan"))
