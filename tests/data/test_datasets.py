"""Dataset adapters (VGG-SS, IS3, Flickr, manifest) and ground-truth maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.data.conftest import MANIFEST_RECORDS, VGGSS_RECORDS, write_image, write_json, write_wav
from vsslrt.data.datasets import DATASET_KINDS, load_dataset
from vsslrt.data.records import boxes_from_normalised, boxes_from_pixels, gt_map
from vsslrt.data.validation import validate_dataset
from vsslrt.errors import DataError, InputError


def _reference_gt(boxes):
    """bbox2gtmap for vggss / is3: zero map, set each box (end-exclusive), union."""
    gt = np.zeros((224, 224))
    for xmin, ymin, xmax, ymax in boxes:
        temp = np.zeros((224, 224))
        temp[ymin:ymax, xmin:xmax] = 1
        gt += temp
    gt[gt > 0] = 1
    return gt.astype(bool)


def test_gt_maps_follow_the_protocol_conversions():
    normalised = np.array([[0.1, 0.2, 0.5, 0.6], [-0.2, 0.5, 0.3, 1.7], [0.999, 0.0, 1.0, 0.004]])
    pixels = boxes_from_normalised(normalised)
    # clip to [0, 1], * 224, truncate: 0.1 * 224 = 22.4 -> 22, 1.7 -> 1.0 -> 224, 0.004 * 224 = 0.896 -> 0
    np.testing.assert_array_equal(pixels, [[22, 44, 112, 134], [0, 112, 67, 224], [223, 0, 224, 0]])
    np.testing.assert_array_equal(gt_map(pixels), _reference_gt(pixels))
    assert gt_map(pixels)[0:0].size == 0 and not gt_map(pixels[2:])[0].any()  # an empty box adds nothing
    np.testing.assert_array_equal(boxes_from_pixels([[10.9, 20.5, 100.99, 200.0]]), [[10, 20, 100, 200]])
    assert gt_map(np.zeros((0, 4))).sum() == 0


def test_vggss_adapter(vggss_dir):
    ds = load_dataset("vggss", vggss_dir)
    assert ds.kind == "vggss" and len(ds) == 4
    assert ds.names == ["clipA_000001", "clipB_000002", "clipC_000003", "clipD_000004"]  # 'sub/' cut off
    b = ds[1]
    assert b.image == vggss_dir / "frames" / "clipB_000002.jpg" and b.audio == vggss_dir / "audio" / "clipB_000002.wav"
    assert b.sound_class == "cat" and b.onscreen == ("cat",)
    np.testing.assert_array_equal(b.boxes, [[0, 0, 224, 112], [0, 112, 67, 224]])
    np.testing.assert_array_equal(ds.gt_maps([1])[0], _reference_gt(b.boxes))
    assert ds.groups.tolist() == [0, 1, 2, 3]
    assert ds.offscreen_classes(0) == ["car", "cat"]
    assert [c.index for c in ds.class_clips["dog"]] == [0, 3]
    # The out-of-range box is clipped, as the protocol does, and reported as a warning.
    warnings = validate_dataset(ds).warnings
    assert any("clipB_000002" in p.where and "clipped" in p.message for p in warnings)


def test_vggss_metadata_folder_and_class_field_fallback(vggss_dir, tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (vggss_dir / "vggss_annotations.json").rename(meta / "vggss.json")
    (vggss_dir / "vggss_class_files_dict.json").unlink()
    ds = load_dataset("vggss", vggss_dir, metadata_dir=meta)
    assert ds.sources["annotations"].endswith("vggss.json")
    assert "built from the 'class' field" in ds.sources["class_dict"]
    assert ds[0].sound_class == "dog" and ds[3].onscreen == ("dog",)
    with pytest.raises(DataError, match=r"VGG-SS annotations: expected one of .*vggss_annotations\.json.*Hint: pass the folder"):
        load_dataset("vggss", vggss_dir)


def test_vggss_second_annotation_file_is_checked_for_agreement(vggss_dir):
    """Protocol Q15: vsslrt reads one file for every model and compares the other one beside it."""
    same = [dict(r) for r in VGGSS_RECORDS]
    write_json(vggss_dir / "vggss.json", same)
    ds = load_dataset("vggss", vggss_dir)
    assert ds.sources["agreement_check"].startswith("vggss.json: 4 clips in both, 0 with different boxes")
    assert not any("Q15" in p.message for p in validate_dataset(ds).warnings)

    other = [dict(r) for r in VGGSS_RECORDS[:3]]
    other[2]["bbox"] = [[0.25, 0.25, 0.7, 0.75]]  # clipC differs; clipD is missing
    other[1]["bbox"] = [[0.0, 0.0, 1.0, 0.5], [0.0, 0.5, 0.3, 1.0]]  # clipB equal after clipping
    write_json(vggss_dir / "vggss.json", other)
    ds = load_dataset("vggss", vggss_dir)
    messages = [p.message for p in validate_dataset(ds).warnings if "Q15" in p.message]
    assert any("1 of 3 shared clips have other boxes" in m and "clipC_000003" in m for m in messages)
    assert any("1 clips only in vggss_annotations.json, 0 only in vggss.json" in m for m in messages)
    assert ds.names == [r["file"].split("/")[-1] for r in VGGSS_RECORDS]  # the samples come from one file


def test_is3_adapter_groups_and_onscreen_classes(is3_dir):
    ds = load_dataset("is3", is3_dir)
    assert ds.names == ["dog_piano_11_dog", "dog_piano_11_piano", "cat_car_12_car", "bird_dog_bird", "bird_dog_dog", "bird_dog_7_bird"]
    # Groups are image pairs: the exact name minus its target, not a glob prefix (Q16 fixed).
    assert ds.groups.tolist() == [0, 0, 1, 2, 2, 3]
    assert ds[0].onscreen == ("dog", "piano") and ds[1].onscreen == ("dog", "piano")
    assert ds[2].onscreen == ("car",)  # "cat" is no class of this dictionary
    assert ds[3].onscreen == ("bird", "dog")
    # "bird_dog_7_bird": its sibling is missing from the list; the name still puts dog on screen.
    assert ds[5].onscreen == ("bird", "dog")
    assert ds[0].image == is3_dir / "images" / "dog_piano_11_dog.jpg"
    assert ds[0].audio == is3_dir / "audio_wav" / "dog_piano_11_dog.wav"  # basenames of the absolute paths
    np.testing.assert_array_equal(ds[0].boxes, [[10, 20, 100, 200]])
    np.testing.assert_array_equal(ds[2].boxes, [[50, 60, 51, 61]])
    assert ds.offscreen_classes(0) == ["bird", "car"]


def test_is3_cat_class_comes_from_the_dictionary_when_present(is3_dir):
    # "cat" is a class only when the dictionary has it: here it has no clips, so it is not drawable.
    classes = json.loads((is3_dir / "class_files_dict.json").read_text())
    classes["cat"] = []
    write_json(is3_dir / "class_files_dict.json", classes)
    ds = load_dataset("is3", is3_dir)
    assert ds[2].onscreen == ("car", "cat")
    assert "cat" not in ds.offscreen_classes(0)


def test_is3_annotation_list_and_missing_class_dict(is3_dir):
    listed = [{"image": f"x/{n}.jpg", "audio": f"y/{n}.wav"} for n in ("dog_piano_11_piano", "cat_car_12_car")]
    write_json(is3_dir / "IS3_annotation.json", listed)
    (is3_dir / "class_files_dict.json").unlink()
    ds = load_dataset("is3", is3_dir)
    assert ds.names == ["dog_piano_11_piano", "cat_car_12_car"] and "IS3_annotation.json" in ds.sources["annotations"]
    assert ds.class_clips.keys() == {"piano", "car"}
    assert "derived from the last token" in ds.sources["class_dict"]
    assert any("no IS3 class dictionary" in p.message for p in ds.problems)


def test_is3_mini_adapter(is3_mini):
    ds = load_dataset("is3", is3_mini, check_headers=True)
    assert len(ds) == 16
    by_name = {s.name: s for s in ds}
    lion_cat = by_name["lion_cat_872_cat"]
    assert lion_cat.sound_class == "cat" and lion_cat.onscreen == ("cat", "lion")
    np.testing.assert_array_equal(lion_cat.boxes, [[142, 121, 191, 193]])
    assert by_name["chicken_beach_chicken"].onscreen == ("chicken",)
    records = json.loads((is3_mini / "synthetic3240_bbox.json").read_text())
    maps = ds.gt_maps()
    for rec, gt in zip(records, maps):
        assert rec["image"].split("/")[-1] == by_name[rec["image"].split("/")[-1][:-4]].image.name
        np.testing.assert_array_equal(gt, _reference_gt([[int(v) for v in rec["gt_box"]]]))
    assert maps.dtype == bool and maps.shape == (16, 224, 224)
    assert sorted(set(ds.groups.tolist())) == list(range(16))


def test_flickr_adapter(flickr_dir):
    ds = load_dataset("flickr", flickr_dir)
    assert ds.names == ["1003", "1001", "1002"]  # the list file's order
    assert ds.class_clips is None and ds[0].sound_class is None
    # int(224 * v / 256) of both annotators' boxes
    np.testing.assert_array_equal(ds[1].boxes, [[0, 17, 175, 224], [0, 0, 112, 56]])
    assert ds.offscreen_others(0) == [1, 2]
    (flickr_dir / "flickr_test.csv").unlink()
    assert load_dataset("flickr", flickr_dir).names == ["1001", "1002", "1003"]


def test_manifest_jsonl_adapter(manifest_dir):
    ds = load_dataset("manifest", manifest_dir)
    assert len(ds) == 4 and ds.names[0] == "snd/s0_dog"
    assert ds.groups.tolist() == [0, 0, 1, 2]
    assert ds[0].onscreen == ("bell", "dog") and ds[1].onscreen == ("bell", "dog")
    assert ds.offscreen_classes(0) == ["car"] and ds.offscreen_classes(2) == ["bell", "dog"]
    np.testing.assert_array_equal(ds[0].boxes, [[22, 22, 89, 112]])
    assert ds[3].boxes.shape == (0, 4) and not ds.gt_maps([3]).any()
    assert [c.index for c in ds.class_clips["dog"]] == [0, 3]


def test_manifest_csv_equals_jsonl(manifest_dir):
    ds_json = load_dataset("manifest", manifest_dir)
    lines = ["image,audio,boxes,class,group"]
    for rec in MANIFEST_RECORDS:
        boxes = ";".join(" ".join(str(v) for v in b) for b in rec["boxes"])
        lines.append(f"{rec['image']},{rec['audio']},{boxes},{rec['class']},{rec.get('group', '')}")
    (manifest_dir / "manifest.jsonl").unlink()
    (manifest_dir / "manifest.csv").write_text("\n".join(lines) + "\n")
    ds_csv = load_dataset("manifest", manifest_dir)
    assert ds_csv.names == ds_json.names and ds_csv.groups.tolist() == ds_json.groups.tolist()
    for a, b in zip(ds_csv, ds_json):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert (a.image, a.audio, a.sound_class, a.onscreen) == (b.image, b.audio, b.sound_class, b.onscreen)


def test_manifest_without_classes_draws_from_other_images(tmp_path):
    root = tmp_path / "plain"
    for i in range(3):
        write_image(root / f"{i}.png", seed=i)
        write_wav(root / f"{i}.wav", 0.3, seed=i)
    recs = [{"image": f"{i}.png", "audio": f"{i}.wav", "group": "same" if i < 2 else None} for i in range(3)]
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    ds = load_dataset("manifest", root)
    assert ds.class_clips is None
    assert ds.offscreen_others(0) == [2] and ds.offscreen_others(2) == [0, 1]


def test_unknown_kind_and_missing_folder():
    with pytest.raises(InputError, match=r"dataset: expected one of vggss, is3, flickr, manifest, flickr-ext, vggss-ext, avsbench-s4, avsbench-ms3, is3-masks, vggss-duet, manifest-duet, got 'coco'"):
        load_dataset("coco", ".")
    with pytest.raises(DataError, match="expected a directory"):
        load_dataset("is3", "/nonexistent/folder")
    assert DATASET_KINDS == ("vggss", "is3", "flickr", "manifest", "flickr-ext", "vggss-ext", "avsbench-s4", "avsbench-ms3",
                             "is3-masks", "vggss-duet", "manifest-duet")
