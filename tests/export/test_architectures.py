"""Architectures: parameter layouts of the official checkpoints, output shapes, map formulas."""

from __future__ import annotations

import pytest
import torch

from vsslrt.export.architectures import ARCHITECTURES, build_model, build_object_net
from vsslrt.export.wrappers import FusedMap
from vsslrt.models import get_model

from .conftest import MODELS

# Keys that only the official layouts have; a strict load of the real checkpoints needs them.
LAYOUT_KEYS = {
    "ezvsl": {"imgnet.conv1.weight": (64, 3, 7, 7), "audnet.conv1.weight": (64, 1, 7, 7),
              "img_proj.weight": (512, 512, 1, 1), "aud_proj.weight": (512, 512)},
    "slavc": {"img_proj2.bias": (512,), "aud_proj1.weight": (512, 512),
              "momentum_imgnet.layer4.1.bn2.running_var": (512,), "momentum_aud_proj2.weight": (512, 512),
              "momentum_audnet.conv1.weight": (64, 1, 7, 7)},
    "fnac": {"img_proj.weight": (512, 512, 1, 1), "aud_proj.bias": (512,)},
    "lvs": {"imgnet.conv1_a.weight": (64, 1, 7, 7), "imgnet.conv1_flow.weight": (64, 6, 7, 7),
            "imgnet.fc.weight": (1000, 512), "audnet.conv1.weight": (64, 3, 7, 7),
            "audnet.layer4.0.downsample.0.weight": (512, 256, 1, 1)},
    "sslalign": {"audnet.fc.bias": (1000,), "imgnet.conv1_flow.weight": (64, 6, 7, 7)},
    "ssltie": {"vision_fc1.weight": (512, 1024, 1, 1), "conv3.weight": (1, 1, 1, 1),
               "norm3.running_mean": (1,), "imgnet.fc.weight": (1000, 512)},
}
ABSENT_KEYS = {
    "ezvsl": ("imgnet.fc.weight", "audnet.fc.weight"),  # fc replaced by Identity in the original
    "lvs": ("vision_fc1.weight",),
    "slavc": ("img_proj.weight",),
}


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_layout_matches_official_names(name):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = ARCHITECTURES[name]()
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in LAYOUT_KEYS[name].items():
        assert state.get(key) == shape, key
    for key in ABSENT_KEYS.get(name, ()):
        assert key not in state


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_head_formula_match_the_official_forward(name):
    """Feature shapes, unit norms, and the exported head == the official map formula."""
    spec = get_model(name)
    model = build_model(name, seed=0)
    torch.manual_seed(1)
    image = torch.randn(1, 3, 224, 224)
    audio = torch.randn(1, *spec.audio_shape)
    fused_module = FusedMap(model, spec.head)
    with torch.no_grad():  # FusedMap's parts, so each encoder runs once
        visual = fused_module.visual(image)
        emb = fused_module.audio(audio)
        fused = fused_module.head(visual, emb)
        reference = model.reference_map(image, audio)
    k, s = spec.head.num_maps, spec.map_size
    assert visual.shape == (1, k, 512, s, s)
    assert emb.shape == (1, k, 512)
    torch.testing.assert_close(visual.norm(dim=2), torch.ones(1, k, s, s), atol=1e-5, rtol=0)
    torch.testing.assert_close(emb.norm(dim=2), torch.ones(1, k), atol=1e-5, rtol=0)
    assert fused.shape == reference.shape == (1, s, s)
    torch.testing.assert_close(fused, reference, atol=1e-6, rtol=0)
    lo, hi = spec.value_range
    assert lo - 1e-6 <= float(reference.min()) and float(reference.max()) <= hi + 1e-6


def test_random_init_is_reproducible_per_seed():
    a = build_model("fnac", seed=3).state_dict()
    b = build_model("fnac", seed=3).state_dict()
    c = build_model("fnac", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["img_proj.weight"], c["img_proj.weight"])


def test_slavc_momentum_encoders_start_as_copies():
    state = build_model("slavc").state_dict()
    assert torch.equal(state["imgnet.layer2.0.conv1.weight"], state["momentum_imgnet.layer2.0.conv1.weight"])
    assert torch.equal(state["aud_proj2.weight"], state["momentum_aud_proj2.weight"])


def test_object_net_is_a_nonnegative_7x7_map():
    net = build_object_net(seed=0)
    assert "net.fc.weight" not in net.state_dict()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 7, 7)
    assert float(out.min()) >= 0.0


def test_imagenet_weights_load_from_a_user_path(tmp_path):
    from torchvision.models import resnet18

    from vsslrt.errors import InputError
    from vsslrt.export.backbones import load_imagenet_resnet18

    torch.manual_seed(0)
    source = resnet18(weights=None).state_dict()  # torchvision's file layout, fc included
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(source, path)
    net = build_object_net(seed=1)
    load_imagenet_resnet18(net.net, path)
    state = net.net.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in state)

    torch.save({k: v for k, v in source.items() if not k.startswith("layer4.")}, path)
    with pytest.raises(InputError, match="expected a torchvision ResNet-18 state dict"):
        load_imagenet_resnet18(net.net, path)
    with pytest.raises(InputError, match="never downloads"):
        load_imagenet_resnet18(net.net, tmp_path / "absent.pth")
