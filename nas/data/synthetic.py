"""``synthetic``: seeded Gaussian images of any shape, labelled by a seeded linear projection.

Learnable, generated in memory (no files), for tests; already N(0, 1), so normalisation is the
identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, check_seed, tensor_splits

__all__ = ["SyntheticSource"]


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"synthetic: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)



@register_dataset
class SyntheticSource(DatasetSource):
    name = "synthetic"
    description = "Gaussian images, labels = argmax of a seeded linear projection (learnable)"
    data_origin = "its images are generated in memory from the seed"

    def __init__(self, *, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
                 n_train: int = 512, n_val: int = 128, n_test: int = 128) -> None:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError(f"synthetic: input_shape must be 3 positive ints (C, H, W), got {input_shape!r}")
        self.input_shape = tuple(_positive_int(f"input_shape[{i}]", v) for i, v in enumerate(input_shape))
        self.num_classes = _positive_int("num_classes", num_classes, minimum=2)
        self.n = {k: _positive_int(f"n_{k}", v)
                  for k, v in (("train", n_train), ("val", n_val), ("test", n_test))}

    def load(self, *, seed: int) -> DatasetSplits:
        gen = torch.Generator().manual_seed(check_seed(seed))
        dim = int(np.prod(self.input_shape))
        proj = torch.randn(dim, self.num_classes, generator=gen)  # (C*H*W, K)
        images, labels = {}, {}
        for k, n in self.n.items():
            images[k] = torch.randn((n, *self.input_shape), generator=gen)  # (N, C, H, W)
            labels[k] = (images[k].reshape(n, dim) @ proj).argmax(dim=1).numpy()
        channels = self.input_shape[0]
        return DatasetSplits(
            name=self.name, **tensor_splits(images, labels), input_shape=self.input_shape,
            num_classes=self.num_classes, class_names=tuple(f"class_{i}" for i in range(self.num_classes)),
            augment="none", mean=(0.0,) * channels, std=(1.0,) * channels)  # already N(0, 1): identity
