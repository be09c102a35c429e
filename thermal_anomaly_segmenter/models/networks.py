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
        out = self.net(pixel_values=x).logits if self.family == "segformer" else self.net(x)
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out[..., :h, :w]
