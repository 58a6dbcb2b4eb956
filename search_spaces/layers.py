"""Small building blocks shared by every network: channels-first LayerNorm and stochastic depth.

The channels-first LayerNorm follows ConvNeXt/HorNet (normalise over C of a (B, C, H, W)
tensor); stochastic depth ("drop path") follows Huang et al., 2016, as used by timm.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DropPath", "LayerNorm2d", "check_positive_int", "plain_int"]


def plain_int(value: object) -> object:
    """``value`` as a Python int if it is any integer type (NumPy, pandas), else unchanged: for
    function arguments, which are used and not stored. Config fields stay strict (records must
    serialise as JSON)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    return value


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int, else raise a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        hint = ""
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
            hint = f" (a Python int: pass int({value!r}) for a NumPy or pandas integer)"
        raise ValueError(f"{name} must be a positive integer{hint}, got {value!r}")
    return value


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch per sample with probability ``p``.

    Survivors are scaled by ``1 / (1 - p)`` so the expectation is unchanged; in eval it is the
    identity.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
