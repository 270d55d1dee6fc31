"""Mask ground truth: samples that carry a segmentation mask instead of (or beside) boxes.

A `MaskSample` is a `Sample` with the path of its mask and the mask's encoding; `sample_gt_maps`
is the ground truth of a batch: the mask of every sample that has one, the union of its boxes
otherwise. Masks are read at their stored size, which must be 224 x 224 (the evaluator's grid and
the size AVSBench frames were extracted at; protocols-extended.md section 3.2); a mask of another
size or with values outside its encoding is a one-line DataError naming the file and the encoding.

Encodings:

* `binary` (AVSBench S4, opened as PIL mode '1' by the official loader): mode '1', or a grayscale
  / palette PNG whose values are only 0 and 255;
* `palette255` (AVSBench MS3, opened in mode 'P' with the palette index divided by 255): mode 'P'
  or 'L' with indices only 0 (background) and 255 (foreground), or mode '1';
* `gray` (IS3 `gt_segmentation`, stored as JPEG, whose compression leaves intermediate values):
  any grayscale or RGB image, converted to 8-bit gray, foreground where the value is > 127.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsslrt.data.records import GT_SIZE, Dataset, Sample, gt_map
from vsslrt.errors import DataError

ENCODINGS = {
    "binary": "a 224x224 binary PNG (mode '1', or values 0 and 255 only)",
    "palette255": "a 224x224 palette PNG with index 0 (background) and 255 (foreground) only",
    "gray": "a 224x224 grayscale or RGB image, foreground > 127",
}
GRAY_CUT = 127


@dataclass(frozen=True, eq=False)
class MaskSample(Sample):
    """A sample whose ground truth is a mask file.

    Attributes:
        mask: Path of the mask image.
        mask_encoding: One of `ENCODINGS`.
        video: Index of the sample's video in the test list (AVSBench), -1 where there is none
            (the group stands for it).
    """

    mask: Path | None = None
    mask_encoding: str = "binary"
    video: int = -1


def read_mask(path: str | Path, encoding: str) -> np.ndarray:
    """(224, 224) bool mask of one file.

    Raises:
        DataError: unreadable file, another size, or values outside the encoding.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow is a core dependency; imported where masks are read

    path = Path(path)
    expected = ENCODINGS[encoding]
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            if size != (GT_SIZE, GT_SIZE):
                raise DataError(f"{path}: expected {expected}, got a {size[0]}x{size[1]} image.",
                                hint="masks are scored at the frame size they were annotated at (224x224)")
            if encoding == "gray":
                if mode not in ("1", "L", "P", "RGB", "RGBA", "I;16", "I"):
                    raise DataError(f"{path}: expected {expected}, got mode {mode!r}.")
                return np.asarray(img.convert("L")) > GRAY_CUT
            if mode == "1":
                # Pillow hands mode-1 pixels over as bytes 0/255 under a bool dtype; compare to get real booleans
                return np.asarray(img) != 0
            if mode not in ("L", "P") or (encoding == "palette255" and mode not in ("P", "L")):
                raise DataError(f"{path}: expected {expected}, got mode {mode!r}.",
                                hint="convert it losslessly (values 0 and 255) or give the dataset's own masks")
            values = np.asarray(img)  # palette images: the indices, as the official loaders read them
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: expected {expected}, got an unreadable file ({exc}).", hint="check the file") from None
    found = np.unique(values)
    odd = found[(found != 0) & (found != 255)]
    if odd.size:
        raise DataError(f"{path}: expected {expected}, got mode {mode!r} with values such as {odd[:5].tolist()}.",
                        hint="masks must be lossless 0/255 PNGs; re-export them without antialiasing or resizing")
    return values == 255


def sample_gt_maps(samples: Sequence[Sample], size: int = GT_SIZE) -> np.ndarray:
    """(N, 224, 224) bool ground truth of a batch: masks where a sample has one, boxes otherwise."""
    out = np.zeros((len(samples), size, size), dtype=bool)
    for i, sample in enumerate(samples):
        mask = getattr(sample, "mask", None)
        if mask is not None:
            out[i] = read_mask(mask, sample.mask_encoding)
        else:
            out[i] = gt_map(sample.boxes, size)
    return out


@dataclass(eq=False)
class MaskDataset(Dataset):
    """A test set whose ground truth is one mask per sample (`MaskSample`)."""

    @property
    def videos(self) -> np.ndarray:
        """(N,) int64 index of each frame's video in the test list (the mask evaluator's `video`)."""
        return np.array([s.video if getattr(s, "video", -1) >= 0 else s.group for s in self.samples], dtype=np.int64)

    def gt_maps(self, indices=None) -> np.ndarray:
        """(N, 224, 224) bool masks of the given samples (all by default), read from their files."""
        chosen = self.samples if indices is None else [self.samples[i] for i in indices]
        return sample_gt_maps(chosen)
