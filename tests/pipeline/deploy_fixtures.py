"""Fixtures of the deployment tests (calibrate, localize, overlay) and the CLI tests: a tiny engine and real benchmark runs on two disjoint halves of is3-mini.

The halves are written in the generic manifest format (absolute paths to the is3-mini files, boxes
normalised from IS3's 224-pixel units), so one run fits the thresholds and the other is held out.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.pipeline.bench import run_bench  # noqa: E402
from vsslrt.pipeline.results import BenchSettings  # noqa: E402

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))
HALF = 8


def _write_split(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    lines = []
    for rec in records:
        name = Path(rec["audio"]).stem
        box = [v / 224.0 for v in rec["gt_box"]]
        lines.append(json.dumps({
            "image": str(IS3_MINI / "images" / f"{name}.jpg"),
            "audio": str(IS3_MINI / "audio_wav" / f"{name}.wav"),
            "boxes": [box],
            "class": name.rsplit("_", 1)[1],
            "name": name,
        }))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def splits(tmp_path_factory) -> tuple[Path, Path]:
    """(fit split, held-out split): the first and the last 8 is3-mini records."""
    records = json.loads((IS3_MINI / "synthetic3240_bbox.json").read_text())
    root = tmp_path_factory.mktemp("splits")
    return _write_split(root / "fit", records[:HALF]), _write_split(root / "holdout", records[HALF:])


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> Path:
    return make_tiny_engine(tmp_path_factory.mktemp("engines") / "tiny")


@pytest.fixture(scope="session")
def other_engine(tmp_path_factory) -> Path:
    """Same architecture, other weights: its calibration must not be accepted for `engine`."""
    return make_tiny_engine(tmp_path_factory.mktemp("other") / "tiny", seed=1)


def settings(data_dir: Path, **kw) -> BenchSettings:
    base = dict(dataset="manifest", data_dir=data_dir, batch=HALF, workers=1, baselines=False, ogl=False)
    base.update(kw)
    return BenchSettings(**base)


@pytest.fixture(scope="session")
def make_settings():
    """The runs' BenchSettings, with overrides."""
    return settings


@pytest.fixture(scope="session")
def fit_run(tmp_path_factory, engine, splits) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fit"
    run_bench([engine], settings(splits[0]), out)
    return out


@pytest.fixture(scope="session")
def holdout_run(tmp_path_factory, engine, splits) -> Path:
    out = tmp_path_factory.mktemp("runs") / "holdout"
    run_bench([engine], settings(splits[1]), out)
    return out


@pytest.fixture(scope="session")
def calibration_file(fit_run) -> Path:
    from vsslrt.pipeline.calibrate import calibrate, write_calibration

    return write_calibration(calibrate(fit_run), fit_run / "calibration.json")


@pytest.fixture(scope="session")
def fit_pairs(splits) -> list[tuple[Path, Path]]:
    """(image, audio) of the fit split, in the run's sample order."""
    lines = (splits[0] / "manifest.jsonl").read_text().splitlines()
    return [(Path(r["image"]), Path(r["audio"])) for r in map(json.loads, lines)]
