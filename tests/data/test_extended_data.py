"""Extended Flickr / VGG-SS lists (non-sounding samples) and the Flickr consensus ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.data.datasets import load_dataset
from vsslrt.data.extended import ExtendedDataset
from vsslrt.data.flickr import consensus_map, gt_weights
from vsslrt.data.problems import DatasetProblemsError
from vsslrt.data.validation import validate_dataset
from vsslrt.errors import DataError
from vsslrt.eval.protocols import applicable_protocols, check_applicable
from vsslrt.errors import InputError


def test_extended_flickr(flickr_dir):
    (flickr_dir / "flickr_test_plus_silent.csv").write_text(
        "video,audio,label\n1001,1002,non-sounding\n1003,1001,non-sounding\n")
    ds = load_dataset("flickr-ext", flickr_dir)
    assert isinstance(ds, ExtendedDataset) and ds.kind == "flickr-ext" and len(ds) == 5
    assert ds.positive.tolist() == [True, True, True, False, False]
    assert ds.n_boxes.tolist() == [2, 2, 2, 0, 0]
    negative = ds[3]
    assert negative.name == "1001_1002" and negative.image.name == "1001.jpg" and negative.audio.name == "1002.wav"
    assert negative.group == ds[1].group  # the same image as positive 1001
    assert not ds.gt_maps([3]).any() and not gt_weights(ds, [3]).any()
    assert [p.name for p in applicable_protocols(ds)] == ["negative-audio", "slavc-extended", "acl-extended", "retrieval"]
    with pytest.raises(InputError, match="protocol slavc-extended: expected a dataset of kind"):
        check_applicable("slavc-extended", load_dataset("flickr", flickr_dir))


def test_extended_list_naming_missing_clips_is_listed(flickr_dir):
    (flickr_dir / "flickr_test_plus_silent.csv").write_text(
        "video,audio,label\n1001,9999,non-sounding\n8888,1002,non-sounding\n")
    with pytest.raises(DatasetProblemsError) as info:
        load_dataset("flickr-ext", flickr_dir)
    text = info.value.one_line()
    assert "9999.wav" in text and "8888.jpg" in text
    ds = load_dataset("flickr-ext", flickr_dir, validate=False)
    report = validate_dataset(ds)
    assert sorted(report.bad_samples) == [3, 4] and report.only_bad_files  # --skip-bad leaves them out


def test_extended_list_bad_rows(flickr_dir):
    path = flickr_dir / "flickr_test_plus_silent.csv"
    path.write_text("image,sound\n1001,1002\n")
    with pytest.raises(DataError, match="expected the header video,audio,label, got image,sound"):
        load_dataset("flickr-ext", flickr_dir)
    path.write_text("video,audio,label\n1001,1002,sounding\n1002,1003,non-sounding\n")
    with pytest.raises(DatasetProblemsError, match="expected the label 'non-sounding', got 'sounding'"):
        load_dataset("flickr-ext", flickr_dir)
    path.unlink()
    with pytest.raises(DataError, match="flickr_test_plus_silent.csv"):
        load_dataset("flickr-ext", flickr_dir)


def test_extended_vggss(vggss_dir):
    (vggss_dir / "vggss_test.csv").write_text("clipA_000001\nclipB_000002\nclipD_000004\n")
    (vggss_dir / "vggss_test_plus_silent.csv").write_text(
        "video,audio,label\nclipA_000001,clipD_000004,non-sounding\nclipB_000002,clipA_000001,non-sounding\n")
    ds = load_dataset("vggss-ext", vggss_dir)
    assert ds.names == ["clipA_000001", "clipB_000002", "clipD_000004",
                        "clipA_000001_clipD_000004", "clipB_000002_clipA_000001"]
    assert ds.positive.tolist() == [True, True, True, False, False]
    assert ds[3].onscreen == ds[0].onscreen and ds[3].group == ds[0].group
    # offscreen clips keep pointing at the right (renumbered) samples
    assert {c.name: c.index for clips in ds.class_clips.values() for c in clips}["clipD_000004"] == 2
    np.testing.assert_array_equal(gt_weights(ds), ds.gt_maps().astype(np.float32))


def test_flickr_consensus_weights(flickr_dir):
    ds = load_dataset("flickr", flickr_dir)
    w = gt_weights(ds)
    union = ds.gt_maps()
    assert w.dtype == np.float32 and set(np.unique(w).tolist()) <= {0.0, 0.5, 1.0}
    np.testing.assert_array_equal(w > 0, union)  # the union is unchanged, only weighted
    # clip 1001: boxes [0, 17, 175, 224] and [0, 0, 112, 56] overlap on rows 17-55, columns 0-111
    assert w[1, 30, 50] == 1.0 and w[1, 200, 100] == 0.5 and w[1, 5, 50] == 0.5 and w[1, 5, 150] == 0.0
    grid = consensus_map(np.array([[0, 0, 10, 10], [5, 5, 20, 20], [0, 0, 7, 7]]))
    assert grid[0, 0] == 1.0 and grid[15, 15] == 0.5 and grid[30, 30] == 0.0


def test_other_datasets_unchanged(vggss_dir, is3_dir):
    for kind, root in (("vggss", vggss_dir), ("is3", is3_dir)):
        ds = load_dataset(kind, root)
        np.testing.assert_array_equal(gt_weights(ds), ds.gt_maps().astype(np.float32))
