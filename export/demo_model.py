"""The demo models: small dual encoders trained on the synthetic benchmark, and their ONNX export.

Architecture (about 0.42 M parameters, ~1.7 MB of fp32 weights):

* visual: 224x224 ImageNet-normalised RGB -> 4x4 stride-4 patch stem -> three stages of 3x3
  convolutions (BatchNorm, ReLU; stride 2 between stages) -> 1x1 projection to C = 64 ->
  L2-normalised (N, K=1, 64, 14, 14) feature map;
* audio: log-PSD spectrogram (1, 257, 97) of a 1 s, 16 kHz clip (`vsslrt.data.synth.DEMO_FRONTEND`,
  an `vsslrt.data.frontends.AudioFrontend`), shifted so that the front-end's floor is 0 -> four
  stride-2 3x3 convolutions and one more 3x3 -> global max pooling over time and frequency (as
  EZ-VSL's audio net) -> BatchNorm, ReLU -> linear projection to 64 -> L2-normalised (N, K=1, 64);
* map: EZ-VSL's head, (cos + 1) / 2 per location (`DEMO_HEAD`: scale 0.5, offset 0.5), so maps lie in
  [0, 1] and 0.5 means "orthogonal".

Export follows the project's graph contracts (`vsslrt.export.pipeline`): ``visual.onnx`` image
(N,3,224,224) -> visual (N,1,64,14,14); ``audio.onnx`` audio (N,1,257,97) -> audio_embedding (N,1,64);
``model.onnx`` image, audio -> map (N,14,14), composed from the two encoder graphs and the head;
batch dimension dynamic.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vsslrt.data.synth import DEMO_FRONTEND
from vsslrt.export.architectures import VSSLModel
from vsslrt.models import MapHead
from vsslrt import __version__
from vsslrt.errors import EngineBuildError
from vsslrt.export.parity import FP32_MAX_ABS, compare_maps, run_in_batches
from vsslrt.export.pipeline import GRAPH_FILES, GRAPH_IO, ort_session
from vsslrt.export.wrappers import AudioEncoder, VisualEncoder
from vsslrt.files import sha256_file
from vsslrt.head import similarity_maps
from vsslrt.manifest import CheckpointInfo, GraphEntry, Manifest, TensorSpec

DEMO_NAMES = ("demo-pos", "demo-san")
DEMO_EMBED_DIM = 64
DEMO_MAP_SIZE = 14
DEMO_IMAGE_SIZE = 224
#: EZ-VSL's (cos + 1) / 2 map scale.
DEMO_HEAD = MapHead(num_maps=1, scale=0.5, offset=0.5)
DEMO_TITLES = {
    "demo-pos": "Demo, positives only (EZ-VSL-style multiple-instance contrastive)",
    "demo-san": "Demo, silence and noise as negatives (SSL-SaN-style)",
}


def _conv(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2 if kernel == 3 else 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DemoVisualNet(nn.Module):
    """224x224 image -> (N, C, 14, 14) projected features (not normalised)."""

    def __init__(self, width: tuple[int, int, int] = (24, 48, 96), dim: int = DEMO_EMBED_DIM) -> None:
        super().__init__()
        w1, w2, w3 = width
        self.stem = _conv(3, w1, stride=4, kernel=4)  # 56x56: a patch stem keeps the net cheap on CPU
        self.stage1 = _conv(w1, w1)
        self.stage2 = nn.Sequential(_conv(w1, w2, stride=2), _conv(w2, w2))  # 28x28
        self.stage3 = nn.Sequential(_conv(w2, w3, stride=2), _conv(w3, w3), _conv(w3, w3))  # 14x14
        self.proj = nn.Conv2d(w3, dim, kernel_size=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(self.stage3(self.stage2(self.stage1(self.stem(image)))))


# The front-end's floor, log(0 + 1e-7) / 12: the input is shifted so that the floor is 0, like the
# convolutions' zero padding; otherwise every clip's strongest response sits on the padded border.
AUDIO_FLOOR = math.log(DEMO_FRONTEND.log_eps) / DEMO_FRONTEND.divisor
AUDIO_GAIN = 4.0


class DemoAudioNet(nn.Module):
    """(N, 1, F, T) log-spectrogram -> (N, C) projected embedding (not normalised).

    The input is first mapped to (x - AUDIO_FLOOR) * AUDIO_GAIN (0 for silence, about 2.6 for the
    loudest partials of the synthetic clips). As EZ-VSL's audio net, the features are max-pooled
    over the whole time-frequency plane before the projection.
    """

    def __init__(self, width: tuple[int, int, int, int] = (16, 32, 64, 96), dim: int = DEMO_EMBED_DIM) -> None:
        super().__init__()
        w1, w2, w3, w4 = width
        self.features = nn.Sequential(
            _conv(1, w1, stride=2), _conv(w1, w2, stride=2), _conv(w2, w3, stride=2), _conv(w3, w4, stride=2),
            _conv(w4, w4),
        )
        # BatchNorm on the pooled features keeps the clips' embeddings apart at the start (without
        # it they share one dominant direction and the contrastive objective stalls for a long
        # while); the ReLU after it keeps the projection's input non-negative, as in EZ-VSL.
        self.norm = nn.BatchNorm1d(w4)
        self.proj = nn.Linear(w4, dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = (audio - AUDIO_FLOOR) * AUDIO_GAIN
        pooled = torch.amax(self.features(x), dim=(2, 3))  # global max pooling, as EZ-VSL's audio net
        return self.proj(F.relu(self.norm(pooled)))


class DemoModel(VSSLModel):
    """The demo dual encoder (same class for demo-pos and demo-san; only the training differs)."""

    num_maps = 1

    def __init__(self, name: str = "demo-pos") -> None:
        super().__init__()
        self.name = name
        self.imgnet = DemoVisualNet()
        self.audnet = DemoAudioNet()

    def visual_features(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.imgnet(image),)

    def audio_features(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.audnet(audio),)

    def embed_visual(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, 14, 14) L2-normalised over channels."""
        return F.normalize(self.imgnet(image), dim=1)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """(N, C) L2-normalised."""
        return F.normalize(self.audnet(audio), dim=1)

    def reference_map(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        cos = torch.einsum("nchw,nc->nhw", self.embed_visual(image), self.embed_audio(audio))
        return cos * DEMO_HEAD.scale + DEMO_HEAD.offset


def build_demo_model(name: str = "demo-pos", seed: int = 0) -> DemoModel:
    """A freshly initialised demo model (PyTorch default init under `torch.manual_seed(seed)`)."""
    torch.manual_seed(seed)
    return DemoModel(name)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------ export


def export_demo(model: DemoModel, out_dir: str | Path, *, images: np.ndarray, audios: np.ndarray,
                weights_file: str | None = "weights.pt", threads: int | None = None):
    """Export a trained demo model to ONNX, check parity with PyTorch, write ``manifest.json``.

    Args:
        model: the trained model (put in eval mode here).
        out_dir: the model's folder (created).
        images: (n, 3, 224, 224) float32 ImageNet-normalised parity images (n >= 2).
        audios: (n, 1, 257, 97) float32 front-end outputs for parity.
        weights_file: also save the PyTorch state dict under this name (recorded as the checkpoint);
            None skips it and records the ONNX visual graph as the weights' home.
        threads: ONNX Runtime threads for the parity check.

    Returns:
        The written `vsslrt.manifest.Manifest`.

    Raises:
        EngineBuildError: export, ONNX check or parity failed.
    """
    from vsslrt.export.onnx_io import check_model, compose_fused, export_module, save_model  # lazy: onnxscript's exporter loads only to export

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    img_t, aud_t = torch.from_numpy(images), torch.from_numpy(audios)
    visual_proto, _ = export_module(VisualEncoder(model).eval(), (img_t[:2],), out / GRAPH_FILES["visual"],
                                    *GRAPH_IO["visual"])
    audio_proto, _ = export_module(AudioEncoder(model).eval(), (aud_t[:2],), out / GRAPH_FILES["audio"],
                                   *GRAPH_IO["audio"])
    # The fused graph is the two encoder graphs plus the head, as the project's export builds it.
    fused_proto, _ = compose_fused(visual_proto, audio_proto, DEMO_HEAD.scale, DEMO_HEAD.offset)
    save_model(fused_proto, out / GRAPH_FILES["fused"])
    check_model(out / GRAPH_FILES["fused"])
    entries = [GraphEntry(role, "fp32", GRAPH_FILES[role], *GRAPH_IO[role]) for role in ("visual", "audio", "fused")]

    # Parity: PyTorch eager vs ONNX Runtime, on batch sizes 1 and n - 1 (the dynamic batch).
    n = len(images)
    batches = (1, n - 1)
    with torch.no_grad():
        reference = model.reference_map(img_t, aud_t).numpy()
    vis_s, aud_s, fused_s = (ort_session(out / GRAPH_FILES[role], threads) for role in ("visual", "audio", "fused"))
    visual = run_in_batches(lambda x: vis_s.run(None, {"image": x})[0], (images,), batches)
    audio = run_in_batches(lambda x: aud_s.run(None, {"audio": x})[0], (audios,), batches)
    fused = run_in_batches(lambda i, a: fused_s.run(None, {"image": i, "audio": a})[0], (images, audios), batches)
    import onnxruntime as ort

    runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider"
    parity = {
        "split.fp32": compare_maps(reference, np.asarray(similarity_maps(visual, audio, DEMO_HEAD)), FP32_MAX_ABS,
                                   0.0, batches, runtime),
        "fused.fp32": compare_maps(reference, fused, FP32_MAX_ABS, 0.0, batches, runtime),
    }
    failed = [k for k, v in parity.items() if not v.passed]
    if failed:
        raise EngineBuildError(
            f"{model.name}: expected the ONNX graphs to match PyTorch, got max |diff| "
            + ", ".join(f"{k} {parity[k].max_abs_diff:.3g}" for k in failed) + f" (tolerance {FP32_MAX_ABS})."
        )

    if weights_file:
        torch.save(model.state_dict(), out / weights_file)
        checkpoint = CheckpointInfo(path=weights_file, sha256=sha256_file(out / weights_file),
                                    layout="DemoModel state_dict (vsslrt.export.demo_model)")
    else:
        checkpoint = CheckpointInfo(path="visual.onnx", sha256=sha256_file(out / "visual.onnx"),
                                    layout="weights inside the ONNX graphs")
    c, size = DEMO_EMBED_DIM, DEMO_MAP_SIZE
    manifest = Manifest(
        model=model.name,
        frontend=DEMO_FRONTEND.name,
        head=DEMO_HEAD,
        map_size=size,
        inputs={
            "image": TensorSpec(("batch", 3, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE)),
            "audio": TensorSpec(("batch", *DEMO_FRONTEND.output_shape())),
        },
        outputs={
            "visual": TensorSpec(("batch", 1, c, size, size)),
            "audio_embedding": TensorSpec(("batch", 1, c)),
            "map": TensorSpec(("batch", size, size)),
        },
        graphs=entries,
        files={},
        checkpoint=checkpoint,
        parity=parity,
        versions=_versions(),
        opset=_opset(out / "visual.onnx"),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    for entry in entries:
        manifest.add_file(out, entry.file)
    if weights_file:
        manifest.add_file(out, weights_file)
    manifest.write(out)
    return manifest


def frontend_dict() -> dict:
    """The demo front-end spec as plain JSON data (recorded next to the manifest)."""
    from dataclasses import asdict

    return {**asdict(DEMO_FRONTEND), "output_shape": list(DEMO_FRONTEND.output_shape())}


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime


    return {
        "vsslrt": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": os.sys.version.split()[0],
    }
