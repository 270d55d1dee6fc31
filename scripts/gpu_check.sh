#!/usr/bin/env bash
# GPU check: run every gpu/cupy/trt-marked test and the GPU benchmarks on a machine with a CUDA device.
#
# Works from a plain clone without network access, on a Python that already has PyTorch, CuPy, onnx,
# onnxruntime (CPU build is enough), NumPy, SciPy, Pillow, matplotlib, Rich and Typer. Installs nothing
# from the network. Exports its ONNX models from random-initialised weights on the spot.
# Usage: bash scripts/gpu_check.sh [OUTDIR]      (default OUTDIR: ${OUT:-gpu-check})
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-gpu-check}}"
mkdir -p "$OUTDIR"
PY="${PYTHON:-python3}"
export VSSLRT_REQUIRE_GPU=1 PYTHONUNBUFFERED=1

"$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$OUTDIR/install.log" 2>&1 \
  || { echo "editable install failed, see $OUTDIR/install.log"; exit 1; }
"$PY" -m vsslrt doctor --json >"$OUTDIR/doctor.json" 2>&1 || true
cat "$OUTDIR/doctor.json"

status=0
# Without TensorRT the trt-marked tests are deselected (not failed): VSSLRT_REQUIRE_GPU=1 still makes
# every gpu/cupy test fail rather than skip when CuPy or the device is missing.
if "$PY" -c "import tensorrt" 2>/dev/null; then MARKERS="gpu or cupy or trt"; else MARKERS="(gpu or cupy) and not trt"; fi
echo "== tests marked: $MARKERS"
"$PY" -m pytest tests -m "$MARKERS" -q -p no:cacheprovider \
  --junitxml="$OUTDIR/gpu-tests.xml" 2>&1 | tee "$OUTDIR/gpu-tests.log" || status=1

echo "== evaluator benchmark: CuPy vs NumPy, vectorised vs per-sample loop"
"$PY" -m pytest benchmarks/bench_eval.py -q -p no:cacheprovider --benchmark-only \
  --benchmark-json="$OUTDIR/bench_eval.json" 2>&1 | tee "$OUTDIR/bench_eval.log" || status=1

if "$PY" -c "import tensorrt" 2>/dev/null; then
  echo "== TensorRT build + parity + latency (EZ-VSL, fp32 and fp16)"
  for prec in fp32 fp16; do
    "$PY" -m vsslrt build --model ezvsl --random-init --backend trt --precision "$prec" \
      --out "$OUTDIR/engines/ezvsl-$prec" 2>&1 | tee -a "$OUTDIR/trt.log" || status=1
    "$PY" -m vsslrt bench --engine "$OUTDIR/engines/ezvsl-$prec" --latency-only \
      --out "$OUTDIR/runs/ezvsl-$prec" 2>&1 | tee -a "$OUTDIR/trt.log" || status=1
  done
else
  echo "== TensorRT not installed: engine build/parity/latency skipped"
fi

if "$PY" -c "import torch, cupy, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "== torch backend end to end on the GPU vs the reference style in PyTorch eager (EZ-VSL, random init)"
  "$PY" benchmarks/bench_torch_gpu.py --n 256 --engine "$OUTDIR/engines/ezvsl-torch" \
    --json "$OUTDIR/bench_torch_gpu.json" 2>&1 | tee "$OUTDIR/bench_torch_gpu.log" || status=1
else
  echo "== torch without CUDA (or no CuPy): torch-backend GPU run skipped"
fi

echo "== summary"
"$PY" - "$OUTDIR" <<'PYEOF'
import json, sys, pathlib, xml.etree.ElementTree as ET
out = pathlib.Path(sys.argv[1])
rows = []
junit = out / "gpu-tests.xml"
if junit.exists():
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    rows.append(("gpu tests", f"{suite.get('tests')} run, {suite.get('failures')} failed, "
                 f"{suite.get('errors')} errors, {suite.get('skipped')} skipped"))
bench = out / "bench_eval.json"
if bench.exists():
    for b in json.loads(bench.read_text())["benchmarks"]:
        extra = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["extra_info"].items())
        rows.append((b["name"], f"median {b['stats']['median']*1e3:.2f} ms; {extra}"))
torch_gpu = out / "bench_torch_gpu.json"
if torch_gpu.exists():
    t = json.loads(torch_gpu.read_text())
    rows.append(("torch backend e2e (GPU)", f"{t['vsslrt_torch_gpu_samples_per_s']:.1f} vs {t['reference_eager_gpu_samples_per_s']:.1f} "
                 f"samples/s reference style: {t['speedup_vs_reference']:.2f}x; max |map diff| {t['max_abs_map_diff']:.2g}"))
for run in sorted((out / "runs").glob("*/latency.json")) if (out / "runs").exists() else []:
    lat = json.loads(run.read_text())
    rows.append((run.parent.name, json.dumps(lat.get("summary", lat))[:200]))
width = max((len(r[0]) for r in rows), default=10)
for name, value in rows:
    print(f"{name:<{width}}  {value}")
PYEOF
exit $status
