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


FIXED = {
    **{f"pos/{m}@{t}": v for t, base in (("median", 10.0), ("fixed", 20.0), ("maxq3", 30.0), ("a", 40.0))
       for m, v in (("ciou", base + 1), ("miou", base + 2), ("auc", base + 3))},
    **{f"{n}/pia@{t}": base + i for t, base in (("median", 10.0), ("fixed", 20.0), ("maxq3", 30.0), ("a", 40.0))
       for i, n in enumerate(("silence", "noise", "offscreen"), start=4)},
    **{f"{f}@{t}": base + i for t, base in (("median", 10.0), ("fixed", 20.0), ("maxq3", 30.0), ("a", 40.0))
       for i, f in ((7, "f/pos_neg"), (8, "f_auc_aoc/pos_neg"))},
    "max/auroc/pos_vs_silence": 0.91, "max/auroc/pos_vs_noise": 0.99, "max/auroc/pos_vs_offscreen": float("nan"),
}


def test_headline_threshold_prefers_maxq3_then_the_first_universal_name_then_fixed():
    from vsslrt.eval import headline_threshold

    assert headline_threshold(FIXED) == "maxq3"
    assert headline_threshold({k: v for k, v in FIXED.items() if "maxq3" not in k}) == "a"
    assert headline_threshold({"pos/miou@median": 1.0, "pos/miou@fixed": 2.0}) == "fixed"


def test_summary_rows_lead_with_median_localisation_then_the_headline_threshold_and_margins():
    from vsslrt.eval import summary_rows

    baselines = {"centre": {"pos/ciou@median": 12.5, "silence/pia@maxq3": 30.0, "noise/pia@maxq3": float("nan"),
                            "max/auroc/pos_vs_silence": 0.5},
                 "whole": {"pos/ciou@median": 9.0, "silence/pia@maxq3": 100.0}}
    rows = summary_rows(FIXED, baselines)
    assert rows == [
        ("pos cIoU@median", "11.00", "-1.50"),  # higher is better: 11 - 12.5
        ("pos AUC@median", "13.00", ""),
        ("pos mIoU@maxq3", "32.00", ""),
        ("silence pIA@maxq3", "34.00", "-4.00"),  # lower is better: lowest baseline 30 - 34
        ("noise pIA@maxq3", "35.00", ""),  # the only baseline value is NaN: no margin
        ("offscreen pIA@maxq3", "36.00", ""),
        ("F pos/neg@maxq3", "37.00", ""),
        ("F AUC/AOC@maxq3", "38.00", ""),
        ("max AUROC pos vs silence", "0.91", ""),  # separability rows never get a margin
        ("max AUROC pos vs noise", "0.99", ""),
        ("max AUROC pos vs offscreen", "nan", ""),
    ]
    assert [row[0] for row in summary_rows(FIXED)] == [row[0] for row in rows]
    assert all(margin == "" for _, _, margin in summary_rows(FIXED))


def test_summary_rows_and_summary_table_read_the_same_numbers():
    from vsslrt.eval import summary_rows

    headers, table = summary_table(FIXED)
    assert [row[0] for row in table] == ["median", "fixed", "maxq3", "a"]
    at = {row[0]: dict(zip(headers[1:], row[1:])) for row in table}
    rows = {label: value for label, value, _ in summary_rows(FIXED)}
    assert rows["pos cIoU@median"] == at["median"]["cIoU"] and rows["pos AUC@median"] == at["median"]["AUC"]
    assert rows["pos mIoU@maxq3"] == at["maxq3"]["mIoU"] and rows["F pos/neg@maxq3"] == at["maxq3"]["F"]
    for n in ("silence", "noise", "offscreen"):
        assert rows[f"{n} pIA@maxq3"] == at["maxq3"][f"pIA {n}"]


def test_paper_summary_rows_are_a_subset_of_the_paper_table():
    from vsslrt.eval import summary_rows

    metrics = {"CIoU": 40.0, "AUC": 41.0, "CIoU_adap": 1.0, "CIoU_maxq3": 42.0, "pIA_Silence_MaxQ3": 3.0,
               "pIA_Noise_MaxQ3": 4.0, "pIA_OffScreen_MaxQ3": 5.0, "F_Pos_Neg": 60.0, "F_AUC_AOC_Pos_Neg": 61.0,
               "Median_Max_Heatmap": 0.5}
    rows = summary_rows(metrics, {"centre": {"CIoU": 30.0, "pIA_Noise_MaxQ3": 1.0}})
    assert [(label, value) for label, value, _ in rows] == [
        ("pos cIoU (pooled, Q1)", "40.00"), ("pos AUC (pooled, Q1)", "41.00"), ("pos mIoU@maxq3", "42.00"),
        ("silence pIA@maxq3", "3.00"), ("noise pIA@maxq3", "4.00"), ("offscreen pIA@maxq3", "5.00"),
        ("F pos/neg@maxq3", "60.00"), ("F AUC/AOC@maxq3", "61.00")]
    assert rows[0][2] == "+10.00" and rows[4][2] == "-3.00"
    _, table = summary_table(metrics)
    assert [k for k, _ in table] == ["CIoU", "AUC", "CIoU_adap", "CIoU_maxq3", "pIA_Silence_MaxQ3", "pIA_Noise_MaxQ3",
                                     "pIA_OffScreen_MaxQ3", "F_Pos_Neg", "F_AUC_AOC_Pos_Neg", "Median_Max_Heatmap"]
