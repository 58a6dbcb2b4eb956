"""Batch-level data augmentation on tensors (no image library needed).

``crop_flip`` is the standard CIFAR recipe: pad 4 pixels with zeros, take a random crop of
the original size, flip horizontally with probability 1/2 — drawn per sample from a seeded
generator so runs repeat exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATIONS", "augment_batch"]

AUGMENTATIONS = ("none", "crop_flip")
_PAD = 4


def augment_batch(x: torch.Tensor, kind: str, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a (B, C, H, W) batch; ``kind`` is one of :data:`AUGMENTATIONS`."""
    if kind == "none":
        return x
    if kind != "crop_flip":
        raise ValueError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}")
    b, _, h, w = x.shape
    padded = F.pad(x, (_PAD, _PAD, _PAD, _PAD))
    dy = torch.randint(0, 2 * _PAD + 1, (b,), generator=generator).tolist()
    dx = torch.randint(0, 2 * _PAD + 1, (b,), generator=generator).tolist()
    flip = (torch.rand(b, generator=generator) < 0.5).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    flipped = [i for i in range(b) if flip[i]]
    if flipped:
        out[flipped] = out[flipped].flip(-1)
    return out
