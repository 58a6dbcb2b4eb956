"""Labelled images → :class:`DatasetSplits`: what every file-reading source ends with.

:func:`labelled_splits` checks the labels (in range, at least two classes, every class large
enough for a stratified 70/15/15 % split, or the splits as given), scales 8-bit pixels to [0, 1],
normalises with train-split statistics and records how a deployed model's input is prepared
(resize, colour mode, ÷ 255, the per-channel constants).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nas.data.images import decode_cached, image_channels
from nas.data.splits import DatasetSplits, normalise, split_indices, tensor_splits

__all__ = ["MIN_PER_CLASS", "check_channels", "check_image_size", "image_file_splits", "labelled_splits", "split_parts"]

# A stratified 70/15/15 % split needs every class at least twice in the 30 % held out: 7 images.
MIN_PER_CLASS = 7
_MAX_IMAGE_SIZE = 1024


def check_image_size(source: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 4 <= value <= _MAX_IMAGE_SIZE:
        raise ValueError(f"{source}: image_size must be an int from 4 to {_MAX_IMAGE_SIZE} pixels, got {value!r}")
    return int(value)


def check_channels(source: str, value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or value not in (1, 3)):
        raise ValueError(f"{source}: channels must be 1 (grayscale) or 3 (RGB), got {value!r}")
    return None if value is None else int(value)


def _check_labels(source: str, y: np.ndarray, num_classes: int, where: str) -> None:
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = int(y[(y < 0) | (y >= num_classes)][0])
        raise ValueError(f"{source}: label {bad} in {where} is out of range; valid labels: 0 to {num_classes - 1} "
                         f"({num_classes} classes)")


def split_parts(source: str, labels: np.ndarray, class_names: Sequence[str], *, seed: int, where: str,
                given: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The train/val/test row indices of ``labels`` — ``given``, or seeded and stratified — after
    checking the labels: in range, at least two classes, every class large enough to split."""
    y = np.asarray(labels, dtype=np.int64)
    num_classes = len(class_names)
    _check_labels(source, y, num_classes, where)
    present = np.unique(y)
    if len(present) < 2:
        only = class_names[int(present[0])] if len(present) else "(none)"
        raise ValueError(f"{source}: {where} holds one class only ({only!r}); a classifier needs at least 2 classes")
    if given is None:
        counts = np.bincount(y, minlength=num_classes)
        small = [(class_names[i], int(c)) for i, c in enumerate(counts) if c < MIN_PER_CLASS]
        if small:
            listed = ", ".join(f"{n!r} ({c})" for n, c in small)
            raise ValueError(f"{source}: class(es) {listed} in {where} have too few images for a stratified "
                             f"train/val/test split; each class needs at least {MIN_PER_CLASS} (or give the splits "
                             f"yourself)")
        return dict(zip(("train", "val", "test"), split_indices(len(y), y, seed)))
    parts = {k: np.asarray(given[k], dtype=np.int64) for k in ("train", "val", "test")}
    for k, idx in parts.items():
        if idx.size == 0:
            raise ValueError(f"{source}: the {k} split of {where} is empty; every split needs images")
    if len(np.unique(y[parts["train"]])) < 2:
        raise ValueError(f"{source}: the train split of {where} holds one class only; it needs at least 2")
    return parts


def labelled_splits(*, source: str, pixels: np.ndarray, labels: np.ndarray, class_names: Sequence[str], seed: int,
                    where: str, given: Mapping[str, np.ndarray] | None = None, pixel_max: float = 255.0,
                    resize: tuple[int, int] | None = None, preprocess: str | None = None,
                    augment: str = "none") -> DatasetSplits:
    """The splits of ``pixels`` (N, C, H, W; ``pixel_max`` is white) labelled ``labels`` (N,) in
    ``0..len(class_names)-1``; ``given`` (train/val/test index arrays) replaces the seeded
    stratified split. ``resize`` (image files resized by Pillow) or ``preprocess`` (another conversion)
    says on the record how a raw input was prepared. ``where`` names the data in errors; nothing is
    written."""
    y = np.asarray(labels, dtype=np.int64)
    if len(pixels) != len(y):
        raise ValueError(f"{source}: {len(pixels)} images but {len(y)} labels in {where}")
    parts = split_parts(source, y, class_names, seed=seed, where=where, given=given)
    x01 = {k: pixels[idx].astype(np.float32) / np.float32(pixel_max) for k, idx in parts.items()}
    images, mean, std = normalise(x01)
    c, h, w = pixels.shape[1:]
    return DatasetSplits(
        name=source, **tensor_splits(images, {k: y[idx] for k, idx in parts.items()}), input_shape=(c, h, w),
        num_classes=len(class_names), class_names=tuple(str(n) for n in class_names), augment=augment, mean=mean,
        std=std, pixel_max=float(pixel_max), resize=resize, color_mode=("L" if c == 1 else "RGB"),
        preprocess=preprocess)


def image_file_splits(source: str, files: list[Path], labels: np.ndarray, names: list[str], *, seed: int, where: str,
                      given: dict[str, np.ndarray] | None, image_size: int, channels: int | None,
                      skip_bad: bool) -> DatasetSplits:
    """Decode (cached) ``files`` labelled ``labels`` and build the splits; skipped files leave the
    given splits' indices consistent."""
    split_parts(source, labels, names, seed=seed, where=where, given=given)  # bad labels: nothing decoded or cached
    channels = channels or image_channels(files)
    decoded = decode_cached(files, channels=channels, size=image_size, skip_bad=skip_bad, label=source)
    if decoded.skipped:
        shown = "; ".join(decoded.skipped[:3]) + (" …" if len(decoded.skipped) > 3 else "")
        warnings.warn(f"{source}: skipped {len(decoded.skipped)} unreadable image(s) of {len(files)} in {where}: "
                      f"{shown}", UserWarning, stacklevel=3)
    kept = decoded.kept
    if given is not None:
        position = np.full(len(files), -1)
        position[kept] = np.arange(len(kept))
        given = {k: position[idx][position[idx] >= 0] for k, idx in given.items()}
    return labelled_splits(source=source, pixels=decoded.pixels, labels=np.asarray(labels)[kept], class_names=names,
                           seed=seed, where=where, given=given, resize=(image_size, image_size))
