"""``cluttered-digits``: scikit-learn's real handwritten digits composed on a larger canvas.

In the manner of cluttered MNIST (Mnih et al., 2014): each composite is one 8×8 digit, scaled
to a random size in ``[8, max_digit_px]`` (bilinear) and placed at a random position on a
``canvas_px`` × ``canvas_px`` canvas, with ``fragments`` random ``fragment_px`` × ``fragment_px``
crops of *other* digits scattered over it (pixel-wise maximum) and Gaussian pixel noise of
std ``noise_std``, clipped to [0, 1]. The label is the whole digit's.

Generated in memory from the seed (no files). The 1797 source digits are first split
stratified 70/15/15 % (:func:`nas.data.splits.split_indices`); train, val and test composites
— digits and clutter alike — are drawn from their own split's sources only, so no source digit
is seen in two splits. Any number of composites per split (``n_train``, ``n_val``, ``n_test``).

Unlike ``digits``, where every architecture of a small space scores the same within noise,
the clutter makes the task need receptive field and capacity, so architectures separate
(measured by ``nas bench ranking``; see the README).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, check_seed, normalise, split_indices, tensor_splits

__all__ = ["ClutteredDigitsSource", "compose"]

_DIGIT_PX = 8


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"cluttered-digits: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def compose(digits01: np.ndarray, labels: np.ndarray, n: int, *, canvas_px: int, max_digit_px: int,
            fragments: int, fragment_px: int, noise_std: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` composites (float32 (n, 1, canvas_px, canvas_px) in [0, 1], int64 labels) from the
    source digits ``digits01`` (float (M, 8, 8) in [0, 1]) and their ``labels``."""
    m = len(digits01)
    if m < 2:
        raise ValueError(f"cluttered-digits: need at least 2 source digits to compose clutter, got {m}")
    src = torch.from_numpy(np.asarray(digits01, dtype=np.float32)).unsqueeze(1)  # (M, 1, 8, 8)
    scaled = {s: src if s == _DIGIT_PX else F.interpolate(src, size=(s, s), mode="bilinear", align_corners=False)
              for s in range(_DIGIT_PX, max_digit_px + 1)}
    scaled = {s: v.squeeze(1).clamp_(0, 1).numpy() for s, v in scaled.items()}
    out = np.zeros((n, canvas_px, canvas_px), dtype=np.float32)
    which = rng.integers(0, m, size=n)
    sizes = rng.integers(_DIGIT_PX, max_digit_px + 1, size=n)
    for i in range(n):
        canvas = out[i]
        for _ in range(fragments):
            other = int(rng.integers(0, m - 1))
            other += other >= which[i]  # any source digit but the composite's own
            fy, fx = rng.integers(0, _DIGIT_PX - fragment_px + 1, size=2)
            py, px = rng.integers(0, canvas_px - fragment_px + 1, size=2)
            patch = digits01[other, fy:fy + fragment_px, fx:fx + fragment_px]
            region = canvas[py:py + fragment_px, px:px + fragment_px]
            np.maximum(region, patch, out=region)
        s = int(sizes[i])
        y0, x0 = rng.integers(0, canvas_px - s + 1, size=2)
        region = canvas[y0:y0 + s, x0:x0 + s]
        np.maximum(region, scaled[s][which[i]], out=region)
    if noise_std > 0:
        out += rng.normal(0.0, noise_std, size=out.shape).astype(np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out[:, None], np.asarray(labels, dtype=np.int64)[which]


@register_dataset
class ClutteredDigitsSource(DatasetSource):
    name = "cluttered-digits"
    description = ("scikit-learn's real digits, scaled and placed on a 16x16 canvas with a fragment of another "
                   "digit and noise: 10 classes, generated in memory, a task that separates architectures")
    data_origin = "its images are composed in memory from scikit-learn's embedded digits"

    def __init__(self, *, canvas_px: int = 16, max_digit_px: int = 10, fragments: int = 1, fragment_px: int = 4,
                 noise_std: float = 0.1, n_train: int = 6000, n_val: int = 2000, n_test: int = 2000) -> None:
        self.canvas_px = _int_at_least("canvas_px", canvas_px, _DIGIT_PX)
        self.max_digit_px = _int_at_least("max_digit_px", max_digit_px, _DIGIT_PX)
        if self.max_digit_px > self.canvas_px:
            raise ValueError(f"cluttered-digits: max_digit_px ({max_digit_px}) must not exceed canvas_px "
                             f"({canvas_px})")
        self.fragments = _int_at_least("fragments", fragments, 0)
        self.fragment_px = _int_at_least("fragment_px", fragment_px, 1)
        if self.fragment_px > _DIGIT_PX:
            raise ValueError(f"cluttered-digits: fragment_px must be <= {_DIGIT_PX} (a crop of an 8x8 digit), "
                             f"got {fragment_px}")
        if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not 0 <= noise_std < 10:
            raise ValueError(f"cluttered-digits: noise_std must be a number in [0, 10), got {noise_std!r}")
        self.noise_std = float(noise_std)
        self.n = {k: _int_at_least(f"n_{k}", v, 1) for k, v in (("train", n_train), ("val", n_val), ("test", n_test))}

    def load(self, *, seed: int) -> DatasetSplits:
        seed = check_seed(seed)
        raw = load_digits()
        digits01 = (raw.images / 16.0).astype(np.float32)  # (1797, 8, 8), values 0..16 -> [0, 1]
        y = raw.target.astype(np.int64)
        parts = dict(zip(("train", "val", "test"), split_indices(len(y), y, seed)))
        x01, labels = {}, {}
        for j, (split, idx) in enumerate(parts.items()):
            rng = np.random.default_rng([seed, j])  # one stream per split: a split's size moves no other
            x01[split], labels[split] = compose(
                digits01[idx], y[idx], self.n[split], canvas_px=self.canvas_px, max_digit_px=self.max_digit_px,
                fragments=self.fragments, fragment_px=self.fragment_px, noise_std=self.noise_std, rng=rng)
        images, mean, std = normalise(x01)
        return DatasetSplits(
            name=self.name, **tensor_splits(images, labels), input_shape=(1, self.canvas_px, self.canvas_px),
            num_classes=10, class_names=tuple(str(t) for t in raw.target_names), augment="none", mean=mean,
            std=std, pixel_max=1.0)
