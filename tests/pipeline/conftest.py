"""Fixtures of the pipeline tests: the deployment fixtures (deploy_fixtures.py: a tiny engine, real
runs on the two halves of is3-mini), and for the video and stream tests the shipped demo-san with a calibration, and scene videos
(made by scenes.py, which needs PyAV: the tests that use these fixtures skip without it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_fixtures import (  # noqa: E402,F401 - fixtures, one definition shared with tests/cli
    IS3_MINI, calibration_file, engine, fit_pairs, fit_run, holdout_run, make_settings, other_engine, splits)

_NEEDS_IS3_MINI = ("test_calibrate.py", "test_localize.py", "test_overlay.py")


def pytest_collection_modifyitems(items):
    skip = pytest.mark.skip(reason=f"the is3-mini fixture is not at {IS3_MINI}")
    if not IS3_MINI.is_dir():
        for item in items:
            if Path(str(item.fspath)).name in _NEEDS_IS3_MINI:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def localizer():
    from scenes import DEMO_SAN, demo_calibration

    from vsslrt.pipeline.localize import Localizer

    with Localizer(DEMO_SAN, demo_calibration(), threads=2) as loc:
        yield loc


@pytest.fixture(scope="session")
def scene_video(tmp_path_factory):
    """6 s, 10 fps, 224 x 224, AAC mono 16 kHz: sound 0-2 s, silence 2-3 s, noise 3-4 s, sound 4-6 s."""
    from scenes import make_scene_video

    return make_scene_video(tmp_path_factory.mktemp("videos") / "scene.mp4")


@pytest.fixture(scope="session")
def scene_video_pcm(tmp_path_factory):
    """The same scene with lossless PCM audio in Matroska (exact audio in, AAC out)."""
    from scenes import make_scene_video

    return make_scene_video(tmp_path_factory.mktemp("videos") / "scene.mkv", audio_codec="pcm_s16le")
