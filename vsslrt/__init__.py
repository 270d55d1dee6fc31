"""vsslrt: fast, honest evaluation and deployment of visual sound source localization models.

Importing this package is cheap: it never imports torch, onnxruntime, tensorrt or cupy. The names
users reach for are importable from here and load their module on first use:

    run_bench, BenchSettings, EngineResult     the positive/negative benchmark   (vsslrt.pipeline.bench, .results)
    calibrate, Calibration, load_run           thresholds from a finished run    (vsslrt.pipeline.calibrate)
    Localizer, LocalizationResult              deployment on image/audio pairs   (vsslrt.pipeline.localize)
    StreamSession, localize_video              deployment on streams and videos  (vsslrt.pipeline.stream, .video)
    build_engine_folder, open_encoders         engine folders                    (vsslrt.pipeline.build, .encoders)
    load_dataset                               the dataset adapters              (vsslrt.data.datasets)

The stages keep their own paths: `vsslrt.eval` (metrics, Evaluator), `vsslrt.engine` (runners),
`vsslrt.export` (PyTorch -> ONNX).
"""

from __future__ import annotations

from vsslrt.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "run_bench": "vsslrt.pipeline.bench",
    "BenchSettings": "vsslrt.pipeline.results",
    "EngineResult": "vsslrt.pipeline.results",
    "calibrate": "vsslrt.pipeline.calibrate",
    "Calibration": "vsslrt.pipeline.calibrate",
    "load_run": "vsslrt.pipeline.calibrate",
    "Localizer": "vsslrt.pipeline.localize",
    "LocalizationResult": "vsslrt.pipeline.localize",
    "StreamSession": "vsslrt.pipeline.stream",
    "localize_video": "vsslrt.pipeline.video",
    "build_engine_folder": "vsslrt.pipeline.build",
    "open_encoders": "vsslrt.pipeline.encoders",
    "load_dataset": "vsslrt.data.datasets",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports("vsslrt", _EXPORTS, globals())
