"""ResNet-18 backbones in the two flavours the published VSSL models use.

* torchvision flavour (EZ-VSL, SLAVC, FNAC and the OGL object network): a stock
  ``torchvision.models.resnet18`` whose ``avgpool``/``fc`` the original code replaced. Output stride
  32, so a 224x224 image gives a 512x7x7 map.
* "hard-way" flavour (LVS, SSL-Align, SSL-TIE): the ResNet-18 of Chen et al.'s LVS code, which
  declares three stems (``conv1`` for RGB, ``conv1_a`` for 1-channel spectrograms, ``conv1_flow``
  for 6-channel flow), keeps an ImageNet ``fc`` it never uses, and runs ``layer4`` with stride 1, so
  a 224x224 image gives a 512x14x14 map. Only one stem runs; the others exist because the official
  checkpoints hold their weights and a strict load needs every key.

Both are assembled from torchvision's ``ResNet``/``BasicBlock`` so parameter names match the
checkpoints (``conv1.weight``, ``layer3.1.bn2.running_var``, ...). Nothing here downloads weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

from vsslrt.errors import InputError

# Parameter/buffer names of torchvision's ResNet-18 trunk (everything but the classifier).
_TRUNK_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")


def run_trunk(net: nn.Module, x: torch.Tensor, stem: nn.Module) -> torch.Tensor:
    """Stem -> BN -> ReLU -> max-pool -> layer1..4; returns the last feature map (N, 512, h, w)."""
    x = net.maxpool(net.relu(net.bn1(stem(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def torchvision_visual_resnet18() -> nn.Module:
    """ResNet-18 as EZ-VSL/SLAVC/FNAC hold it: ``avgpool`` and ``fc`` replaced by identities."""
    net = resnet18(weights=None)
    net.avgpool = nn.Identity()
    net.fc = nn.Identity()
    return net


class GlobalMaxPool2d(nn.Module):
    """``nn.AdaptiveMaxPool2d((1, 1))``, written as a max over height and width.

    Same values and no parameters (checkpoints load unchanged). It exports as ReduceMax with every
    exporter version, whereas the dynamo exporter of torch 2.11 with onnxscript 0.7 has no conversion
    for ``aten.adaptive_max_pool2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=(2, 3), keepdim=True)


def torchvision_audio_resnet18() -> nn.Module:
    """The audio ResNet-18 of EZ-VSL/SLAVC/FNAC: 1-channel 7x7/2 stem, global max-pool, no classifier."""
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.avgpool = GlobalMaxPool2d()
    net.fc = nn.Identity()
    return net


class HardWayResNet18(nn.Module):
    """The LVS-style ResNet-18: three stems, unused ``fc``, ``layer4`` at stride 1.

    Args:
        modal: ``"vision"`` runs ``conv1`` (3 channels), ``"audio"`` runs ``conv1_a`` (1 channel).
    """

    def __init__(self, modal: str) -> None:
        super().__init__()
        if modal not in ("vision", "audio"):
            raise ValueError(f"modal must be 'vision' or 'audio', got {modal!r}")
        self.modal = modal
        base = resnet18(weights=None)
        # layer4 at stride 1: the first block's 3x3 conv and its 1x1 shortcut keep the resolution.
        base.layer4[0].conv1.stride = (1, 1)
        base.layer4[0].downsample[0].stride = (1, 1)
        self.conv1_a = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv1 = base.conv1
        self.conv1_flow = nn.Conv2d(6, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = base.bn1
        self.relu = base.relu
        self.maxpool = base.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = base.layer1, base.layer2, base.layer3, base.layer4
        self.fc = nn.Linear(512, 1000)  # present in the checkpoints, never used for the map
        for module in (self.conv1_a, self.conv1_flow):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.conv1_a if self.modal == "audio" else self.conv1
        return run_trunk(self, x, stem)


def load_imagenet_resnet18(net: nn.Module, path: str | Path) -> None:
    """Load torchvision ImageNet ResNet-18 weights (e.g. ``resnet18-f37072fd.pth``) into a trunk.

    The trunk keys (conv1, bn1, layer1..4) must all be present with matching shapes; ``fc`` is
    loaded only where ``net`` has an ``fc`` with parameters (the hard-way ResNet). Nothing is
    downloaded: the file comes from the user.

    Raises:
        InputError: the file is not a ResNet-18 state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: expected the ImageNet ResNet-18 weights file to exist, got no such file.",
            hint="pass the path of torchvision's resnet18-f37072fd.pth (vsslrt never downloads weights)",
        )
    from vsslrt.export.checkpoints import load_torch_file  # lazy: checkpoints imports the architectures

    state = load_torch_file(path, what="torchvision ImageNet ResNet-18 weights file", trust_hint=None)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    target = net.state_dict()
    wanted = {k for k in target if k.startswith(_TRUNK_PREFIXES) or k.startswith("fc.")}
    wanted = {k for k in wanted if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in wanted if k not in state and not k.startswith("fc."))
    wrong = sorted(
        k for k in wanted if k in state and tuple(state[k].shape) != tuple(target[k].shape) and not k.startswith("fc.")
    )
    if missing or wrong:
        raise InputError(
            f"{path}: expected a torchvision ResNet-18 state dict, got {len(missing)} missing and "
            f"{len(wrong)} mis-shaped trunk keys (first: {(missing + wrong)[:3]}).",
            hint="use torchvision's ImageNet-1k ResNet-18 weights file",
        )
    update = {k: state[k] for k in wanted if k in state and tuple(state[k].shape) == tuple(target[k].shape)}
    net.load_state_dict(update, strict=False)
