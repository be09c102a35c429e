"""Model zoo: every registered network builds and maps any input size to logits of that size."""

from __future__ import annotations

import pytest
import torch

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.models.registry import (
    MODEL_TYPES,
    TRAINABLE_TYPES,
    build_model,
    get_spec,
)

SMALL_ENCODER = {"encoder_name": "resnet18"}


def _build(model_type: str):
    return build_model(model_type, SMALL_ENCODER if model_type.startswith("smp_") else None)


def test_registry_has_published_types_and_more():
    published = {
        "segformer_b0",
        "segformer_b1",
        "segformer_b2",
        "segformer_b3",
        "segformer_b4",
        "smp_deeplabV3plus",
        "smp_pspnet",
        "smp_unet",
    }
    assert published <= set(TRAINABLE_TYPES)
    assert {"segformer_b5", "classical"} <= set(MODEL_TYPES)


@pytest.mark.parametrize("model_type", TRAINABLE_TYPES)
@pytest.mark.parametrize("size", [(67, 91), (32, 32)])
def test_every_network_returns_one_logit_map_at_input_size(model_type, size):
    torch.manual_seed(0)
    model = _build(model_type).eval()
    x = torch.randn(2, 3, *size)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (2, 1, *size)
    assert torch.isfinite(y).all()
    # the two images of the batch are not mixed
    with torch.inference_mode():
        y0 = model(x[:1])
    torch.testing.assert_close(y0, y[:1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model_type", ["segformer_b0", "smp_unet"])
def test_encoder_is_a_proper_submodule(model_type):
    model = _build(model_type)
    enc = {id(p) for p in model.encoder().parameters()}
    total = {id(p) for p in model.parameters()}
    assert 0 < len(enc) < len(total)


def test_unknown_type_lists_valid_names():
    with pytest.raises(InvalidInputError, match="segformer_b0.*smp_unet"):
        get_spec("segformer_b9")


def test_unknown_architecture_option_is_refused():
    with pytest.raises(InvalidInputError, match="no architecture option 'depth'"):
        build_model("smp_unet", {"depth": 3})


def test_smp_networks_can_be_sized_down():
    net = build_model("smp_unet", {"encoder_name": "mobilenet_v2",
                                   "decoder_channels": [32, 16, 16, 8, 8]})
    assert net(torch.zeros(1, 3, 64, 80)).shape == (1, 1, 64, 80)
    small = sum(p.numel() for p in net.parameters())
    default = sum(p.numel() for p in build_model("smp_unet", {"encoder_name": "mobilenet_v2"})
                  .parameters())
    assert small < default
    # smp checks the values: five decoder stages for a depth-5 encoder.
    with pytest.raises(InvalidInputError, match="cannot build smp Unet"):
        build_model("smp_unet", {"encoder_name": "resnet18", "decoder_channels": [16, 8]})


def test_hub_weights_refused_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InvalidInputError, match="HF_HUB_OFFLINE"):
        build_model("segformer_b0", weights="nvidia/mit-b0")
    with pytest.raises(InvalidInputError, match="HF_HUB_OFFLINE"):
        build_model("smp_unet", SMALL_ENCODER, weights="imagenet")


def test_segformer_loads_local_hf_folder(tmp_path):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    # A local pretrained folder with another number of classes, as the ADE checkpoints have.
    torch.manual_seed(1)
    src = SegformerForSemanticSegmentation(
        SegformerConfig(num_labels=150, **get_spec("segformer_b0").architecture)
    )
    src.save_pretrained(tmp_path / "hf")
    model = build_model("segformer_b0", weights=tmp_path / "hf")
    w_src = src.segformer.stages[0].patch_embeddings.proj.weight
    w_new = model.net.segformer.stages[0].patch_embeddings.proj.weight
    torch.testing.assert_close(w_src, w_new)
    assert model.net.decode_head.classifier.out_channels == 1


def test_smp_loads_local_encoder_safetensors(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(2)
    donor = _build("smp_unet")
    save_file(
        {k: v.contiguous() for k, v in donor.net.encoder.state_dict().items()},
        str(tmp_path / "encoder.safetensors"),
    )
    model = build_model("smp_unet", SMALL_ENCODER, weights=tmp_path / "encoder.safetensors")
    torch.testing.assert_close(model.net.encoder.conv1.weight, donor.net.encoder.conv1.weight)
    with pytest.raises(InvalidInputError, match="safetensors"):
        build_model("smp_unet", SMALL_ENCODER, weights=tmp_path / "missing.pth")


def test_classical_has_no_network():
    with pytest.raises(InvalidInputError, match="classical"):
        build_model("classical")
