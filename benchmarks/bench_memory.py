"""Peak resident memory of a benchmark run as the dataset grows: state must grow with per-sample
scalars only, never with maps.

Writes synthetic test splits of increasing size (`vsslrt.data.synth`), runs the full pipeline
(model + four baselines, OGL, calibration sweep) with a tiny engine in a fresh process per size,
and reports peak RSS (ru_maxrss) and its growth per sample. A map-retaining bug would show as
~4 x 4 x 50,176 bytes (0.8 MB) per sample; per-sample scalars cost a few kB.

Usage: python benchmarks/bench_memory.py [--sizes 500 2000 10000] [--workdir .benchmarks/memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from tiny_engine import make_tiny_engine
from vsslrt.pipeline.bench import run_bench
from vsslrt.pipeline.results import BenchSettings
data, work = Path(sys.argv[1]), Path(sys.argv[2])
engine = make_tiny_engine(work / "engine", frontend="demo")
start = time.perf_counter()
(result,) = run_bench([engine], BenchSettings(dataset="manifest", data_dir=data, batch=64, workers=2), work / "run")
print(json.dumps({{"samples": result.n_samples, "seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--workdir", type=Path, default=ROOT / ".benchmarks" / "memory")
    args = parser.parse_args(argv)

    from vsslrt.data.synth import write_split

    rows = []
    for n in args.sizes:
        data = args.workdir / f"synth-{n}"
        if not (data / "manifest.jsonl").exists():
            write_split(data, n, seed=123, split="test")
        work = args.workdir / f"work-{n}"
        subprocess.run(["rm", "-rf", str(work)], check=True)
        code = CHILD.format(tests=str(ROOT / "tests" / "pipeline"))
        out = subprocess.run([sys.executable, "-c", code, str(data), str(work)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    if len(rows) > 1:
        growth = (rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]) / (rows[-1]["samples"] - rows[0]["samples"])
        print(json.dumps({"rss_growth_kb_per_sample": growth * 1024}))
    return rows


if __name__ == "__main__":
    main()
