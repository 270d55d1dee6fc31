"""Array-namespace evaluator: every metric of the VSSL negative-audio protocol on NumPy or CuPy.

Public names are imported lazily, so `import vsslrt.eval` stays cheap and never imports CuPy.
"""

from __future__ import annotations

from vsslrt.lazy import lazy_exports

_EXPORTS = {
    "evaluate": "vsslrt.eval.functional",
    "Evaluator": "vsslrt.eval.state",
    "EvalConfig": "vsslrt.eval.config",
    "make_config": "vsslrt.eval.config",
    "metric_keys": "vsslrt.eval.keys",
    "validate_maps": "vsslrt.eval.validate",
    "load_maps": "vsslrt.eval.validate",
    "parse_thresholds": "vsslrt.eval.validate",
    "upsample": "vsslrt.eval.interp",
    "weight_matrix": "vsslrt.eval.interp",
    "auroc": "vsslrt.eval.calibration",
    "f_score": "vsslrt.eval._stats",
    "candidate_grid": "vsslrt.eval.calibration",
    "quantile": "vsslrt.eval.calibration",
    "max_value_distributions": "vsslrt.eval.calibration",
    "max_value_summary": "vsslrt.eval.calibration",
    "threshold_from_quantile": "vsslrt.eval.calibration",
    "threshold_max_f": "vsslrt.eval.calibration",
    "threshold_balanced_accuracy": "vsslrt.eval.calibration",
    "sweep_curves": "vsslrt.eval.calibration",
    "write_json": "vsslrt.eval.report",
    "read_json": "vsslrt.eval.report",
    "write_markdown": "vsslrt.eval.report",
    "format_markdown": "vsslrt.eval.report",
    "summary_table": "vsslrt.eval.report",
    "summary_rows": "vsslrt.eval.report",
    "headline_threshold": "vsslrt.eval.report",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("vsslrt.eval", _EXPORTS, globals())
