"""The recipe of one training run (:class:`TrainConfig`) and the seeding every run starts with."""

from __future__ import annotations

import math
import numbers
import random
from dataclasses import dataclass

import torch

from nas.data import AUGMENTATIONS
from profilers import check_device

__all__ = ["TrainConfig", "set_seed"]


def set_seed(seed: int) -> None:
    """Seed Python, and torch's CPU and CUDA generators."""
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of one training run; every field has a unit-free meaning or a unit in its name."""

    epochs: int = 30  # training epochs
    batch_size: int = 64  # images per step (per process under torchrun)
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 0.05  # AdamW weight decay (not on biases, norms, layer scales)
    label_smoothing: float = 0.1  # label smoothing of the cross-entropy loss
    warmup_epochs: float = 1.0  # linear warm-up of the learning rate, in epochs
    min_lr_ratio: float = 0.01  # the cosine schedule ends at lr times this
    grad_clip_norm: float | None = None  # clip the gradient norm to this (default: no clipping)
    augment: str | None = None  # batch augmentation (default: the dataset's own hint)
    seed: int = 0  # seed of the weights, the batches and the augmentation
    device: str = "cpu"  # cpu or cuda[:N]

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> None:
            raise ValueError(f"{name} {rule}, got {getattr(self, name)!r}")

        def is_int(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_finite(v: object) -> bool:  # NaN and ±inf are not
            return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

        if not is_int(self.epochs) or self.epochs < 1:
            bad("epochs", "must be a positive integer")
        if not is_int(self.batch_size) or self.batch_size < 1:
            bad("batch_size", "must be a positive integer")
        if not is_finite(self.lr) or not self.lr > 0:
            bad("lr", "must be a finite number > 0")
        if not is_finite(self.weight_decay) or not self.weight_decay >= 0:
            bad("weight_decay", "must be a finite number >= 0")
        if not is_finite(self.label_smoothing) or not 0.0 <= self.label_smoothing < 1.0:
            bad("label_smoothing", "must be a number in [0, 1)")
        if not is_finite(self.warmup_epochs) or not self.warmup_epochs >= 0:
            bad("warmup_epochs", "must be a finite number >= 0")
        if self.warmup_epochs > self.epochs:
            bad("warmup_epochs", f"must not exceed epochs ({self.epochs}): the lr would never reach lr")
        if not is_int(self.seed) or self.seed < 0:
            bad("seed", "must be a non-negative integer")
        if not is_finite(self.min_lr_ratio) or not 0.0 <= self.min_lr_ratio <= 1.0:
            bad("min_lr_ratio", "must be a number in [0, 1]")
        if self.grad_clip_norm is not None and (not is_finite(self.grad_clip_norm) or not self.grad_clip_norm > 0):
            bad("grad_clip_norm", "must be a finite number > 0 or None")
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            bad("augment", f"must be None or one of {', '.join(AUGMENTATIONS)}")
        check_device(self.device, available=True)  # 'cpu' or 'cuda[:N]', and a CUDA device must exist
