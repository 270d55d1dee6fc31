"""Write `examples/example_maps.npz`: a small deterministic heatmap file for `vsslrt metrics`.

64 samples of 7x7 raw maps on the (cos + 1) / 2 scale of EZ-VSL-like models:

- `gt`: one box per sample on the 224x224 grid; samples come in pairs (`group`) sharing an image
  with two boxes, one per target, as in IS3;
- `pos`: a bump centred in the sample's box, on a weak background;
- `silence`, `noise`, `offscreen`: weaker, wider bumps at other places, never zero (the point of
  the protocol: models still light up the image without a sounding object);
- `obj`: an object-saliency map that covers both boxes of the image.

Run from the repository root: `python examples/make_example_maps.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_SAMPLES = 64
MAP_SIZE = 7
IMAGE = 224
SEED = 20250101


def _bump(cy: np.ndarray, cx: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Gaussian bumps (N, 7, 7) centred at image coordinates (cy, cx), width in map cells."""
    cells = (np.arange(MAP_SIZE) + 0.5) * IMAGE / MAP_SIZE  # centres of the 7 map cells, in pixels
    dy = (cells[None, :, None] - cy[:, None, None]) / (IMAGE / MAP_SIZE)
    dx = (cells[None, None, :] - cx[:, None, None]) / (IMAGE / MAP_SIZE)
    return np.exp(-(dy**2 + dx**2) / (2.0 * width[:, None, None] ** 2))


def make_example(seed: int = SEED, n: int = N_SAMPLES) -> dict[str, np.ndarray]:
    """The example fields (float32 maps, bool gt, int64 group), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    half = n // 2
    # Two boxes per image: sizes 40..110 px, anywhere inside the image.
    size = rng.integers(40, 111, size=(half, 2, 2))
    top_left = rng.integers(0, IMAGE - size + 1)
    boxes = np.concatenate([top_left, top_left + size], axis=-1).reshape(n, 4)  # y0, x0, y1, x1
    group = np.repeat(np.arange(half, dtype=np.int64), 2)

    gt = np.zeros((n, IMAGE, IMAGE), dtype=bool)
    rows = np.arange(IMAGE)
    inside_y = (rows[None, :] >= boxes[:, 0:1]) & (rows[None, :] < boxes[:, 2:3])
    inside_x = (rows[None, :] >= boxes[:, 1:2]) & (rows[None, :] < boxes[:, 3:4])
    gt[:] = inside_y[:, :, None] & inside_x[:, None, :]

    cy = (boxes[:, 0] + boxes[:, 2]) / 2.0
    cx = (boxes[:, 1] + boxes[:, 3]) / 2.0
    background = 0.45 + 0.03 * rng.standard_normal((n, MAP_SIZE, MAP_SIZE))
    pos = background + 0.40 * _bump(cy, cx, rng.uniform(0.6, 1.2, n))

    def negative(strength: float) -> np.ndarray:
        ny, nx = rng.uniform(0, IMAGE, n), rng.uniform(0, IMAGE, n)
        base = 0.45 + 0.03 * rng.standard_normal((n, MAP_SIZE, MAP_SIZE))
        return base + strength * _bump(ny, nx, rng.uniform(1.0, 2.0, n))

    silence, noise, offscreen = negative(0.12), negative(0.18), negative(0.28)

    partner = np.arange(n) ^ 1  # the other target of the same image
    obj = 0.2 + 0.6 * np.maximum(_bump(cy, cx, np.full(n, 1.0)), _bump(cy[partner], cx[partner], np.full(n, 1.0)))

    def f32(a: np.ndarray) -> np.ndarray:
        return np.clip(a, 0.0, 1.0).astype(np.float32)

    return {
        "pos": f32(pos),
        "silence": f32(silence),
        "noise": f32(noise),
        "offscreen": f32(offscreen),
        "gt": gt,
        "obj": f32(obj),
        "group": group,
    }


def main() -> None:
    out = Path(__file__).resolve().parent / "example_maps.npz"
    np.savez_compressed(out, **make_example())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
