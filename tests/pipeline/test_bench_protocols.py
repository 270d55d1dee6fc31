"""One benchmark run reports every protocol preset that applies: the presets' evaluators fed from the
batch loop equal the same evaluators fed sample by sample, resume and shard merging give one pass's
numbers, and a preset the dataset cannot serve is refused before the first batch."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pipeline"))
from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.errors import InputError  # noqa: E402
from vsslrt.pipeline.bench import EngineSession, run_bench  # noqa: E402
from vsslrt.pipeline.results import BenchSettings  # noqa: E402

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", HERE.parents[1].parent / "shared" / "data" / "is3-mini"))
needs_is3 = pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}")


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    return make_tiny_engine(tmp_path_factory.mktemp("engines") / "tiny")


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        assert (isinstance(x, float) and math.isnan(x) and math.isnan(y)) or x == y, key


def _positive_maps(engine: Path, dataset, mode: str = "fixed"):
    """Sample by sample, encoders at batch 1: the positive map, visual and audio embeddings of each sample."""
    from vsslrt.data import audio_input, get_frontend, preprocess_image
    from vsslrt.data.images import decode_image
    from vsslrt.head import similarity_maps
    from vsslrt.pipeline.encoders import open_encoders

    maps, visual, audio = [], [], []
    with open_encoders(engine) as enc:
        spec = get_frontend(enc.manifest.frontend)
        for sample in dataset:
            v = enc.embed_images(preprocess_image(decode_image(sample.image))[None])
            a = enc.embed_audio(np.ascontiguousarray(
                audio_input(sample.audio, spec, mode=mode, dataset_kind=dataset.kind)[None]))
            maps.append(similarity_maps(v, a, enc.manifest.head)[0])
            visual.append(v[0])
            audio.append(a[0])
    return np.stack(maps), np.stack(visual), np.stack(audio)


def _manifest_with_pairs(root: Path) -> Path:
    """Six records, two images with two sounding objects each (interactive groups)."""
    data_conftest = _load(HERE.parent / "data" / "conftest.py", "data_conftest_for_protocols")
    records = [
        {"image": "img/s0.png", "audio": "snd/s0_dog.wav", "boxes": [[0.1, 0.1, 0.4, 0.5]], "class": "dog", "group": "s0"},
        {"image": "img/s0.png", "audio": "snd/s0_bell.wav", "boxes": [[0.5, 0.5, 0.9, 0.8]], "class": "bell", "group": "s0"},
        {"image": "img/s1.png", "audio": "snd/s1_car.wav", "boxes": [[0.0, 0.0, 1.0, 1.0]], "class": "car", "group": "s1"},
        {"image": "img/s1.png", "audio": "snd/s1_dog.wav", "boxes": [[0.2, 0.3, 0.6, 0.9]], "class": "dog", "group": "s1"},
        {"image": "img/s2.png", "audio": "snd/s2_bell.wav", "boxes": [[0.3, 0.1, 0.7, 0.4]], "class": "bell"},
        {"image": "img/s3.png", "audio": "snd/s3_car.wav", "boxes": [[0.0, 0.5, 0.5, 1.0]], "class": "car"},
    ]
    for i, rec in enumerate(records):
        data_conftest.write_image(root / rec["image"], 64, 48, seed=i)
        data_conftest.write_wav(root / rec["audio"], 0.4 + 0.1 * i, seed=i)
    (root / "manifest.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in records))
    return root


def test_grouped_run_reports_interactive_and_retrieval_like_sample_by_sample(engine, tmp_path):
    from vsslrt.data import load_dataset
    from vsslrt.eval.interactive import InteractiveEvaluator
    from vsslrt.eval.retrieval import RetrievalEvaluator

    root = _manifest_with_pairs(tmp_path / "mine")
    settings = BenchSettings(dataset="manifest", data_dir=root, batch=4, workers=1, baselines=False)
    (result,) = run_bench([engine], settings, tmp_path / "run")
    assert list(result.protocols) == ["negative-audio", "sslalign-is3", "retrieval"]
    ds = load_dataset("manifest", root)
    maps, visual, audio = _positive_maps(engine, ds)
    ids = np.arange(len(ds))
    interactive = InteractiveEvaluator("fixed").update(maps, ds.gt_maps(), ds.groups.astype(np.int64), sample_ids=ids)
    retrieval = RetrievalEvaluator().update(visual, audio, group=ds.groups.astype(np.int64), sample_ids=ids)
    for name, expected in (("sslalign-is3", interactive.compute()), ("retrieval", retrieval.compute())):
        got = result.protocols[name]["metrics"]
        assert got.keys() == expected.keys()
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), (name, key)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    entry = doc["engines"]["tiny"]
    assert entry["protocols"]["sslalign-is3"]["provenance"]["reference"].startswith("kaistmm/SSLalignment@")
    assert entry["protocols"]["retrieval"]["provenance"]["own_definition"] is True
    assert entry["protocols"]["negative-audio"]["provenance"]["mode"] == "fixed"
    assert entry["precision"] == result.manifest["precision"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "### Protocol sslalign-is3 (fixed)" in report and "### Precision and accuracy gate" in report
    assert "Reference keys this run cannot produce" not in report  # fixed mode

    # Resumed after one batch, and two shards merged as a Ray driver merges them: the same numbers.
    cut = BenchSettings(dataset="manifest", data_dir=root, batch=2, workers=1, baselines=False, repeats=2)
    full = run_bench([engine], cut, tmp_path / "full")[0]
    assert run_bench([engine], cut, tmp_path / "cut", stop_after_batches=1) == []
    resumed = run_bench([engine], cut, tmp_path / "cut", resume=True)[0]
    for name in ("sslalign-is3", "retrieval"):
        _same(full.protocols[name]["metrics"], resumed.protocols[name]["metrics"])
        _same(full.protocols[name]["metrics"], result.protocols[name]["metrics"])  # positive maps only
    assert full.protocols["sslalign-is3"]["n_samples"] == len(ds)  # once per sample, whatever the repeats


@needs_is3
def test_protocol_states_resume_and_merge_to_one_pass(engine, tmp_path):
    from vsslrt.data import load_dataset
    from vsslrt.manifest import Manifest
    from vsslrt.pipeline.distributed import merge_shards, pack_shard, unpack_shard

    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI, batch=4, workers=1, baselines=False, repeats=2)
    full = run_bench([engine], settings, tmp_path / "full")[0]
    assert run_bench([engine], settings, tmp_path / "cut", stop_after_batches=2) == []
    resumed = run_bench([engine], settings, tmp_path / "cut", resume=True)[0]
    dataset = load_dataset("is3", IS3_MINI)
    with EngineSession(engine, dataset, settings) as session:
        shards = [unpack_shard(*pack_shard(session.run_shard(range(a, min(a + 8, 16))))) for a in (8, 0)]
    merged = merge_shards(engine, Manifest.read(engine), settings, shards, dataset=dataset)
    assert list(full.protocols) == ["negative-audio", "retrieval"]  # no image pairs in is3-mini
    for other in (resumed, merged):
        _same(full.metrics, other.metrics)
        assert other.protocols.keys() == full.protocols.keys()
        _same(full.protocols["retrieval"]["metrics"], other.protocols["retrieval"]["metrics"])
    # Positive-only protocols are fed once per sample, whatever the repetitions.
    assert full.protocols["retrieval"]["n_samples"] == 16


@needs_is3
def test_a_protocol_the_dataset_cannot_serve_fails_before_the_first_batch(engine, tmp_path):
    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI, batch=4, workers=1, protocols="retrieval,slavc-extended")
    with pytest.raises(InputError, match="protocol slavc-extended: expected a dataset of kind flickr-ext") as info:
        run_bench([engine], settings, tmp_path / "run")
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "run").glob("shards/*/part-*.npz"))  # no batch ran
    with pytest.raises(InputError, match="protocol: expected one of"):
        BenchSettings(dataset="is3", data_dir=IS3_MINI, protocols="nope").check()
    with pytest.raises(InputError, match="negative-audio in the --protocol mode fixed"):
        run_bench([engine], BenchSettings(dataset="is3", data_dir=IS3_MINI, protocols="negative-audio:paper"),
                  tmp_path / "other")


@needs_is3
def test_only_the_asked_protocols_run(engine, tmp_path):
    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI, batch=8, workers=1, baselines=False,
                             protocols="retrieval:paper", limit=8)
    (result,) = run_bench([engine], settings, tmp_path / "run")
    assert list(result.protocols) == ["negative-audio", "retrieval"]
    assert result.protocols["retrieval"]["provenance"]["mode"] == "paper"


@needs_is3
def test_paper_mode_reports_missing_reference_keys_and_examples(engine, tmp_path):
    settings = BenchSettings(dataset="is3", data_dir=IS3_MINI, batch=8, workers=1, baselines=False, protocol="paper",
                             repeats=1, ogl=False, examples=2)
    (result,) = run_bench([engine], settings, tmp_path / "run")
    assert result.missing_keys and all(k.endswith("_OGL") for k in result.missing_keys)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "### Reference keys this run cannot produce" in report
    assert f"{len(result.missing_keys)} reference keys missing" in report
    worst = json.loads((tmp_path / "run" / "examples" / "tiny" / "worst.json").read_text())
    assert worst["k"] == 2 and len(worst["conditions"]["pos"]) == 2
    assert (tmp_path / "run" / "examples" / "tiny" / "pos.png").stat().st_size > 0
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["engines"]["tiny"]["missing_reference_keys"] == result.missing_keys


# ------------------------------------------------------------------------------------------------
# Extended Flickr (consensus ground truth, non-sounding samples) and AVSBench masks


def _flickr_ext(root: Path) -> Path:
    data_conftest = _load(HERE.parent / "data" / "conftest.py", "data_conftest_for_protocols")
    for i, clip in enumerate(["1001", "1002", "1003", "1004"]):
        data_conftest.write_image(root / "frames" / f"{clip}.jpg", 64, 48, seed=i)
        data_conftest.write_wav(root / "audio" / f"{clip}.wav", 0.7, seed=i)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{clip}.xml").write_text(
            data_conftest.FLICKR_XML.format(clip=clip, a=10 * i, b=20, c=200, d=256))
    (root / "flickr_test.csv").write_text("1003\n1001\n1002\n1004\n")
    (root / "flickr_test_plus_silent.csv").write_text(
        "video,audio,label\n1001,1002,non-sounding\n1003,1001,non-sounding\n")
    return root


def test_extended_flickr_run_uses_consensus_gt_and_extended_metrics(engine, tmp_path):
    from vsslrt.data import load_dataset
    from vsslrt.data.flickr import gt_weights
    from vsslrt.eval.extended import ExtendedEvaluator
    from vsslrt.eval.retrieval import RetrievalEvaluator

    root = _flickr_ext(tmp_path / "flickr")
    settings = BenchSettings(dataset="flickr-ext", data_dir=root, batch=4, workers=1, baselines=False)
    (result,) = run_bench([engine], settings, tmp_path / "run")
    assert list(result.protocols) == ["negative-audio", "slavc-extended", "retrieval", "acl-extended"]
    assert "note" in result.protocols["acl-extended"]  # applicable, but its confidence is ACL's own
    ds = load_dataset("flickr-ext", root)
    maps, visual, audio = _positive_maps(engine, ds)
    ids = np.arange(len(ds))
    weights = gt_weights(ds)
    assert (weights == 0.5).any()  # the consensus weights reach the evaluators
    ext = ExtendedEvaluator("slavc", "fixed").update(maps, weights, ds.positive, n_boxes=ds.n_boxes, sample_ids=ids)
    pos = np.flatnonzero(ds.positive)
    ret = RetrievalEvaluator().update(visual[pos], audio[pos], group=ds.groups[pos].astype(np.int64), sample_ids=pos)
    for name, expected in (("slavc-extended", ext.compute()), ("retrieval", ret.compute())):
        got = result.protocols[name]["metrics"]
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), (name, key)
    assert result.protocols["retrieval"]["n_samples"] == len(pos)
    # The main evaluator scores the consensus weights too (a half-covered pixel counts half).
    from vsslrt.eval import evaluate

    bool_gt = evaluate(maps, maps, maps, maps, ds.gt_maps(), protocol="fixed",
                       thresholds={k: v["value"] for k, v in result.thresholds.items()})
    soft_gt = evaluate(maps, maps, maps, maps, weights, protocol="fixed",
                       thresholds={k: v["value"] for k, v in result.thresholds.items()})
    pos_keys = [k for k in soft_gt if k.startswith("pos/")]
    for key in pos_keys:
        assert result.metrics[key] == pytest.approx(soft_gt[key], abs=1e-6, nan_ok=True), key
    assert any(soft_gt[k] != bool_gt[k] for k in pos_keys)


def test_avsbench_run_reports_mask_protocols_and_resumes(engine, tmp_path):
    from vsslrt.data import load_dataset
    from vsslrt.eval.masks import MaskEvaluator

    avs = _load(HERE.parent / "data" / "test_avsbench.py", "avsbench_fixture_for_protocols")
    root = avs.make_s4(tmp_path / "s4")
    settings = BenchSettings(dataset="avsbench-s4", data_dir=root, batch=6, workers=1, baselines=False,
                             protocol="paper", repeats=2, thresholds={"max": 0.5, "max10": 0.5, "maxq3": 0.5})
    full = run_bench([engine], settings, tmp_path / "full")[0]
    assert list(full.protocols) == ["negative-audio", "avsbench", "avsbench-robust"]
    assert run_bench([engine], settings, tmp_path / "cut", stop_after_batches=1) == []
    resumed = run_bench([engine], settings, tmp_path / "cut", resume=True)[0]
    for name in ("avsbench", "avsbench-robust"):
        _same(full.protocols[name]["metrics"], resumed.protocols[name]["metrics"])
    robust = full.protocols["avsbench-robust"]["metrics"]
    assert any(k.startswith("silence/") for k in robust) and not any(
        k.startswith("silence/") for k in full.protocols["avsbench"]["metrics"])
    # The positive condition does not depend on the repetition: both presets agree with one pass over
    # the positive maps (AVSBench scores the positive map only).
    ds = load_dataset("avsbench-s4", root)
    maps, _, _ = _positive_maps(engine, ds, mode="paper")
    n, n_videos = len(ds), int(ds.videos.max()) + 1
    ev = MaskEvaluator("paper", conditions=("pos",))
    for r in range(2):
        ev.update({"pos": maps}, ds.gt_maps().view(np.uint8) != 0, video=r * n_videos + ds.videos, sample_ids=r * n + np.arange(n))
    expected = ev.compute()
    for key, value in expected.items():
        assert full.protocols["avsbench"]["metrics"][key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")
def test_ray_run_reports_the_protocols_of_one_pass(engine, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'vsslrt[dist]'")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'vsslrt[dist]'")
    from vsslrt.pipeline.distributed import run_bench_ray

    root = _manifest_with_pairs(tmp_path / "mine")
    settings = BenchSettings(dataset="manifest", data_dir=root, batch=2, workers=1, baselines=False, examples=1)
    (single,) = run_bench([engine], settings, tmp_path / "single")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        (dist,) = run_bench_ray([engine], settings, tmp_path / "ray", block_size=2)
    finally:
        ray.shutdown()
    assert list(dist.protocols) == list(single.protocols) == ["negative-audio", "sslalign-is3", "retrieval"]
    for name in ("sslalign-is3", "retrieval"):
        _same(single.protocols[name]["metrics"], dist.protocols[name]["metrics"])
    assert (json.loads((tmp_path / "ray" / "examples" / "tiny" / "worst.json").read_text())
            == json.loads((tmp_path / "single" / "examples" / "tiny" / "worst.json").read_text()))


@needs_is3
def test_the_gate_of_the_run_precision_is_in_the_report_and_the_cli(engine, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from vsslrt.cli.app import create_app
    from vsslrt.pipeline.gate import GateFigures

    gated = tmp_path / "gated"
    shutil.copytree(engine, gated)
    from vsslrt.manifest import Manifest

    manifest = Manifest.read(gated)
    figures = GateFigures(precision="fp32", backend="ort", reference="ort fp32", data="test samples", n_samples=8,
                          threshold="maxq3", reference_metrics={"pos cIoU": 50.0}, candidate_metrics={"pos cIoU": 49.5},
                          deltas={"pos cIoU": -0.5}, argmax_agreement=0.99, max_delta=1.0, min_argmax_agreement=0.95,
                          passed=True)
    other = GateFigures(**{**figures.__dict__, "precision": "int8"})
    manifest.gates.update({"fp32": figures.to_dict(), "int8": other.to_dict()})
    manifest.write(gated)
    result = CliRunner().invoke(create_app(), [
        "bench", "--engine", str(gated), "--dataset", "is3", "--data-dir", str(IS3_MINI), "--out", str(tmp_path / "run"),
        "--limit", "4", "--batch", "4", "--no-baselines", "--workers", "1", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "run" / "report.md").read_text()
    assert "- fp32 on ort vs ort fp32: accuracy gate passed" in report and "int8 on ort" not in report
    assert "accuracy gate passed" in result.output
    entry = json.loads((tmp_path / "run" / "metrics.json").read_text())["engines"]["gated"]
    assert entry["precision"] == "fp32" and len(entry["gates"]) == 1
