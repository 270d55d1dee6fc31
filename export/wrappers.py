"""The modules that are exported to ONNX: visual encoder, audio encoder, fused map, object prior.

Graph contracts (also written into the manifest):

* visual: input ``image`` (N, 3, 224, 224) -> output ``visual`` (N, K, 512, h, w), L2-normalised over
  the 512 channels;
* audio: input ``audio`` (N, C, F, T) -> output ``audio_embedding`` (N, K, 512), L2-normalised (ONNX
  forbids an output with the input's name);
* fused: inputs ``image``, ``audio`` -> output ``map`` (N, h, w) = scale * mean_k cos_k + offset;
* object: input ``image`` -> output ``object`` (N, 7, 7).

Everything after the last projection (normalisation, stacking, the cosine head) lives in the modules
of ``vsslrt.export.tail``, which the fp16 transform keeps in fp32.
"""

from __future__ import annotations

import torch
from torch import nn

from vsslrt.export.architectures import VSSLModel
from vsslrt.export.tail import CosineMapHead, NormalizeStack
from vsslrt.models import MapHead


class VisualEncoder(nn.Module):
    """image (N, 3, 224, 224) -> (N, K, 512, h, w), unit norm over the 512 channels."""

    def __init__(self, model: VSSLModel) -> None:
        super().__init__()
        self.model = model
        self.normalize = NormalizeStack()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.normalize(*self.model.visual_features(image))


class AudioEncoder(nn.Module):
    """spectrogram (N, C, F, T) -> (N, K, 512), unit norm."""

    def __init__(self, model: VSSLModel) -> None:
        super().__init__()
        self.model = model
        self.normalize = NormalizeStack()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.normalize(*self.model.audio_features(audio))


class FusedMap(nn.Module):
    """(image, audio) -> (N, h, w) map on the reported scale: the PyTorch twin of ``model.onnx``.

    The shipped fused graph is composed from the two encoder graphs in ONNX
    (``onnx_io.compose_fused``); this module states the same computation in PyTorch, for users who
    want one module, and for checking the head against each model's official map formula.
    """

    def __init__(self, model: VSSLModel, head: MapHead) -> None:
        super().__init__()
        self.visual = VisualEncoder(model)
        self.audio = AudioEncoder(model)
        self.head = CosineMapHead(head)

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(image), self.audio(audio))
