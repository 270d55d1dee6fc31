"""Fixture datasets for the data-layer tests, written into tmp_path (tiny images, short wavs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

# The real IS3 sample (16 pairs) lives beside the repository in shared/data; VSSLRT_IS3_MINI overrides.
IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))


def write_wav(path: Path, seconds: float, *, rate: int = 16000, channels: int = 1, seed: int = 0, subtype: str = "PCM_16") -> np.ndarray:
    """A tone plus noise, written with soundfile; returns the float samples written (frames, channels)."""
    import soundfile

    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * rate)))
    t = np.arange(n) / rate
    base = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.05 * rng.standard_normal(n)
    data = np.stack([base * (1.0 - 0.3 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate, subtype=subtype)
    return data


def write_image(path: Path, width: int = 32, height: int = 24, *, seed: int = 0) -> np.ndarray:
    """A random RGB image (JPEG or PNG by suffix); returns the pixels as decoded back."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))
    return path


VGGSS_RECORDS = [
    {"file": "clipA_000001", "class": "dog", "bbox": [[0.1, 0.2, 0.5, 0.6]]},
    {"file": "sub/clipB_000002", "class": "cat", "bbox": [[0.0, 0.0, 1.0, 0.5], [-0.2, 0.5, 0.3, 1.7]]},
    {"file": "clipC_000003", "class": "car", "bbox": [[0.25, 0.25, 0.75, 0.75]]},
    {"file": "clipD_000004", "class": "dog", "bbox": [[0.5, 0.5, 0.9, 0.9]]},
]
VGGSS_CLASSES = {"dog": ["clipA_000001", "clipD_000004"], "cat": ["clipB_000002"], "car": ["clipC_000003"]}


@pytest.fixture
def vggss_dir(tmp_path: Path) -> Path:
    root = tmp_path / "vggss"
    for i, rec in enumerate(VGGSS_RECORDS):
        name = rec["file"].split("/")[-1]
        write_image(root / "frames" / f"{name}.jpg", seed=i)
        write_wav(root / "audio" / f"{name}.wav", 0.6 + 0.2 * i, seed=i)
    write_json(root / "vggss_annotations.json", VGGSS_RECORDS)
    write_json(root / "vggss_class_files_dict.json", VGGSS_CLASSES)
    return root


# Two image pairs with an id and one pair without (three-token names), one target missing.
IS3_NAMES = [
    "dog_piano_11_dog",
    "dog_piano_11_piano",
    "cat_car_12_car",
    "bird_dog_bird",
    "bird_dog_dog",
    "bird_dog_7_bird",  # another pair whose prefix would match the glob of "bird_dog"
]
IS3_BOXES = [[10.0, 20.5, 100.9, 200.0], [0.0, 0.0, 224.0, 224.0], [50.2, 60.7, 51.9, 61.1], [5, 5, 6, 6], [100, 100, 224, 224], [1, 2, 3, 4]]


@pytest.fixture
def is3_dir(tmp_path: Path) -> Path:
    root = tmp_path / "is3"
    records = []
    for i, (name, box) in enumerate(zip(IS3_NAMES, IS3_BOXES)):
        write_image(root / "images" / f"{name}.jpg", 40, 40, seed=i)
        write_wav(root / "audio_wav" / f"{name}.wav", 0.5 + 0.25 * i, seed=i)
        records.append({"image": f"/far/away/visual_frames/{name}.jpg", "audio": f"/far/away/audio_wav/{name}.wav", "gt_box": box})
    write_json(root / "synthetic3240_bbox.json", records)
    classes: dict[str, list[str]] = {}
    for name in IS3_NAMES:
        classes.setdefault(name.rsplit("_", 1)[1], []).append(name)
    write_json(root / "class_files_dict.json", classes)
    return root


FLICKR_XML = """<annotation>
  <file>{clip}</file>
  <object>
    <bbox><idx>0</idx><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bbox>
    <bbox><idx>1</idx><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>64</ymax></bbox>
  </object>
</annotation>
"""


@pytest.fixture
def flickr_dir(tmp_path: Path) -> Path:
    root = tmp_path / "flickr"
    for i, clip in enumerate(["1001", "1002", "1003"]):
        write_image(root / "frames" / f"{clip}.jpg", seed=i)
        write_wav(root / "audio" / f"{clip}.wav", 0.7, seed=i)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{clip}.xml").write_text(FLICKR_XML.format(clip=clip, a=10 * i, b=20, c=200, d=256))
    (root / "flickr_test.csv").write_text("1003\n1001\n1002\n")
    return root


MANIFEST_RECORDS = [
    {"image": "img/s0.png", "audio": "snd/s0_dog.wav", "boxes": [[0.1, 0.1, 0.4, 0.5]], "class": "dog", "group": "s0"},
    {"image": "img/s0.png", "audio": "snd/s0_bell.wav", "boxes": [[0.5, 0.5, 0.9, 0.8]], "class": "bell", "group": "s0"},
    {"image": "img/s1.png", "audio": "snd/s1_car.wav", "boxes": [[0.0, 0.0, 1.0, 1.0]], "class": "car", "group": "s1"},
    {"image": "img/s2.png", "audio": "snd/s2_dog.wav", "boxes": [], "class": "dog"},
]


@pytest.fixture
def manifest_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    for i, rec in enumerate(MANIFEST_RECORDS):
        write_image(root / rec["image"], seed=i)
        write_wav(root / rec["audio"], 0.4 + 0.1 * i, seed=i)
    with open(root / "manifest.jsonl", "w") as f:
        for rec in MANIFEST_RECORDS:
            f.write(json.dumps(rec) + "\n")
    return root


@pytest.fixture(scope="session")
def is3_mini() -> Path:
    if not (IS3_MINI / "synthetic3240_bbox.json").is_file():
        pytest.skip(f"the is3-mini fixture is not at {IS3_MINI}")
    return IS3_MINI
