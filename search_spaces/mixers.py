"""Token mixers that plug into the shared block design (see :mod:`search_spaces.blocks`).

- :class:`QuadraConv` — QuadraNet's depthwise quadratic convolution (Xu et al., 2023):
  ``(W_a ∗ x) ⊙ (W_b ∗ x) + W_c ∗ x``; memory-efficient by default.
- :class:`GnConv` — HorNet's recursive gated convolution gⁿConv (Rao et al., NeurIPS 2022),
  the high-order baseline.
- :class:`DWConv` — one depthwise k×k conv: the first-order (ConvNeXt-like) baseline.

All map (B, C, H, W) -> (B, C, H, W). Build them by name with :func:`create_mixer`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from search_spaces.layers import check_positive_int
from search_spaces.quadratic_op import QUADRA_BACKENDS, QUADRA_IMPLS, quadratic_dwconv

__all__ = ["DWConv", "GnConv", "MIXERS", "QuadraConv", "create_mixer", "gnconv_dims"]


def _check_kernel(kernel_size: int) -> int:
    check_positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd so the output keeps its size, got {kernel_size}")
    return kernel_size


class QuadraConv(nn.Module):
    """Depthwise k×k quadratic convolution ``y = (W_a∗x) ⊙ (W_b∗x) + W_c∗x`` with biases.

    ``impl="efficient"`` (default) keeps only ``x`` and the weights for backward and recomputes
    (Triton-fused on CUDA); ``impl="plain"`` is the reference PyTorch composition.
    """

    def __init__(self, *, dim: int, kernel_size: int = 7, impl: str = "efficient", backend: str = "auto") -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.kernel_size = _check_kernel(kernel_size)
        if impl not in QUADRA_IMPLS:
            raise ValueError(f"unknown impl {impl!r}; valid: {', '.join(QUADRA_IMPLS)}")
        if backend not in QUADRA_BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(QUADRA_BACKENDS)}")
        self.impl = impl
        self.backend = backend
        shape = (dim, 1, kernel_size, kernel_size)
        self.weight_a = nn.Parameter(torch.empty(shape))
        self.weight_b = nn.Parameter(torch.empty(shape))
        self.weight_c = nn.Parameter(torch.empty(shape))
        self.bias_a = nn.Parameter(torch.empty(dim))
        self.bias_b = nn.Parameter(torch.empty(dim))
        self.bias_c = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv2d's default init per factor (uniform ±1/sqrt(fan_in)), so both the product
        # and the linear term start at a comparable scale.
        bound = 1.0 / math.sqrt(self.kernel_size * self.kernel_size)
        for w in (self.weight_a, self.weight_b, self.weight_c):
            nn.init.uniform_(w, -bound, bound)
        nn.init.ones_(self.bias_a)  # a ≈ 1 at start: y ≈ (W_b∗x) + (W_c∗x), a gentle quadratic term
        nn.init.zeros_(self.bias_b)
        nn.init.zeros_(self.bias_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return quadratic_dwconv(
            x, self.weight_a, self.weight_b, self.weight_c, self.bias_a, self.bias_b, self.bias_c,
            padding=self.kernel_size // 2, impl=self.impl, backend=self.backend,
        )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kernel_size={self.kernel_size}, impl={self.impl!r}"


class DWConv(nn.Module):
    """First-order mixer: one depthwise k×k convolution with bias."""

    def __init__(self, *, dim: int, kernel_size: int = 7) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        k = _check_kernel(kernel_size)
        self.dim = dim
        self.kernel_size = k
        self.conv = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def gnconv_dims(dim: int, order: int) -> list[int]:
    """HorNet's channel widths ``d_k = C / 2^(n-1-k)`` for k = 0 … n-1 (the last is C)."""
    check_positive_int("order", order)
    if dim % (2 ** (order - 1)):
        raise ValueError(f"gnConv of order {order} needs dim divisible by {2 ** (order - 1)}, got {dim}")
    return [dim // 2 ** (order - 1 - k) for k in range(order)]


class GnConv(nn.Module):
    """HorNet's recursive gated convolution gⁿConv.

    ``proj_in`` (1×1, C→2C) splits into ``p₀`` (width d₀) and ``q`` (widths d₀…d_{n−1});
    one depthwise k×k conv over ``q``, scaled by ``scale`` (1/3 in HorNet), splits into
    f₀…f_{n−1}; ``x = p₀ ⊙ f₀``, then ``x = pws[k-1](x) ⊙ f_k`` (1×1, d_{k−1}→d_k) for
    k = 1…n−1; ``proj_out`` (1×1, C→C).
    """

    def __init__(self, *, dim: int, order: int = 3, kernel_size: int = 7, scale: float = 1.0 / 3.0) -> None:
        super().__init__()
        self.dims = gnconv_dims(check_positive_int("dim", dim), order)
        k = _check_kernel(kernel_size)
        self.dim = dim
        self.order = order
        self.kernel_size = k
        self.scale = float(scale)
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.dwconv = nn.Conv2d(sum(self.dims), sum(self.dims), k, padding=k // 2, groups=sum(self.dims))
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        fused = self.proj_in(x)  # (B, 2C, H, W)
        p0, q = torch.split(fused, (self.dims[0], sum(self.dims)), dim=1)
        f = torch.split(self.dwconv(q) * self.scale, self.dims, dim=1)
        x = p0 * f[0]
        for k, pw in enumerate(self.pws, start=1):
            x = pw(x) * f[k]
        return self.proj_out(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, order={self.order}, dims={self.dims}, scale={self.scale:.4g}"


MIXERS: dict[str, type[nn.Module]] = {"quadra": QuadraConv, "gnconv": GnConv, "first_order": DWConv}


def create_mixer(name: str, **kwargs) -> nn.Module:
    """Build a token mixer by name: ``quadra``, ``gnconv`` or ``first_order``."""
    try:
        cls = MIXERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown mixer {name!r}; valid: {', '.join(MIXERS)}") from None
    return cls(**kwargs)
