"""Weight-sharing QuadraNet supernet over a :class:`SearchSpace` (once-for-all style).

Elastic layers own the weights of the largest architecture and slice them for the active one
(Cai et al., "Once-for-All", ICLR 2020):

- channels: the leading ``width`` channels of every tensor (and the leading ``ratio·width``
  hidden units of the MLP);
- kernel: the centre ``k×k`` crop of the largest kernel;
- depth: the first ``d`` blocks of each stage;
- neuron order: order 2 runs the quadratic mixer ``(W_a∗x) ⊙ (W_b∗x) + W_c∗x`` with the
  memory-efficient operator; order 1 skips the ``W_a``/``W_b`` product and runs ``W_c∗x``.

State lives on the instance: :meth:`QuadraSupernet.set_active`,
:meth:`~QuadraSupernet.sample_active`, :meth:`~QuadraSupernet.extract`. ``extract(arch)``
returns a plain :class:`QuadraNet` built from the foundation's classes with the sliced weights
copied in — no supernet code inside — whose output equals the supernet's with that
architecture active.

Every normalisation layer is a LayerNorm (no running statistics), so a subnet needs no
statistics recalibration before it is evaluated.
"""

from __future__ import annotations

import random
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.arch import ArchConfig, BlockArch, StageArch
from search_spaces.blocks import Block
from search_spaces.layers import LayerNorm2d
from search_spaces.mixers import DWConv, QuadraConv
from search_spaces.networks import QuadraNet
from search_spaces.quadratic_op import quadratic_dwconv
from search_spaces.space import SearchSpace

__all__ = ["ElasticBlock", "QuadraSupernet"]

_EPS = 1e-6  # every LayerNorm, as in the foundation's networks


def _crop(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Centre k×k crop of a (C, 1, K, K) kernel."""
    big = weight.shape[-1]
    off = (big - k) // 2
    return weight[..., off:off + k, off:off + k]


def _ln2d(x: torch.Tensor, norm: nn.LayerNorm, c: int) -> torch.Tensor:
    """Channels-first LayerNorm over the leading ``c`` channels' parameters."""
    y = F.layer_norm(x.permute(0, 2, 3, 1), (c,), norm.weight[:c], norm.bias[:c], _EPS)
    return y.permute(0, 3, 1, 2)


class ElasticBlock(nn.Module):
    """The shared block at its largest (width, kernel, MLP ratio); runs any smaller choice."""

    def __init__(self, *, max_width: int, max_kernel: int, max_ratio: int, layer_scale_init: float) -> None:
        super().__init__()
        self.max_width = max_width
        self.norm1 = LayerNorm2d(max_width, eps=_EPS)
        self.mixer = QuadraConv(dim=max_width, kernel_size=max_kernel)
        self.gamma1 = nn.Parameter(torch.full((max_width,), float(layer_scale_init)))
        self.norm2 = nn.LayerNorm(max_width, eps=_EPS)
        self.fc1 = nn.Linear(max_width, max_ratio * max_width)
        self.fc2 = nn.Linear(max_ratio * max_width, max_width)
        self.gamma2 = nn.Parameter(torch.full((max_width,), float(layer_scale_init)))

    def _mixer_weights(self, c: int, k: int):
        m = self.mixer
        return (_crop(m.weight_a[:c], k), _crop(m.weight_b[:c], k), _crop(m.weight_c[:c], k),
                m.bias_a[:c], m.bias_b[:c], m.bias_c[:c])

    def forward(self, x: torch.Tensor, width: int, choice: BlockArch) -> torch.Tensor:  # (B, width, H, W)
        c, k, h = width, choice.kernel_size, choice.mlp_ratio * width
        w_a, w_b, w_c, b_a, b_b, b_c = self._mixer_weights(c, k)
        y = _ln2d(x, self.norm1, c)
        if choice.order == 2:
            y = quadratic_dwconv(y, w_a, w_b, w_c, b_a, b_b, b_c, padding=k // 2,
                                 impl=self.mixer.impl, backend=self.mixer.backend)
        else:
            y = F.conv2d(y, w_c, b_c, padding=k // 2, groups=c)
        x = x + self.gamma1[:c].view(1, -1, 1, 1) * y
        z = F.layer_norm(x.permute(0, 2, 3, 1), (c,), self.norm2.weight[:c], self.norm2.bias[:c], _EPS)
        z = F.linear(F.gelu(F.linear(z, self.fc1.weight[:h, :c], self.fc1.bias[:h])),
                     self.fc2.weight[:c, :h], self.fc2.bias[:c])
        return x + (self.gamma2[:c] * z).permute(0, 3, 1, 2)

    @torch.no_grad()
    def copy_into(self, block: Block, width: int, choice: BlockArch) -> None:
        """Copy this block's slice for (width, choice) into a stand-alone ``Block``."""
        c, k, h = width, choice.kernel_size, choice.mlp_ratio * width
        w_a, w_b, w_c, b_a, b_b, b_c = self._mixer_weights(c, k)
        block.norm1.weight.copy_(self.norm1.weight[:c])
        block.norm1.bias.copy_(self.norm1.bias[:c])
        if choice.order == 2:
            assert isinstance(block.mixer, QuadraConv)
            for name, src in zip(("weight_a", "weight_b", "weight_c", "bias_a", "bias_b", "bias_c"),
                                 (w_a, w_b, w_c, b_a, b_b, b_c)):
                getattr(block.mixer, name).copy_(src)
        else:
            assert isinstance(block.mixer, DWConv)
            block.mixer.conv.weight.copy_(w_c)
            block.mixer.conv.bias.copy_(b_c)
        block.gamma1.copy_(self.gamma1[:c])
        block.norm2.weight.copy_(self.norm2.weight[:c])
        block.norm2.bias.copy_(self.norm2.bias[:c])
        block.fc1.weight.copy_(self.fc1.weight[:h, :c])
        block.fc1.bias.copy_(self.fc1.bias[:h])
        block.fc2.weight.copy_(self.fc2.weight[:c, :h])
        block.fc2.bias.copy_(self.fc2.bias[:c])
        block.gamma2.copy_(self.gamma2[:c])


class QuadraSupernet(nn.Module):
    """One set of shared weights for every architecture of ``space``."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        if not isinstance(space, SearchSpace):
            raise TypeError(f"QuadraSupernet takes a SearchSpace, got {type(space).__name__}")
        self.space = space
        big = space.max_arch()
        # The largest network with every block quadratic gives the layout and initialisation
        # (an elastic block always owns W_a, W_b and W_c, whatever orders the space allows).
        quadratic = ArchConfig(space=space.name, stages=tuple(
            StageArch(width=s.width, blocks=tuple(replace(b, order=2) for b in s.blocks)) for s in big.stages))
        ref = QuadraNet(space.to_net_config(quadratic))
        self.stem = ref.stem
        self.downsamples = ref.downsamples
        kmax, rmax = max(space.kernel_choices), max(space.mlp_ratio_choices)
        self.stages = nn.ModuleList(
            nn.ModuleList(
                ElasticBlock(max_width=stage.width, max_kernel=kmax, max_ratio=rmax,
                             layer_scale_init=space.layer_scale_init)
                for _ in range(stage.depth)
            )
            for stage in big.stages
        )
        self.norm = ref.norm
        self.head = ref.head
        # The elastic blocks start from the same initialisation as the foundation's Block.
        for stage_ref, stage in zip(ref.stages, self.stages):
            for block_ref, block in zip(stage_ref, stage):
                block.load_state_dict(block_ref.state_dict())
        self.active: ArchConfig = big

    # --- active architecture -----------------------------------------------------------------
    def set_active(self, arch: ArchConfig) -> None:
        self.active = self.space.validate(arch)

    def sample_active(self, rng: random.Random) -> ArchConfig:
        arch = self.space.sample(rng)
        self.active = arch
        return arch

    def max_arch(self) -> ArchConfig:
        return self.space.max_arch()

    def min_arch(self) -> ArchConfig:
        return self.space.min_arch()

    # --- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        expected = self.space.input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"supernet of space {self.space.name!r} expects input (B, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}), got {tuple(x.shape)}")
        arch = self.active
        return self.run_head(self.run_stages(x, arch, 0, len(arch.stages)), arch)

    def run_stages(self, x: torch.Tensor, arch: ArchConfig, start: int, stop: int) -> torch.Tensor:
        """Stages ``start`` … ``stop − 1`` of ``arch`` (validated by the caller) on ``x``: the input
        images when ``start`` is 0 (the stem runs first, as part of stage 0), else the output of
        stage ``start − 1`` of an
        architecture whose first ``start`` stages are ``arch``'s. ``forward`` is
        ``run_head(run_stages(x, arch, 0, n), arch)``; what a stage computes depends only on the
        stages before it, so outputs of a shared prefix of stages can be reused (the search's scorer)."""
        if not 0 <= start <= stop <= len(arch.stages):
            raise ValueError(f"stages {start}..{stop} out of range for {len(arch.stages)} stages")
        if start == 0 and stop > 0:  # the stem belongs to stage 0 (no stages: x as it is)
            c = arch.stages[0].width
            conv, norm = self.stem[0], self.stem[1]
            x = F.conv2d(x, conv.weight[:c], conv.bias[:c], stride=conv.stride, padding=conv.padding)
            x = _ln2d(x, norm, c)
        for i in range(start, stop):
            stage = arch.stages[i]
            if i > 0:
                c = arch.stages[i - 1].width
                ln, down = self.downsamples[i - 1][0], self.downsamples[i - 1][1]
                x = _ln2d(x, ln, c)
                x = F.conv2d(x, down.weight[:stage.width, :c], down.bias[:stage.width], stride=2)
            for block, choice in zip(self.stages[i], stage.blocks):
                x = block(x, stage.width, choice)
        return x

    def run_head(self, x: torch.Tensor, arch: ArchConfig) -> torch.Tensor:
        """The final norm and classifier of ``arch`` on its last stage's output: logits (B, num_classes)."""
        c = arch.stages[-1].width
        x = F.layer_norm(x.mean(dim=(2, 3)), (c,), self.norm.weight[:c], self.norm.bias[:c], _EPS)
        return F.linear(x, self.head.weight[:, :c], self.head.bias)

    # --- extraction --------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: ArchConfig | None = None) -> QuadraNet:
        """A stand-alone :class:`QuadraNet` of ``arch`` (default: the active one) with copied weights."""
        arch = self.space.validate(arch if arch is not None else self.active)
        net = QuadraNet(self.space.to_net_config(arch)).to(device=self.head.weight.device,
                                                            dtype=self.head.weight.dtype)
        c0 = arch.stages[0].width
        net.stem[0].weight.copy_(self.stem[0].weight[:c0])
        net.stem[0].bias.copy_(self.stem[0].bias[:c0])
        net.stem[1].weight.copy_(self.stem[1].weight[:c0])
        net.stem[1].bias.copy_(self.stem[1].bias[:c0])
        prev = c0
        for i, stage in enumerate(arch.stages):
            if i > 0:
                src, dst = self.downsamples[i - 1], net.downsamples[i - 1]
                dst[0].weight.copy_(src[0].weight[:prev])
                dst[0].bias.copy_(src[0].bias[:prev])
                dst[1].weight.copy_(src[1].weight[:stage.width, :prev])
                dst[1].bias.copy_(src[1].bias[:stage.width])
            for j, choice in enumerate(stage.blocks):
                self.stages[i][j].copy_into(net.stages[i][j], stage.width, choice)
            prev = stage.width
        net.norm.weight.copy_(self.norm.weight[:prev])
        net.norm.bias.copy_(self.norm.bias[:prev])
        net.head.weight.copy_(self.head.weight[:, :prev])
        net.head.bias.copy_(self.head.bias)
        return net.train(self.training)
