"""JSON and Markdown writers."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from vsslrt.eval import format_markdown, read_json, summary_table, write_json, write_markdown
from vsslrt.eval.report import format_value
from vsslrt.models import Threshold

METRICS = {"pos/ciou@median": 61.234, "pos/miou@median": 40.0, "pos/auc@median": 42.5,
           "silence/pia@median": 3.0, "noise/pia@median": 4.0, "offscreen/pia@median": float("nan"),
           "f/pos_neg@median": 55.5, "f_auc_aoc/pos_neg@median": 57.0, "max/pos/mean": 0.612345,
           "n_samples": 12.0}


def test_json_round_trip_nan_as_null_and_numpy_values(tmp_path):
    meta = {"protocol": "fixed", "seed": np.int64(3), "thresholds": {"max": Threshold(0.6, "given")},
            "path": tmp_path}
    path = write_json(METRICS, tmp_path / "sub" / "metrics.json", meta=meta)
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["metrics"]["offscreen/pia@median"] is None
    back = read_json(path)
    assert math.isnan(back["metrics"]["offscreen/pia@median"])
    assert back["metrics"]["pos/ciou@median"] == 61.234
    assert back["meta"]["seed"] == 3 and back["meta"]["thresholds"]["max"] == {"value": 0.6, "provenance": "given"}
    assert back["meta"]["path"] == str(tmp_path)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json({"a": 1.0}, target)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_json({"a": 2.0}, target)
    assert json.loads(target.read_text())["metrics"] == {"a": 1.0}  # the old report survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_markdown_has_summary_and_every_metric(tmp_path):
    path = write_markdown(METRICS, tmp_path / "report.md", title="Run", meta={"protocol": "fixed"})
    text = path.read_text()
    assert text.startswith("# Run\n") and "- protocol: `\"fixed\"`" in text
    assert "| median | 61.23 | 40.00 | 42.50 | 3.00 | 4.00 | nan | 55.50 | 57.00 |" in text
    assert "| `max/pos/mean` | 0.6123 |" in text and "| `n_samples` | 12 |" in text
    assert format_markdown(METRICS) == format_markdown(METRICS)


def test_summary_table_paper_mode():
    headers, rows = summary_table({"CIoU": 12.345, "F_Pos_Neg": 50.0, "Median_Max_Heatmap": 0.5, "other": 1.0})
    assert headers == ["metric", "value"]
    assert rows == [["CIoU", "12.35"], ["F_Pos_Neg", "50.00"], ["Median_Max_Heatmap", "0.5000"]]


def test_format_value():
    assert format_value("n_empty_gt", 2.0) == "2"
    assert format_value("max/auroc/pos_vs_noise", 0.75) == "0.7500"
    assert format_value("pos/ciou@fixed", float("nan")) == "nan"


def test_a_directory_is_not_a_report_path(tmp_path):
    from vsslrt.errors import InputError

    with pytest.raises(InputError, match="expected a file path for the report, got a directory"):
        write_json({"a": 1.0}, tmp_path)
