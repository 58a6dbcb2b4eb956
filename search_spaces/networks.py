"""The QuadraNet network (Xu et al., 2023) on the HorNet/ConvNeXt macro design, as plain data.

    stem: Conv(k, stride s) + LN
    stage i (width w_i): [LN + Conv 2×2 stride 2 between stages] + blocks
    head: global average pool + LN + Linear

A :class:`NetConfig` lists every stage and every block (mixer, kernel, MLP ratio, gnConv
order), so one class builds QuadraNet, the HorNet baseline, the first-order baseline and any
hybrid the search picks. The stem is configurable so 8×8×1 (digits), 32×32×3 (CIFAR) and
224×224×3 (ImageNet) inputs all work.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from search_spaces.blocks import Block
from search_spaces.layers import LayerNorm2d, check_positive_int
from search_spaces.mixers import MIXERS, gnconv_dims
from search_spaces.quadratic_op import QUADRA_IMPLS

__all__ = ["BlockConfig", "NetConfig", "QuadraNet", "StageConfig", "count_params", "uniform_net"]


def _fail(field_name: str, message: str) -> None:
    raise ValueError(f"{field_name}: {message}")


@dataclass(frozen=True)
class BlockConfig:
    """One block: mixer name, mixer kernel size, MLP ratio, gnConv order (gnconv only)."""

    mixer: str = "quadra"
    kernel_size: int = 7
    mlp_ratio: float = 4.0
    gn_order: int = 3

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            _fail("mixer", f"unknown mixer {self.mixer!r}; valid: {', '.join(MIXERS)}")
        k = self.kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            _fail("kernel_size", f"must be an odd positive integer, got {self.kernel_size!r}")
        if isinstance(self.mlp_ratio, bool) or not isinstance(self.mlp_ratio, (int, float)) or self.mlp_ratio <= 0:
            _fail("mlp_ratio", f"must be a positive number, got {self.mlp_ratio!r}")
        check_positive_int("gn_order", self.gn_order)


@dataclass(frozen=True)
class StageConfig:
    """One stage: its channel width and its blocks (depth = ``len(blocks)``)."""

    width: int
    blocks: tuple[BlockConfig, ...]

    def __post_init__(self) -> None:
        check_positive_int("width", self.width)
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            _fail("blocks", "a stage needs at least one block")
        for i, block in enumerate(self.blocks):
            if not isinstance(block, BlockConfig):
                _fail(f"blocks[{i}]", f"expected BlockConfig, got {type(block).__name__}")
            if block.mixer == "gnconv":
                try:
                    gnconv_dims(self.width, block.gn_order)
                except ValueError as err:
                    _fail(f"blocks[{i}].gn_order", str(err))

    @property
    def depth(self) -> int:
        return len(self.blocks)


@dataclass(frozen=True)
class NetConfig:
    """A whole network. ``input_shape`` is (C, H, W)."""

    input_shape: tuple[int, int, int]
    num_classes: int
    stages: tuple[StageConfig, ...]
    stem_kernel: int = 4
    stem_stride: int = 4
    layer_scale_init: float = 1e-6
    drop_path_rate: float = 0.0
    quadra_impl: str = "efficient"
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        shape = tuple(self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "stages", tuple(self.stages))
        if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
            _fail("input_shape", f"must be three positive ints (C, H, W), got {self.input_shape!r}")
        check_positive_int("num_classes", self.num_classes)
        check_positive_int("stem_kernel", self.stem_kernel)
        check_positive_int("stem_stride", self.stem_stride)
        if not self.stages:
            _fail("stages", "a network needs at least one stage")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, StageConfig):
                _fail(f"stages[{i}]", f"expected StageConfig, got {type(stage).__name__}")
        if self.quadra_impl not in QUADRA_IMPLS:
            _fail("quadra_impl", f"unknown {self.quadra_impl!r}; valid: {', '.join(QUADRA_IMPLS)}")
        rate = self.drop_path_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            _fail("drop_path_rate", f"must be in [0, 1), got {self.drop_path_rate!r}")
        h, w = self.stem_output_hw
        need = 2 ** (len(self.stages) - 1)
        if h < need or w < need or h % need or w % need:
            _fail(
                "input_shape",
                f"{shape} gives {h}×{w} after the stem (kernel {self.stem_kernel}, stride "
                f"{self.stem_stride}); {len(self.stages)} stages need a multiple of {need}",
            )

    @property
    def stem_padding(self) -> int:
        return max(0, (self.stem_kernel - self.stem_stride + 1) // 2)

    @property
    def stem_output_hw(self) -> tuple[int, int]:
        k, s, p = self.stem_kernel, self.stem_stride, self.stem_padding
        return tuple((n + 2 * p - k) // s + 1 for n in self.input_shape[1:])  # type: ignore[return-value]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(stage.depth for stage in self.stages)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(stage.width for stage in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetConfig:
        data = dict(data)
        stages = tuple(
            StageConfig(width=s["width"], blocks=tuple(BlockConfig(**b) for b in s["blocks"]))
            for s in data.pop("stages")
        )
        data["input_shape"] = tuple(data["input_shape"])
        return cls(stages=stages, **data)


def uniform_net(
    *,
    depths: tuple[int, ...],
    widths: tuple[int, ...],
    input_shape: tuple[int, int, int],
    num_classes: int,
    mixer: str = "quadra",
    kernel_size: int = 7,
    mlp_ratio: float = 4.0,
    gn_orders: tuple[int, ...] | None = None,
    name: str = "custom",
    **net_kw: Any,
) -> NetConfig:
    """A NetConfig whose blocks are the same within each stage (how published models are)."""
    if len(depths) != len(widths):
        raise ValueError(f"depths {depths} and widths {widths} must have the same length")
    orders = gn_orders or (3,) * len(depths)
    if len(orders) != len(depths):
        raise ValueError(f"gn_orders {orders} must give one order per stage ({len(depths)})")
    stages = tuple(
        StageConfig(
            width=w,
            blocks=tuple(
                BlockConfig(mixer=mixer, kernel_size=kernel_size, mlp_ratio=mlp_ratio, gn_order=o)
                for _ in range(check_positive_int("depth", d))
            ),
        )
        for d, w, o in zip(depths, widths, orders)
    )
    return NetConfig(input_shape=input_shape, num_classes=num_classes, stages=stages, name=name, **net_kw)


class QuadraNet(nn.Module):
    """Network built from a :class:`NetConfig`; the class of every preset and extracted subnet."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        if not isinstance(config, NetConfig):
            raise TypeError(f"QuadraNet takes a NetConfig, got {type(config).__name__}")
        self.config = config
        in_c = config.input_shape[0]
        w0 = config.stages[0].width
        self.stem = nn.Sequential(
            nn.Conv2d(in_c, w0, config.stem_kernel, stride=config.stem_stride, padding=config.stem_padding),
            LayerNorm2d(w0, eps=1e-6),
        )
        n_blocks = sum(config.depths)
        # Stochastic-depth rate rising linearly from 0 to drop_path_rate over the blocks.
        rates = [config.drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.downsamples = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev, j = w0, 0
        for i, stage in enumerate(config.stages):
            if i > 0:
                self.downsamples.append(
                    nn.Sequential(LayerNorm2d(prev, eps=1e-6), nn.Conv2d(prev, stage.width, 2, stride=2))
                )
            blocks = []
            for bc in stage.blocks:
                blocks.append(
                    Block(
                        dim=stage.width, mixer=bc.mixer, kernel_size=bc.kernel_size, mlp_ratio=bc.mlp_ratio,
                        gn_order=bc.gn_order, layer_scale_init=config.layer_scale_init,
                        drop_path=rates[j], quadra_impl=config.quadra_impl,
                    )
                )
                j += 1
            self.stages.append(nn.Sequential(*blocks))
            prev = stage.width
        self.norm = nn.LayerNorm(prev, eps=1e-6)
        self.head = nn.Linear(prev, config.num_classes)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C_last)
        self._check_input(x)
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsamples[i - 1](x)
            x = stage(x)
        return self.norm(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.forward_features(x))

    def _check_input(self, x: torch.Tensor) -> None:
        expected = self.config.input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{self.config.name} expects input of shape (B, {expected[0]}, {expected[1]}, "
                f"{expected[2]}), got {tuple(x.shape)}"
            )


def _init_weights(m: nn.Module) -> None:
    # HorNet / ConvNeXt: truncated normal (std 0.02) for conv and linear weights, zero biases.
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def count_params(model: nn.Module) -> int:
    """Number of parameters (elements) in ``model``."""
    return sum(p.numel() for p in model.parameters())
