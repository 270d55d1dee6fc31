"""The fp32 tail: every operation after the last projection (normalisation, stacking, cosine head).

The exporter records each ONNX node's module scope; the fp16 transform keeps every node created
inside one of ``FP32_TAIL_CLASSES`` in fp32 (see ``vsslrt.export.onnx_io.fp32_tail_nodes``).
Norms of 512-d features and sums of 512 products lose too much in fp16, and they cost nothing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vsslrt.models import MapHead


class NormalizeStack(nn.Module):
    """L2-normalise each of K projected tensors over dim 1 and stack them on a new dim 1."""

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.normalize(f, dim=1) for f in features], dim=1)


class CosineMapHead(nn.Module):
    """map[n, y, x] = scale * mean_k sum_c visual[n, k, c, y, x] * audio[n, k, c] + offset."""

    def __init__(self, head: MapHead) -> None:
        super().__init__()
        self.scale = float(head.scale)
        self.offset = float(head.offset)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        cos = (visual * audio[:, :, :, None, None]).sum(dim=2).mean(dim=1)
        return cos * self.scale + self.offset


class AbsMeanReducer(nn.Module):
    """The OGL object prior's reducer: mean over channels of |x|."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().mean(dim=1)


# Class names matched against the exporter's per-node class hierarchy metadata.
FP32_TAIL_CLASSES = ("NormalizeStack", "CosineMapHead", "AbsMeanReducer")
