"""The seven quadratic neuron designs compared by QuadraLib (Xu et al., MLSys 2022).

Each design exists as a dense layer (input ``(..., in_channels)``) and as a 2-D convolution
(input ``(B, in_channels, H, W)``, any kernel size, stride, padding and groups, depthwise
included). For a convolution, ``x`` in the formulas is the receptive-field patch of one output
position and every ``W x`` is a convolution with its own weight and bias.

| name    | formula                                   |
| ------- | ----------------------------------------- |
| ``t1``  | ``xᵀ W_a x + W_b x``                      |
| ``t2``  | ``W_a x²``                                |
| ``t3``  | ``(W_a x)²``                              |
| ``t4``  | ``(W_a x) ⊙ (W_b x)``                     |
| ``t1&2``| ``xᵀ W_a x + W_b x²``                     |
| ``t2&4``| ``(W_a x) ⊙ (W_b x) + W_c x²``            |
| ``ours``| ``(W_a x) ⊙ (W_b x) + W_c x``  (QuadraLib/QuadraNet) |

``x²`` is elementwise. The bilinear term ``xᵀ W_a x`` has one ``in × in`` matrix per output:
the dense layer keeps it exact (``in² · out`` parameters); the convolution uses a **rank-R
factorisation** ``W_a^{(o)} = Σ_r u_{o,r} v_{o,r}ᵀ``, computed as
``Σ_r (U_r ∗ x) ⊙ (V_r ∗ x)`` with ``2·R·out`` convolution filters (``rank``, default 2;
``rank=1`` coincides with the product term of ``t4``).

Build any of them with :func:`create_quadratic` by name.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from search_spaces.layers import check_positive_int

__all__ = [
    "QUADRATIC_NEURONS",
    "QuadraticNeuron",
    "create_quadratic",
    "quadratic_names",
]

DEFAULT_CONV_RANK = 2  # rank of the factorised bilinear term in t1 / t1&2 convolutions


class QuadraticNeuron(nn.Module):
    """Base class: validates the layer geometry and builds the first-order maps it composes.

    ``kernel_size=None`` makes a dense layer, an int a convolution.
    """

    name: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    bilinear: ClassVar[bool] = False  # has the xᵀW_a x term (submodule ``quad``)
    maps: ClassVar[tuple[str, ...]] = ()  # first-order maps W x, as submodules of these names

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel_size: int | None = None,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        bias: bool = True,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        if kernel_size is None:
            if groups != 1 or stride != 1 or padding is not None:
                raise ValueError(
                    "stride, padding and groups apply to convolutions only; "
                    "pass kernel_size=K for a convolution or leave them at their defaults"
                )
        else:
            if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
                raise ValueError(f"kernel_size must be a positive integer or None, got {kernel_size!r}")
            check_positive_int("stride", stride)
            if padding is None:
                padding = kernel_size // 2
            if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
                raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
            if not isinstance(groups, int) or groups < 1 or in_channels % groups or out_channels % groups:
                raise ValueError(
                    f"groups={groups!r} must be a positive integer dividing in_channels={in_channels} "
                    f"and out_channels={out_channels}"
                )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.bias = bias
        if self.bilinear:
            self.quad = _Bilinear(self, rank)
        elif rank is not None:
            raise ValueError(f"rank applies only to {sorted(_TAKES_RANK)}, not {self.name!r}")
        for map_name in self.maps:
            setattr(self, map_name, self._map())

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        """The design's formula on a checked input."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.compute(x)

    @property
    def is_conv(self) -> bool:
        return self.kernel_size is not None

    def _map(self, out_channels: int | None = None, *, bias: bool | None = None) -> nn.Module:
        """A first-order map ``W x`` of this layer's geometry (nn.Linear or nn.Conv2d)."""
        out = self.out_channels if out_channels is None else out_channels
        use_bias = self.bias if bias is None else bias
        if not self.is_conv:
            return nn.Linear(self.in_channels, out, bias=use_bias)
        return nn.Conv2d(
            self.in_channels,
            out,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            groups=self.groups,
            bias=use_bias,
        )

    def _check_input(self, x: torch.Tensor) -> None:
        if self.is_conv:
            if x.ndim != 4 or x.shape[1] != self.in_channels:
                raise ValueError(
                    f"{type(self).__name__} expects input (B, {self.in_channels}, H, W), "
                    f"got shape {tuple(x.shape)}"
                )
        elif x.ndim < 1 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects input (..., {self.in_channels}), got shape {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        kind = "dense" if not self.is_conv else (
            f"conv k={self.kernel_size} s={self.stride} p={self.padding} g={self.groups}"
        )
        return f"{self.name!r}: {self.formula}, {self.in_channels}->{self.out_channels}, {kind}"


class _Bilinear(nn.Module):
    """``xᵀ W_a x`` per output: exact for dense layers, rank-R factorised for convolutions."""

    def __init__(self, owner: QuadraticNeuron, rank: int | None) -> None:
        super().__init__()
        self.out_channels = owner.out_channels
        if owner.is_conv:
            rank = DEFAULT_CONV_RANK if rank is None else rank
            if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
                raise ValueError(f"rank must be a positive integer, got {rank!r}")
            self.rank = rank
            # Output channel o*R + r belongs to the same group as output o of a plain conv.
            self.u = owner._map(owner.out_channels * rank, bias=False)
            self.v = owner._map(owner.out_channels * rank, bias=False)
        else:
            if rank is not None:
                raise ValueError("the dense bilinear term is exact; rank applies to convolutions only")
            self.rank = None
            n = owner.in_channels
            self.weight = nn.Parameter(torch.empty(owner.out_channels, n, n))
            nn.init.normal_(self.weight, std=n**-1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank is None:  # dense: (..., in) -> (..., out)
            return torch.einsum("...i,oij,...j->...o", x, self.weight, x)
        prod = self.u(x) * self.v(x)  # (B, out*R, H', W')
        b, _, h, w = prod.shape
        return prod.view(b, self.out_channels, self.rank, h, w).sum(dim=2)


class T1(QuadraticNeuron):
    name = "t1"
    formula = "xᵀW_a x + W_b x"
    bilinear = True
    maps = ("lin_b",)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.quad(x) + self.lin_b(x)


class T2(QuadraticNeuron):
    name = "t2"
    formula = "W_a x²"
    maps = ("lin_a",)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin_a(x * x)


class T3(QuadraticNeuron):
    name = "t3"
    formula = "(W_a x)²"
    maps = ("lin_a",)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        a = self.lin_a(x)
        return a * a


class T4(QuadraticNeuron):
    name = "t4"
    formula = "(W_a x) ⊙ (W_b x)"
    maps = ("lin_a", "lin_b")

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin_a(x) * self.lin_b(x)


class T1T2(QuadraticNeuron):
    name = "t1&2"
    formula = "xᵀW_a x + W_b x²"
    bilinear = True
    maps = ("lin_b",)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.quad(x) + self.lin_b(x * x)


class T2T4(QuadraticNeuron):
    name = "t2&4"
    formula = "(W_a x) ⊙ (W_b x) + W_c x²"
    maps = ("lin_a", "lin_b", "lin_c")

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin_a(x) * self.lin_b(x) + self.lin_c(x * x)


class Ours(QuadraticNeuron):
    name = "ours"
    formula = "(W_a x) ⊙ (W_b x) + W_c x"
    maps = ("lin_a", "lin_b", "lin_c")

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin_a(x) * self.lin_b(x) + self.lin_c(x)


QUADRATIC_NEURONS: dict[str, type[QuadraticNeuron]] = {
    cls.name: cls for cls in (Ours, T1, T2, T3, T4, T1T2, T2T4)
}
_TAKES_RANK = frozenset(name for name, cls in QUADRATIC_NEURONS.items() if cls.bilinear)


def quadratic_names() -> list[str]:
    """The registered neuron design names, in registry order."""
    return list(QUADRATIC_NEURONS)


def create_quadratic(name: str, **kwargs) -> QuadraticNeuron:
    """Build a quadratic neuron layer by design name.

    Keyword arguments: ``in_channels``, ``out_channels`` and, for a convolution,
    ``kernel_size``, ``stride``, ``padding``, ``groups``; ``bias``; ``rank`` (``t1`` and
    ``t1&2`` convolutions only).
    """
    try:
        cls = QUADRATIC_NEURONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown quadratic neuron {name!r}; valid names: {', '.join(QUADRATIC_NEURONS)}"
        ) from None
    return cls(**kwargs)
