"""AVSBench S4 / MS3 adapters and mask ground truth (vsslrt.data.avsbench, vsslrt.data.masks), and
IS3 segmentation masks (`--dataset is3-masks`), on tiny folders written in the official layouts."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsslrt.data import load_dataset
from vsslrt.data.masks import MaskDataset, read_mask, sample_gt_maps
from vsslrt.errors import DataError


def _wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.sin(np.arange(int(seconds * rate)) / 7) * 3000).astype("<i2").tobytes())


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if mode == "P":
        img = img.convert("P") if array.ndim == 3 else Image.fromarray(array, mode="L").convert("P")
        img.putdata(list(array.reshape(-1)))  # keep the values as palette indices
    elif mode == "1":
        img = img.convert("1")
    img.save(path)


def _mask(k: int, v: int) -> np.ndarray:
    m = np.zeros((224, 224), dtype=np.uint8)
    if k != 3:  # frame 3 of every video has an empty mask
        m[10 * k: 60 + 10 * k, 20 + v: 120 + v] = 255
    return m


def make_s4(root: Path) -> Path:
    data = root / "s4_data"
    videos = [("dogA", "dog"), ("catB", "cat"), ("dogC", "dog"), ("trainD", "train")]
    rows = ["vid,uid,category,split"] + [f"{n},{i},{c},test" for i, (n, c) in enumerate(videos)] + ["xtrain,9,dog,train"]
    (root / "s4_meta_data.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "s4_meta_data.csv").write_text("\n".join(rows) + "\n")
    rng = np.random.default_rng(0)
    for v, (name, cat) in enumerate(videos):
        _wav(data / "audio_wav" / "test" / cat / f"{name}.wav")
        for k in range(1, 6):
            _png(data / "visual_frames" / "test" / cat / name / f"{name}_{k}.png",
                 rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
            _png(data / "gt_masks" / "test" / cat / name / f"{name}_{k}.png", _mask(k, v), mode="1")
    return data


def make_ms3(root: Path) -> Path:
    data = root / "ms3_data"
    names = ["mixA", "mixB", "mixC"]
    (root / "ms3_meta_data.csv").write_text("video_id,split\n" + "".join(f"{n},test\n" for n in names))
    rng = np.random.default_rng(1)
    for v, name in enumerate(names):
        _wav(data / "audio_wav" / "test" / f"{name}.wav")
        for k in range(1, 6):
            _png(data / "visual_frames" / name / f"{name}.mp4_{k}.png", rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
            _png(data / "gt_masks" / "test" / name / f"{name}_{k}.png", _mask(k, v), mode="P")
    return data


def test_s4_frames_masks_videos_and_offscreen_classes(tmp_path):
    data = make_s4(tmp_path)
    ds = load_dataset("avsbench-s4", data)
    assert isinstance(ds, MaskDataset) and ds.kind == "avsbench-s4"
    assert len(ds) == 20 and ds.names[:6] == ["dogA_1", "dogA_2", "dogA_3", "dogA_4", "dogA_5", "catB_1"]
    assert ds.videos.tolist() == [v for v in range(4) for _ in range(5)]
    assert ds[7].image == data / "visual_frames" / "test" / "cat" / "catB" / "catB_3.png"
    assert ds[7].audio == data / "audio_wav" / "test" / "cat" / "catB.wav"
    gt = ds.gt_maps()
    want = np.stack([_mask(k, v) == 255 for v in range(4) for k in range(1, 6)])
    np.testing.assert_array_equal(gt, want)
    assert ds.offscreen_classes(0) == ["cat", "train"]  # never its own category
    assert ds.class_clips["dog"][1].index == 10  # the first frame of dogC carries its clip


def test_ms3_palette_masks_and_loader_batches_use_masks(tmp_path):
    from vsslrt.data import BatchLoader

    data = make_ms3(tmp_path)
    ds = load_dataset("avsbench-ms3", data)
    assert len(ds) == 15 and ds.class_clips is None
    assert ds[0].image == data / "visual_frames" / "mixA" / "mixA.mp4_1.png"
    want = np.stack([_mask(k, v) == 255 for v in range(3) for k in range(1, 6)])
    np.testing.assert_array_equal(ds.gt_maps(), want)
    loader = BatchLoader(ds, "ezvsl", batch_size=4, workers=0, noise_inputs=False)
    batches = list(loader)
    np.testing.assert_array_equal(np.concatenate([b.gt for b in batches]), want)
    assert ds.offscreen_others(0) == list(range(5, 15))  # offscreen audio from another video


def test_mask_of_the_wrong_size_or_palette_is_a_one_line_error(tmp_path):
    big = tmp_path / "big.png"
    _png(big, np.zeros((256, 256), np.uint8))
    with pytest.raises(DataError) as info:
        read_mask(big, "binary")
    assert str(big) in info.value.one_line() and "224x224" in info.value.one_line() and "256x256" in info.value.one_line()
    soft = tmp_path / "soft.png"
    values = np.zeros((224, 224), np.uint8)
    values[5:9, 5:9] = 1  # index 1 instead of 255
    _png(soft, values, mode="P")
    with pytest.raises(DataError, match=r"palette PNG with index 0 \(background\) and 255"):
        read_mask(soft, "palette255")
    rgb = tmp_path / "rgb.png"
    _png(rgb, np.zeros((224, 224, 3), np.uint8))
    with pytest.raises(DataError, match="got mode 'RGB'"):
        read_mask(rgb, "binary")
    line = DataError("x").one_line()
    assert "\n" not in line


def test_missing_mask_is_a_problem_naming_the_file(tmp_path):
    data = make_s4(tmp_path)
    gone = data / "gt_masks" / "test" / "cat" / "catB" / "catB_2.png"
    gone.unlink()
    with pytest.raises(DataError) as info:
        load_dataset("avsbench-s4", data)
    assert "gt_masks/test/cat/catB/catB_2.png: expected the mask of frame 2" in info.value.one_line()
    ds = load_dataset("avsbench-s4", data, validate=False)
    assert any(p.samples == (6,) for p in ds.problems)  # --skip-bad can leave frame 6 out


def test_is3_segmentation_masks(tmp_path):
    root = tmp_path / "IS3"
    names = ["dog_cat_1_dog", "dog_cat_1_cat", "car_bird_2_car", "car_bird_2_bird"]
    records = [{"image": f"/x/{n}.jpg", "audio": f"/x/{n}.wav", "gt_box": [10, 20, 100 + i, 120]} for i, n in enumerate(names)]
    root.mkdir()
    (root / "synthetic3240_bbox.json").write_text(json.dumps(records))
    rng = np.random.default_rng(2)
    masks = []
    for i, n in enumerate(names):
        _png(root / "images" / f"{n}.jpg", rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
        _wav(root / "audio_wav" / f"{n}.wav")
        m = np.zeros((224, 224), np.uint8)
        m[30 + i: 90, 40: 150 - i] = 255
        masks.append(m > 127)
        (root / "gt_segmentation").mkdir(exist_ok=True)
        Image.fromarray(m).save(root / "gt_segmentation" / f"{n}.jpg", quality=90)  # JPEG: lossy edges
    boxes = load_dataset("is3", root)
    with_masks = load_dataset("is3-masks", root)
    assert with_masks.kind == "is3" and with_masks.names == boxes.names
    assert with_masks.groups.tolist() == boxes.groups.tolist()
    gt = with_masks.gt_maps()
    for got, want in zip(gt, masks):
        assert np.count_nonzero(got != want) < 60  # JPEG ringing only at the edges
    assert not np.array_equal(gt, boxes.gt_maps())
    np.testing.assert_array_equal(sample_gt_maps(list(boxes)), boxes.gt_maps())  # boxes stay boxes


def test_is3_masks_need_the_folder(tmp_path):
    root = tmp_path / "IS3"
    root.mkdir()
    (root / "synthetic3240_bbox.json").write_text(json.dumps([{"image": "a_b_1_a.jpg", "audio": "a_b_1_a.wav",
                                                               "gt_box": [1, 1, 5, 5]}]))
    with pytest.raises(DataError, match="gt_segmentation"):
        load_dataset("is3-masks", root, validate=False)
