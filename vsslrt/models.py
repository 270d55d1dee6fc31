"""Model registry: what vsslrt knows about each published VSSL model, without importing torch.

The registry is data shared by every stage: `export/` builds the architecture named here, `data/`
selects the audio front-end by `frontend`, the evaluator forms the map with `head` and thresholds
with `thresholds`. Values come from the reference protocol (protocol.md section 4 and 5.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vsslrt.errors import InputError

DEMO_MODELS = ("demo-pos", "demo-san")
DEMO_ASSETS = Path(__file__).resolve().parent / "assets" / "demo"
"""Where the shipped demo engine folders live (package data; `export/train_demo.py` writes them)."""


@dataclass(frozen=True)
class Threshold:
    """A universal threshold with where its value came from."""

    value: float
    provenance: str


@dataclass(frozen=True)
class MapHead:
    """How embeddings become a similarity map.

    map = scale * mean_k(cosine(visual_k[:, :, y, x], audio_k)) + offset, for the K projection
    pairs the model has (K = 2 for SLAVC, 1 otherwise).
    """

    num_maps: int = 1
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    frontend: str  # name of an audio front-end spec in vsslrt.data.frontends
    map_size: int  # 7 or 14
    head: MapHead
    interp_paper: dict[str, str]  # dataset -> interpolation of the positive map in paper mode (Q10)
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    checkpoint_key: str = "model"  # top-level key of the official checkpoint
    audio_shape: tuple[int, int, int] = (1, 257, 200)  # (C, F, T) of one spectrogram input
    image_size: int = 224
    checkpoint_prefix: str = "module."  # key prefix of the official checkpoint (DataParallel's, or none)

    @property
    def value_range(self) -> tuple[float, float]:
        lo = self.head.offset - self.head.scale
        hi = self.head.offset + self.head.scale
        return (lo, hi)


def _universal(mx: float, mx10: float, q3: float) -> dict[str, Threshold]:
    src = "reference constants, vssl_eval eval.py:259-287 (identical for VGG-SS and IS3)"
    return {
        "max": Threshold(mx, src),
        "max10": Threshold(mx10, src + "; = 1.1 x max"),
        "maxq3": Threshold(q3, src + "; the universal threshold of the paper's F-scores"),
    }


_COS01 = MapHead(num_maps=1, scale=0.5, offset=0.5)  # (cos + 1) / 2
_COS = MapHead(num_maps=1, scale=1.0, offset=0.0)

REGISTRY: dict[str, ModelSpec] = {
    "ezvsl": ModelSpec(
        "ezvsl", "EZ-VSL", "ezvsl", 7, _COS01,
        {"vggss": "bilinear", "is3": "bilinear"}, _universal(0.6041, 0.6645, 0.6382), "model",
    ),
    "slavc": ModelSpec(
        "slavc", "SLAVC", "ezvsl", 7, MapHead(num_maps=2, scale=0.5, offset=0.5),
        {"vggss": "bilinear", "is3": "bilinear"}, _universal(0.5201, 0.5721, 0.5450), "model",
    ),
    "fnac": ModelSpec(
        "fnac", "FNAC", "fnac", 7, _COS01,
        {"vggss": "bilinear", "is3": "bilinear"}, _universal(0.5311, 0.5842, 0.5538), "model",
    ),
    "lvs": ModelSpec(
        "lvs", "LVS", "lvs", 14, _COS,
        {"vggss": "cv2", "is3": "bilinear"}, _universal(0.5527, 0.6080, 0.6077), "model_state_dict", (1, 257, 299),
    ),
    "sslalign": ModelSpec(
        "sslalign", "SSL-Align", "lvs", 14, _COS,
        {"vggss": "cv2", "is3": "bilinear"}, _universal(0.2660, 0.2926, 0.3175), "model_state_dict", (1, 257, 299),
        checkpoint_prefix="",
    ),
    "ssltie": ModelSpec(
        "ssltie", "SSL-TIE", "ssltie", 14, _COS,
        {"vggss": "cv2", "is3": "cv2"}, _universal(0.2641, 0.2906, 0.3338), "state_dict", (1, 257, 670),
        checkpoint_prefix="",
    ),
}


def get_model(name: str) -> ModelSpec:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in REGISTRY:
        raise InputError(
            f"model: expected one of {', '.join(sorted(REGISTRY))}, got {name!r}.",
            hint="run `vsslrt export --help` for the list of models",
        )
    return REGISTRY[key]
