"""One `vsslrt bench` run over a duet list reports the multi-source keys: they equal MultiSourceEvaluator
run directly on maps formed here clip by clip (encoders at batch 1, the head by hand), resume and shard
merging give one pass's numbers, and bad duet rows are refused (or left out with --skip-bad) before
the first batch."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.data.problems import DatasetProblemsError  # noqa: E402
from vsslrt.pipeline.bench import EngineSession, run_bench  # noqa: E402
from vsslrt.pipeline.results import BenchSettings  # noqa: E402

# Pairs across scenes of an 8-record synthetic split (two records per scene image); clip 0 is in three
# mixtures, so its embeddings serve several panels; batch 3 puts most mixtures' panels in two batches.
PAIRS = [(0, 2), (3, 6), (5, 0), (7, 4), (1, 7), (6, 0)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    return make_tiny_engine(tmp_path_factory.mktemp("engines") / "tiny")


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    from vsslrt.data.synth import write_split

    return write_split(tmp_path_factory.mktemp("synth") / "test", 8, seed=3)


def _names(root: Path) -> list[str]:
    return [json.loads(line)["name"] for line in (root / "manifest.jsonl").read_text().splitlines()]


def _write_list(root: Path, rows: list[str], name: str = "duet_test.csv") -> Path:
    (root / name).write_text("".join(r + "\n" for r in rows))
    return root / name


def _copy(split: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(split, to))


def _avgn_rows(root: Path, pairs=PAIRS) -> list[str]:
    records = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    return ["id,class,mix_id,mix_class"] + [f"{records[a]['name']},{records[a]['class']},{records[b]['name']},"
                                             f"{records[b]['class']}" for a, b in pairs]


def _settings(root: Path, **kw) -> BenchSettings:
    kw = {"batch": 3, "workers": 1, "baselines": False, "protocols": "multisource", **kw}
    return BenchSettings(dataset="manifest-duet", data_dir=root, **kw)


def _hand_maps(engine: Path, dataset, pairs, audio_mode: str = "fixed") -> tuple[np.ndarray, np.ndarray]:
    """Clip by clip: each clip's visual and audio embedding at batch 1, then map[q, p] = head(visual[p], audio[q])."""
    from vsslrt.data import audio_input, get_frontend, preprocess_image
    from vsslrt.data.images import decode_image
    from vsslrt.head import similarity_maps
    from vsslrt.pipeline.encoders import open_encoders

    with open_encoders(engine) as enc:
        spec, head = get_frontend(enc.manifest.frontend), enc.manifest.head
        visual = [enc.embed_images(preprocess_image(decode_image(s.image))[None]) for s in dataset]
        audio = [enc.embed_audio(np.ascontiguousarray(audio_input(s.audio, spec, mode=audio_mode, dataset_kind=dataset.kind)[None]))
                 for s in dataset]
    maps = np.zeros((len(pairs), 2, 2, visual[0].shape[-2], visual[0].shape[-1]), np.float32)
    for m, clips in enumerate(pairs):
        for q, qc in enumerate(clips):
            for p, pc in enumerate(clips):
                maps[m, q, p] = similarity_maps(visual[pc], audio[qc], head)[0]
                # the head by hand (docs: scale * mean_k sum_c v a + offset), as a check of what the map is
                by_hand = head.scale * np.einsum("kchw,kc->hw", visual[pc][0], audio[qc][0]) / head.num_maps + head.offset
                np.testing.assert_allclose(maps[m, q, p], by_hand, atol=1e-6)
    gt = np.stack([dataset.gt_maps(list(clips)) for clips in pairs])
    return maps, gt


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == b[key], key


def test_bench_reports_the_multisource_keys_of_the_evaluator_on_hand_made_maps(engine, split, tmp_path):
    from vsslrt.data import load_dataset
    from vsslrt.eval.multisource import MultiSourceEvaluator

    root = _copy(split, tmp_path / "duet")
    _write_list(root, _avgn_rows(root))
    (result,) = run_bench([engine], _settings(root), tmp_path / "run")
    ds = load_dataset("manifest-duet", root)
    assert [tuple(m) for m in ds.mixtures] == PAIRS
    maps, gt = _hand_maps(engine, ds, PAIRS)
    expected = MultiSourceEvaluator("fixed").update(maps, gt, sample_ids=np.arange(len(PAIRS))).compute()
    entry = result.protocols["multisource"]
    got = entry["metrics"]
    assert got.keys() == expected.keys() and "multi/duet/ciou@0.3" in got and got["multi/n_mixtures"] == 6
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), key
    assert entry["mixtures_scored"] == 6 and entry["mixtures_not_scored"] == 0 and "own clip" in entry["queries"]
    assert entry["n_samples"] == 6

    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    block = doc["engines"]["tiny"]["protocols"]["multisource"]
    assert block["provenance"]["reference"].startswith("enyac-group/T-VSL@2cddbbb")
    assert "median-one" in block["provenance"]["quirks_fixed"]
    assert "### Protocol multisource (fixed)" in (tmp_path / "run" / "report.md").read_text()


def test_paper_mode_and_default_protocols(engine, split, tmp_path):
    from vsslrt.data import load_dataset
    from vsslrt.eval.multisource import MultiSourceEvaluator

    root = _copy(split, tmp_path / "duet")
    _write_list(root, [f"{a},{b}" for a, b in ([_names(root)[i] for i in p] for p in PAIRS)])  # id,mix_id, no header
    (result,) = run_bench([engine], _settings(root, protocols="multisource:paper"), tmp_path / "paper")
    ds = load_dataset("manifest-duet", root)
    maps, gt = _hand_maps(engine, ds, PAIRS)
    expected = MultiSourceEvaluator("paper").update(maps, gt).compute()
    got = result.protocols["multisource"]["metrics"]
    assert got.keys() == expected.keys() and "tvsl/CIoU" in got
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), key
    (default,) = run_bench([engine], _settings(root, protocols=None), tmp_path / "default")  # every applicable preset
    assert "multi/greedy/piap" in default.protocols["multisource"]["metrics"]


def test_paper_audio_mode_encodes_the_queries_in_their_own_pass(engine, split, tmp_path):
    """--protocol paper: the batch loop encodes positives per batch (no clip pass), so the queries get one."""
    from vsslrt.data import load_dataset
    from vsslrt.eval.multisource import MultiSourceEvaluator

    root = _copy(split, tmp_path / "duet")
    _write_list(root, _avgn_rows(root))
    (result,) = run_bench([engine], _settings(root, protocol="paper", repeats=1), tmp_path / "run")
    maps, gt = _hand_maps(engine, load_dataset("manifest-duet", root), PAIRS, audio_mode="paper")
    expected = MultiSourceEvaluator("paper").update(maps, gt).compute()
    got = result.protocols["multisource"]["metrics"]  # the preset takes --protocol's mode
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), key


def test_resume_and_shard_merge_give_one_pass(engine, split, tmp_path):
    from vsslrt.data import load_dataset
    from vsslrt.manifest import Manifest
    from vsslrt.pipeline.distributed import merge_shards, pack_shard, unpack_shard

    root = _copy(split, tmp_path / "duet")
    _write_list(root, _avgn_rows(root))
    settings = _settings(root, batch=2)
    full = run_bench([engine], settings, tmp_path / "full")[0]
    assert run_bench([engine], settings, tmp_path / "cut", stop_after_batches=2) == []
    resumed = run_bench([engine], settings, tmp_path / "cut", resume=True)[0]
    _same(full.protocols["multisource"]["metrics"], resumed.protocols["multisource"]["metrics"])
    dataset = load_dataset("manifest-duet", root)
    with EngineSession(engine, dataset, settings) as session:
        shards = [unpack_shard(*pack_shard(session.run_shard(range(a, a + 4)))) for a in (4, 0)]
    merged = merge_shards(engine, Manifest.read(engine), settings, shards, dataset=dataset)
    _same(full.protocols["multisource"]["metrics"], merged.protocols["multisource"]["metrics"])
    # the consolidated checkpoint holds the panels: the metrics come back from it alone
    from vsslrt.pipeline.multisource import MixturePanels
    from vsslrt.pipeline.states import split_states

    again = MixturePanels.from_state(split_states(full.state)["protocol:multisource"])
    _same(full.protocols["multisource"]["metrics"], again.compute())


def test_bad_duet_rows_are_refused_before_the_first_batch(engine, split, tmp_path):
    root = _copy(split, tmp_path / "duet")
    names = _names(root)
    _write_list(root, ["id,mix_id", f"{names[0]},{names[2]}", f"{names[1]},{names[1]}", f"{names[3]}",
                       f"{names[4]},ghost_clip"])
    with pytest.raises(DatasetProblemsError) as err:
        run_bench([engine], _settings(root), tmp_path / "run")
    text = str(err.value)
    assert "duet_test.csv:3" in text and f"clip {names[1]} paired with itself" in text
    assert "duet_test.csv:4" in text and "expected id,class,mix_id,mix_class or id,mix_id" in text
    assert "duet_test.csv:5" in text and "ghost_clip" in text and "--skip-bad" in text
    assert not (tmp_path / "run" / "shards").exists()  # nothing ran


def test_skip_bad_leaves_out_unknown_clips_rows_and_mixtures_of_skipped_clips(engine, split, tmp_path):
    root = _copy(split, tmp_path / "duet")
    names = _names(root)
    _write_list(root, _avgn_rows(root) + [f"{names[4]},x,ghost_clip,y"])
    with pytest.raises(DatasetProblemsError, match="ghost_clip"):
        run_bench([engine], _settings(root), tmp_path / "refused")
    (root / "audio" / f"{names[7]}.wav").unlink()  # clip 7 is in the mixtures (7, 4) and (1, 7)
    notices: list[str] = []
    (result,) = run_bench([engine], _settings(root, skip_bad=True), tmp_path / "run", notice=notices.append)
    entry = result.protocols["multisource"]
    assert entry["mixtures_scored"] == 4 and entry["mixtures_not_scored"] == 2
    assert entry["metrics"]["multi/n_mixtures"] == 4
    assert any("ghost_clip" in line for line in notices)
    assert any(s["name"] == names[7] for s in result.skipped)


def test_mixture_panels_merge_in_any_order_and_score_only_complete_mixtures(monkeypatch):
    from vsslrt.eval.multisource import MultiSourceEvaluator
    from vsslrt.pipeline import multisource

    monkeypatch.setattr(multisource, "CHUNK", 2)  # several chunks for five mixtures
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((5, 2, 2, 7, 7)).astype(np.float32)
    gt = np.zeros((5, 2, 224, 224), bool)
    for m in range(5):
        for p in range(2):
            y, x = rng.integers(0, 150, 2)
            gt[m, p, y:y + 60, x:x + 70] = True
    panels = [(m, p) for m in range(5) for p in range(2)]
    order = rng.permutation(len(panels))
    parts = [multisource.MixturePanels("fixed", n_mixtures=6) for _ in range(2)]
    for k, i in enumerate(order):
        m, p = panels[i]
        parts[k % 2].update(maps[m, :, p][None], gt[m, p][None], mixture=[m], panel=[p])
    parts[0].update(maps[0, :, 0][None], gt[0, 0][None], mixture=[5], panel=[0])  # mixture 5: one panel only
    merged = multisource.MixturePanels.from_state(parts[0].state()).merge(parts[1])
    expected = MultiSourceEvaluator("fixed").update(maps, gt, sample_ids=np.arange(5)).compute()
    _same(merged.compute(), expected)
    assert len(merged) == 5 and merged.notes()["mixtures_not_scored"] == 1
    with pytest.raises(Exception, match="repeated id"):
        merged.merge(parts[1])
