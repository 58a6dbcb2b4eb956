"""The record of one task — :class:`DatasetSplits` — and the helpers every source builds it with.

Three ``TensorDataset``s holding ``(images, labels)`` = (float32 ``(N, C, H, W)``, int64 ``(N,)``).
Units: pixels are first scaled to [0, 1] (digits ÷ 16, CIFAR-10 ÷ 255), then normalised per
channel, ``x_norm = (x01 - mean[c]) / std[c]``, with mean and population std (ddof=0)
computed on the TRAIN split only; ``mean``/``std`` on the record are the constants applied
(in float32), so ``x01 = x_norm * std[c] + mean[c]`` undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from nas.data.augment import AUGMENTATIONS

__all__ = ["DatasetSplits", "check_seed", "normalise", "split_indices", "tensor_splits"]


@dataclass(frozen=True)
class DatasetSplits:
    """One task: train/val/test ``TensorDataset``s of (float32 (N, C, H, W), int64 (N,))."""

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    class_names: tuple[str, ...]
    augment: str  # hint for the trainer: one of AUGMENTATIONS
    mean: tuple[float, ...]  # per channel, applied to [0, 1] pixels
    std: tuple[float, ...]
    pixel_max: float | None = None  # raw pixels are divided by it to reach [0, 1]; None: no pixels (synthetic)
    resize: tuple[int, int] | None = None  # (H, W) image files are resized to (bilinear); None: not from files
    color_mode: str | None = None  # the Pillow mode image files are converted to first (L or RGB)
    preprocess: str | None = None  # how raw arrays were converted (a source's own words), when not from files
    license: str | None = None  # the data's licence where it binds models trained on it (a model card states it)

    def input_spec(self) -> dict[str, Any]:
        """How a deployed model's input is prepared from raw pixels (an export's card records it)."""
        c, h, w = self.input_shape
        scaled = "x[:, c]" if self.pixel_max is None else f"pixels[:, c] / {self.pixel_max:g}"
        spec = {"layout": "NCHW", "dtype": "float32", "shape": ["batch", c, h, w], "pixel_max": self.pixel_max,
                "mean": list(self.mean), "std": list(self.std), "class_names": list(self.class_names),
                "normalise": f"x[:, c] = ({scaled} - mean[c]) / std[c]"}
        if self.resize is not None:
            spec["image_file"] = (f"open with Pillow, convert('{self.color_mode}'), resize(({self.resize[1]}, "
                                  f"{self.resize[0]}), Image.BILINEAR), take the pixels as uint8 (H, W[, C]) -> "
                                  f"(C, H, W)")
            spec["resize"] = list(self.resize)
            spec["color_mode"] = self.color_mode
        if self.preprocess is not None:
            spec["preprocess"] = self.preprocess
        return spec

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment={self.augment!r} is not valid; valid: {', '.join(AUGMENTATIONS)}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class_names for num_classes={self.num_classes}")
        if not len(self.mean) == len(self.std) == self.input_shape[0]:
            raise ValueError(f"mean/std need one value per channel ({self.input_shape[0]}), "
                             f"got {len(self.mean)}/{len(self.std)}")
        for split in ("train", "val", "test"):
            shape = tuple(getattr(self, split).tensors[0].shape[1:])
            if shape != tuple(self.input_shape):
                raise ValueError(f"{split} images are {shape}, expected input_shape {self.input_shape}")

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}



def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def normalise(
    x01: dict[str, np.ndarray],
) -> tuple[dict[str, torch.Tensor], tuple[float, ...], tuple[float, ...]]:
    """Per-channel (x - mean) / std with train-split constants; x01 float32 (N, C, H, W) in [0, 1].

    Statistics are accumulated in float64 one channel at a time (bounded memory on CIFAR-10);
    the arrays are normalised in place and wrapped without a copy.
    """
    train = x01["train"]
    mean = np.array([train[:, c].mean(dtype=np.float64) for c in range(train.shape[1])])
    std = np.array([train[:, c].std(dtype=np.float64) for c in range(train.shape[1])])  # ddof=0
    std = np.where(std > 1e-12, std, 1.0)  # constant channel: shift only
    shape = (1, -1, 1, 1)
    for v in x01.values():
        v -= mean.astype(np.float32).reshape(shape)
        v /= std.astype(np.float32).reshape(shape)
    out = {k: torch.from_numpy(v) for k, v in x01.items()}
    return out, tuple(float(m) for m in mean), tuple(float(s) for s in std)


def tensor_splits(images: dict[str, torch.Tensor],
                   labels: dict[str, np.ndarray]) -> dict[str, TensorDataset]:
    return {k: TensorDataset(images[k], torch.as_tensor(np.asarray(labels[k]), dtype=torch.int64))
            for k in ("train", "val", "test")}


def split_indices(n: int, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified (train, val, test) row indices of ``range(n)``, 70/15/15 %, disjoint."""
    random_state = check_seed(seed) % 2**32
    idx = np.arange(n)
    train, rest = train_test_split(idx, test_size=0.30, stratify=labels, random_state=random_state)
    val, test = train_test_split(rest, test_size=0.50, stratify=labels[rest], random_state=random_state)
    return train, val, test

