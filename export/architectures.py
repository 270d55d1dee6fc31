"""PyTorch definitions of the six published VSSL models and the OGL object-saliency network.

Module names follow the official code so that the official checkpoints load strictly
(protocol.md section 4). Every model exposes the same three methods:

* ``visual_features(image)`` -> K projected feature maps (N, 512, h, w), **before** L2 normalisation;
* ``audio_features(audio)`` -> K projected embeddings (N, 512), before L2 normalisation;
* ``reference_map(image, audio)`` -> (N, h, w), the map exactly as the official ``forward`` forms it
  (including the divide-then-multiply by tau of EZ-VSL/SLAVC/FNAC). Parity checks compare against it.

K is the registry's ``MapHead.num_maps`` (2 for SLAVC, 1 otherwise). Dropout layers of the training
code (p = 0 at evaluation) hold no parameters and are left out; SLAVC's momentum encoders are kept
because its checkpoint stores them, but the map uses the online branch (use_mom_eval = False).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vsslrt.export.backbones import (
    GlobalMaxPool2d,
    HardWayResNet18,
    run_trunk,
    torchvision_audio_resnet18,
    torchvision_visual_resnet18,
)
from vsslrt.export.tail import AbsMeanReducer
from vsslrt.errors import VsslrtInternalError
from vsslrt.models import get_model

TAU = 0.03  # temperature of EZ-VSL/SLAVC/FNAC, only used to undo the /tau of their forward
EMBED_DIM = 512


def _cosine_map(img: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
    """sum_c img[n,c,h,w] * aud[n,c] for already-normalised features -> (N, h, w)."""
    return torch.einsum("nchw,nc->nhw", img, aud)


class VSSLModel(nn.Module):
    """Common interface of the exported models (see the module docstring)."""

    name: str = ""
    num_maps: int = 1

    def visual_features(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def audio_features(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def reference_map(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.reference_map(image, audio)


class EZVSL(VSSLModel):
    """EZ-VSL (Mo & Morgado 2022): ResNet-18 image and audio nets, 1x1-conv / linear projections."""

    name = "ezvsl"

    def __init__(self) -> None:
        super().__init__()
        self.imgnet = torchvision_visual_resnet18()
        self.img_proj = nn.Conv2d(512, EMBED_DIM, kernel_size=1)
        self.audnet = torchvision_audio_resnet18()
        self.aud_proj = nn.Linear(512, EMBED_DIM)

    def _image_trunk(self, image: torch.Tensor) -> torch.Tensor:
        return run_trunk(self.imgnet, image, self.imgnet.conv1)

    def _audio_trunk(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.audnet.avgpool(run_trunk(self.audnet, audio, self.audnet.conv1)), 1)

    def visual_features(self, image):
        return (self.img_proj(self._image_trunk(image)),)

    def audio_features(self, audio):
        return (self.aud_proj(self._audio_trunk(audio)),)

    def reference_map(self, image, audio):
        img = F.normalize(self.visual_features(image)[0], dim=1)
        aud = F.normalize(self.audio_features(audio)[0], dim=1)
        logits = _cosine_map(img, aud) / TAU  # the official diagonal of Slogits
        return (logits * TAU + 1) / 2


class FNAC(EZVSL):
    """FNAC (Sun et al. 2023): the EZ-VSL layout (identical parameter names), (cos + 1) / 2 map."""

    name = "fnac"


class SLAVC(VSSLModel):
    """SLAVC (Mo & Tian 2022): two projection pairs plus momentum copies of every encoder."""

    name = "slavc"
    num_maps = 2

    def __init__(self) -> None:
        super().__init__()
        self.imgnet = torchvision_visual_resnet18()
        self.img_proj1 = nn.Conv2d(512, EMBED_DIM, kernel_size=1)
        self.img_proj2 = nn.Conv2d(512, EMBED_DIM, kernel_size=1)
        self.audnet = torchvision_audio_resnet18()
        self.aud_proj1 = nn.Linear(512, EMBED_DIM)
        self.aud_proj2 = nn.Linear(512, EMBED_DIM)
        # Momentum (EMA) encoders: stored in the checkpoint, unused for the evaluation map.
        self.momentum_imgnet = torchvision_visual_resnet18()
        self.momentum_img_proj1 = nn.Conv2d(512, EMBED_DIM, kernel_size=1)
        self.momentum_img_proj2 = nn.Conv2d(512, EMBED_DIM, kernel_size=1)
        self.momentum_audnet = torchvision_audio_resnet18()
        self.momentum_aud_proj1 = nn.Linear(512, EMBED_DIM)
        self.momentum_aud_proj2 = nn.Linear(512, EMBED_DIM)
        self._copy_online_to_momentum()

    @torch.no_grad()
    def _copy_online_to_momentum(self) -> None:
        pairs = (
            (self.imgnet, self.momentum_imgnet),
            (self.img_proj1, self.momentum_img_proj1),
            (self.img_proj2, self.momentum_img_proj2),
            (self.audnet, self.momentum_audnet),
            (self.aud_proj1, self.momentum_aud_proj1),
            (self.aud_proj2, self.momentum_aud_proj2),
        )
        for online, momentum in pairs:
            momentum.load_state_dict(online.state_dict())
            for param in momentum.parameters():
                param.requires_grad = False

    def visual_features(self, image):
        feat = run_trunk(self.imgnet, image, self.imgnet.conv1)
        return (self.img_proj1(feat), self.img_proj2(feat))

    def audio_features(self, audio):
        feat = torch.flatten(self.audnet.avgpool(run_trunk(self.audnet, audio, self.audnet.conv1)), 1)
        return (self.aud_proj1(feat), self.aud_proj2(feat))

    def reference_map(self, image, audio):
        img1, img2 = (F.normalize(v, dim=1) for v in self.visual_features(image))
        aud1, aud2 = (F.normalize(a, dim=1) for a in self.audio_features(audio))
        s1 = _cosine_map(img1, aud1) / TAU
        s2 = _cosine_map(img2, aud2) / TAU
        return (((s1 + s2) / 2) * TAU + 1) / 2


class LVSNet(VSSLModel):
    """LVS's ``AVENet`` (Chen et al. 2021), also used for SSL-Align: no projections, raw cosine map."""

    name = "lvs"

    def __init__(self) -> None:
        super().__init__()
        self.imgnet = HardWayResNet18("vision")
        self.audnet = HardWayResNet18("audio")
        self.avgpool = GlobalMaxPool2d()  # named avgpool in the original, but a max-pool

    def visual_features(self, image):
        return (self.imgnet(image),)

    def audio_features(self, audio):
        return (torch.flatten(self.avgpool(self.audnet(audio)), 1),)

    def reference_map(self, image, audio):
        img = F.normalize(self.visual_features(image)[0], dim=1)
        aud = F.normalize(self.audio_features(audio)[0], dim=1)
        # The official A = einsum('ncqa,nchw->nqa', img, aud[:, :, None, None]).
        return torch.einsum("ncqa,nchw->nqa", img, aud[:, :, None, None])


class SSLAlignNet(LVSNet):
    """SSL-Align (Senocak et al. 2023) evaluated with LVS's AVENet, as the reference does."""

    name = "sslalign"


class SSLTIENet(LVSNet):
    """SSL-TIE's ``AVENet_ssltie`` (Liu et al. 2022).

    ``vision_fc1``, ``conv3`` and ``norm3`` are in the checkpoint but do not feed the map A.
    """

    name = "ssltie"

    def __init__(self) -> None:
        super().__init__()
        self.vision_fc1 = nn.Conv2d(1024, 512, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(1, 1, 1)
        self.norm3 = nn.BatchNorm2d(1)


class ObjectSaliencyNet(nn.Module):
    """The OGL object prior: ImageNet ResNet-18 trunk, mean |x| over channels -> (N, 7, 7).

    The reference replaces ``fc`` by unflatten -> mean(|x|, dim=1) -> unsqueeze(1); the map is
    non-negative and not normalised. The channel dimension is dropped here ((N, h, w) like every
    map vsslrt passes around).
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = torchvision_visual_resnet18()
        self.reduce = AbsMeanReducer()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.reduce(run_trunk(self.net, image, self.net.conv1))


ARCHITECTURES: dict[str, type[VSSLModel]] = {
    "ezvsl": EZVSL,
    "slavc": SLAVC,
    "fnac": FNAC,
    "lvs": LVSNet,
    "sslalign": SSLAlignNet,
    "ssltie": SSLTIENet,
}


def build_model(name: str, seed: int = 0) -> VSSLModel:
    """Build the named model with a seeded random initialisation, in evaluation mode.

    Args:
        name: a registry name (``vsslrt.models.REGISTRY``); aliases like "EZ-VSL" are accepted.
        seed: seed of the torch generator used for the initialisation.
    """
    spec = get_model(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHITECTURES[spec.name]()
    if model.num_maps != spec.head.num_maps:  # registry and code must agree
        raise VsslrtInternalError(f"{spec.name}: architecture has {model.num_maps} maps, registry {spec.head.num_maps}")
    return model.eval()


def build_object_net(seed: int = 0) -> ObjectSaliencyNet:
    """Build the object-saliency network with a seeded random initialisation (evaluation mode)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ObjectSaliencyNet()
    return net.eval()
