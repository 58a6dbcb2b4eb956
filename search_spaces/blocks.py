"""The residual block shared by QuadraNet and its baselines (HorNet / ConvNeXt macro design).

    x = x + γ₁ · mixer(LN(x))
    x = x + γ₂ · Linear(rC→C)(GELU(Linear(C→rC)(LN(x))))

γ₁, γ₂ are per-channel layer scales initialised to ``layer_scale_init`` (1e-6 in QuadraNet,
HorNet and ConvNeXt). The mixer is chosen by name: ``quadra`` (QuadraNet's quadratic depthwise
conv — :class:`QuadraBlock`), ``gnconv`` (HorNet) or ``first_order`` (one depthwise conv,
ConvNeXt-like). Only the mixer differs, so comparisons are like for like.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.layers import DropPath, LayerNorm2d, check_positive_int
from search_spaces.mixers import GnConv, create_mixer

__all__ = ["Block", "QuadraBlock", "mlp_hidden"]


def mlp_hidden(dim: int, mlp_ratio: float) -> int:
    """Hidden width of the block's MLP: ``round(mlp_ratio * dim)``."""
    if not isinstance(mlp_ratio, (int, float)) or isinstance(mlp_ratio, bool) or mlp_ratio <= 0:
        raise ValueError(f"mlp_ratio must be a positive number, got {mlp_ratio!r}")
    return max(1, int(round(mlp_ratio * dim)))


class Block(nn.Module):
    """One residual block; ``mixer`` in {"quadra", "gnconv", "first_order"}."""

    def __init__(
        self,
        *,
        dim: int,
        mixer: str = "quadra",
        kernel_size: int = 7,
        mlp_ratio: float = 4.0,
        gn_order: int = 3,
        layer_scale_init: float = 1e-6,
        drop_path: float = 0.0,
        quadra_impl: str = "efficient",
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        if mixer == "quadra":
            mixer_kw = {"kernel_size": kernel_size, "impl": quadra_impl}
        elif mixer == "gnconv":
            mixer_kw = {"kernel_size": kernel_size, "order": gn_order}
        else:
            mixer_kw = {"kernel_size": kernel_size}
        self.dim = dim
        self.mixer_name = mixer
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.mixer = create_mixer(mixer, dim=dim, **mixer_kw)
        self.gamma1 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        hidden = mlp_hidden(dim, mlp_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.gamma2 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.drop_path = DropPath(drop_path)

    @property
    def is_quadratic(self) -> bool:
        return self.mixer_name == "quadra"

    @property
    def gn_order(self) -> int | None:
        return self.mixer.order if isinstance(self.mixer, GnConv) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        x = x + self.drop_path(self.gamma1.view(1, -1, 1, 1) * self.mixer(self.norm1(x)))
        y = self.norm2(x.permute(0, 2, 3, 1))  # (B, H, W, C)
        y = self.fc2(self.act(self.fc1(y)))
        return x + self.drop_path((self.gamma2 * y).permute(0, 3, 1, 2))


class QuadraBlock(Block):
    """QuadraNet's block: :class:`Block` with the quadratic depthwise conv as its mixer."""

    def __init__(self, *, dim: int, kernel_size: int = 7, mlp_ratio: float = 4.0, **kwargs) -> None:
        if "mixer" in kwargs:
            raise ValueError("QuadraBlock's mixer is always 'quadra'; use Block(mixer=...) for others")
        super().__init__(dim=dim, mixer="quadra", kernel_size=kernel_size, mlp_ratio=mlp_ratio, **kwargs)
