"""What the Ray tests share: Ray itself (the `dist` extra, or the module is skipped), the is3-mini
data, their marks and one local Ray instance per module.

Import this module first in a test module (`from ray_fixtures import MARKS, IS3_MINI, local_ray, ray`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'vsslrt[dist]' to run the distributed tests")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'vsslrt[dist]'")

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))
MARKS = [
    pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}"),
    pytest.mark.slow,
    # Ray Data reads its own deprecated settings when it logs its context; nothing vsslrt can change.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module; run_bench_ray attaches to it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
