"""``digits``: scikit-learn's bundled 8×8 handwritten digits (1797 images, embedded in the wheel).

Seeded stratified 70/15/15 % split (:func:`nas.data.splits.split_indices`); pixels 0..16 ÷ 16.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, normalise, split_indices, tensor_splits

__all__ = ["DigitsSource"]


@register_dataset
class DigitsSource(DatasetSource):
    name = "digits"
    description = "scikit-learn 8x8 digits: 1797 images, 10 classes, bundled (no download)"
    data_origin = "its images are embedded in the scikit-learn package"
    spaces = ("digits-s",)

    def __init__(self) -> None:  # no options; explicit so load_dataset can list them (none)
        pass

    def load(self, *, seed: int) -> DatasetSplits:
        raw = load_digits()
        x01 = (raw.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)  # values 0..16 -> [0, 1]
        y = raw.target.astype(np.int64)
        parts = dict(zip(("train", "val", "test"), split_indices(len(y), y, seed)))
        images, mean, std = normalise({k: x01[i] for k, i in parts.items()})
        return DatasetSplits(
            name=self.name, **tensor_splits(images, {k: y[i] for k, i in parts.items()}),
            input_shape=(1, 8, 8), num_classes=10, class_names=tuple(str(t) for t in raw.target_names),
            augment="none", mean=mean, std=std, pixel_max=16.0)
