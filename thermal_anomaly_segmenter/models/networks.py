"""The torch module every zoo network is wrapped in (imported only when a model is built)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Family = Literal["segformer", "smp"]


class SegmentationNet(nn.Module):
    """Any zoo network behind one contract: normalised ``B x 3 x H x W`` in, logits out.

    Pads to the encoder's stride and crops back, so callers never think about sizes.
    Defined at module level so that DDP spawn and ``torch.save`` can pickle it.
    """

    def __init__(self, net: nn.Module, family: Family, stride: int = 32) -> None:
        super().__init__()
        self.net = net
        self.family = family
        self.stride = stride

    def encoder(self) -> nn.Module:
        """The pretrained-style encoder (frozen in the ``pre_train_frozen`` phase)."""
        return self.net.segformer if self.family == "segformer" else self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        if pad_h or pad_w:
            # Replicate, not zeros: a zero border would look like a cold edge.
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = self.net(pixel_values=x) if self.family == "segformer" else self.net(x)
        return logits_at(out, x.shape[-2:])[..., :h, :w]


def logits_at(out, size: tuple[int, int]) -> torch.Tensor:
    """A network's logits at ``size``: its output tensor, or the ``.logits`` of an output
    object (Hugging Face models, the networks of the published TASeg), upsampled bilinearly
    where the network answers at a coarser resolution (as the published inference did)."""
    logits = getattr(out, "logits", out)
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits
