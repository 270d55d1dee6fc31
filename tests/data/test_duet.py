"""Duet lists (AVGN's `vggss_duet_test.csv`, or `id,mix_id`) over a VGG-SS or manifest folder: the mixtures
as sample-index pairs, and every bad row listed at once with its file, line and fix."""

from __future__ import annotations

import pytest

from vsslrt.data.datasets import load_dataset
from vsslrt.data.problems import DatasetProblemsError
from vsslrt.errors import DataError


def _names(root, kind="vggss"):
    return [s.name for s in load_dataset(kind, root)]


def test_avgn_list_over_vggss(vggss_dir):
    a, b, c, d = _names(vggss_dir)
    (vggss_dir / "vggss_duet_test.csv").write_text(
        f"id,class,mix_id,mix_class\n{a},dog,{c},car\n{c},car,{b},cat\n\n{d},dog,{a},dog\n")
    ds = load_dataset("vggss-duet", vggss_dir)
    assert ds.kind == "vggss-duet" and len(ds) == 4  # the base samples, unchanged
    assert ds.mixtures == ((0, 2), (2, 1), (3, 0))
    assert ds.mixture_rows[2].endswith("vggss_duet_test.csv:5")
    assert ds.sources["duet_list"].endswith("vggss_duet_test.csv") and "annotations" in ds.sources


def test_two_columns_without_header_over_a_manifest(manifest_dir):
    names = _names(manifest_dir, "manifest")
    (manifest_dir / "duet_test.csv").write_text(f"{names[0]},{names[1]}\n{names[1]},{names[0]}\n{names[0]},{names[1]}\n")
    ds = load_dataset("manifest-duet", manifest_dir, validate=False)
    assert ds.mixtures == ((0, 1), (1, 0), (0, 1))
    warnings = [p for p in ds.problems if p.severity == "warning" and "duet_test" in p.where]
    assert len(warnings) == 1 and "duet_test.csv:3" in warnings[0].where and "evaluated twice" in warnings[0].message


def test_every_bad_row_is_listed_with_its_line_and_fix(vggss_dir):
    a, b, c, _ = _names(vggss_dir)
    (vggss_dir / "vggss_duet_test.csv").write_text(
        f"id,class,mix_id,mix_class\n{a},dog,{a},dog\n{a},dog,{b}\n{a},dog,,cat\n{a},dog,nope_000009,x\n{b},cat,{c},car\n")
    with pytest.raises(DatasetProblemsError) as err:
        load_dataset("vggss-duet", vggss_dir)
    text = str(err.value)
    assert f"vggss_duet_test.csv:2: expected two different clips, got clip {a} paired with itself" in text
    assert "vggss_duet_test.csv:3: expected id,class,mix_id,mix_class or id,mix_id" in text
    assert "vggss_duet_test.csv:4: expected two clip ids, got an empty id" in text
    assert "vggss_duet_test.csv:5: names clip nope_000009, which the data folder does not have" in text
    assert "--skip-bad" in text


def test_skip_bad_turns_unknown_clip_rows_into_listed_warnings(vggss_dir):
    a, b, _, _ = _names(vggss_dir)
    (vggss_dir / "vggss_duet_test.csv").write_text(f"{a},dog,nope_000009,x\n{a},dog,{b},cat\n")
    ds = load_dataset("vggss-duet", vggss_dir, validate=False)
    assert ds.mixtures == ((0, 1),) and len(ds.unknown_clip_rows) == 1
    kept = ds.without_unknown_clips()
    assert not [p for p in kept.problems if p.severity == "error"]
    (warning,) = [p for p in kept.problems if p.severity == "warning" and "duet_test" in p.where]
    assert warning.where.endswith("vggss_duet_test.csv:1") and warning.message.startswith("left out (--skip-bad): names clip nope_000009")
    assert kept.mixtures == ds.mixtures and kept.unknown_clip_rows == ()


def test_missing_or_empty_list(vggss_dir):
    with pytest.raises(DataError, match=r"duet list: expected one of .*vggss_duet_test.csv, .*duet_test.csv, got none"):
        load_dataset("vggss-duet", vggss_dir)
    (vggss_dir / "vggss_duet_test.csv").write_text("id,class,mix_id,mix_class\n")
    with pytest.raises(DataError, match="expected at least one mixture row, got none"):
        load_dataset("vggss-duet", vggss_dir)
