"""Model zoo: one registry of every model type TASeg can build, and one factory.

Every network is wrapped in :class:`.networks.SegmentationNet`, which takes normalised
``B x 3 x H x W`` frames of any size and returns ``B x 1 x H x W`` logits: it pads to the
encoder's stride and crops back, so callers never think about sizes. ``classical`` is
registered too (it needs no weights and no torch);
:mod:`~thermal_anomaly_segmenter.inference.segmenter` runs it directly.

Weights, by the ``weights`` argument of :func:`build_model`:

* ``None`` / ``"random"``: random initialisation (the offline default);
* a local path: a Hugging Face SegFormer folder, or a ``.safetensors`` state dict of the smp
  encoder (never a pickle);
* a hub id (``nvidia/mit-b0``) or ``"imagenet"`` for smp: downloaded, only when asked and
  only with ``HF_HUB_OFFLINE=0``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Family = Literal["segformer", "smp", "classical"]

# Mix Transformer sizes of the SegFormer paper (Xie et al. 2021, table 6).
_MIT_COMMON: dict[str, Any] = {
    "num_attention_heads": [1, 2, 5, 8],
    "sr_ratios": [8, 4, 2, 1],
    "patch_sizes": [7, 3, 3, 3],
    "strides": [4, 2, 2, 2],
    "mlp_ratios": [4, 4, 4, 4],
}
_MIT_SIZES: dict[str, tuple[list[int], list[int], int]] = {
    "b0": ([32, 64, 160, 256], [2, 2, 2, 2], 256),
    "b1": ([64, 128, 320, 512], [2, 2, 2, 2], 256),
    "b2": ([64, 128, 320, 512], [3, 4, 6, 3], 768),
    "b3": ([64, 128, 320, 512], [3, 4, 18, 3], 768),
    "b4": ([64, 128, 320, 512], [3, 8, 27, 3], 768),
    "b5": ([64, 128, 320, 512], [3, 6, 40, 3], 768),
}


def _segformer_arch(size: str) -> dict[str, Any]:
    hidden, depths, decoder = _MIT_SIZES[size]
    return {"hidden_sizes": hidden, "depths": depths, "decoder_hidden_size": decoder, **_MIT_COMMON}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model type: its family and default architecture arguments."""

    name: str
    family: Family
    description: str
    architecture: dict[str, Any] = field(default_factory=dict)
    #: Further arguments a caller may set, left at the library's default otherwise.
    options: tuple[str, ...] = ()
    #: Published pretrained checkpoint, used only when a user asks for hub weights.
    hub_id: str | None = None


# smp arguments that size a network (a smaller decoder trains faster on a CPU); smp checks
# their values when the network is built.
_SMP_OPTIONS: dict[str, tuple[str, ...]] = {
    "Unet": ("encoder_depth", "decoder_channels", "decoder_attention_type"),
    "DeepLabV3Plus": ("encoder_depth", "encoder_output_stride", "decoder_channels",
                      "decoder_atrous_rates"),
    "PSPNet": ("encoder_depth", "psp_out_channels", "upsampling"),
}


def _registry() -> dict[str, ModelSpec]:
    specs = [
        ModelSpec(
            f"segformer_{size}",
            "segformer",
            f"SegFormer-{size.upper()} (MiT-{size} encoder, all-MLP decoder)",
            _segformer_arch(size),
            hub_id=f"nvidia/segformer-{size}-finetuned-ade-512-512",
        )
        for size in _MIT_SIZES
    ]
    # The published recipe uses a ResNet-101 encoder for every smp model.
    for name, arch, text in (
        ("smp_deeplabV3plus", "DeepLabV3Plus", "DeepLabV3+"),
        ("smp_unet", "Unet", "U-Net"),
        ("smp_pspnet", "PSPNet", "PSPNet"),
    ):
        specs.append(
            ModelSpec(
                name,
                "smp",
                f"{text} (segmentation-models-pytorch)",
                {"arch": arch, "encoder_name": "resnet101"},
                options=_SMP_OPTIONS[arch],
            )
        )
    specs.append(
        ModelSpec(
            "classical",
            "classical",
            "Triangle-histogram threshold of T_u inside the corridor (no weights)",
            {"bins": 256, "min_area_px": 20, "softness_degc": 0.5},
        )
    )
    return {s.name: s for s in specs}


MODEL_TYPES: dict[str, ModelSpec] = _registry()
#: Model types that train (every type but ``classical``).
TRAINABLE_TYPES: tuple[str, ...] = tuple(
    n for n, s in MODEL_TYPES.items() if s.family != "classical"
)


def get_spec(model_type: str) -> ModelSpec:
    """Look a model type up; an unknown name raises an error listing every valid one."""
    try:
        return MODEL_TYPES[model_type]
    except KeyError:
        raise InvalidInputError(
            f"unknown model type {model_type!r}; choose one of: {', '.join(MODEL_TYPES)}"
        ) from None


def resolve_architecture(
    model_type: str, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The registry's architecture arguments for ``model_type`` updated with ``overrides``."""
    spec = get_spec(model_type)
    arch = dict(spec.architecture)
    for key, value in (overrides or {}).items():
        if key not in arch and key not in spec.options:
            names = ", ".join([*arch, *spec.options])
            raise InvalidInputError(
                f"{model_type} has no architecture option {key!r}; options: {names}"
            )
        arch[key] = value
    return arch


def _hub_allowed(what: str) -> None:
    if get_settings().hub_offline:
        raise InvalidInputError(
            f"{what} needs a download, but HF_HUB_OFFLINE is set; "
            "set HF_HUB_OFFLINE=0 (with network) or pass a local weights folder"
        )


def build_model(
    model_type: str,
    architecture: dict[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> torch.nn.Module:
    """Build a network of the zoo, wrapped in ``SegmentationNet``.

    Args:
        model_type: a key of :data:`MODEL_TYPES` other than ``classical``.
        architecture: overrides of the registry's architecture arguments.
        weights: ``None``/``"random"``, a local path, a hub id (``org/name@commit`` pins a
            revision), or ``"imagenet"`` (smp).
    """
    spec = get_spec(model_type)
    if spec.family == "classical":
        raise InvalidInputError("the classical model has no network; run it through inference")
    from thermal_anomaly_segmenter._compat import ensure_torchvision

    ensure_torchvision()
    arch = resolve_architecture(model_type, architecture)
    weights = None if weights in (None, "", "random") else str(weights)
    if spec.family == "segformer":
        net = _build_segformer(arch, weights)
    else:
        net = _build_smp(arch, weights)
    from thermal_anomaly_segmenter.models.networks import SegmentationNet

    return SegmentationNet(net, spec.family)


def _build_segformer(arch: dict[str, Any], weights: str | None):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    if weights is None:
        return SegformerForSemanticSegmentation(SegformerConfig(num_labels=1, **arch))
    local = Path(weights).expanduser()
    source, revision = str(local), None
    if not local.exists():
        _hub_allowed(f"SegFormer weights {weights!r}")
        # "org/name@<commit>" pins a hub download to one immutable revision.
        source, _, revision = weights.partition("@")
        revision = revision or None
    try:
        # The decode head of a pretrained checkpoint has another number of classes.
        return SegformerForSemanticSegmentation.from_pretrained(
            source,
            revision=revision,
            num_labels=1,
            ignore_mismatched_sizes=True,
            local_files_only=local.exists(),
            use_safetensors=True,
        )
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot load SegFormer weights from {weights!r}: {exc}") from None


def _build_smp(arch: dict[str, Any], weights: str | None):
    import segmentation_models_pytorch as smp

    kwargs = dict(arch)
    name = kwargs.pop("arch")
    encoder_weights = None
    if weights == "imagenet":
        _hub_allowed("ImageNet encoder weights")
        encoder_weights = "imagenet"
    try:
        net = smp.create_model(
            name, encoder_weights=encoder_weights, in_channels=3, classes=1, **kwargs
        )
    except (KeyError, ValueError, TypeError, AssertionError) as exc:
        raise InvalidInputError(f"cannot build smp {name} with {kwargs}: {exc}") from None
    if weights not in (None, "imagenet"):
        _load_encoder_weights(net.encoder, Path(weights).expanduser())
    return net


def _load_encoder_weights(encoder, path: Path) -> None:
    from safetensors.torch import load_file

    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if not candidates:
            raise InvalidInputError(f"no .safetensors file in encoder weights folder {path}")
        path = candidates[0]
    if path.suffix != ".safetensors" or not path.is_file():
        raise InvalidInputError(f"encoder weights must be a .safetensors file, got {path}")
    state = load_file(str(path))
    expected = set(encoder.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing == expected:
        raise InvalidInputError(f"{path.name} holds no weight of this encoder")
    # smp encoders override load_state_dict (dropping classifier keys) and return nothing.
    encoder.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    if missing or unexpected:
        log.warning(
            "encoder weights %s: %d missing, %d unexpected keys",
            path.name,
            len(missing),
            len(unexpected),
        )
